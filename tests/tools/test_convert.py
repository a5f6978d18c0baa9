#!/usr/bin/env python3
"""Tests of tools/convert_stylegan2_pkl.py, tools/convert_torch_state_dict.py and tools/weightfile.py.

  python3 tests/tools/test_convert.py [-v] [unittest args]

The inputs are built here with real PyTorch (Debian python3-torch) in the real structures: a StyleGAN2-ADA network
snapshot whose networks are torch_utils.persistence records (the persistence mechanism is emulated with fake
modules 'torch_utils.persistence' and 'dnnlib.util' registered in sys.modules), torch.save() state dicts in the zip
and the legacy format, and broken or malicious files. The converters always run in a subprocess whose sys.path
starts with a directory holding torch.py / torch_utils / dnnlib that raise on import, so the tests also prove that
the converters never import torch or the reference code.

Exit status: 0 all passed, 1 failures, 77 passed but some tests were skipped (numpy/h5py or torch missing).
If this interpreter lacks numpy/h5py/torch, the script re-runs itself under /usr/bin/python3 (Debian's packages).
"""

import copy
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import types
import unittest

SYSTEM_PYTHON = "/usr/bin/python3"


def _try_imports():
    mods = {}
    for name in ("numpy", "h5py", "torch"):
        try:
            mods[name] = __import__(name)
        except ImportError:
            mods[name] = None
    return mods


_mods = _try_imports()
if (None in _mods.values() and __name__ == "__main__" and not os.environ.get("FACETEX_TEST_REEXEC")
        and os.path.exists(SYSTEM_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON)):
    os.environ["FACETEX_TEST_REEXEC"] = "1"
    os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, os.path.abspath(__file__)] + sys.argv[1:])

np, h5py, torch = _mods["numpy"], _mods["h5py"], _mods["torch"]
HAVE_NP = np is not None and h5py is not None
HAVE_TORCH = HAVE_NP and torch is not None

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, "tools")
PKL_TOOL = os.path.join(TOOLS, "convert_stylegan2_pkl.py")
SD_TOOL = os.path.join(TOOLS, "convert_torch_state_dict.py")
WF_TOOL = os.path.join(TOOLS, "weightfile.py")


# ----------------------------------------------------------------------------------------------------------------
# Emulation of torch_utils.persistence / dnnlib (only what pickling needs: importable names)

def _install_fake_reference_modules():
    if "torch_utils.persistence" in sys.modules and getattr(sys.modules["torch_utils.persistence"], "_fake", 0):
        return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, sys.modules["dnnlib.util"].EasyDict
    tu = types.ModuleType("torch_utils")
    pers = types.ModuleType("torch_utils.persistence")
    pers._fake = 1

    def _reconstruct_persistent_obj(meta):  # only referenced by name in pickles; the tests never unpickle them
        raise RuntimeError("the test never unpickles persistent objects")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    pers._reconstruct_persistent_obj = _reconstruct_persistent_obj
    tu.persistence = pers
    dn = types.ModuleType("dnnlib")
    dnu = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name)

        def __setattr__(self, name, value):
            self[name] = value

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    dnu.EasyDict = EasyDict
    dn.util = dnu
    dn.EasyDict = EasyDict
    sys.modules.update({"torch_utils": tu, "torch_utils.persistence": pers, "dnnlib": dn, "dnnlib.util": dnu})
    return _reconstruct_persistent_obj, EasyDict


def make_module_src(marker_path):
    # Embedded "source" that proves execution if it ever runs: it creates the marker file and exits.
    return (f"open({marker_path!r}, 'w').write('module_src was executed')\n"
            "raise SystemExit('module_src must never be executed')\n")


if HAVE_TORCH:
    _reconstruct_persistent_obj, EasyDict = _install_fake_reference_modules()
    MODULE_SRC = [make_module_src("/nonexistent")]   # replaced per test run (setUpModule)

    def persistent_class(orig):
        """Like torch_utils.persistence.persistent_class: remember constructor args, pickle as a meta record."""

        class Persistent(orig):
            _orig_class_name = orig.__name__

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._init_args = copy.deepcopy(args)
                self._init_kwargs = copy.deepcopy(kwargs)

            @property
            def init_kwargs(self):
                return copy.deepcopy(self._init_kwargs)

            def __reduce__(self):
                rec = list(super().__reduce__())             # (copyreg._reconstructor, (cls, object, None), state)
                rec += [None] * max(3 - len(rec), 0)
                if rec[0] is not _reconstruct_persistent_obj:
                    meta = dict(type="class", version=6, module_src=MODULE_SRC[0],
                                class_name=self._orig_class_name, state=rec[2])
                    rec[0], rec[1], rec[2] = _reconstruct_persistent_obj, (meta,), None
                return tuple(rec)

        Persistent.__name__ = orig.__name__
        Persistent.__qualname__ = orig.__name__
        return Persistent

    def _filter(k=(1, 3, 3, 1)):
        f = torch.tensor(k, dtype=torch.float32)
        f = f.ger(f)
        return f / f.sum()

    @persistent_class
    class FullyConnectedLayer(torch.nn.Module):
        def __init__(self, in_features, out_features, bias=True, lr_multiplier=1.0, bias_init=0.0):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
            self.bias = torch.nn.Parameter(torch.randn([out_features]) + bias_init) if bias else None
            self.weight_gain = lr_multiplier / np.sqrt(in_features)

    @persistent_class
    class Conv2dLayer(torch.nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, bias=True, down=1, conv_clamp=None):
            super().__init__()
            self.down = down
            self.conv_clamp = conv_clamp
            self.register_buffer("resample_filter", _filter())
            self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
            self.bias = torch.nn.Parameter(torch.randn([out_channels])) if bias else None

    @persistent_class
    class MappingNetwork(torch.nn.Module):
        def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=2, lr_multiplier=0.01, w_avg_beta=0.995):
            super().__init__()
            self.num_ws = num_ws
            self.num_layers = num_layers
            for idx in range(num_layers):
                # Positional constructor args as in the reference (init_args of submodules are not stored).
                setattr(self, f"fc{idx}", FullyConnectedLayer(z_dim if idx == 0 else w_dim, w_dim,
                                                              lr_multiplier=lr_multiplier))
            self.register_buffer("w_avg", torch.randn([w_dim]))

    @persistent_class
    class SynthesisLayer(torch.nn.Module):
        def __init__(self, in_channels, out_channels, w_dim, resolution, up=1, use_noise=True, conv_clamp=None):
            super().__init__()
            self.resolution = resolution
            self.up = up
            self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
            self.register_buffer("resample_filter", _filter())
            self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
            if use_noise:
                self.register_buffer("noise_const", torch.randn([resolution, resolution]))
                self.noise_strength = torch.nn.Parameter(torch.tensor(0.37))   # 0-d parameter
            self.bias = torch.nn.Parameter(torch.randn([out_channels]))

    @persistent_class
    class ToRGBLayer(torch.nn.Module):
        def __init__(self, in_channels, out_channels, w_dim, conv_clamp=None):
            super().__init__()
            self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
            self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
            self.bias = torch.nn.Parameter(torch.randn([out_channels]))

    @persistent_class
    class SynthesisBlock(torch.nn.Module):
        def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, use_fp16=False):
            super().__init__()
            self.resolution = resolution
            self.use_fp16 = use_fp16
            self.register_buffer("resample_filter", _filter())
            if in_channels == 0:
                self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
            else:
                self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2)
            self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution)
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim)

    @persistent_class
    class SynthesisNetwork(torch.nn.Module):
        def __init__(self, w_dim, img_resolution, img_channels, channel_base=64, channel_max=16, num_fp16_res=1,
                     **block_kwargs):
            super().__init__()
            self.block_resolutions = [4, 8]
            ch = {4: channel_max, 8: min(channel_base // 8, channel_max)}
            for res in self.block_resolutions:
                block = SynthesisBlock(ch[res // 2] if res > 4 else 0, ch[res], w_dim=w_dim, resolution=res,
                                       img_channels=img_channels, use_fp16=(res == 8))
                setattr(self, f"b{res}", block)
            self.num_ws = 4

    @persistent_class
    class Generator(torch.nn.Module):
        def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={},
                     synthesis_kwargs={}):
            super().__init__()
            self.z_dim = z_dim
            # Same order as the reference: synthesis before mapping (state_dict order is not alphabetical).
            self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution,
                                              img_channels=img_channels, **synthesis_kwargs)
            self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.synthesis.num_ws,
                                          **mapping_kwargs)
            # Things the real Generator lacks, to cover the format: plain torch.nn submodules with BatchNorm
            # buffers, None entries, a non-persistent buffer, odd dtypes and strided/offset/expanded storage.
            self.extra = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
            self.extra(torch.randn(5, 4))           # running stats and num_batches_tracked = 1
            self.register_parameter("unused", None)
            self.register_buffer("nothing", None)
            self.register_buffer("scratch", torch.ones(2), persistent=False)
            self.register_buffer("steps", torch.tensor([3, -7, 2 ** 40], dtype=torch.int64))
            self.register_buffer("counts", torch.tensor([[1, 2], [3, 4]], dtype=torch.int32))
            self.register_buffer("flags", torch.tensor([True, False, True]))
            self.register_buffer("bf", torch.randn(3, 2).to(torch.bfloat16))
            self.register_buffer("dbl", torch.randn(4, dtype=torch.float64))
            self.register_buffer("expanded", torch.randn(3, 1).expand(3, 4))   # stride 0
            big = torch.randn(30)
            self.transposed = torch.nn.Parameter(torch.randn(3, 5).t())         # non-contiguous
            self.offset_view = torch.nn.Parameter(big[5:17].view(3, 4))         # storage offset 5
            # A float16 parameter, as in FP16 layers.
            self.synthesis.b8.conv0.weight = torch.nn.Parameter(self.synthesis.b8.conv0.weight.data.half())

    @persistent_class
    class DiscriminatorBlock(torch.nn.Module):
        def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels):
            super().__init__()
            if in_channels == 0:
                self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1)
            self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3)
            self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, down=2)
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2)

    @persistent_class
    class MinibatchStdLayer(torch.nn.Module):
        def __init__(self, group_size, num_channels=1):
            super().__init__()
            self.group_size = group_size
            self.num_channels = num_channels

    @persistent_class
    class DiscriminatorEpilogue(torch.nn.Module):
        def __init__(self, in_channels, resolution, img_channels, mbstd_group_size=4, mbstd_num_channels=1):
            super().__init__()
            self.mbstd = MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
            self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3)
            self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels)
            self.out = FullyConnectedLayer(in_channels, 1)

    @persistent_class
    class Discriminator(torch.nn.Module):
        def __init__(self, c_dim, img_resolution, img_channels, block_kwargs={}, mapping_kwargs={},
                     epilogue_kwargs={}, conv_clamp=None):
            super().__init__()
            self.b8 = DiscriminatorBlock(0, 8, 16, resolution=8, img_channels=img_channels)
            self.b4 = DiscriminatorEpilogue(16, resolution=4, img_channels=img_channels, **epilogue_kwargs)

    @persistent_class
    class AugmentPipe(torch.nn.Module):
        def __init__(self, xflip=0, rotate90=0, xint=0, scale=0, rotate=0, aniso=0, xfrac=0, brightness=0,
                     contrast=0, lumaflip=0, hue=0, saturation=0):
            super().__init__()
            self.register_buffer("p", torch.zeros([]))
            self.xflip = float(xflip)
            self.register_buffer("Hz_geom", torch.randn(12))
            self.register_buffer("Hz_fbank", torch.randn(4, 7))


def build_snapshot():
    """Networks as in a stylegan2-ada-pytorch network-snapshot pickle. Returns (dict, {name: module})."""
    torch.manual_seed(1234)
    G_kwargs = EasyDict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3,
                        mapping_kwargs=EasyDict(num_layers=2),
                        synthesis_kwargs=EasyDict(channel_base=64, channel_max=16, num_fp16_res=1))
    G = Generator(**G_kwargs)
    D = Discriminator(c_dim=0, img_resolution=8, img_channels=3, block_kwargs=EasyDict(),
                      mapping_kwargs=EasyDict(), epilogue_kwargs=EasyDict(mbstd_group_size=4),
                      conv_clamp=None)
    G_ema = Generator(**G_kwargs)
    G_ema.load_state_dict({k: v for k, v in G.state_dict().items() if k != "expanded"}, strict=False)
    with torch.no_grad():
        G_ema.mapping.w_avg.add_(1.5)
    G_ema.eval().requires_grad_(False)
    aug = AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1,
                      contrast=1, lumaflip=1, hue=1, saturation=1)
    with torch.no_grad():
        aug.p.fill_(0.25)
    snapshot = dict(training_set_kwargs=EasyDict(class_name="training.dataset.ImageFolderDataset",
                                                 path="textures.zip", resolution=8, use_labels=False,
                                                 xflip=(True, False)),
                    G=G, D=D, G_ema=G_ema, augment_pipe=aug)
    return snapshot, dict(G=G, D=D, G_ema=G_ema, augment_pipe=aug)


def expected_array(t):
    t = t.detach().cpu()
    return t.float().numpy() if t.is_floating_point() else t.long().numpy()


def json_roundtrip(obj):
    return json.loads(json.dumps(obj))


# ----------------------------------------------------------------------------------------------------------------

# ----------------------------------------------------------------------------------------------------------------
# A few pickle opcodes, to hand-write records that torch 1.13 cannot produce (torch 2.x's _rebuild_tensor_v3 on an
# UntypedStorage, big-endian zip archives, tensors of XLA-like devices pickled as numpy arrays).

def op_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def op_int(i):
    return b"J" + struct.pack("<i", i)


def op_bytes(b):
    return b"B" + struct.pack("<I", len(b)) + b


def op_global(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def op_tuple(*items):
    return b"(" + b"".join(items) + b"t"


def op_call(func, *args):
    return func + op_tuple(*args) + b"R"


def op_empty_odict():
    return op_global("collections", "OrderedDict") + b")R"


def op_embedded_pickle(data):
    """A complete pickle (PROTO ... STOP) inlined as one value: drop PROTO and STOP."""
    assert data[:1] == b"\x80" and data[-1:] == b"."
    return data[2:-1]


def op_dict(items):
    return b"}(" + b"".join(op_str(k) + v for k, v in items) + b"u"


class ConverterTestBase(unittest.TestCase):
    tmp = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="facetex-convert-test-")
        poison = os.path.join(cls.tmp, "poison")
        os.makedirs(os.path.join(poison, "torch_utils"))
        os.makedirs(os.path.join(poison, "dnnlib"))
        msg = "raise ImportError('the converter must not import {}')\n"
        with open(os.path.join(poison, "torch.py"), "w") as f:
            f.write(msg.format("torch"))
        with open(os.path.join(poison, "torch_utils", "__init__.py"), "w") as f:
            f.write(msg.format("torch_utils"))
        with open(os.path.join(poison, "dnnlib", "__init__.py"), "w") as f:
            f.write(msg.format("dnnlib"))
        cls.env = dict(os.environ, PYTHONPATH=poison, PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
        cls.marker = os.path.join(cls.tmp, "module_src_executed")
        if HAVE_TORCH:
            MODULE_SRC[0] = make_module_src(cls.marker)

    @classmethod
    def tearDownClass(cls):
        if cls.tmp:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def run_tool(self, tool, *args):
        p = subprocess.run([sys.executable, tool, *args], env=self.env, capture_output=True, text=True,
                           timeout=600, cwd=self.tmp)
        return p

    def assertOk(self, p):
        self.assertEqual(p.returncode, 0, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")

    def assertDataError(self, p, *fragments, path=None):
        self.assertEqual(p.returncode, 3, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, f"expected one error line, got:\n{p.stderr}")
        if path is not None:
            self.assertIn(path, lines[0])
        for frag in fragments:
            self.assertIn(frag, lines[0])
        self.assertNotIn("Traceback", p.stderr)
        return lines[0]

    def assertNoPartials(self, out):
        d = os.path.dirname(out)
        left = [n for n in os.listdir(d) if n.startswith(os.path.basename(out) + ".partial-")]
        self.assertEqual(left, [])

    def check_root(self, f, created_by, source):
        self.assertEqual(f.attrs["format"], "facetex-weights")
        self.assertEqual(h5py.check_string_dtype(f.attrs.get_id("format").dtype).encoding, "utf-8")
        self.assertIsNone(h5py.check_string_dtype(f.attrs.get_id("format").dtype).length)   # variable length
        self.assertEqual(f.attrs["version"], 1)
        self.assertEqual(f.attrs.get_id("version").dtype, np.dtype("int64"))
        self.assertEqual(f.attrs.get_id("version").shape, ())
        self.assertEqual(f.attrs["created_by"], created_by)
        self.assertEqual(f.attrs["source"], source)

    def check_group(self, g, expected_sd):
        """Datasets equal the state_dict exactly: names, order, shapes, stored dtypes, values."""
        self.assertEqual(list(g.keys()), list(expected_sd.keys()))
        for k, t in expected_sd.items():
            d = g[k]
            self.assertIsInstance(d, h5py.Dataset, k)
            want = expected_array(t)
            self.assertEqual(d.shape, want.shape, k)
            self.assertEqual(d.dtype, np.dtype("float32") if t.is_floating_point() else np.dtype("int64"), k)
            got = d[()]
            self.assertTrue(np.array_equal(np.asarray(got), want), f"{k}: values differ")


@unittest.skipUnless(HAVE_TORCH, "needs numpy, h5py and torch (python3-torch) to build the inputs")
class NetworkPickleTest(ConverterTestBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.snapshot, cls.nets = build_snapshot()
        cls.pkl = {}
        for proto in (2, 4, 5):
            path = os.path.join(cls.tmp, f"network-snapshot-p{proto}.pkl")
            with open(path, "wb") as f:
                pickle.dump(cls.snapshot, f, protocol=proto)
            cls.pkl[proto] = path

    def test_poison_env_blocks_torch(self):
        p = subprocess.run([sys.executable, "-c", "import torch"], env=self.env, capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("must not import torch", p.stderr)

    def test_record_structure(self):
        # The test pickle must really be made of persistent records with embedded torch.save() storages.
        with open(self.pkl[4], "rb") as f:
            data = f.read()
        self.assertIn(b"torch_utils.persistence", data)
        self.assertIn(b"_reconstruct_persistent_obj", data)
        self.assertIn(b"_load_from_bytes", data)
        self.assertIn(b"_rebuild_parameter", data)
        self.assertIn(b"torch.nn.modules.batchnorm", data)
        self.assertIn(b"dnnlib.util", data)

    def convert_and_check(self, proto):
        out = self.path(f"snap-p{proto}.h5")
        p = self.run_tool(PKL_TOOL, self.pkl[proto], out)
        self.assertOk(p)
        self.assertFalse(os.path.exists(self.marker), "module_src was executed")
        self.assertNoPartials(out)
        lines = p.stdout.strip().splitlines()
        self.assertEqual(len(lines), 5, p.stdout)
        for name in ("G", "D", "G_ema", "augment_pipe"):
            self.assertTrue(any(line.startswith(f"{name}: class ") for line in lines), p.stdout)
        n_params = sum(t.numel() for t in self.nets["G"].parameters())
        self.assertIn(f"G: class Generator, {len(self.nets['G'].state_dict())} tensors, {n_params:,} parameters",
                      p.stdout)
        with h5py.File(out, "r") as f:
            self.check_root(f, "tools/convert_stylegan2_pkl.py", os.path.basename(self.pkl[proto]))
            # Networks are looked up by name (HDF5 1.10 ignores creation-order tracking on the root group).
            self.assertEqual(sorted(f.keys()), sorted(["G", "D", "G_ema", "augment_pipe"]))
            for name, module in self.nets.items():
                g = f[name]
                self.assertEqual(g.attrs["class_name"], type(module).__name__)
                self.assertEqual(json.loads(g.attrs["init_kwargs"]), json_roundtrip(module.init_kwargs))
                self.assertNotIn("init_args", g.attrs)
                self.check_group(g, module.state_dict())
            kw = json.loads(f["G"].attrs["init_kwargs"])
            self.assertEqual(kw["synthesis_kwargs"]["num_fp16_res"], 1)
            self.assertIsNone(json.loads(f["D"].attrs["init_kwargs"])["conv_clamp"])
            # Spot checks of the naming and of the special cases.
            g = f["G"]
            keys = list(g.keys())
            for k in ("mapping.fc0.weight", "mapping.w_avg", "synthesis.b4.const", "synthesis.b8.conv0.weight",
                      "synthesis.b8.conv1.noise_strength", "synthesis.b4.conv1.noise_const",
                      "synthesis.b8.resample_filter", "extra.1.num_batches_tracked", "extra.1.running_var"):
                self.assertIn(k, g)
            self.assertLess(keys.index("synthesis.b4.const"), keys.index("mapping.fc0.weight"))
            self.assertEqual(g["synthesis.b8.conv1.noise_strength"].shape, ())
            self.assertEqual(g["extra.1.num_batches_tracked"].shape, ())
            self.assertEqual(g["extra.1.num_batches_tracked"][()], 1)
            self.assertEqual(g["synthesis.b8.conv0.weight"].dtype, np.dtype("float32"))
            self.assertEqual(g["flags"].dtype, np.dtype("int64"))
            self.assertEqual(g["steps"][2], 2 ** 40)
            for absent in ("unused", "nothing", "scratch"):
                self.assertNotIn(absent, g)
            self.assertIn("b4.out.bias", f["D"])
            self.assertNotIn("b8.skip.bias", f["D"])
            self.assertEqual(f["augment_pipe"]["p"].shape, ())
            self.assertAlmostEqual(float(f["augment_pipe"]["p"][()]), 0.25)
            self.assertFalse(np.array_equal(f["G"]["mapping.w_avg"][()], f["G_ema"]["mapping.w_avg"][()]))
            # Creation order is tracked, so a C++ reader can iterate in state_dict order.
            self.assertTrue(g.id.get_create_plist().get_link_creation_order())
        return out

    def test_protocol4(self):
        self.convert_and_check(4)

    def test_protocol2_bytes_via_codecs(self):
        with open(self.pkl[2], "rb") as f:
            self.assertIn(b"_codecs", f.read())
        self.convert_and_check(2)

    def test_protocol5(self):
        self.convert_and_check(5)

    def test_select_networks(self):
        out = self.path("sel.h5")
        p = self.run_tool(PKL_TOOL, self.pkl[4], out, "--networks", "G_ema,D")
        self.assertOk(p)
        self.assertLess(p.stdout.index("G_ema: class"), p.stdout.index("D: class"))
        with h5py.File(out, "r") as f:
            self.assertEqual(sorted(f.keys()), ["D", "G_ema"])
            self.check_group(f["G_ema"], self.nets["G_ema"].state_dict())

    def test_select_missing_network(self):
        out = self.path("selmissing.h5")
        p = self.run_tool(PKL_TOOL, self.pkl[4], out, "--networks", "G,Gs")
        self.assertDataError(p, "Gs", "not in the pickle", path=self.pkl[4])
        self.assertFalse(os.path.exists(out))

    def test_single_module_pickle(self):
        src = self.path("gema-only.pkl")
        with open(src, "wb") as f:
            pickle.dump(self.nets["G_ema"], f)
        out = self.path("gema-only.h5")
        p = self.run_tool(PKL_TOOL, src, out, "--networks", "G_ema")
        self.assertOk(p)
        with h5py.File(out, "r") as f:
            self.assertEqual(list(f.keys()), ["G_ema"])
            self.check_group(f["G_ema"], self.nets["G_ema"].state_dict())

    def test_positional_init_args_recorded(self):
        src = self.path("positional.pkl")
        with open(src, "wb") as f:
            pickle.dump(dict(G=FullyConnectedLayer(3, 2, lr_multiplier=0.5)), f)
        out = self.path("positional.h5")
        p = self.run_tool(PKL_TOOL, src, out)
        self.assertOk(p)
        with h5py.File(out, "r") as f:
            self.assertEqual(json.loads(f["G"].attrs["init_kwargs"]), {"lr_multiplier": 0.5})
            self.assertEqual(json.loads(f["G"].attrs["init_args"]), [3, 2])

    def test_truncated_pickle(self):
        with open(self.pkl[4], "rb") as f:
            data = f.read()
        for frac in (0.5, 0.97):
            src = self.path(f"truncated-{frac}.pkl")
            with open(src, "wb") as f:
                f.write(data[:int(len(data) * frac)])
            out = self.path("truncated.h5")
            p = self.run_tool(PKL_TOOL, src, out)
            self.assertDataError(p, "truncated", path=src)
            self.assertFalse(os.path.exists(out))
            self.assertNoPartials(out)

    def test_failed_conversion_keeps_existing_output(self):
        out = self.path("keep.h5")
        with open(out, "w") as f:
            f.write("previous contents")
        src = self.path("half.pkl")
        with open(self.pkl[4], "rb") as f:
            data = f.read()
        with open(src, "wb") as f:
            f.write(data[: len(data) // 3])
        p = self.run_tool(PKL_TOOL, src, out)
        self.assertEqual(p.returncode, 3)
        with open(out) as f:
            self.assertEqual(f.read(), "previous contents")
        self.assertNoPartials(out)

    def test_global_inside_network_refused(self):
        # A persistent record whose state smuggles in os.system must be refused, not executed.
        marker = self.path("pwned-in-state")

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        net = FullyConnectedLayer(2, 2)
        net.payload = Evil()
        src = self.path("evil-state.pkl")
        with open(src, "wb") as f:
            pickle.dump(dict(G=net), f)
        p = self.run_tool(PKL_TOOL, src, self.path("evil-state.h5"))
        line = self.assertDataError(p, "unknown global", "system", path=src)
        self.assertIn("posix.system" if os.name == "posix" else "system", line)
        self.assertFalse(os.path.exists(marker))

    def test_state_dict_tool_refuses_network_pickle(self):
        p = self.run_tool(SD_TOOL, self.pkl[4], self.path("wrongtool.h5"))
        self.assertDataError(p, "convert_stylegan2_pkl.py", path=self.pkl[4])

    def test_list_mode(self):
        out = self.convert_and_check(4)
        p = self.run_tool(WF_TOOL, "--list", out)
        self.assertOk(p)
        self.assertIn("G: class=Generator", p.stdout)
        self.assertIn("augment_pipe: class=AugmentPipe", p.stdout)
        p = self.run_tool(WF_TOOL, "--list", out, "-v")
        self.assertOk(p)
        self.assertIn("synthesis.b8.conv1.noise_strength () float32", p.stdout)


@unittest.skipUnless(HAVE_TORCH, "needs numpy, h5py and torch (python3-torch) to build the inputs")
class StateDictTest(ConverterTestBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        torch.manual_seed(99)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                    torch.nn.Flatten(), torch.nn.Linear(4, 2))
        model.train()
        model[:2](torch.randn(2, 3, 5, 5))
        model[4].half()
        sd = model.state_dict()
        big = torch.randn(40)
        sd["tied"] = sd["0.weight"]                       # same storage twice
        sd["slice"] = big[3:15].view(3, 4)                # storage offset
        sd["transposed"] = torch.randn(4, 3).t()          # non-contiguous
        sd["bf16"] = torch.randn(5).to(torch.bfloat16)
        sd["f64"] = torch.randn(2, 2, dtype=torch.float64)
        sd["i32"] = torch.tensor([1, -2, 3], dtype=torch.int32)
        sd["u8"] = torch.tensor([0, 255], dtype=torch.uint8)
        sd["flag"] = torch.tensor(True)
        sd["scalar"] = torch.tensor(2.5)
        cls.sd = sd
        cls.model = model

    def save(self, obj, name, zip_format=True):
        path = self.path(name)
        torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
        return path

    def convert(self, src, *args, name="net"):
        out = self.path(os.path.basename(src) + ".h5")
        p = self.run_tool(SD_TOOL, src, out, "--name", name, *args)
        return p, out

    def check_file(self, out, src, name, expected_sd, class_name="", init_kwargs=None):
        self.assertNoPartials(out)
        with h5py.File(out, "r") as f:
            self.check_root(f, "tools/convert_torch_state_dict.py", os.path.basename(src))
            self.assertEqual(list(f.keys()), [name])
            g = f[name]
            self.assertEqual(g.attrs["class_name"], class_name)
            self.assertEqual(json.loads(g.attrs["init_kwargs"]), init_kwargs or {})
            self.check_group(g, expected_sd)

    def test_zip_and_legacy(self):
        for zip_format in (True, False):
            with self.subTest(zip_format=zip_format):
                src = self.save(self.sd, f"sd-{'zip' if zip_format else 'legacy'}.pth", zip_format)
                with open(src, "rb") as f:
                    self.assertEqual(f.read(2) == b"PK", zip_format)
                p, out = self.convert(src, name="dfr")
                self.assertOk(p)
                self.assertIn("top level", p.stdout)
                self.assertIn("zip" if zip_format else "legacy", p.stdout)
                self.check_file(out, src, "dfr", self.sd)

    def test_wrapped_state_dict_and_model_keys(self):
        for key in ("state_dict", "model"):
            for zip_format in (True, False):
                with self.subTest(key=key, zip_format=zip_format):
                    src = self.save({key: self.sd, "epoch": 3, "arch": "LightCNN_29Layers_v2"},
                                    f"wrapped-{key}-{zip_format}.pth", zip_format)
                    p, out = self.convert(src)
                    self.assertOk(p)
                    self.assertIn(f"key '{key}'", p.stdout)
                    self.check_file(out, src, "net", self.sd)

    def test_explicit_key_prefix_strip_kwargs_class(self):
        module_sd = {"module." + k: v for k, v in self.sd.items()}
        src = self.save({"net_recon": module_sd, "optimizer": {"lr": 1e-4}, "epoch": 20}, "epoch_20.pth")
        p, out = self.convert(src)
        line = self.assertDataError(p, "no state dict found", "'net_recon'", path=src)
        self.assertIn("--key", line)
        p, out = self.convert(src, "--key", "net_recon", "--prefix-strip", "module.", "--class-name", "ReconNet",
                              "--init-kwargs", '{"net_recon": "resnet50", "dims": [1, 2]}', name="net_recon")
        self.assertOk(p)
        self.assertIn("key 'net_recon'", p.stdout)
        self.check_file(out, src, "net_recon", self.sd, class_name="ReconNet",
                        init_kwargs={"net_recon": "resnet50", "dims": [1, 2]})

    def test_whole_module_saved(self):
        for zip_format in (True, False):
            with self.subTest(zip_format=zip_format):
                src = self.save({"model": self.model}, f"whole-{zip_format}.pth", zip_format)
                p, out = self.convert(src)
                self.assertOk(p)
                self.check_file(out, src, "net", self.model.state_dict(), class_name="Sequential")

    def test_truncated_files(self):
        for zip_format in (True, False):
            src = self.save(self.sd, f"trunc-src-{zip_format}.pth", zip_format)
            with open(src, "rb") as f:
                data = f.read()
            for frac in (0.3, 0.9):
                with self.subTest(zip_format=zip_format, frac=frac):
                    bad = self.path(f"trunc-{zip_format}-{frac}.pth")
                    with open(bad, "wb") as f:
                        f.write(data[: int(len(data) * frac)])
                    p, out = self.convert(bad)
                    self.assertDataError(p, "truncated", path=bad)
                    self.assertFalse(os.path.exists(out))

    def test_pkl_tool_refuses_torch_save(self):
        for zip_format in (True, False):
            with self.subTest(zip_format=zip_format):
                src = self.save(self.sd, f"forpkl-{zip_format}.pth", zip_format)
                p = self.run_tool(PKL_TOOL, src, self.path("forpkl.h5"))
                self.assertDataError(p, "convert_torch_state_dict.py", path=src)

    def test_handwritten_records_in_plain_pickle(self):
        # _rebuild_tensor_v3 over an embedded UntypedStorage, _rebuild_from_type_v2 with Parameter, and a tensor
        # of an XLA-like device pickled as a numpy array (bfloat16 travels as float32 there).
        import io as _io

        def blob(storage):
            b = _io.BytesIO()
            torch.save(storage, b, _use_new_zipfile_serialization=False)
            return op_call(op_global("torch.storage", "_load_from_bytes"), op_bytes(b.getvalue()))

        half = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float16)
        v3 = op_call(op_global("torch._utils", "_rebuild_tensor_v3"), blob(half.storage().untyped()), op_int(1),
                     op_tuple(op_int(2)), op_tuple(op_int(1)), b"\x89", op_empty_odict(),
                     op_global("torch", "float16"))
        fl = torch.tensor([0.5, 1.5, -2.5])
        param = op_call(op_global("torch._tensor", "_rebuild_from_type_v2"),
                        op_global("torch._utils", "_rebuild_tensor_v2"),
                        op_global("torch.nn.parameter", "Parameter"),
                        op_tuple(blob(fl.storage()), op_int(0), op_tuple(op_int(3)), op_tuple(op_int(1)), b"\x88",
                                 op_empty_odict()),
                        b"}")
        arr = np.array([[1.0, 2.0], [3.0, 4.5]], dtype=np.float32)
        dev = op_call(op_global("torch._utils", "_rebuild_device_tensor_from_numpy"),
                      op_embedded_pickle(pickle.dumps(arr, protocol=2)), op_global("torch", "bfloat16"),
                      op_str("xla:0"), b"\x89")
        src = self.path("handwritten.pkl")
        with open(src, "wb") as f:
            f.write(b"\x80\x02" + op_dict([("v3", v3), ("param", param), ("dev", dev)]) + b".")
        out = self.path("handwritten.h5")
        p = self.run_tool(SD_TOOL, src, out)
        self.assertOk(p)
        self.assertIn("plain pickle", p.stdout)
        with h5py.File(out, "r") as f:
            g = f["net"]
            self.assertEqual(list(g.keys()), ["v3", "param", "dev"])
            self.assertEqual(g["v3"][()].tolist(), [2.0, 3.0])
            self.assertEqual(g["param"][()].tolist(), [0.5, 1.5, -2.5])
            self.assertTrue(np.array_equal(g["dev"][()], arr))

    def test_usage_errors(self):
        src = self.save(self.sd, "usage.pth")
        p, _ = self.convert(src, "--init-kwargs", "{not json")
        self.assertEqual(p.returncode, 2, p.stderr)
        p, _ = self.convert(src, "--init-kwargs", "[1, 2]")
        self.assertEqual(p.returncode, 2, p.stderr)


@unittest.skipUnless(HAVE_NP, "needs numpy and h5py")
class BadInputTest(ConverterTestBase):
    def write(self, name, data):
        path = self.path(name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_os_system_refused_without_executing(self):
        marker = self.path("pwned")
        cmd = f"touch {marker}".encode()
        payload = b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."
        for tool in (PKL_TOOL, SD_TOOL):
            with self.subTest(tool=os.path.basename(tool)):
                src = self.write("evil.pkl", payload)
                p = self.run_tool(tool, src, self.path("evil.h5"))
                self.assertDataError(p, 'unknown global "os.system"', path=src)
                self.assertFalse(os.path.exists(marker))
                self.assertFalse(os.path.exists(self.path("evil.h5")))

    def test_other_dangerous_globals(self):
        for mod, name in (("builtins", "eval"), ("builtins", "getattr"), ("subprocess", "Popen"),
                          ("torch", "load"), ("numpy", "load"), ("torch_utils.persistence", "_src_to_module")):
            with self.subTest(glob=f"{mod}.{name}"):
                payload = (b"\x80\x02c" + mod.encode() + b"\n" + name.encode() + b"\nX\x01\x00\x00\x00x\x85R.")
                src = self.write("evil2.pkl", payload)
                p = self.run_tool(PKL_TOOL, src, self.path("evil2.h5"))
                self.assertDataError(p, f'"{mod}.{name}"', path=src)

    def test_not_a_pickle(self):
        for name, data in (("text.pkl", b"hello world, this is not a pickle\n"), ("empty.pkl", b""),
                           ("proto0.pkl", b"(dp0\n.")):
            for tool in (PKL_TOOL, SD_TOOL):
                with self.subTest(name=name, tool=os.path.basename(tool)):
                    src = self.write(name, data)
                    p = self.run_tool(tool, src, self.path("x.h5"))
                    line = self.assertDataError(p, path=src)
                    self.assertTrue("not a pickle" in line or "empty" in line, line)

    def test_no_networks(self):
        src = self.write("nonet.pkl", pickle.dumps({"training_set_kwargs": {"path": "x"}, "G": None}, protocol=4))
        p = self.run_tool(PKL_TOOL, src, self.path("nonet.h5"))
        self.assertDataError(p, "no networks found", path=src)

    def test_tensorflow_pickle(self):
        src = self.write("tf.pkl", b"\x80\x02cdnnlib.tflib.network\nNetwork\n)\x81}b.")
        p = self.run_tool(PKL_TOOL, src, self.path("tf.h5"))
        self.assertDataError(p, "TensorFlow", path=src)

    def test_usage(self):
        p = self.run_tool(PKL_TOOL)
        self.assertEqual(p.returncode, 2)
        missing = self.path("does-not-exist.pkl")
        p = self.run_tool(PKL_TOOL, missing, self.path("o.h5"))
        self.assertDataError(p, "no such file", path=missing)
        p = self.run_tool(SD_TOOL, "--bogus")
        self.assertEqual(p.returncode, 2)
        p = self.run_tool(WF_TOOL)
        self.assertEqual(p.returncode, 2)

    def test_torch2_style_zip_big_endian_v3(self):
        # data.pkl as torch 2.x writes it: a typed FloatStorage tensor (v2) and an UntypedStorage + dtype tensor
        # (v3), storages in data/<key>, and a byteorder record saying "big".
        def storage(type_name, key, numel):
            return op_tuple(op_str("storage"), op_global("torch", type_name), op_str(key), op_str("cpu"),
                            op_int(numel)) + b"Q"

        t_a = op_call(op_global("torch._utils", "_rebuild_tensor_v2"), storage("FloatStorage", "0", 3), op_int(0),
                      op_tuple(op_int(3)), op_tuple(op_int(1)), b"\x89", op_empty_odict())
        t_b = op_call(op_global("torch._utils", "_rebuild_tensor_v3"), storage("UntypedStorage", "1", 6),
                      op_int(1), op_tuple(op_int(2)), op_tuple(op_int(1)), b"\x89", op_empty_odict(),
                      op_global("torch", "int16"))
        pkl = b"\x80\x02" + op_dict([("a", t_a), ("b", t_b)]) + b"."
        src = self.path("torch2.pth")
        import zipfile
        with zipfile.ZipFile(src, "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", pkl)
            z.writestr("archive/byteorder", "big")
            z.writestr("archive/data/0", np.array([1.5, -2.0, 3.25], ">f4").tobytes())
            z.writestr("archive/data/1", np.array([99, 7, -8], ">i2").tobytes())
            z.writestr("archive/version", "3\n")
            z.writestr("archive/.data/serialization_id", "0123")
        out = self.path("torch2.h5")
        p = self.run_tool(SD_TOOL, src, out)
        self.assertOk(p)
        with h5py.File(out, "r") as f:
            self.assertEqual(list(f["net"].keys()), ["a", "b"])
            self.assertEqual(f["net"]["a"].dtype, np.dtype("float32"))
            self.assertEqual(f["net"]["a"][()].tolist(), [1.5, -2.0, 3.25])
            self.assertEqual(f["net"]["b"].dtype, np.dtype("int64"))
            self.assertEqual(f["net"]["b"][()].tolist(), [7, -8])

    def test_torchscript_archive(self):
        import zipfile
        src = self.path("scripted.pt")
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("model/constants.pkl", b"\x80\x02).")
            z.writestr("model/code/__torch__.py", "def f(): pass\n")
        p = self.run_tool(SD_TOOL, src, self.path("scripted.h5"))
        self.assertDataError(p, "TorchScript", path=src)

    def test_tensor_past_storage_end(self):
        import zipfile
        t = op_call(op_global("torch._utils", "_rebuild_tensor_v2"),
                    op_tuple(op_str("storage"), op_global("torch", "FloatStorage"), op_str("0"), op_str("cpu"),
                             op_int(2)) + b"Q",
                    op_int(1), op_tuple(op_int(2), op_int(2)), op_tuple(op_int(2), op_int(1)), b"\x89",
                    op_empty_odict())
        src = self.path("overrun.pth")
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("archive/data.pkl", b"\x80\x02" + op_dict([("w", t)]) + b".")
            z.writestr("archive/data/0", np.zeros(2, "<f4").tobytes())
        p = self.run_tool(SD_TOOL, src, self.path("overrun.h5"))
        self.assertDataError(p, "w", "storage", path=src)

    def test_list_rejects_non_hdf5(self):
        src = self.write("notes.h5", b"not hdf5")
        p = self.run_tool(WF_TOOL, "--list", src)
        self.assertDataError(p, "not an HDF5 file", path=src)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=int(os.environ.get("FACETEX_TEST_VERBOSITY", "2")))
    result = prog.result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.skipped else 0)
