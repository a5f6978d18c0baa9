#!/usr/bin/env python3
"""Reference data for tests/aux: the frozen networks of the paper's `background = generated` branch, written in
PyTorch after their public definitions (DFRModel and RigNet as described in the paper digest, Deep3DFaceRecon's
ReconNetWrapper('resnet50') over a torchvision-layout ResNet-50, facenet_pytorch's PNet/RNet/ONet and its
detect_face cascade), with seeded random weights.

  make_aux_reference.py OUT_DIR

writes, in the production file layouts (so that the converter and the C++ loaders are exercised as they will be
on the real files):
  params_test.pth       DFRModel(num_ws=10) plain state dict             (like saved_models/params_1407000.pth)
  rignet_test.pth       RigNet(num_ws=10) plain state dict               (like saved_models/rignet_*.pth)
  epoch_20.pth          {'net_recon': state dict, 'opt_00': Adam state, 'sched_00': StepLR state, 'epoch': 20}
                        (like Deep3DFaceRecon's checkpoints/<name>/epoch_20.pth)
  pnet.pt               plain state dict in torch's legacy (pre-1.6) serialisation, rnet.pt / onet.pt in the zip
                        one (facenet_pytorch/data/*.pt)
  reference.h5          inputs and outputs of every net, and of the detector (see write_h5 below)

Only the layouts and the arithmetic are the real ones: every value is random ("random-weight smoke values").
Needs Debian's python3-torch (1.13), numpy and h5py; no torchvision (NMS is written out below).
"""
import math
import os
import sys

import h5py
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

torch.set_grad_enabled(False)
torch.set_num_threads(1)   # the machine is shared; determinism matters more than speed here

NUM_WS = 10   # a 64x64 StyleGAN2 generator's ws count (production: 18)


# ---------------------------------------------------------------------------------------------------------------
# DFR and RigNet (spec §2, §3.3)

class DFRModel(nn.Module):
    def __init__(self, num_ws):
        super().__init__()
        self.L1 = nn.Linear(num_ws * 512, 1024)
        self.L2 = nn.Linear(1024, 1024)
        self.L3 = nn.Linear(1024, 257)

    def forward(self, ws):
        x = ws.reshape(ws.shape[0], -1)
        return self.L3(F.elu(self.L2(F.elu(self.L1(x)))))


class RigNet(nn.Module):
    def __init__(self, num_ws):
        super().__init__()
        self.encoder = nn.ModuleList([nn.Linear(512, 32) for _ in range(num_ws)])
        self.decoder = nn.ModuleList([nn.Linear(32 + 257, 512) for _ in range(num_ws)])

    def forward(self, ws, p):
        return torch.stack([dec(torch.cat([enc(ws[:, i]), p], dim=1))
                            for i, (enc, dec) in enumerate(zip(self.encoder, self.decoder))], dim=1)


# ---------------------------------------------------------------------------------------------------------------
# ReconNetWrapper('resnet50'): torchvision's ResNet-50 layout without fc, plus seven 1x1 heads

class Bottleneck(nn.Module):
    def __init__(self, inplanes, width, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)   # v1.5: stride here
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet50(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for i, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
            stride = 1 if i == 0 else 2
            layers = []
            for b in range(blocks):
                down = None
                if b == 0:
                    down = nn.Sequential(nn.Conv2d(inplanes, width * 4, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(width * 4))
                layers.append(Bottleneck(inplanes, width, stride if b == 0 else 1, down))
                inplanes = width * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)


class ReconNetWrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = ResNet50()
        self.final_layers = nn.ModuleList([nn.Conv2d(2048, c, 1, bias=True) for c in (80, 64, 80, 3, 27, 2, 1)])

    def forward(self, x):
        x = self.backbone(x)
        return torch.flatten(torch.cat([layer(x) for layer in self.final_layers], dim=1), 1)


def randomise_batchnorm(net, gen):
    """Eval-mode BN must use the stored statistics: make them far from the identity so that mistakes show."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.num_batches_tracked.fill_(12345)


# ---------------------------------------------------------------------------------------------------------------
# facenet_pytorch's MTCNN nets (state_dict names as in models/mtcnn.py)

class PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def features(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        return self.prelu3(self.conv3(self.prelu2(self.conv2(x))))

    def forward(self, x):
        x = self.features(x)
        return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))


class RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def features(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        return self.prelu4(self.dense4(x.view(x.shape[0], -1)))

    def forward(self, x):
        x = self.features(x)
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))


class ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def features(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        return self.prelu5(self.dense5(x.view(x.shape[0], -1)))

    def forward(self, x):
        x = self.features(x)
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))


def randomise_prelu(net, gen):
    for m in net.modules():
        if isinstance(m, nn.PReLU):
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5)


# ---------------------------------------------------------------------------------------------------------------
# facenet_pytorch's detect_face, with its torchvision NMS written out (per group, greedy)

def nms(boxes, scores, groups, threshold, method="Union", plus_one=False):
    """Greedy NMS per group, kept indices in decreasing score order (torchvision.ops.batched_nms semantics for
    Union without +1; detect_face's nms_numpy for 'Min' with +1)."""
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.long)
    e = 1.0 if plus_one else 0.0
    order = torch.sort(scores, descending=True, stable=True)[1]
    x1, y1, x2, y2 = [boxes[:, i] for i in range(4)]
    area = (x2 - x1 + e) * (y2 - y1 + e)
    removed = torch.zeros(boxes.shape[0], dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if removed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1) + e).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1) + e).clamp(min=0)
        inter = w * h
        if method == "Min":
            o = inter / torch.minimum(area[i], area)
        else:
            o = inter / (area[i] + area - inter)
        removed |= (o > threshold) & (groups == groups[i])
    return torch.tensor(keep, dtype=torch.long)


def generate_bounding_box(reg, probs, scale, thresh):
    stride, cellsize = 2, 12
    reg = reg.permute(1, 0, 2, 3)
    mask = probs >= thresh
    mask_inds = mask.nonzero()
    image_inds = mask_inds[:, 0]
    score = probs[mask]
    reg = reg[:, mask].permute(1, 0)
    bb = mask_inds[:, 1:].type(reg.dtype).flip(1)
    q1 = ((stride * bb + 1) / scale).floor()
    q2 = ((stride * bb + cellsize - 1 + 1) / scale).floor()
    return torch.cat([q1, q2, score.unsqueeze(1), reg], dim=1), image_inds


def bbreg(boxes, reg):
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    b = torch.stack([boxes[:, 0] + reg[:, 0] * w, boxes[:, 1] + reg[:, 1] * h,
                     boxes[:, 2] + reg[:, 2] * w, boxes[:, 3] + reg[:, 3] * h]).permute(1, 0)
    boxes = boxes.clone()
    boxes[:, :4] = b
    return boxes


def rerec(boxes):
    boxes = boxes.clone()
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    l = torch.max(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - l * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - l * 0.5
    boxes[:, 2:4] = boxes[:, :2] + l.repeat(2, 1).permute(1, 0)
    return boxes


def pad(boxes, w, h):
    boxes = boxes.trunc().int().numpy()
    x, y, ex, ey = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    x[x < 1] = 1
    y[y < 1] = 1
    ex[ex > w] = w
    ey[ey > h] = h
    return y, ey, x, ex


def pyramid(h, w, minsize, factor):
    m = 12.0 / minsize
    minl = min(h, w) * m
    scale, scales = m, []
    while minl >= 12:
        scales.append(scale)
        scale *= factor
        minl *= factor
    return scales


def crops_of(imgs, boxes, image_inds, size, h, w, stats):
    """Crops like detect_face; boxes with an empty window are dropped (facetex's documented behaviour; detect_face
    would skip the crop but keep the box). `stats` counts how often that happened."""
    y, ey, x, ex = pad(boxes, w, h)
    keep, crops = [], []
    for k in range(len(y)):
        if ey[k] > (y[k] - 1) and ex[k] > (x[k] - 1):
            keep.append(k)
            crops.append(F.interpolate(imgs[image_inds[k], :, (y[k] - 1):ey[k], (x[k] - 1):ex[k]].unsqueeze(0),
                                       size=(size, size), mode="area"))
    stats["dropped_windows"] += len(y) - len(keep)
    keep = torch.tensor(keep, dtype=torch.long)
    data = torch.cat(crops) if crops else torch.empty(0, 3, size, size)
    return (data - 127.5) * 0.0078125, keep


def detect_face(imgs_nhwc, pnet, rnet, onet, minsize=20, threshold=(0.6, 0.7, 0.7), factor=0.709, stats=None):
    """facenet_pytorch.models.utils.detect_face.detect_face for a (B, H, W, 3) float tensor. Returns every face:
    (image_inds, boxes (N, 5), points (N, 5, 2)), plus the intermediate counts in `stats`."""
    imgs = imgs_nhwc.permute(0, 3, 1, 2).float()
    h, w = imgs.shape[2:4]
    boxes, image_inds = [], []
    for scale in pyramid(h, w, minsize, factor):
        im_data = F.interpolate(imgs, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
        im_data = (im_data - 127.5) * 0.0078125
        reg, probs = pnet(im_data)
        boxes_scale, inds_scale = generate_bounding_box(reg, probs[:, 1], scale, threshold[0])
        stats["pnet_candidates"] += boxes_scale.shape[0]
        pick = nms(boxes_scale[:, :4], boxes_scale[:, 4], inds_scale, 0.5)
        boxes.append(boxes_scale[pick])
        image_inds.append(inds_scale[pick])
    boxes, image_inds = torch.cat(boxes), torch.cat(image_inds)
    pick = nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    qq1 = boxes[:, 0] + boxes[:, 5] * regw
    qq2 = boxes[:, 1] + boxes[:, 6] * regh
    qq3 = boxes[:, 2] + boxes[:, 7] * regw
    qq4 = boxes[:, 3] + boxes[:, 8] * regh
    boxes = rerec(torch.stack([qq1, qq2, qq3, qq4, boxes[:, 4]]).permute(1, 0))
    stats["stage1_boxes"] = boxes.shape[0]

    points = torch.zeros(0, 5, 2)
    if len(boxes) > 0:
        im_data, keep = crops_of(imgs, boxes, image_inds, 24, h, w, stats)
        boxes, image_inds = boxes[keep], image_inds[keep]
        out0, out1 = rnet(im_data)
        score = out1[:, 1]
        ipass = score > threshold[1]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[ipass]
        pick = nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
        boxes = rerec(bbreg(boxes, mv))
    stats["stage2_boxes"] = boxes.shape[0]

    if len(boxes) > 0:
        im_data, keep = crops_of(imgs, boxes, image_inds, 48, h, w, stats)
        boxes, image_inds = boxes[keep], image_inds[keep]
        out0, out1, out2 = onet(im_data)
        score = out2[:, 1]
        pts = out1.permute(1, 0)
        ipass = score > threshold[2]
        pts = pts[:, ipass]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[ipass]
        w_i = boxes[:, 2] - boxes[:, 0] + 1
        h_i = boxes[:, 3] - boxes[:, 1] + 1
        points_x = w_i.repeat(5, 1) * pts[:5, :] + boxes[:, 0].repeat(5, 1) - 1
        points_y = h_i.repeat(5, 1) * pts[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
        points = torch.stack((points_x, points_y)).permute(2, 1, 0)
        boxes = bbreg(boxes, mv)
        pick = nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min", plus_one=True)
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]
    stats["faces"] = boxes.shape[0]
    return image_inds, boxes, points


def calibrate_face_bias(logit_gap, layer, threshold, pass_fraction):
    """Rescales the classifier so that the face-vs-background logit gap has a spread of 2 over the given samples and
    shifts the face bias so that about `pass_fraction` of them have P(face) > threshold: random weights would
    otherwise pass all or nothing, or give probabilities so close to the threshold that the test proves little."""
    spread = 2.0 / logit_gap.std()
    layer.weight.mul_(spread)
    layer.bias.mul_(spread)
    cut = torch.quantile(logit_gap * spread, 1.0 - pass_fraction)
    layer.bias[1] += math.log(threshold / (1.0 - threshold)) - cut


def synthetic_images(gen, batch, h, w):
    """Smooth random scenes (low-frequency noise plus bright and dark blobs), RGB float in [0, 255], (B, H, W, 3)."""
    low = F.interpolate(torch.rand(batch, 3, h // 8, w // 8, generator=gen), size=(h, w), mode="bilinear",
                        align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    img = 0.6 * low
    for b in range(batch):
        for _ in range(4):
            cy, cx = torch.rand(2, generator=gen) * torch.tensor([h, w])
            r = 6 + torch.rand(1, generator=gen) * h / 4
            sign = 1 if torch.rand(1, generator=gen) > 0.5 else -1
            img[b] += sign * 0.4 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r ** 2))
    img = img + 0.03 * torch.randn(img.shape, generator=gen)
    return (img.clamp(0, 1) * 255).permute(0, 2, 3, 1).contiguous()


# ---------------------------------------------------------------------------------------------------------------

def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(20220601)
    gen = torch.Generator().manual_seed(7)
    ref = {}

    dfr = DFRModel(NUM_WS).eval()
    ws = torch.randn(3, NUM_WS, 512, generator=gen)
    ref["dfr/ws"], ref["dfr/coeffs"] = ws, dfr(ws)
    torch.save(dfr.state_dict(), os.path.join(out_dir, "params_test.pth"))

    rig = RigNet(NUM_WS).eval()
    p_edit = torch.randn(3, 257, generator=gen)
    ref["rignet/ws"], ref["rignet/p_edit"], ref["rignet/delta"] = ws, p_edit, rig(ws, p_edit)
    torch.save(rig.state_dict(), os.path.join(out_dir, "rignet_test.pth"))

    recon = ReconNetWrapper()
    randomise_batchnorm(recon, gen)
    recon.eval()
    rgb = torch.rand(2, 3, 224, 224, generator=gen)
    ref["recon/rgb"], ref["recon/coeffs"] = rgb, recon(rgb)
    # Deep3DFaceRecon's BaseModel.save_networks: one entry per network, optimizer and scheduler states, epoch.
    with torch.enable_grad():
        opt = torch.optim.Adam(recon.parameters(), lr=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10)
    torch.save({"net_recon": recon.state_dict(), "opt_00": opt.state_dict(), "sched_00": sched.state_dict(),
                "epoch": 20}, os.path.join(out_dir, "epoch_20.pth"))

    pnet, rnet, onet = PNet().eval(), RNet().eval(), ONet().eval()
    for net in (pnet, rnet, onet):
        randomise_prelu(net, gen)

    # Detector inputs: 3 images of 120 x 160 (not square, so that height/width mix-ups show).
    images = synthetic_images(gen, 3, 120, 160)
    imgs = images.permute(0, 3, 1, 2)
    h, w = imgs.shape[2:4]
    # Calibrate each stage's face bias on the data the stage sees, so that each passes part of its candidates.
    gaps = []
    for scale in pyramid(h, w, 20, 0.709):
        x = (F.interpolate(imgs, size=(int(h * scale + 1), int(w * scale + 1)), mode="area") - 127.5) * 0.0078125
        logits = pnet.conv4_1(pnet.features(x))
        gaps.append((logits[:, 1] - logits[:, 0]).flatten())
    calibrate_face_bias(torch.cat(gaps), pnet.conv4_1, 0.6, 0.15)
    calibration = {"dropped_windows": 0}
    inds, boxes = stage1_boxes(images, pnet)
    x24, _ = crops_of(imgs, boxes, inds, 24, h, w, calibration)
    logits = rnet.dense5_1(rnet.features(x24))
    calibrate_face_bias(logits[:, 1] - logits[:, 0], rnet.dense5_1, 0.7, 0.5)
    inds, boxes = stage2_boxes(images, pnet, rnet)
    x48, _ = crops_of(imgs, boxes, inds, 48, h, w, calibration)
    logits = onet.dense6_1(onet.features(x48))
    calibrate_face_bias(logits[:, 1] - logits[:, 0], onet.dense6_1, 0.7, 0.5)

    stage_stats = {"pnet_candidates": 0, "dropped_windows": 0}
    inds, boxes, points = detect_face(images, pnet, rnet, onet, stats=stage_stats)
    for k, v in stage_stats.items():
        print(f"  detector reference: {k} = {v}", file=sys.stderr)
    if stage_stats["dropped_windows"]:
        raise SystemExit("reference detection dropped an empty crop window; choose another seed")

    torch.save(pnet.state_dict(), os.path.join(out_dir, "pnet.pt"), _use_new_zipfile_serialization=False)
    torch.save(rnet.state_dict(), os.path.join(out_dir, "rnet.pt"))
    torch.save(onet.state_dict(), os.path.join(out_dir, "onet.pt"))

    x = torch.rand(2, 3, 30, 40, generator=gen) * 2 - 1
    ref["pnet/x"] = x
    ref["pnet/regression"], ref["pnet/probability"] = pnet(x)
    x = torch.rand(5, 3, 24, 24, generator=gen) * 2 - 1
    ref["rnet/x"] = x
    ref["rnet/regression"], ref["rnet/probability"] = rnet(x)
    x = torch.rand(5, 3, 48, 48, generator=gen) * 2 - 1
    ref["onet/x"] = x
    ref["onet/regression"], ref["onet/landmarks"], ref["onet/probability"] = onet(x)

    ref["detect/images"] = images
    ref["detect/scales"] = torch.tensor(pyramid(h, w, 20, 0.709), dtype=torch.float64)
    ref["detect/image_index"] = inds.int()
    ref["detect/boxes"] = boxes[:, :4]
    ref["detect/probs"] = boxes[:, 4]
    ref["detect/points"] = points
    ref["detect/stage_counts"] = torch.tensor([stage_stats["pnet_candidates"], stage_stats["stage1_boxes"],
                                               stage_stats["stage2_boxes"], stage_stats["faces"]], dtype=torch.int32)
    # selection_method='probability': per image the face with the highest probability (none -> found = 0).
    found = torch.zeros(3, dtype=torch.int32)
    sel_boxes, sel_probs, sel_points = torch.zeros(3, 4), torch.zeros(3), torch.zeros(3, 5, 2)
    for b in range(3):
        rows = (inds == b).nonzero().flatten()
        if len(rows):
            best = rows[torch.argmax(boxes[rows, 4])]
            found[b] = 1
            sel_boxes[b], sel_probs[b], sel_points[b] = boxes[best, :4], boxes[best, 4], points[best]
    ref["select/found"], ref["select/boxes"], ref["select/probs"], ref["select/points"] = \
        found, sel_boxes, sel_probs, sel_points

    with h5py.File(os.path.join(out_dir, "reference.h5"), "w") as f:
        for name, t in ref.items():
            f.create_dataset(name, data=t.detach().cpu().numpy())
    return 0


def stage1_boxes(images, pnet):
    """(image_inds, boxes) entering RNet, as detect_face computes them (for calibration only)."""
    imgs = images.permute(0, 3, 1, 2)
    h, w = imgs.shape[2:4]
    boxes, inds = [], []
    for scale in pyramid(h, w, 20, 0.709):
        x = (F.interpolate(imgs, size=(int(h * scale + 1), int(w * scale + 1)), mode="area") - 127.5) * 0.0078125
        reg, probs = pnet(x)
        b, i = generate_bounding_box(reg, probs[:, 1], scale, 0.6)
        pick = nms(b[:, :4], b[:, 4], i, 0.5)
        boxes.append(b[pick])
        inds.append(i[pick])
    boxes, inds = torch.cat(boxes), torch.cat(inds)
    pick = nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
    boxes, inds = boxes[pick], inds[pick]
    regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = rerec(torch.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                               boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh,
                               boxes[:, 4]]).permute(1, 0))
    return inds, boxes


def stage2_boxes(images, pnet, rnet):
    """(image_inds, boxes) entering ONet (for calibration only)."""
    imgs = images.permute(0, 3, 1, 2)
    h, w = imgs.shape[2:4]
    inds, boxes = stage1_boxes(images, pnet)
    x, keep = crops_of(imgs, boxes, inds, 24, h, w, {"dropped_windows": 0})
    boxes, inds = boxes[keep], inds[keep]
    reg, prob = rnet(x)
    ipass = prob[:, 1] > 0.7
    boxes = torch.cat((boxes[ipass, :4], prob[ipass, 1].unsqueeze(1)), dim=1)
    inds, reg = inds[ipass], reg[ipass]
    pick = nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
    return inds[pick], rerec(bbreg(boxes[pick], reg[pick]))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
