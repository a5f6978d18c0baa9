#!/usr/bin/env python3
# make_parity_set.py -- writes a StyleGAN2-ADA parity set: an HDF5 file in exactly the layout of
# shared/testdata/stylegan2/parity_v1.h5 (described in shared/testdata/stylegan2/README.md), computed by the
# public reference implementation.
#
# Why: the shared file holds one "visible" set (32x32, batch 4); its README says hidden sets with the same layout
# exist (other seeds, 64x64, batch 2, other channel counts) and that tests must read every shape, resolution and
# keyword argument from the file. This tool makes such sets so the C++ parity tests (which honour
# FACETEX_PARITY_FILE) can be run on sets other than the visible one.
#
# Needs a checkout of NVlabs/stylegan2-ada-pytorch at commit d72cc7d041b42ec8e806021a205ed9349f87c6a4, passed with
# --reference DIR. That code is imported from DIR at run time; it is never copied into this project.
# Needs python3 with torch (1.13, CPU is enough), numpy and h5py. Like the shared file, everything runs the
# reference's pure-PyTorch paths: impl='ref' for bias_act/upfirdn2d (no custom ops are compiled), and
# conv2d_gradfix / grid_sample_gradfix stay disabled (plain torch.nn.functional calls). Each case is evaluated a
# second time in float64 (same parameters and inputs, upcast) for outputs_f64/* and the f32_vs_f64_* attributes.
#
# Usage:
#   python3 tools/make_parity_set.py --reference /path/to/stylegan2-ada-pytorch --out set.h5 \
#       [--resolution 32] [--batch 4] [--seed 2] [--channel-base 1024] [--channel-max 64] [--set NAME]
#   python3 tools/make_parity_set.py --reference DIR --out replay.h5 --inputs-from parity_v1.h5
#       (takes parameters, inputs, configuration and augment seeds from an existing set and recomputes every
#        output: a check that this tool calls the reference the same way the shared file's generator did)
#   python3 tools/make_parity_set.py --compare-structure A.h5 B.h5   (groups, names, shapes, dtypes, attributes)
#   python3 tools/make_parity_set.py --compare-values A.h5 B.h5      (max |difference| of every dataset)
#
# Group names are fixed: generator_skip_32 and discriminator_resnet_32 keep their names at any resolution.

import argparse
import contextlib
import copy
import inspect
import json
import math
import os
import subprocess
import sys
import types

import numpy as np

REFERENCE_COMMIT = 'd72cc7d041b42ec8e806021a205ed9349f87c6a4'

# ----------------------------------------------------------------------------------------------------------------
# scipy shim. training/augment.py imports scipy.signal only to call scipy.signal.convolve(Hz_fbank, [Hz_lo2]) while
# building the (unused by 'bgc') Hz_fbank buffer: a full 2-D convolution of a [k, n] array with a [1, m] one, which
# is a row-by-row full 1-D convolution. Where scipy is missing, this tiny stand-in provides exactly that.

def _install_scipy_shim():
    try:
        import scipy.signal  # noqa: F401  (the real one, when installed)
        return
    except ImportError:
        pass

    def convolve(in1, in2, mode='full', method='auto'):
        a = np.atleast_2d(np.asarray(in1, dtype=np.float64))
        b = np.atleast_2d(np.asarray(in2, dtype=np.float64))
        if mode != 'full' or b.shape[0] != 1:
            raise NotImplementedError('scipy shim: only full convolution with a [1, m] kernel')
        return np.stack([np.convolve(row, b[0]) for row in a])

    scipy_mod = types.ModuleType('scipy')
    signal_mod = types.ModuleType('scipy.signal')
    signal_mod.convolve = convolve
    scipy_mod.signal = signal_mod
    sys.modules['scipy'] = scipy_mod
    sys.modules['scipy.signal'] = signal_mod

# Filled in by _import_reference().
torch = F = networks = augment = bias_act = upfirdn2d = misc = conv2d_gradfix = grid_sample_gradfix = None


def _import_reference(ref_dir):
    global torch, F, networks, augment, bias_act, upfirdn2d, misc, conv2d_gradfix, grid_sample_gradfix
    ref_dir = os.path.abspath(ref_dir)
    if not os.path.isfile(os.path.join(ref_dir, 'training', 'networks.py')):
        sys.exit(f'--reference {ref_dir}: not a stylegan2-ada-pytorch checkout (no training/networks.py)')
    sys.path.insert(0, ref_dir)
    _install_scipy_shim()
    import torch as _torch
    import torch.nn.functional as _F
    from training import networks as _networks, augment as _augment
    from torch_utils import misc as _misc
    from torch_utils.ops import bias_act as _bias_act, upfirdn2d as _upfirdn2d
    from torch_utils.ops import conv2d_gradfix as _c2g, grid_sample_gradfix as _gsg
    torch, F, networks, augment, misc = _torch, _F, _networks, _augment, _misc
    bias_act, upfirdn2d, conv2d_gradfix, grid_sample_gradfix = _bias_act, _upfirdn2d, _c2g, _gsg
    conv2d_gradfix.enabled = False       # plain torch.nn.functional.conv2d / conv_transpose2d
    grid_sample_gradfix.enabled = False  # plain torch.nn.functional.grid_sample
    torch.set_grad_enabled(True)
    return ref_dir

# ----------------------------------------------------------------------------------------------------------------
# float64 evaluation. The reference networks cast to torch.float32 in places (fp16/fp32 switches, mapping input,
# discriminator epilogue). For the float64 pass, the `torch` name inside training/networks.py is temporarily
# replaced by a proxy whose float32 is float64; everything else is the real torch. Filters stay float32 (upfirdn2d
# asserts that; it converts them to the activation dtype itself).

class _TorchProxy(types.ModuleType):
    def __getattr__(self, name):
        return getattr(torch, name)


@contextlib.contextmanager
def float64_mode():
    proxy = _TorchProxy('torch')
    proxy.float32 = torch.float64
    old_default = torch.get_default_dtype()
    old_torch = networks.torch
    torch.set_default_dtype(torch.float64)
    networks.torch = proxy
    try:
        yield
    finally:
        networks.torch = old_torch
        torch.set_default_dtype(old_default)


@contextlib.contextmanager
def float64_ops_mode():
    """Lets the upfirdn2d op take a float64 filter (its float32 assertion sees the proxy's float32 = float64)."""
    proxy = _TorchProxy('torch')
    proxy.float32 = torch.float64
    old_torch = upfirdn2d.torch
    upfirdn2d.torch = proxy
    try:
        yield
    finally:
        upfirdn2d.torch = old_torch


def to_f64_module(module):
    m = copy.deepcopy(module).double()
    for sub in m.modules():
        for name, buf in list(sub._buffers.items()):
            if buf is not None and 'resample_filter' in name:
                sub._buffers[name] = buf.float()
    return m

# ----------------------------------------------------------------------------------------------------------------
# Helpers.

def npy(t):
    return t.detach().cpu().numpy()


def jdump(obj):
    return json.dumps(obj, sort_keys=True)


def f64_stats(a32, a64):
    a32 = np.asarray(a32, dtype=np.float64)
    a64 = np.asarray(a64, dtype=np.float64)
    d = a32 - a64
    maxdiff = float(np.abs(d).max()) if d.size else 0.0
    scale = float(np.abs(a64).max()) if a64.size else 0.0
    n64 = float(np.linalg.norm(a64.ravel()))
    rel = float(np.linalg.norm(d.ravel()) / n64) if n64 > 0 else 0.0
    return {'f32_vs_f64_max_abs_diff': maxdiff, 'f64_max_abs': scale, 'f32_vs_f64_rel_l2': rel}


def write_output(case, name, v32, v64, store_f64=True, path='outputs'):
    """outputs/<name> (float32, with the f32_vs_f64 attributes) and outputs_f64/<name>."""
    a32 = np.asarray(npy(v32) if hasattr(v32, 'detach') else v32, dtype=np.float32)
    a64 = np.asarray(npy(v64) if hasattr(v64, 'detach') else v64, dtype=np.float64)
    assert a32.shape == a64.shape, (name, a32.shape, a64.shape)
    ds = case.require_group(path).create_dataset(name, data=a32)
    for k, v in f64_stats(a32, a64).items():
        ds.attrs[k] = v
    if store_f64:
        case.require_group('outputs_f64').create_dataset(name, data=a64)


def write_params(case, tag, module):
    g = case.require_group('params').require_group(tag)
    for k, v in module.state_dict().items():
        g.create_dataset(k, data=npy(v).astype(np.float32))


def load_params(module, grp):
    sd = {k: torch.from_numpy(np.array(grp[k][()], dtype=np.float32)) for k in grp}
    module.load_state_dict(sd, strict=True)


def read_input(src, name):
    return torch.from_numpy(np.array(src['inputs'][name][()]))


def trainable(module):
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


def grads(out, wrt, **kw):
    g = torch.autograd.grad(out, wrt, allow_unused=True, **kw)
    return [torch.zeros_like(w) if gi is None else gi for gi, w in zip(g, wrt)]


def randomise_params(module, gen):
    """README 'How parameters were set': nothing stays a constant 0 or 1."""
    def randn(shape):
        return torch.randn(shape, generator=gen)
    with torch.no_grad():
        for name, mod in module.named_modules():
            if isinstance(mod, networks.FullyConnectedLayer) and mod.bias is not None:
                if name.split('.')[-1] == 'affine':
                    mod.bias.copy_(1 + 0.1 * randn(mod.bias.shape))                     # style bias: 1 + N(0, 0.1^2)
                else:
                    mod.bias.copy_(0.1 * randn(mod.bias.shape) / mod.bias_gain)          # effective bias N(0, 0.1^2)
            elif isinstance(mod, (networks.Conv2dLayer, networks.SynthesisLayer, networks.ToRGBLayer)) \
                    and getattr(mod, 'bias', None) is not None:
                mod.bias.copy_(0.1 * randn(mod.bias.shape))                               # no bias gain here
            if isinstance(mod, networks.SynthesisLayer) and mod.use_noise:
                mag = 0.1 + 0.2 * torch.rand([], generator=gen)
                sign = 1.0 if torch.rand([], generator=gen).item() < 0.5 else -1.0
                mod.noise_strength.copy_(sign * mag)
            if isinstance(mod, networks.MappingNetwork) and hasattr(mod, 'w_avg'):
                mod.w_avg.copy_(0.5 * randn(mod.w_avg.shape))


def smooth_images(n, res, gen):
    """Smooth random images in (-1, 1): bicubically upsampled noise, squashed with tanh."""
    lo = torch.randn([n, 3, max(res // 4, 2), max(res // 4, 2)], generator=gen)
    up = F.interpolate(lo, size=(res, res), mode='bicubic', align_corners=False)
    return torch.tanh(1.2 * up).contiguous()


def make_gen(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g

# ----------------------------------------------------------------------------------------------------------------
# Configuration.

def g_init_kwargs(cfg):
    return {'z_dim': cfg['z_dim'], 'c_dim': 0, 'w_dim': cfg['w_dim'], 'img_resolution': cfg['resolution'],
            'img_channels': 3, 'mapping_kwargs': {'num_layers': cfg['g_mapping_layers']},
            'synthesis_kwargs': {'architecture': 'skip', 'channel_base': cfg['channel_base'],
                                 'channel_max': cfg['channel_max'], 'num_fp16_res': 0, 'conv_clamp': None}}


def d_init_kwargs(cfg):
    return {'c_dim': 0, 'img_resolution': cfg['resolution'], 'img_channels': 3, 'architecture': 'resnet',
            'channel_base': cfg['d_channel_base'], 'channel_max': cfg['d_channel_max'], 'num_fp16_res': 0,
            'conv_clamp': None, 'epilogue_kwargs': {'mbstd_group_size': 4}}


def m_init_kwargs(cfg):
    return {'z_dim': cfg['z_dim'], 'c_dim': 0, 'w_dim': cfg['w_dim'], 'num_ws': cfg['mapping_num_ws'],
            'num_layers': cfg['mapping_layers'], 'lr_multiplier': 0.01}


AUGMENT_KWARGS = {k: 1 for k in ['xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac', 'brightness',
                                 'contrast', 'lumaflip', 'hue', 'saturation']}

LOSS_KWARGS = {'r1_gamma': 10.0, 'pl_batch_shrink': 2, 'pl_decay': 0.01, 'pl_weight': 2.0, 'pl_mean_init': 0.0,
               'style_mixing_prob': 0.0, 'augment_pipe': None, 'noise_mode': 'const', 'train_mode': True}

# Seed offsets per group (added to 1000 * --seed).
SEED = {'mapping': 1, 'G': 11, 'generator_in': 12, 'fused_in': 13, 'D': 21, 'D_in': 22, 'upfirdn2d': 31,
        'bias_act': 41, 'augment_in': 51, 'loss_in': 61, 'augment_p0': 81, 'augment_p1': 82}


def seed_of(cfg, key):
    return 1000 * cfg['seed'] + SEED[key]


def g_resolved(G):
    return {'num_ws': G.num_ws, 'block_resolutions': list(G.synthesis.block_resolutions),
            'out_channels': {str(r): int(getattr(G.synthesis, f'b{r}').conv1.weight.shape[0])
                             for r in G.synthesis.block_resolutions}}


def d_resolved(D):
    return {'block_resolutions': list(D.block_resolutions), 'epilogue_channels': D.b4.in_channels,
            'tmp_channels': {str(r): int(getattr(D, f'b{r}').conv0.weight.shape[0]) for r in D.block_resolutions}}

# ----------------------------------------------------------------------------------------------------------------
# mapping

def case_mapping(out, cfg, src):
    case = out.create_group('mapping')
    kw = json.loads(src.attrs['init_kwargs']) if src is not None else m_init_kwargs(cfg)
    if src is not None:
        M = networks.MappingNetwork(**kw)
        load_params(M, src['params/M'])
        z, R = read_input(src, 'z'), read_input(src, 'R')
        psi = float(str(src['inputs/truncation_psi'][()]))  # shortest repr: 0.7, not float32(0.7)
        cutoff = int(src['inputs/truncation_cutoff'][()])
    else:
        torch.manual_seed(seed_of(cfg, 'mapping'))
        M = networks.MappingNetwork(**kw)
        gen = make_gen(seed_of(cfg, 'mapping') + 500)
        randomise_params(M, gen)
        z = torch.randn([cfg['batch'], kw['z_dim']], generator=gen)
        R = torch.randn([cfg['batch'], kw['num_ws'], kw['w_dim']], generator=gen)
        psi, cutoff = 0.7, 4
    case.attrs['init_kwargs'] = jdump(kw)
    case.attrs['module_class'] = 'training.networks.MappingNetwork'
    write_params(case, 'M', M)
    inp = case.create_group('inputs')
    inp.create_dataset('z', data=npy(z))
    inp.create_dataset('R', data=npy(R))
    inp.create_dataset('truncation_psi', data=np.float32(psi))
    inp.create_dataset('truncation_cutoff', data=np.int32(cutoff))

    def run(M, z, R):
        M = copy.deepcopy(M).eval()
        names, params = zip(*trainable(M))
        zz = z.clone().requires_grad_(True)
        ws = M(zz, None)
        gs = grads((ws * R).sum(), [zz] + list(params))
        with torch.no_grad():
            r = {'ws_psi1': ws.detach(),
                 'ws_psi0_7': M(z, None, truncation_psi=psi),
                 'ws_psi0_7_cutoff4': M(z, None, truncation_psi=psi, truncation_cutoff=cutoff)}
            M.train()
            r['ws_train_forward'] = M(z, None)
            r['w_avg_after_update'] = M.w_avg.clone()
        r['dL_dz'] = gs[0]
        return r, dict(zip(names, gs[1:]))

    r32, g32 = run(M, z, R)
    with float64_mode():
        r64, g64 = run(to_f64_module(M), z.double(), R.double())
    for k in ['dL_dz', 'w_avg_after_update', 'ws_psi0_7', 'ws_psi0_7_cutoff4', 'ws_psi1', 'ws_train_forward']:
        write_output(case, k, r32[k], r64[k])
    for k in g32:
        write_output(case, k, g32[k], g64[k], store_f64=False, path='outputs/dL_dparams/M')

# ----------------------------------------------------------------------------------------------------------------
# generator_skip_32, generator_fused_vs_nonfused

def build_network(cls, tag, init_kwargs, cfg, src_case):
    """A reference network: from src_case's parameters (--inputs-from), else seeded and randomised (README 'How
    parameters were set'). tag is 'G' or 'D'."""
    if src_case is not None:
        kw = json.loads(src_case.attrs['init_kwargs'])
        net = cls(**kw)
        load_params(net, src_case['params/' + tag])
    else:
        kw = init_kwargs(cfg)
        torch.manual_seed(seed_of(cfg, tag))
        net = cls(**kw)
        randomise_params(net, make_gen(seed_of(cfg, tag) + 500))
    return net.eval().requires_grad_(True), kw


def build_G(cfg, src_case):
    return build_network(networks.Generator, 'G', g_init_kwargs, cfg, src_case)


def build_D(cfg, src_case):
    return build_network(networks.Discriminator, 'D', d_init_kwargs, cfg, src_case)


def case_generator(out, cfg, src, G, kw):
    case = out.create_group('generator_skip_32')
    chosen = ['synthesis.b16.conv0.weight', 'synthesis.b8.conv1.affine.weight']
    case.attrs['chosen_params'] = jdump(chosen)
    case.attrs['init_kwargs'] = jdump(kw)
    case.attrs['module_class'] = 'training.networks.Generator'
    case.attrs['resolved'] = jdump(g_resolved(G))
    write_params(case, 'G', G)
    B = cfg['batch']
    if src is not None:
        z, R = read_input(src, 'z'), read_input(src, 'R')
    else:
        gen = make_gen(seed_of(cfg, 'generator_in'))
        z = torch.randn([B, kw['z_dim']], generator=gen)
        R = torch.randn([B, 3, G.img_resolution, G.img_resolution], generator=gen)
    with torch.no_grad():
        ws_in = G.mapping(z, None)
    if src is not None:
        # The stored ws are mapping(z); recompute and also check against the stored ones.
        stored = read_input(src, 'ws')
        if not torch.equal(stored, ws_in):
            print(f'note: generator_skip_32: recomputed ws differ from stored by '
                  f'{(stored - ws_in).abs().max().item():.3g}; using the stored ones', file=sys.stderr)
            ws_in = stored
    inp = case.create_group('inputs')
    inp.create_dataset('z', data=npy(z))
    inp.create_dataset('ws', data=npy(ws_in))
    inp.create_dataset('R', data=npy(R))

    def run(G, z, ws_in, R):
        G = copy.deepcopy(G).eval()
        names, params = zip(*trainable(G))
        r = {}
        with torch.no_grad():
            r['img_const'] = G.synthesis(ws_in, noise_mode='const')
            r['img_none'] = G.synthesis(ws_in, noise_mode='none')
            r['img_G_forward_const'] = G(z, None, noise_mode='const')
        # dL_dws at the stored ws (the exact values img_const was computed from) ...
        wsl = ws_in.clone().requires_grad_(True)
        (r['dL_dws'],) = grads((G.synthesis(wsl, noise_mode='const') * R).sum(), [wsl])
        # ... and the parameter gradients with mapping parameters reached through ws = mapping(z).
        ws = G.mapping(z, None)
        img = G.synthesis(ws, noise_mode='const')
        gs = grads((img * R).sum(), list(params))
        r['ws'] = ws.detach()
        return r, dict(zip(names, gs))

    r32, g32 = run(G, z, ws_in, R)
    with float64_mode():
        r64, g64 = run(to_f64_module(G), z.double(), ws_in.double(), R.double())
    for k in ['dL_dws', 'img_G_forward_const', 'img_const', 'img_none', 'ws']:
        write_output(case, k, r32[k], r64[k])
    for k in g32:
        write_output(case, k, g32[k], g64[k], store_f64=False, path='outputs/dL_dparams/G')
    return ws_in


def case_fused(out, cfg, src, G, kw, ws_in):
    case = out.create_group('generator_fused_vs_nonfused')
    res = G.img_resolution
    chosen = ['synthesis.b16.conv0.weight', 'synthesis.b8.conv1.affine.weight', 'synthesis.b4.conv1.weight',
              f'synthesis.b{res}.torgb.weight']
    if src is not None:
        chosen = json.loads(src.attrs['chosen_params'])
        ws_in, R = read_input(src, 'ws'), read_input(src, 'R')
    else:
        R = torch.randn([cfg['batch'], 3, res, res], generator=make_gen(seed_of(cfg, 'fused_in')))
    case.attrs['chosen_params'] = jdump(chosen)
    case.attrs['init_kwargs'] = jdump(kw)
    case.attrs['module_class'] = 'training.networks.Generator'
    case.attrs['resolved'] = jdump(g_resolved(G))
    write_params(case, 'G', G)
    inp = case.create_group('inputs')
    inp.create_dataset('ws', data=npy(ws_in))
    inp.create_dataset('R', data=npy(R))

    def run(G, ws_in, R):
        G = copy.deepcopy(G).eval()
        pd = dict(G.named_parameters())
        params = [pd[n] for n in chosen]
        r, g = {}, {}
        for tag, fused in [('fused', True), ('nonfused', False)]:
            ws = ws_in.clone().requires_grad_(True)
            img = G.synthesis(ws, noise_mode='const', fused_modconv=fused)
            gs = grads((img * R).sum(), [ws] + params)
            r[f'img_{tag}'] = img.detach()
            r[f'dL_dws_{tag}'] = gs[0]
            g[tag] = dict(zip(chosen, gs[1:]))
        return r, g

    r32, g32 = run(G, ws_in, R)
    with float64_mode():
        r64, g64 = run(to_f64_module(G), ws_in.double(), R.double())
    case.attrs['max_abs_diff_dL_dws_fused_vs_nonfused_f32'] = \
        float((r32['dL_dws_fused'] - r32['dL_dws_nonfused']).abs().max())
    case.attrs['max_abs_diff_img_fused_vs_nonfused_f32'] = float((r32['img_fused'] - r32['img_nonfused']).abs().max())
    for k in ['dL_dws_fused', 'dL_dws_nonfused', 'img_fused', 'img_nonfused']:
        write_output(case, k, r32[k], r64[k])
    for tag in ['fused', 'nonfused']:
        for k in chosen:
            write_output(case, k, g32[tag][k], g64[tag][k], store_f64=False, path=f'outputs/dL_dparams_{tag}/G')

# ----------------------------------------------------------------------------------------------------------------
# discriminator_resnet_32

D_BATCH = 8  # stays 8 in every set (minibatch stddev: 2 groups of 4)


def case_discriminator(out, cfg, src, D, kw):
    case = out.create_group('discriminator_resnet_32')
    res = D.img_resolution
    chosen = [f'b{res}.conv0.weight']
    if src is not None:
        chosen = json.loads(src.attrs['chosen_params'])
        img = read_input(src, 'img')
    else:
        img = smooth_images(D_BATCH, res, make_gen(seed_of(cfg, 'D_in')))
    case.attrs['chosen_params'] = jdump(chosen)
    case.attrs['init_kwargs'] = jdump(kw)
    case.attrs['module_class'] = 'training.networks.Discriminator'
    case.attrs['resolved'] = jdump(d_resolved(D))
    write_params(case, 'D', D)
    case.create_group('inputs').create_dataset('img', data=npy(img))

    def run(D, img):
        D = copy.deepcopy(D).eval()
        names, params = zip(*trainable(D))
        x = img.clone().requires_grad_(True)
        logits = D(x, None)
        gs = grads(logits.sum(), [x] + list(params))
        return {'logits': logits.detach(), 'dL_dimg': gs[0]}, dict(zip(names, gs[1:]))

    r32, g32 = run(D, img)
    with float64_mode():
        r64, g64 = run(to_f64_module(D), img.double())
    for k in ['dL_dimg', 'logits']:
        write_output(case, k, r32[k], r64[k])
    for k in g32:
        write_output(case, k, g32[k], g64[k], store_f64=False, path='outputs/dL_dparams/D')

# ----------------------------------------------------------------------------------------------------------------
# upfirdn2d

def upfirdn2d_configs():
    f1331 = upfirdn2d.setup_filter([1, 3, 3, 1])
    sym6 = upfirdn2d.setup_filter(augment.wavelets['sym6'])
    return [  # name, filter key, kwargs, description
        ('up2_fir1331', 'f1331', dict(up=2, down=1, padding=[2, 1, 2, 1], flip_filter=False, gain=4.0),
         'upsample2d(x, setup_filter([1,3,3,1])) resolved'),
        ('down2_fir1331', 'f1331', dict(up=1, down=2, padding=[1, 1, 1, 1], flip_filter=False, gain=1.0),
         'downsample2d(x, setup_filter([1,3,3,1])) resolved'),
        ('generic_pad1201_noflip', 'rand44', dict(up=1, down=1, padding=[1, 2, 0, 1], flip_filter=False, gain=1.0),
         'random 4x4 non-separable filter (not normalised)'),
        ('generic_pad1201_flip', 'rand44', dict(up=1, down=1, padding=[1, 2, 0, 1], flip_filter=True, gain=1.0),
         'same, flip_filter=True (correlation)'),
        ('generic_pad1201_gain2_5', 'rand44', dict(up=1, down=1, padding=[1, 2, 0, 1], flip_filter=False, gain=2.5),
         'same, gain=2.5'),
        ('up2_down3_rect_crop', 'rand35', dict(up=2, down=3, padding=[-1, 3, 2, -2], flip_filter=True, gain=0.7),
         'random 3x5 (HxW) filter, negative padding = crop'),
        ('up2_sym6_separable', 'sym6', dict(up=2, down=1, padding=[6, 5, 6, 5], flip_filter=False, gain=4.0),
         'upsample2d with the 12-tap separable sym6 filter (as in AugmentPipe)'),
        ('down2_sym6_separable_flip', 'sym6', dict(up=1, down=2, padding=[5, 5, 5, 5], flip_filter=True, gain=1.0),
         'downsample2d with sym6, flip_filter=True (as in AugmentPipe, without the crop)'),
    ], {'f1331': f1331, 'sym6': sym6}


def run_upfirdn2d(x, f, kw):
    x = x.clone().requires_grad_(True)
    y = upfirdn2d.upfirdn2d(x, f, impl='ref', **kw)
    return x, y


def case_upfirdn2d(out, cfg, src):
    top = out.create_group('upfirdn2d')
    top.attrs['description'] = 'upfirdn2d reference op; one subgroup per call configuration'
    configs, filters = upfirdn2d_configs()
    gen = make_gen(seed_of(cfg, 'upfirdn2d'))
    filters['rand44'] = torch.randn([4, 4], generator=gen)
    filters['rand35'] = torch.randn([3, 5], generator=gen)
    for name, fkey, kw, desc in configs:
        sub = top.create_group(name)
        sub.attrs['description'] = desc
        sub.attrs['kwargs'] = jdump(kw)
        if src is not None:
            s = src[name]
            x, f, R = read_input(s, 'x'), read_input(s, 'f'), read_input(s, 'R')
        else:
            x = torch.randn([2, 3, 9, 11], generator=gen)
            f = filters[fkey]
            with torch.no_grad():
                yshape = upfirdn2d.upfirdn2d(x, f, impl='ref', **kw).shape
            R = torch.randn(yshape, generator=gen)
        inp = sub.create_group('inputs')
        inp.create_dataset('x', data=npy(x))
        inp.create_dataset('f', data=npy(f))
        inp.create_dataset('R', data=npy(R))
        res = {}
        for dt in (torch.float32, torch.float64):
            # In float64 the filter is upcast too, so that f * gain is formed in float64 (the op asserts a float32
            # filter; float64_ops_mode lets it accept the upcast one).
            with (float64_ops_mode() if dt == torch.float64 else contextlib.nullcontext()):
                xx, y = run_upfirdn2d(x.to(dt), f.to(dt), kw)
                (dx,) = grads((y * R.to(dt)).sum(), [xx])
            res[dt] = {'y': y.detach(), 'dL_dx': dx}
        for k in ['dL_dx', 'y']:
            write_output(sub, k, res[torch.float32][k], res[torch.float64][k])

# ----------------------------------------------------------------------------------------------------------------
# bias_act

ACTS = ['linear', 'relu', 'lrelu', 'tanh', 'sigmoid', 'elu', 'selu', 'softplus', 'swish']


def run_bias_act(x, b, R, kw):
    x = x.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    y = bias_act.bias_act(x, b, impl='ref', **kw)
    dx, db = grads((y * R).sum(), [x, b], create_graph=True)
    Q = dx.square().sum() + db.square().sum() * 0  # Q = sum((dL/dx)^2)
    if Q.requires_grad:
        d2x, d2b = grads(Q, [x, b])
    else:
        d2x, d2b = torch.zeros_like(x), torch.zeros_like(b)
    return {'y': y.detach(), 'dL_dx': dx.detach(), 'dL_db': db.detach(), 'd2_dx': d2x.detach(),
            'd2_db': d2b.detach()}


def case_bias_act(out, cfg, src):
    top = out.create_group('bias_act')
    top.attrs['description'] = 'bias_act reference op; one subgroup per (act, variant)'
    gen = make_gen(seed_of(cfg, 'bias_act'))
    for act in ACTS:
        for variant, clamp in [('default', None), ('clamp3', 3.0)]:
            name = f'{act}_{variant}'
            kw = {'act': act, 'dim': 1, 'alpha': None, 'gain': None, 'clamp': clamp}
            spec = bias_act.activation_funcs[act]
            sub = top.create_group(name)
            sub.attrs['kwargs'] = jdump(kw)
            sub.attrs['resolved'] = jdump({'alpha': float(spec.def_alpha), 'gain': float(spec.def_gain),
                                           'clamp': clamp})
            if src is not None:
                s = src[name]
                x, b, R = read_input(s, 'x'), read_input(s, 'b'), read_input(s, 'R')
            else:
                x = 2.0 * torch.randn([4, 5, 6], generator=gen)
                b = 0.5 * torch.randn([5], generator=gen)
                for _ in range(1000):  # keep x + b and |y| away from kinks and from the clamp value
                    with torch.no_grad():
                        pre = x + b.reshape(1, -1, 1)
                        y = bias_act.bias_act(x, b, impl='ref', **kw)
                        bad = pre.abs() < 2e-3
                        if clamp is not None:
                            bad |= (y.abs() - clamp).abs() < 2e-3
                    if not bad.any():
                        break
                    x = torch.where(bad, 2.0 * torch.randn(x.shape, generator=gen), x)
                else:
                    raise RuntimeError(f'bias_act/{name}: could not draw inputs away from kinks')
                R = torch.randn([4, 5, 6], generator=gen)
            inp = sub.create_group('inputs')
            inp.create_dataset('x', data=npy(x))
            inp.create_dataset('b', data=npy(b))
            inp.create_dataset('R', data=npy(R))
            r32 = run_bias_act(x, b, R, kw)
            r64 = run_bias_act(x.double(), b.double(), R.double(), kw)
            for k in ['d2_db', 'd2_dx', 'dL_db', 'dL_dx', 'y']:
                write_output(sub, k, r32[k], r64[k])

# ----------------------------------------------------------------------------------------------------------------
# augment_pipe

def run_augment_traced(pipe, images):
    """Runs AugmentPipe.forward and records, via a line tracer on that function, the intermediate values the file
    stores (the reference code itself is not modified)."""
    fn = augment.AugmentPipe.forward
    lines, start = inspect.getsourcelines(fn)

    def line_of(text):
        hits = [start + i for i, l in enumerate(lines) if text in l]
        assert len(hits) == 1, text
        return hits[0]
    L = {'pixel': line_of('cx = (width - 1) / 2'),
         'pad': line_of('images = torch.nn.functional.pad(input=images, pad=[mx0'),
         'grid': line_of('grid = torch.nn.functional.affine_grid('),
         'geom': line_of('I_4 = torch.eye(4'),
         'color': line_of('if C is not I_4:')}
    rec = {}

    def local(frame, event, arg):
        if event == 'line':
            ln, loc = frame.f_lineno, frame.f_locals
            if ln == L['pixel']:
                rec['G_inv_pixel'] = loc['G_inv'].detach().clone()
            elif ln == L['pad']:
                rec['margins'] = [int(loc[k]) for k in ('mx0', 'mx1', 'my0', 'my1')]
            elif ln == L['grid']:
                rec['G_inv_grid'] = loc['G_inv'].detach().clone()
                rec['grid_size'] = [int(v) for v in loc['shape']]
            elif ln == L['geom']:
                rec['images_geom'] = loc['images'].detach().clone()
            elif ln == L['color']:
                rec['C'] = loc['C'].detach().clone()
        return local

    def glob(frame, event, arg):
        return local if (event == 'call' and frame.f_code is fn.__code__) else None

    old = sys.gettrace()
    sys.settrace(glob)
    try:
        with torch.no_grad():
            out = pipe(images)
    finally:
        sys.settrace(old)
    missing = {'G_inv_pixel', 'margins', 'G_inv_grid', 'grid_size', 'images_geom', 'C'} - set(rec)
    assert not missing, f'augment tracer missed {missing}'
    rec['images_aug'] = out.detach()
    return rec


def augment_replay(images, G_pix, C, Hz_geom, dtype):
    """README 3.8: the deterministic part of AugmentPipe from the recorded matrices, in float32 or float64."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.no_grad():
            x = images.to(dtype)
            G = G_pix.to(dtype)
            C = C.to(dtype)
            B, Ch, H, W = x.shape
            cx, cy = (W - 1) / 2, (H - 1) / 2
            cp = augment.matrix([-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1])
            cp = G @ cp.t()
            Hz_pad = Hz_geom.shape[0] // 4
            margin = cp[:, :2, :].permute(1, 0, 2).flatten(1)
            margin = torch.cat([-margin, margin]).max(dim=1).values
            margin = margin + misc.constant([Hz_pad * 2 - cx, Hz_pad * 2 - cy] * 2)
            margin = margin.max(misc.constant([0, 0] * 2))
            margin = margin.min(misc.constant([W - 1, H - 1] * 2))
            mx0, my0, mx1, my1 = margin.ceil().to(torch.int32)
            x = F.pad(input=x, pad=[mx0, mx1, my0, my1], mode='reflect')
            G = augment.translate2d((mx0 - mx1) / 2, (my0 - my1) / 2) @ G
            x = upfirdn2d.upsample2d(x=x, f=Hz_geom, up=2)
            G = augment.scale2d(2, 2) @ G @ augment.scale2d_inv(2, 2)
            G = augment.translate2d(-0.5, -0.5) @ G @ augment.translate2d_inv(-0.5, -0.5)
            shape = [B, Ch, (H + Hz_pad * 2) * 2, (W + Hz_pad * 2) * 2]
            G = augment.scale2d(2 / x.shape[3], 2 / x.shape[2]) @ G @ augment.scale2d_inv(2 / shape[3], 2 / shape[2])
            grid = F.affine_grid(theta=G[:, :2, :], size=shape, align_corners=False)
            x = grid_sample_gradfix.grid_sample(x, grid)
            x = upfirdn2d.downsample2d(x=x, f=Hz_geom, down=2, padding=-Hz_pad * 2, flip_filter=True)
            geom = x
            x = x.reshape([B, Ch, H * W])
            x = C[:, :3, :3] @ x + C[:, :3, 3:]
            x = x.reshape([B, Ch, H, W])
            margins = [int(v) for v in (mx0, mx1, my0, my1)]
    finally:
        torch.set_default_dtype(old)
    return {'images_aug': x, 'images_geom': geom, 'G_inv_grid': G, 'margins': margins}


def case_augment(out, cfg, src):
    top = out.create_group('augment_pipe')
    top.attrs['description'] = 'AugmentPipe with the bgc settings; subgroups p0 (p=0.0) and p1 (p=1.0)'
    res, B = cfg['resolution'], cfg['batch']
    gen = make_gen(seed_of(cfg, 'augment_in'))
    for name, p in [('p0', 0.0), ('p1', 1.0)]:
        sub = top.create_group(name)
        pipe = augment.AugmentPipe(**AUGMENT_KWARGS)
        if src is not None:
            s = src[name]
            load_params(pipe, s['params/A'])
            p = float(s.attrs['p'])
            seed = int(s.attrs['torch_manual_seed'])
            images = read_input(s, 'images')
        else:
            pipe.p.copy_(torch.as_tensor(p))
            seed = seed_of(cfg, f'augment_{name}')
            images = smooth_images(B, res, gen)
        sub.attrs['init_kwargs'] = jdump(AUGMENT_KWARGS)
        sub.attrs['module_class'] = 'training.augment.AugmentPipe'
        sub.attrs['p'] = float(p)
        sub.attrs['torch_manual_seed'] = seed
        write_params(sub, 'A', pipe)
        sub.create_group('inputs').create_dataset('images', data=npy(images))
        torch.manual_seed(seed)  # the default CPU generator, immediately before the call
        rec = run_augment_traced(pipe, images)
        r32 = augment_replay(images, rec['G_inv_pixel'], rec['C'], pipe.Hz_geom, torch.float32)
        r64 = augment_replay(images, rec['G_inv_pixel'], rec['C'], pipe.Hz_geom, torch.float64)
        assert r32['margins'] == rec['margins'] == r64['margins'], (r32['margins'], rec['margins'], r64['margins'])
        check = {
            'identity_max_abs_dev': float((rec['images_aug'] - images).abs().max()),
            'ref_vs_replay_f64_max_abs': float((rec['images_aug'].double() - r64['images_aug']).abs().max()),
            'replay_Ggrid_f32_vs_ref': float((r32['G_inv_grid'] - rec['G_inv_grid']).abs().max()),
            'replay_f32_geom_vs_ref': float((r32['images_geom'] - rec['images_geom']).abs().max()),
            'replay_f32_vs_ref_max_abs': float((r32['images_aug'] - rec['images_aug']).abs().max()),
        }
        sub.attrs['replay_check'] = jdump(check)
        o = sub.create_group('outputs')
        o.create_dataset('C', data=npy(rec['C']).astype(np.float32))
        o.create_dataset('G_inv_pixel', data=npy(rec['G_inv_pixel']).astype(np.float32))
        o.create_dataset('margins', data=np.asarray(rec['margins'], dtype=np.int32))
        o.create_dataset('grid_size', data=np.asarray(rec['grid_size'], dtype=np.int32))
        write_output(sub, 'G_inv_grid', rec['G_inv_grid'], r64['G_inv_grid'], store_f64=False)
        write_output(sub, 'images_geom', rec['images_geom'], r64['images_geom'], store_f64=False)
        write_output(sub, 'images_aug', rec['images_aug'], r64['images_aug'], store_f64=True)

# ----------------------------------------------------------------------------------------------------------------
# loss_terms

def loss_terms_run(G, D, z, real_img, pl_noise, lk):
    """README 3.9: StyleGAN2Loss formulas (loss.py), G and D in training mode, const noise, no style mixing,
    no augmentation; each term's parameter gradient separately, without the phase gains."""
    G = copy.deepcopy(G).train()
    D = copy.deepcopy(D).train()
    gnames, gparams = zip(*trainable(G))
    dnames, dparams = zip(*trainable(D))
    r, g = {}, {}
    # Gmain
    gen_ws = G.mapping(z, None)
    gen_img = G.synthesis(gen_ws, noise_mode='const')
    gen_logits = D(gen_img, None)
    loss_Gmain = F.softplus(-gen_logits)
    g['grad_Gmain'] = dict(zip(gnames, grads(loss_Gmain.mean(), list(gparams))))
    r.update(gen_ws=gen_ws.detach(), gen_img=gen_img.detach(), gen_logits=gen_logits.detach(),
             loss_Gmain=loss_Gmain.detach(), loss_Gmain_mean=loss_Gmain.mean().detach())
    # Gpl
    nb = z.shape[0] // lk['pl_batch_shrink']
    pl_ws = G.mapping(z[:nb], None)
    pl_img = G.synthesis(pl_ws, noise_mode='const')
    (pl_grads,) = torch.autograd.grad(outputs=[(pl_img * pl_noise).sum()], inputs=[pl_ws], create_graph=True,
                                      only_inputs=True)
    pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
    pl_mean = torch.full([], lk['pl_mean_init'], dtype=z.dtype).lerp(pl_lengths.mean(), lk['pl_decay'])
    pl_penalty = (pl_lengths - pl_mean).square()
    loss_Gpl = pl_penalty * lk['pl_weight']
    g['grad_Gpl'] = dict(zip(gnames, grads((pl_img[:, 0, 0, 0] * 0 + loss_Gpl).mean(), list(gparams))))
    r.update(pl_ws=pl_ws.detach(), pl_img=pl_img.detach(), pl_grads=pl_grads.detach(),
             pl_lengths=pl_lengths.detach(), pl_mean=pl_mean.detach(), pl_penalty=pl_penalty.detach(),
             loss_Gpl=loss_Gpl.detach())
    # Dmain
    loss_Dgen = F.softplus(D(gen_img.detach(), None))
    real_img_tmp = real_img.detach().requires_grad_(True)
    real_logits = D(real_img_tmp, None)
    loss_Dreal = F.softplus(-real_logits)
    loss_Dmain_mean = loss_Dgen.mean() + loss_Dreal.mean()
    g['grad_Dmain'] = dict(zip(dnames, grads(loss_Dmain_mean, list(dparams), retain_graph=True)))
    # Dr1
    (r1_grads,) = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real_img_tmp], create_graph=True,
                                      only_inputs=True)
    r1_penalty = r1_grads.square().sum([1, 2, 3])
    loss_Dr1 = r1_penalty * (lk['r1_gamma'] / 2)
    g['grad_Dr1'] = dict(zip(dnames, grads(loss_Dr1.mean(), list(dparams))))
    r.update(loss_Dgen=loss_Dgen.detach(), real_logits=real_logits.detach(), loss_Dreal=loss_Dreal.detach(),
             loss_Dmain_mean=loss_Dmain_mean.detach(), r1_grads=r1_grads.detach(), r1_penalty=r1_penalty.detach(),
             loss_Dr1=loss_Dr1.detach())
    return r, g


def case_loss_terms(out, cfg, src, G, gkw, D, dkw):
    case = out.create_group('loss_terms')
    lk = dict(LOSS_KWARGS)
    if src is not None:
        lk = json.loads(src.attrs['init_kwargs'])['loss']
        z, real_img, pl_noise = read_input(src, 'z'), read_input(src, 'real_img'), read_input(src, 'pl_noise')
    else:
        gen = make_gen(seed_of(cfg, 'loss_in'))
        B, res = cfg['batch'], G.img_resolution
        z = torch.randn([B, gkw['z_dim']], generator=gen)
        real_img = smooth_images(B, res, gen)
        pl_noise = torch.randn([B // lk['pl_batch_shrink'], 3, res, res], generator=gen) / np.sqrt(res * res)
    case.attrs['init_kwargs'] = jdump({'G': gkw, 'D': dkw, 'loss': lk})
    case.attrs['module_class'] = 'training.networks.Generator + training.networks.Discriminator'
    write_params(case, 'G', G)
    write_params(case, 'D', D)
    inp = case.create_group('inputs')
    inp.create_dataset('z', data=npy(z))
    inp.create_dataset('real_img', data=npy(real_img))
    inp.create_dataset('pl_noise', data=npy(pl_noise))
    r32, g32 = loss_terms_run(G, D, z, real_img, pl_noise, lk)
    with float64_mode():
        r64, g64 = loss_terms_run(to_f64_module(G), to_f64_module(D), z.double(), real_img.double(),
                                  pl_noise.double(), lk)
    for k in sorted(r32):
        write_output(case, k, r32[k], r64[k])
    for gk, tag in [('grad_Gmain', 'G'), ('grad_Gpl', 'G'), ('grad_Dmain', 'D'), ('grad_Dr1', 'D')]:
        for k in g32[gk]:
            write_output(case, k, g32[gk][k], g64[gk][k], store_f64=False, path=f'outputs/{gk}/{tag}')

# ----------------------------------------------------------------------------------------------------------------

def torch_version_string():
    origin = 'pip'
    if torch.__file__.startswith('/usr/lib/python3/dist-packages/'):
        try:
            v = subprocess.run(['dpkg-query', '-W', '-f=${Version}', 'python3-torch'], capture_output=True,
                               text=True, check=True).stdout.strip()
            origin = f'Debian python3-torch {v}'
        except Exception:
            origin = 'Debian python3-torch'
    return f'{torch.__version__} ({origin}, CPU)'


def generate(args):
    import h5py
    _import_reference(args.reference)
    torch.set_num_threads(max(1, args.threads))
    src = h5py.File(args.inputs_from, 'r') if args.inputs_from else None
    if src is not None:
        res, batch = int(src.attrs['img_resolution']), int(src.attrs['batch'])
        set_name = args.set or f"replay-of-{src.attrs['set']}"
    else:
        res, batch = args.resolution, args.batch
        set_name = args.set or f'generated-r{res}-b{batch}-seed{args.seed}-cb{args.channel_base}-cm{args.channel_max}'
    assert res >= 16 and (res & (res - 1)) == 0, '--resolution must be a power of two >= 16'
    assert batch >= 2, '--batch must be >= 2 (the path-length batch is batch // 2, as the reference computes it)'
    if batch > 4:
        assert batch % 4 == 0, 'minibatch stddev needs batch divisible by 4 (or batch <= 4)'
    cfg = {'resolution': res, 'batch': batch, 'seed': args.seed, 'z_dim': args.z_dim, 'w_dim': args.w_dim,
           'channel_base': args.channel_base, 'channel_max': args.channel_max,
           'd_channel_base': args.d_channel_base or args.channel_base,
           'd_channel_max': args.d_channel_max or args.channel_max,
           'g_mapping_layers': args.g_mapping_layers, 'mapping_layers': args.mapping_layers,
           'mapping_num_ws': args.mapping_num_ws}
    tmp = args.out + '.partial'
    with h5py.File(tmp, 'w') as out:
        out.attrs['format'] = 'stylegan2-ada-parity'
        out.attrs['version'] = 1
        out.attrs['set'] = set_name
        out.attrs['img_resolution'] = res
        out.attrs['batch'] = batch
        out.attrs['torch_version'] = torch_version_string()
        out.attrs['reference'] = f'NVlabs/stylegan2-ada-pytorch @ {REFERENCE_COMMIT}'
        out.attrs['layout'] = 'NCHW, float32 unless noted; see README.md'
        sub = (lambda n: src[n]) if src is not None else (lambda n: None)
        print('mapping', flush=True)
        case_mapping(out, cfg, sub('mapping'))
        G, gkw = build_G(cfg, sub('generator_skip_32'))
        D, dkw = build_D(cfg, sub('discriminator_resnet_32'))
        print('generator_skip_32', flush=True)
        ws_in = case_generator(out, cfg, sub('generator_skip_32'), G, gkw)
        print('generator_fused_vs_nonfused', flush=True)
        case_fused(out, cfg, sub('generator_fused_vs_nonfused'), G, gkw, ws_in)
        print('discriminator_resnet_32', flush=True)
        case_discriminator(out, cfg, sub('discriminator_resnet_32'), D, dkw)
        print('upfirdn2d', flush=True)
        case_upfirdn2d(out, cfg, sub('upfirdn2d'))
        print('bias_act', flush=True)
        case_bias_act(out, cfg, sub('bias_act'))
        print('augment_pipe', flush=True)
        case_augment(out, cfg, sub('augment_pipe'))
        print('loss_terms', flush=True)
        if src is not None:
            lsrc = src['loss_terms']
            G2, _ = build_G(cfg, _ParamsView(lsrc, 'G'))
            D2, _ = build_D(cfg, _ParamsView(lsrc, 'D'))
            gkw2, dkw2 = json.loads(lsrc.attrs['init_kwargs'])['G'], json.loads(lsrc.attrs['init_kwargs'])['D']
            case_loss_terms(out, cfg, lsrc, G2, gkw2, D2, dkw2)
        else:
            case_loss_terms(out, cfg, None, G, gkw, D, dkw)
    os.replace(tmp, args.out)
    print(f'wrote {args.out}')


class _ParamsView:
    """Makes loss_terms (init_kwargs {G:..., D:...}, params/G, params/D) look like a single-module case group."""
    def __init__(self, case, tag):
        self._case, self._tag = case, tag
        self.attrs = {'init_kwargs': jdump(json.loads(case.attrs['init_kwargs'])[tag])}

    def __getitem__(self, key):
        return self._case[key]

# ----------------------------------------------------------------------------------------------------------------
# Comparisons.

def _catalogue(path):
    import h5py
    items = {}
    with h5py.File(path, 'r') as f:
        def attrs_of(o):
            d = {}
            for k, v in o.attrs.items():
                if isinstance(v, bytes):
                    v = v.decode()
                if isinstance(v, str) and v[:1] in '{[':
                    try:
                        v = json.loads(v)
                    except ValueError:
                        pass
                d[k] = v
            return d
        items['/'] = ('group', None, None, attrs_of(f))

        def visit(name, o):
            if isinstance(o, h5py.Dataset):
                items[name] = ('dataset', o.shape, o.dtype.str, attrs_of(o))
            else:
                items[name] = ('group', None, None, attrs_of(o))
        f.visititems(visit)
    return items


def _json_keys(v, prefix=''):
    if isinstance(v, dict):
        out = set()
        for k, x in v.items():
            out.add(prefix + k)
            if not k.isdigit():  # keys of resolution-indexed maps are data, not structure
                out |= _json_keys(x, prefix + k + '.')
        return out
    return set()


# JSON attributes whose values are configuration (equal in sets with the same configuration).
CONFIG_ATTRS = {'init_kwargs', 'kwargs', 'resolved', 'chosen_params'}


def compare_structure(a, b):
    A, B = _catalogue(a), _catalogue(b)
    problems = []
    for n in sorted(set(A) | set(B)):
        if n not in A or n not in B:
            problems.append(f'{n}: only in {"first" if n in A else "second"} file')
            continue
        ka, sa, da, aa = A[n]
        kb, sb, db, ab = B[n]
        if ka != kb:
            problems.append(f'{n}: {ka} vs {kb}')
            continue
        if sa != sb:
            problems.append(f'{n}: shape {sa} vs {sb}')
        if da != db:
            problems.append(f'{n}: dtype {da} vs {db}')
        if set(aa) != set(ab):
            problems.append(f'{n}: attributes {sorted(aa)} vs {sorted(ab)}')
        for k in set(aa) & set(ab):
            va, vb = aa[k], ab[k]
            if type(va) != type(vb) and not (isinstance(va, (int, np.integer)) and isinstance(vb, (int, np.integer))) \
                    and not (isinstance(va, (float, np.floating)) and isinstance(vb, (float, np.floating))):
                problems.append(f'{n}@{k}: type {type(va).__name__} vs {type(vb).__name__}')
            elif isinstance(va, dict) and _json_keys(va) != _json_keys(vb):
                problems.append(f'{n}@{k}: JSON keys {sorted(_json_keys(va) ^ _json_keys(vb))} differ')
            if k in CONFIG_ATTRS and va != vb:
                problems.append(f'{n}@{k}: {json.dumps(va, sort_keys=True)} vs {json.dumps(vb, sort_keys=True)}')
    return problems


def compare_values(a, b, show=15):
    import h5py
    rows = []
    with h5py.File(a, 'r') as fa, h5py.File(b, 'r') as fb:
        def visit(name, o):
            if isinstance(o, h5py.Dataset) and name in fb:
                x = np.asarray(o[()], dtype=np.float64)
                y = np.asarray(fb[name][()], dtype=np.float64)
                if x.shape != y.shape:
                    rows.append((np.inf, np.inf, name))
                    return
                d = float(np.abs(x - y).max()) if x.size else 0.0
                s = float(np.abs(y).max()) if y.size else 0.0
                rows.append((d / s if s > 0 else d, d, name))
        fa.visititems(visit)
    rows.sort(reverse=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__ or 'StyleGAN2-ADA parity set generator',
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--reference', help='checkout of NVlabs/stylegan2-ada-pytorch @ d72cc7d')
    ap.add_argument('--out', help='output .h5 file')
    ap.add_argument('--resolution', type=int, default=32, help='img_resolution of G and D (power of two, >= 16)')
    ap.add_argument('--batch', type=int, default=4, help='batch of mapping/generator/augment/loss cases (D uses 8)')
    ap.add_argument('--seed', type=int, default=2, help='seed of everything random')
    ap.add_argument('--channel-base', type=int, default=1024, help='G synthesis channel_base (and D, unless given)')
    ap.add_argument('--channel-max', type=int, default=64, help='G synthesis channel_max (and D, unless given)')
    ap.add_argument('--d-channel-base', type=int, default=None)
    ap.add_argument('--d-channel-max', type=int, default=None)
    ap.add_argument('--z-dim', type=int, default=64)
    ap.add_argument('--w-dim', type=int, default=64)
    ap.add_argument('--g-mapping-layers', type=int, default=2, help="num_layers of G's mapping network")
    ap.add_argument('--mapping-layers', type=int, default=8, help='num_layers of the stand-alone mapping case')
    ap.add_argument('--mapping-num-ws', type=int, default=8, help='num_ws of the stand-alone mapping case')
    ap.add_argument('--set', default=None, help="root attribute 'set' (default: describes the configuration)")
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--inputs-from', default=None,
                    help='take configuration, parameters, inputs and augment seeds from this existing set')
    ap.add_argument('--compare-structure', nargs=2, metavar=('A', 'B'))
    ap.add_argument('--compare-values', nargs=2, metavar=('A', 'B'))
    args = ap.parse_args()
    if args.compare_structure:
        problems = compare_structure(*args.compare_structure)
        for p in problems:
            print(p)
        print('structure: identical' if not problems else f'structure: {len(problems)} difference(s)')
        sys.exit(1 if problems else 0)
    if args.compare_values:
        rows = compare_values(*args.compare_values)
        print(f'{len(rows)} datasets compared; largest max|a-b|/max|b| first:')
        for r, d, n in rows[:15]:
            print(f'  {r:10.3g}  {d:10.3g}  {n}')
        sys.exit(0)
    if not args.reference or not args.out:
        ap.error('--reference and --out are required')
    generate(args)


if __name__ == '__main__':
    main()
