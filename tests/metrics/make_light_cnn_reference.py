#!/usr/bin/python3
"""A random-weight LightCNN-29 v2 in the published checkpoint layout and its reference features, for
tests/metrics/test_light_cnn.cpp. The network is light_cnn.py's network_29layers_v2(resblock, [1, 2, 3, 4]) written
out here (10 classes instead of 80013 to keep the file small). Writes OUT/light_cnn.pth ({'state_dict': DataParallel
'module.' keys}), OUT/input.f32 (RGB [2, 3, 144, 160] in [0, 1]) and OUT/features.f32 ([2, 256]: channel mean ->
bilinear resize to 128 -> fc). Usage: make_light_cnn_reference.py OUT_DIR
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class mfm(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.out_channels = out_channels
        self.filter = nn.Conv2d(in_channels, 2 * out_channels, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x):
        out = torch.split(self.filter(x), self.out_channels, 1)
        return torch.max(out[0], out[1])


class group(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding):
        super().__init__()
        self.conv_a = mfm(in_channels, in_channels, 1, 1, 0)
        self.conv = mfm(in_channels, out_channels, kernel_size, stride, padding)

    def forward(self, x):
        return self.conv(self.conv_a(x))


class resblock(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = mfm(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.conv2 = mfm(in_channels, out_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x):
        return self.conv2(self.conv1(x)) + x


class network_29layers_v2(nn.Module):
    def __init__(self, block, layers, num_classes=80013):
        super().__init__()
        self.conv1 = mfm(1, 48, 5, 1, 2)
        self.block1 = self._make_layer(block, layers[0], 48, 48)
        self.group1 = group(48, 96, 3, 1, 1)
        self.block2 = self._make_layer(block, layers[1], 96, 96)
        self.group2 = group(96, 192, 3, 1, 1)
        self.block3 = self._make_layer(block, layers[2], 192, 192)
        self.group3 = group(192, 128, 3, 1, 1)
        self.block4 = self._make_layer(block, layers[3], 128, 128)
        self.group4 = group(128, 128, 3, 1, 1)
        self.fc = nn.Linear(8 * 8 * 128, 256)
        self.fc2 = nn.Linear(256, num_classes, bias=False)

    def _make_layer(self, block, num_blocks, in_channels, out_channels):
        return nn.Sequential(*[block(in_channels, out_channels) for _ in range(num_blocks)])

    def forward(self, x):
        x = self.conv1(x)
        x = F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)
        x = self.block1(x)
        x = self.group1(x)
        x = F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)
        x = self.block2(x)
        x = self.group2(x)
        x = F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)
        x = self.block3(x)
        x = self.group3(x)
        x = self.block4(x)
        x = self.group4(x)
        x = F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)
        x = x.view(x.size(0), -1)
        fc = self.fc(x)
        x = F.dropout(fc, training=self.training)
        return self.fc2(x), fc


if __name__ == "__main__":
    out = sys.argv[1]
    torch.manual_seed(7)
    net = network_29layers_v2(resblock, [1, 2, 3, 4], num_classes=10).eval()
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in net.state_dict().items()}},
               f"{out}/light_cnn.pth", _use_new_zipfile_serialization=False)
    rgb = torch.rand(2, 3, 144, 160, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        gray = rgb.mean(1, keepdim=True)
        _, feat = net(F.interpolate(gray, size=(128, 128), mode="bilinear", align_corners=False))
    rgb.numpy().astype("float32").tofile(f"{out}/input.f32")
    feat.numpy().astype("float32").tofile(f"{out}/features.f32")
