#!/usr/bin/env python3
"""Write a stand-in for NVIDIA's LPIPS file vgg16.pt: the same network shape and call, random weights.

  tools/make_lpips_standin.py OUT.pt [--seed 0]

NVIDIA's metrics/vgg16.pt (the StyleGAN2-ADA projector's and `facetex reconstruct --lpips-vgg`'s perceptual
distance) is a TorchScript module called as forward(img, resize_images, return_lpips) on [B, 3, H, W] images in
0-255: VGG16's 13 convolutions (configuration D) with ReLUs and 4 max-pools, and with return_lpips=True the
activations after relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, each unit-normalised over channels at every
pixel, scaled by the square root of per-channel weights and of 1/(H*W), flattened and concatenated, so that the
squared distance of two images' outputs is their LPIPS distance.

This file has that architecture and interface with seeded random weights (He-normal convolutions, positive channel
weights). It is for measuring cost where the real file cannot be downloaded (the GPU machine has no network): the
arithmetic, activation memory and kernels are the real file's, the values are not, so distances mean nothing.
Benchmarks that use it say so. Needs python3 + torch (Debian's python3-torch or the GPU machine's pip torch).
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

# VGG16 configuration D: output channels per convolution, 'M' = 2x2 max-pool. The taps are the ReLUs that end each
# of the five stages (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
STAGES = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]


class LpipsVgg16(torch.nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        convs = []
        lin = []
        cin = 3
        for stage in STAGES:
            for cout in stage:
                conv = torch.nn.Conv2d(cin, cout, 3, padding=1)
                with torch.no_grad():
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / (cin * 9)) ** 0.5)
                    conv.bias.zero_()
                convs.append(conv)
                cin = cout
            lin.append(torch.rand([1, cin, 1, 1], generator=gen) + 0.05)
        self.convs = torch.nn.ModuleList(convs)
        self.stage_ends = [1, 3, 6, 9, 12]  # index of the last convolution of each stage
        self.lin = torch.nn.ParameterList([torch.nn.Parameter(w) for w in lin])
        self.register_buffer("mean", torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1))

    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        if not return_lpips:
            raise RuntimeError("this stand-in only implements return_lpips=True")
        x = img.to(torch.float32)
        if resize_images:
            x = F.interpolate(x, size=[224, 224], mode="area")
        x = x - self.mean
        taps: list[torch.Tensor] = []
        stage = 0
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i == self.stage_ends[stage]:
                taps.append(x)
                stage += 1
                if stage < len(self.stage_ends):
                    x = F.max_pool2d(x, 2)
        out: list[torch.Tensor] = []
        for j, lin in enumerate(self.lin):
            t = taps[j]
            t = t * torch.rsqrt(t.square().sum(dim=1, keepdim=True) + 1e-10)
            t = t * torch.sqrt(lin / float(t.shape[2] * t.shape[3]))
            out.append(t.flatten(1))
        return torch.cat(out, dim=1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="TorchScript file to write")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    m = torch.jit.script(LpipsVgg16(a.seed).eval())
    tmp = a.out + ".tmp"
    m.save(tmp)
    os.replace(tmp, a.out)
    n = sum(t.numel() for t in m.parameters())
    print(f"make_lpips_standin: {a.out}: VGG16 LPIPS interface, {n / 1e6:.1f} M random parameters (seed {a.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
