#!/usr/bin/env python3
"""Convert a torch.save()'d state_dict (.pth/.pt) into a facetex HDF5 weight file, without PyTorch.

  tools/convert_torch_state_dict.py IN.pth OUT.h5 [--name NAME] [--prefix-strip module.] [--key KEY]
                                    [--init-kwargs JSON] [--class-name X]

Reads both torch.save() formats (the zip archive of torch >= 1.6 and the older "legacy" stream that starts with a
pickled magic number) and plain pickles. The state dict is the file's top-level dict when all of its values are
tensors, else its 'state_dict' or 'model' entry (the summary says which), or the entry named by --key (e.g.
--key net_recon for Deep3DFaceRecon checkpoints). --prefix-strip removes a key prefix such as DataParallel's
"module.". The output holds one group (--name, default "net"); layout: tools/weightfile.py.

This module is also the shared reader of torch's serialization formats used by convert_stylegan2_pkl.py. Nothing
from the input file is ever imported or executed: a restricted unpickler maps the few globals that tensors,
storages, OrderedDicts, numpy arrays and torch.nn module records need to small stand-ins that produce numpy
arrays, and refuses every other global with a clear message.

Exit codes: 0 success, 2 usage error, 3 data error (one line naming the file). Needs python3 + numpy + h5py only.
"""

import io
import json
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict

sys.dont_write_bytecode = True   # sibling imports must not leave tools/__pycache__ behind
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weightfile  # noqa: E402
from weightfile import DataError, UsageError  # noqa: E402

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c   # first pickle of a legacy torch.save() stream
LEGACY_PROTOCOL_VERSION = 1001           # second pickle of a legacy stream

# dtype name -> (numpy type string, little-endian where it matters; item size). bfloat16 is read as raw uint16.
_DTYPES = {
    "float64": ("<f8", 8), "float32": ("<f4", 4), "float16": ("<f2", 2), "bfloat16": ("<u2", 2),
    "int64": ("<i8", 8), "int32": ("<i4", 4), "int16": ("<i2", 2), "int8": ("i1", 1), "uint8": ("u1", 1),
    "bool": ("?", 1), "uint16": ("<u2", 2), "uint32": ("<u4", 4), "uint64": ("<u8", 8),
    "complex64": ("<c8", 8), "complex128": ("<c16", 16),
}
# Readable (raw bytes) but not convertible.
_UNSUPPORTED_DTYPES = {"qint8": 1, "quint8": 1, "qint32": 4, "quint4x2": 1, "quint2x4": 1,
                       "float8_e5m2": 1, "float8_e4m3fn": 1, "float8_e5m2fnuz": 1, "float8_e4m3fnuz": 1,
                       "float8_e8m0fnu": 1, "complex32": 4}

_TORCH_DTYPE_NAMES = {
    "float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16",
    "int64": "int64", "long": "int64", "int32": "int32", "int": "int32", "int16": "int16", "short": "int16",
    "int8": "int8", "uint8": "uint8", "bool": "bool", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "complex64": "complex64", "cfloat": "complex64", "complex128": "complex128", "cdouble": "complex128",
    "complex32": "complex32", "chalf": "complex32",
    "qint8": "qint8", "quint8": "quint8", "qint32": "qint32", "quint4x2": "quint4x2", "quint2x4": "quint2x4",
    "float8_e5m2": "float8_e5m2", "float8_e4m3fn": "float8_e4m3fn", "float8_e5m2fnuz": "float8_e5m2fnuz",
    "float8_e4m3fnuz": "float8_e4m3fnuz", "float8_e8m0fnu": "float8_e8m0fnu",
}

_STORAGE_CLASSES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "QInt8Storage": "qint8", "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32", "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
    "UntypedStorage": "uint8", "_UntypedStorage": "uint8",
}


def _itemsize(dtype):
    if dtype in _DTYPES:
        return _DTYPES[dtype][1]
    if dtype in _UNSUPPORTED_DTYPES:
        return _UNSUPPORTED_DTYPES[dtype]
    raise DataError(f"unknown tensor element type {dtype!r}")


def _np():
    import numpy
    return numpy


# ----------------------------------------------------------------------------------------------------------------
# Stand-ins for torch objects

class TorchDType:
    """Stand-in for torch.float32 & co."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"torch.{self.name}"


class StorageType:
    """Stand-in for torch.FloatStorage & co. (only ever used as a tag in persistent ids)."""

    def __init__(self, qualname, dtype):
        self.qualname = qualname
        self.dtype = dtype

    def __repr__(self):
        return self.qualname


class Storage:
    """A flat buffer of raw bytes with the element type it was saved with. Legacy streams deliver the bytes after the
    object pickle, so tensors only reference a Storage and read it when materialised."""

    def __init__(self, dtype, key="?", byteorder="little"):
        self.dtype = dtype
        self.key = key
        self.byteorder = byteorder
        self._raw = None
        self._view = None   # (root Storage, start byte, stop byte) for legacy storage views

    def set_raw(self, raw):
        self._raw = raw

    def raw(self):
        if self._view is not None:
            root, start, stop = self._view
            data = root.raw()
            if stop > len(data):
                raise DataError(f"storage view {self.key} extends past storage {root.key}")
            return data[start:stop]
        if self._raw is None:
            raise DataError(f"storage {self.key} has no data (file truncated or corrupt)")
        return self._raw

    def array(self, dtype):
        np = _np()
        if dtype not in _DTYPES:
            raise DataError(f"tensors of type {dtype} are not supported")
        code, size = _DTYPES[dtype]
        if self.byteorder == "big" and code[0] == "<":
            code = ">" + code[1:]
        data = self.raw()
        return np.frombuffer(data, dtype=code, count=len(data) // size)


class TensorLike:
    is_parameter = False

    def numpy(self):
        raise NotImplementedError


class Tensor(TensorLike):
    """A strided view into a Storage, like torch's (storage, storage_offset, size, stride)."""

    def __init__(self, storage, offset, size, stride, dtype=None):
        if not isinstance(storage, Storage):
            raise DataError(f"tensor rebuilt from a {type(storage).__name__}, not a storage")
        try:
            self.size = tuple(int(s) for s in size)
            self.stride = tuple(int(s) for s in stride)
            self.offset = int(offset)
        except (TypeError, ValueError):
            raise DataError(f"tensor with malformed size/stride/offset {size!r} {stride!r} {offset!r}")
        if len(self.size) != len(self.stride):
            raise DataError(f"tensor size {self.size} and stride {self.stride} differ in length")
        if any(s < 0 for s in self.size) or any(s < 0 for s in self.stride) or self.offset < 0:
            raise DataError(f"tensor with negative size/stride/offset {self.size} {self.stride} {self.offset}")
        self.storage = storage
        self.dtype = dtype or storage.dtype
        _itemsize(self.dtype)
        self._array = None

    @property
    def shape(self):
        return self.size

    def numpy(self):
        if self._array is None:
            self._array = self._materialise()
        return self._array

    def _materialise(self):
        np = _np()
        if self.dtype not in _DTYPES or self.dtype.startswith("complex"):
            raise DataError(f"tensors of type {self.dtype} are not supported")
        flat = self.storage.array(self.dtype)
        n = 1
        for s in self.size:
            n *= s
        if n == 0:
            arr = np.zeros(self.size, dtype=flat.dtype)
        else:
            last = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride))
            if last >= flat.size:
                raise DataError(f"tensor of shape {list(self.size)} needs {last + 1} elements but its storage "
                                f"{self.storage.key} holds {flat.size} (truncated or corrupt)")
            view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                                   strides=tuple(st * flat.itemsize for st in self.stride),
                                                   writeable=False)
            arr = np.array(view)
        if self.dtype == "bfloat16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return arr


class ArrayTensor(TensorLike):
    """A tensor pickled as a numpy array (torch._utils._rebuild_device_tensor_from_numpy)."""

    def __init__(self, array, dtype):
        np = _np()
        if not isinstance(array, np.ndarray):
            raise DataError(f"device tensor rebuilt from a {type(array).__name__}, not an array")
        self._array = array
        self.dtype = dtype
        self.shape = array.shape

    def numpy(self):
        return self._array


class Parameter(TensorLike):
    is_parameter = True

    def __init__(self, data):
        if not isinstance(data, TensorLike):
            raise DataError(f"parameter rebuilt from a {type(data).__name__}, not a tensor")
        self.data = data
        self.dtype = data.dtype
        self.shape = data.shape

    def numpy(self):
        return self.data.numpy()


class _ParameterType:
    """Marker for torch.nn.parameter.Parameter (appears as the new_type of _rebuild_from_type_v2)."""


class _TensorType:
    """Marker for torch.Tensor."""


def _rebuild_tensor(storage, storage_offset, size, stride):
    return Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    if not isinstance(dtype, TorchDType):
        raise DataError(f"_rebuild_tensor_v3 with dtype {dtype!r}")
    return Tensor(storage, storage_offset, size, stride, dtype=dtype.name)


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None):
    return Parameter(data)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return Parameter(data)


def _rebuild_device_tensor_from_numpy(data, dtype, device, requires_grad):
    if not isinstance(dtype, TorchDType):
        raise DataError(f"device tensor with dtype {dtype!r}")
    return ArrayTensor(data, dtype.name)


def _rebuild_device_tensor_from_cpu_tensor(data, dtype, device, requires_grad):
    if not isinstance(data, TensorLike):
        raise DataError(f"device tensor rebuilt from a {type(data).__name__}")
    return data


_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter,
               _rebuild_parameter_with_state, _rebuild_device_tensor_from_numpy,
               _rebuild_device_tensor_from_cpu_tensor)


def _rebuild_from_type_v2(func, new_type, args, state=None):
    if func not in _REBUILDERS or not isinstance(args, tuple):
        raise DataError(f"tensor subclass record with rebuild function {func!r}")
    t = func(*args)
    if new_type is _ParameterType and not isinstance(t, Parameter):
        t = Parameter(t)
    return t


def _rebuild_from_type(func, new_type, args, state=None):
    return _rebuild_from_type_v2(func, new_type, args, state)


class Size(tuple):
    """Stand-in for torch.Size."""


def _torch_device(*args):
    return ":".join(str(a) for a in args if a is not None)


class ModuleLike:
    """Something with torch.nn.Module internals in `state` (_parameters, _buffers, _modules)."""

    class_name = ""

    def get_state(self):
        raise NotImplementedError


class ModuleStub(ModuleLike):
    """Stand-in for a plain torch.nn class (torch.nn.Linear, torch.nn.Module, ...) pickled as NEWOBJ + BUILD."""

    torch_class = "torch.nn.Module"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:   # (dict state, slot state)
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        if not isinstance(state, dict):
            raise DataError(f"{self.torch_class} record has a {type(state).__name__} state, expected a dict")
        self.__dict__["_state"] = state

    def get_state(self):
        return self.__dict__.get("_state", {})

    @property
    def class_name(self):
        return self.torch_class.rsplit(".", 1)[-1]


_module_stub_classes = {}


def _module_stub_class(qualname):
    cls = _module_stub_classes.get(qualname)
    if cls is None:
        cls = type(qualname.rsplit(".", 1)[-1], (ModuleStub,), {"torch_class": qualname})
        _module_stub_classes[qualname] = cls
    return cls


class PersistentObject(ModuleLike):
    """Result of torch_utils.persistence._reconstruct_persistent_obj(meta). module_src is kept as text, never run."""

    def __init__(self, meta):
        if not isinstance(meta, dict):
            raise DataError(f"persistent object record with a {type(meta).__name__} instead of a meta dict")
        if meta.get("type", "class") != "class":
            raise DataError(f"persistent object of type {meta.get('type')!r} (only 'class' is supported)")
        self.class_name = meta.get("class_name")
        if not isinstance(self.class_name, str):
            raise DataError("persistent object record without a class_name")
        self.version = meta.get("version")
        self.module_src = meta.get("module_src")
        state = meta.get("state")
        if not isinstance(state, dict):
            raise DataError(f"persistent object {self.class_name} has a {type(state).__name__} state")
        self._state = state

    def get_state(self):
        return self._state


def _reconstruct_persistent_obj(meta):
    return PersistentObject(meta)


class EasyDict(dict):
    """Stand-in for dnnlib.EasyDict (a dict with attribute access); converted to a plain dict."""


def _safe_reconstructor(cls, base, state):
    """copyreg._reconstructor for protocol 0/1 pickles, limited to the stand-in classes."""
    if not isinstance(cls, type) or not issubclass(cls, (ModuleStub, EasyDict, OrderedDict, Size)):
        raise DataError(f"copyreg._reconstructor of {cls!r}")
    if base is object:
        return cls.__new__(cls)
    if base in (dict, OrderedDict, tuple) and issubclass(cls, base):
        obj = base.__new__(cls) if state is None else base.__new__(cls, state)
        if state is not None and base is not tuple:
            base.__init__(obj, state)
        return obj
    raise DataError(f"copyreg._reconstructor with base {base!r}")


def _codecs_encode(text, encoding="utf-8"):
    """Protocol-2 pickles store bytes as _codecs.encode(str, 'latin1')."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise DataError(f"_codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode(encoding)


def _np_reconstruct(subtype, shape, dtype):
    np = _np()
    if subtype is not np.ndarray:
        raise DataError(f"numpy array of subtype {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_scalar(dtype, data=None):
    np = _np()
    if not isinstance(dtype, np.dtype):
        raise DataError(f"numpy scalar with dtype {dtype!r}")
    if dtype.hasobject:
        return data
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise DataError("malformed numpy scalar")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


def _np_frombuffer(buf, dtype, shape, order):
    np = _np()
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise DataError("numpy buffer with an object dtype")
    arr = np.frombuffer(bytes(buf), dtype=dtype)
    return arr.reshape(shape, order=order) if order in ("C", "F") else arr.reshape(shape)


# ----------------------------------------------------------------------------------------------------------------
# The restricted unpickler

_MODULE_ALIASES = {
    "__builtin__": "builtins", "copy_reg": "copyreg",
    "torch.tensor": "torch._tensor", "numpy._core.multiarray": "numpy.core.multiarray",
    "numpy._core.numeric": "numpy.core.numeric", "dnnlib.util": "dnnlib",
}

_UNSUPPORTED_GLOBALS = {
    "torch._utils._rebuild_qtensor": "quantized tensors are not supported",
    "torch._utils._rebuild_sparse_tensor": "sparse tensors are not supported",
    "torch._utils._rebuild_sparse_csr_tensor": "sparse tensors are not supported",
    "torch._utils._rebuild_meta_tensor_no_storage": "meta tensors carry no data",
    "torch._utils._rebuild_wrapper_subclass": "tensor subclasses without storage are not supported",
    "torch._utils._rebuild_nested_tensor": "nested tensors are not supported",
    "torch.nn.parameter.UninitializedParameter": "uninitialized (lazy) parameters carry no data",
    "torch.nn.parameter.UninitializedBuffer": "uninitialized (lazy) buffers carry no data",
    "dnnlib.tflib.network.Network":
        "this is a TensorFlow StyleGAN2 pickle; convert it to a PyTorch pickle first (not supported here)",
}


def _base_globals():
    np = _np()
    g = {
        "collections.OrderedDict": OrderedDict,
        "builtins.set": set, "builtins.frozenset": frozenset, "builtins.bytearray": bytearray,
        "builtins.complex": complex, "builtins.object": object, "builtins.dict": dict, "builtins.tuple": tuple,
        "copyreg._reconstructor": _safe_reconstructor,
        "_codecs.encode": _codecs_encode,
        "numpy.core.multiarray._reconstruct": _np_reconstruct,
        "numpy.core.multiarray.scalar": _np_scalar,
        "numpy.core.numeric._frombuffer": _np_frombuffer,
        "numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype,
        "dnnlib.EasyDict": EasyDict,
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
        "torch._utils._rebuild_device_tensor_from_numpy": _rebuild_device_tensor_from_numpy,
        "torch._utils._rebuild_device_tensor_from_cpu_tensor": _rebuild_device_tensor_from_cpu_tensor,
        "torch._tensor._rebuild_from_type": _rebuild_from_type,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch.Size": Size, "torch.device": _torch_device,
        "torch.Tensor": _TensorType, "torch._tensor.Tensor": _TensorType,
        "torch.nn.parameter.Parameter": _ParameterType, "torch.nn.Parameter": _ParameterType,
    }
    for name, dt in _STORAGE_CLASSES.items():
        g[f"torch.{name}"] = StorageType(f"torch.{name}", dt)
        g[f"torch.storage.{name}"] = StorageType(f"torch.storage.{name}", dt)
        g[f"torch.cuda.{name}"] = StorageType(f"torch.cuda.{name}", dt)
    for alias, name in _TORCH_DTYPE_NAMES.items():
        g[f"torch.{alias}"] = TorchDType(name)
    return g


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, reader, persistent_load=None):
        super().__init__(file, encoding="latin1")
        self._reader = reader
        self._persistent = persistent_load

    def find_class(self, module, name):
        return self._reader.resolve_global(module, name)

    def persistent_load(self, pid):
        if self._persistent is None:
            raise DataError("persistent id record in a plain pickle")
        return self._persistent(pid)


def _decode(x):
    return x.decode("ascii") if isinstance(x, bytes) else x


class TorchReader:
    """Reads plain pickles and torch.save() files into Python objects whose tensors are TensorLike stand-ins."""

    def __init__(self, path, allow_persistent=False):
        self.path = path
        self.globals = _base_globals()
        if allow_persistent:
            self.globals["torch_utils.persistence._reconstruct_persistent_obj"] = _reconstruct_persistent_obj
        self.allow_persistent = allow_persistent

    # -- globals --------------------------------------------------------------------------------------------------
    def resolve_global(self, module, name):
        module = _MODULE_ALIASES.get(module, module)
        qual = f"{module}.{name}"
        if qual in self.globals:
            return self.globals[qual]
        if qual == "torch.storage._load_from_bytes":
            return self.load_storage_blob
        if qual in _UNSUPPORTED_GLOBALS:
            raise DataError(f'refused global "{qual}": {_UNSUPPORTED_GLOBALS[qual]}')
        if qual == "torch_utils.persistence._reconstruct_persistent_obj":
            raise DataError(f'refused global "{qual}": this is a StyleGAN2 network pickle, '
                            "use tools/convert_stylegan2_pkl.py")
        if (module == "torch.nn" or module.startswith("torch.nn.modules.")) and name.isidentifier() \
                and name[:1].isupper():
            return _module_stub_class(qual)
        raise DataError(f'unknown global "{qual}" (refused: the converter never imports or runs code from '
                        "the file)")

    # -- pickles ---------------------------------------------------------------------------------------------------
    def unpickle(self, fileobj, what, persistent_load=None):
        u = _RestrictedUnpickler(fileobj, self, persistent_load)
        try:
            return u.load()
        except DataError:
            raise
        except EOFError:
            raise DataError(f"truncated {what} (unexpected end of data)")
        except pickle.UnpicklingError as e:
            msg = str(e)
            if "truncated" in msg:
                raise DataError(f"truncated {what} ({msg})")
            raise DataError(f"corrupt {what} ({msg})")
        except RecursionError:
            raise DataError(f"corrupt {what} (nesting too deep)")
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, UnicodeDecodeError,
                struct.error, MemoryError) as e:
            raise DataError(f"corrupt {what} ({type(e).__name__}: {e})")

    @staticmethod
    def check_pickle_header(head, what="file"):
        if not head:
            raise DataError(f"empty {what}")
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            return "zip"
        if len(head) >= 262 and head[257:262] == b"ustar":
            return "tar"
        if len(head) < 2 or head[0] != 0x80 or not 2 <= head[1] <= 5:
            raise DataError(f"not a pickle file (starts with {bytes(head[:8])!r}; expected a protocol 2-5 pickle "
                            "or a torch.save() zip archive)")
        return "pickle"

    def load_plain_pickle(self, fileobj):
        return self.unpickle(fileobj, "pickle")

    # -- torch.save() streams ---------------------------------------------------------------------------------------
    def load_torch_bytes(self, data, what):
        """A complete torch.save() output held in memory (zip or legacy)."""
        kind = self.check_pickle_header(data[:512], what)
        if kind == "zip":
            return self.load_zip(io.BytesIO(data), what)
        if kind == "tar":
            raise DataError(f"{what} is in the tar format of torch < 0.4 (not supported)")
        obj, fmt = self.load_legacy(io.BytesIO(data), what)
        if fmt != "legacy":
            raise DataError(f"{what} is not a torch.save() stream (no magic number)")
        return obj

    def load_storage_blob(self, blob):
        """torch.storage._load_from_bytes(b): b is torch.save(storage) (legacy format in practice, zip also read)."""
        if not isinstance(blob, (bytes, bytearray)):
            raise DataError(f"storage record holds a {type(blob).__name__}, not bytes")
        obj = self.load_torch_bytes(bytes(blob), "embedded storage")
        if not isinstance(obj, Storage):
            raise DataError(f"embedded storage record decodes to a {type(obj).__name__}, not a storage")
        return obj

    def load_legacy(self, f, what):
        """Legacy torch.save(): pickles magic, protocol version, sys_info, the object (storages as persistent ids),
        the list of storage keys; then per key an int64 element count and the raw little-endian bytes.
        Returns (obj, 'legacy'), or (obj, 'plain pickle') when the first pickle is not the magic number."""
        first = self.unpickle(f, what)
        if not (isinstance(first, int) and not isinstance(first, bool) and first == MAGIC_NUMBER):
            return first, "plain pickle"
        if what == "pickle":
            what = "torch.save() file"
        version = self.unpickle(f, what)
        if version != LEGACY_PROTOCOL_VERSION:
            raise DataError(f"{what}: unsupported torch.save() protocol version {version!r}")
        sys_info = self.unpickle(f, what)
        if not isinstance(sys_info, dict):
            raise DataError(f"{what}: malformed torch.save() header")
        storages = {}

        def persistent_load(pid):
            if not isinstance(pid, tuple) or not pid:
                raise DataError(f"{what}: malformed persistent id {pid!r}")
            typename = _decode(pid[0])
            if typename == "module":   # ('module', class, source_file, source): a pickled nn.Module class
                return pid[1]
            if typename != "storage" or len(pid) != 6:
                raise DataError(f"{what}: unknown persistent id {typename!r}")
            storage_type, root_key, location, numel, view_metadata = pid[1:]
            if not isinstance(storage_type, StorageType):
                raise DataError(f"{what}: storage of type {storage_type!r}")
            root_key = _decode(root_key)
            if root_key not in storages:
                storages[root_key] = Storage(storage_type.dtype, key=root_key)
            root = storages[root_key]
            if view_metadata is None:
                return root
            view_key, offset, view_size = view_metadata
            view_key = _decode(view_key)
            if view_key not in storages:
                size = _itemsize(root.dtype)
                view = Storage(root.dtype, key=view_key)
                view._view = (root, int(offset) * size, (int(offset) + int(view_size)) * size)
                storages[view_key] = view
            return storages[view_key]

        obj = self.unpickle(f, what, persistent_load)
        keys = self.unpickle(f, what)
        if not isinstance(keys, list):
            raise DataError(f"{what}: malformed storage key list")
        for key in keys:
            key = _decode(key)
            st = storages.get(key)
            if st is None:
                raise DataError(f"{what}: storage {key} listed but never referenced")
            head = f.read(8)
            if len(head) != 8:
                raise DataError(f"truncated {what} (storage {key} missing)")
            numel = struct.unpack("<q", head)[0]
            nbytes = numel * _itemsize(st.dtype)
            if numel < 0:
                raise DataError(f"{what}: storage {key} has a negative size")
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise DataError(f"truncated {what} (storage {key}: {len(raw)} of {nbytes} bytes)")
            st.set_raw(raw)
        return obj, "legacy"

    def load_zip(self, f, what):
        """torch.save() zip archive: <dir>/data.pkl (storages as persistent ids ('storage', type, key, location,
        numel)) and <dir>/data/<key> raw bytes; <dir>/byteorder ('little'/'big') in newer versions."""
        try:
            zf = zipfile.ZipFile(f)
            names = zf.namelist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise DataError(f"truncated or corrupt zip archive ({e})")
        pkls = sorted((n for n in names if n.rsplit("/", 1)[-1] == "data.pkl" and n.count("/") <= 1), key=len)
        if not pkls:
            if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
                raise DataError(f"{what} is a TorchScript archive (torch.jit.save), not a torch.save() file")
            raise DataError(f"{what} is a zip archive without data.pkl (not a torch.save() file)")
        prefix = pkls[0][:-len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = self._zip_read(zf, prefix + "byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise DataError(f"{what}: unknown byteorder {byteorder!r}")
        storages = {}

        def persistent_load(pid):
            if not isinstance(pid, tuple) or len(pid) != 5 or _decode(pid[0]) != "storage":
                raise DataError(f"{what}: unknown persistent id {pid!r}")
            storage_type, key, location, numel = pid[1:]
            if not isinstance(storage_type, StorageType):
                raise DataError(f"{what}: storage of type {storage_type!r}")
            key = _decode(key)
            if key not in storages:
                st = Storage(storage_type.dtype, key=key, byteorder=byteorder)
                raw = self._zip_read(zf, f"{prefix}data/{key}")
                need = int(numel) * _itemsize(st.dtype)
                if len(raw) < need:
                    raise DataError(f"truncated {what} (storage {key}: {len(raw)} of {need} bytes)")
                st.set_raw(raw)
                storages[key] = st
            return storages[key]

        data = self._zip_read(zf, pkls[0])
        if data[:1] != b"\x80":
            raise DataError(f"{what}: {pkls[0]} is not a pickle")
        return self.unpickle(io.BytesIO(data), what, persistent_load)

    @staticmethod
    def _zip_read(zf, name):
        try:
            return zf.read(name)
        except KeyError:
            raise DataError(f"zip archive lacks record {name}")
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zipfile.LargeZipFile) as e:
            raise DataError(f"truncated or corrupt zip archive ({name}: {e})")

    def load_file(self):
        """Load self.path as a torch.save() file or a plain pickle. Returns (obj, format description)."""
        with open(self.path, "rb") as f:
            head = f.read(512)
            kind = self.check_pickle_header(head)
            f.seek(0)
            if kind == "zip":
                return self.load_zip(f, "torch.save() zip archive"), "torch.save zip format"
            if kind == "tar":
                raise DataError("torch.save() tar format of torch < 0.4 is not supported")
            obj, fmt = self.load_legacy(f, "pickle")
            return obj, ("torch.save legacy format" if fmt == "legacy" else fmt)


# ----------------------------------------------------------------------------------------------------------------
# state_dict of a module record

def module_state_dict(module, where):
    """Entries (key, TensorLike, 'parameter'|'buffer') in the order torch's Module.state_dict() produces: own
    _parameters, then own persistent _buffers (None skipped), then each child in _modules with prefix 'child.'."""
    entries = []
    active = set()

    def rec(m, prefix, path):
        if id(m) in active:
            raise DataError(f"{path}: module cycle")
        active.add(id(m))
        st = m.get_state()
        params, buffers, modules = st.get("_parameters"), st.get("_buffers"), st.get("_modules")
        if not all(isinstance(x, dict) for x in (params, buffers, modules)):
            raise DataError(f"{path} ({m.class_name}) is not a torch.nn.Module record (no _parameters/_buffers/"
                            "_modules)")
        non_persistent = st.get("_non_persistent_buffers_set") or set()
        for k, v in params.items():
            if v is None:
                continue
            if not isinstance(v, TensorLike):
                raise DataError(f"{path}: parameter {k!r} is a {type(v).__name__}, not a tensor")
            entries.append((prefix + str(k), v, "parameter"))
        for k, v in buffers.items():
            if v is None or k in non_persistent:
                continue
            if not isinstance(v, TensorLike):
                raise DataError(f"{path}: buffer {k!r} is a {type(v).__name__}, not a tensor")
            entries.append((prefix + str(k), v, "buffer"))
        for k, c in modules.items():
            if c is None:
                continue
            if not isinstance(c, ModuleLike):
                raise DataError(f"{path}: submodule {k!r} is a {type(c).__name__}, not a module")
            rec(c, f"{prefix}{k}.", f"{path}.{k}")
        active.discard(id(m))

    rec(module, "", where)
    return entries


def materialise(entries, where):
    """[(key, numpy array)] from [(key, TensorLike, ...)], naming the key in errors."""
    out = []
    for e in entries:
        key, t = e[0], e[1]
        weightfile.check_key(key, where)
        try:
            arr = t.numpy()
        except DataError as err:
            raise DataError(f"{where}: {key}: {err}")
        weightfile.check_storable(arr, f"{where}: {key}")   # before anything is written
        out.append((key, arr))
    return out


# ----------------------------------------------------------------------------------------------------------------
# The state-dict tool

def _is_state_dict(obj):
    return isinstance(obj, dict) and len(obj) > 0 and all(isinstance(v, TensorLike) for v in obj.values())


def select_state_dict(obj, key=None):
    """Returns (entries, where it came from, class name or None)."""
    if key is not None:
        if not isinstance(obj, dict):
            raise DataError(f"--key {key}: the file holds a {type(obj).__name__}, not a dictionary")
        if key not in obj:
            raise DataError(f"--key {key}: no such entry (top-level keys: {_key_list(obj)})")
        chosen, used = obj[key], f"key '{key}'"
    elif _is_state_dict(obj):
        chosen, used = obj, "top level"
    elif isinstance(obj, ModuleLike):
        chosen, used = obj, "top level"
    else:
        chosen = used = None
        if isinstance(obj, dict):
            for k in ("state_dict", "model"):
                if k in obj and (_is_state_dict(obj[k]) or isinstance(obj[k], ModuleLike)):
                    chosen, used = obj[k], f"key '{k}'"
                    break
        if chosen is None:
            if isinstance(obj, dict):
                raise DataError(f"no state dict found (top-level keys: {_key_list(obj)}; pick one with --key)")
            raise DataError(f"no state dict found (the file holds a {type(obj).__name__})")
    if isinstance(chosen, ModuleLike):
        return module_state_dict(chosen, used), used, chosen.class_name
    if not isinstance(chosen, dict):
        raise DataError(f"{used} holds a {type(chosen).__name__}, not a state dict")
    entries, skipped = [], []
    for k, v in chosen.items():
        if isinstance(v, TensorLike):
            entries.append((k, v, "tensor"))
        else:
            skipped.append(k)
    if not entries:
        raise DataError(f"{used} holds no tensors (keys: {_key_list(chosen)})")
    if skipped:
        print(f"warning: skipped {len(skipped)} non-tensor entries: {_key_list(skipped)}", file=sys.stderr)
    return entries, used, None


def _key_list(keys, limit=12):
    keys = [repr(k) for k in keys]
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "") or "(none)"


def convert(in_path, out_path, name="net", prefix_strip=None, init_kwargs=None, class_name=None, key=None,
            out=sys.stdout):
    if not os.path.isfile(in_path):
        raise DataError("no such file")  # a missing input is a data error (exit 3), as in every facetex command
    if os.path.abspath(in_path) == os.path.abspath(out_path):
        raise UsageError("input and output are the same file")
    kwargs_json = "{}"
    if init_kwargs is not None:
        try:
            parsed = json.loads(init_kwargs)
        except json.JSONDecodeError as e:
            raise UsageError(f"--init-kwargs is not valid JSON ({e})")
        if not isinstance(parsed, dict):
            raise UsageError("--init-kwargs must be a JSON object")
        kwargs_json = json.dumps(parsed)
    reader = TorchReader(in_path)
    obj, fmt = reader.load_file()
    entries, used, found_class = select_state_dict(obj, key)
    if prefix_strip:
        stripped = 0
        new = []
        for e in entries:
            k = e[0]
            if isinstance(k, str) and k.startswith(prefix_strip):
                k = k[len(prefix_strip):]
                stripped += 1
            new.append((k,) + tuple(e[1:]))
        entries = new
        if stripped == 0:
            print(f"warning: no key starts with {prefix_strip!r}", file=sys.stderr)
    arrays = materialise(entries, name)
    net = weightfile.Network(name, class_name if class_name is not None else (found_class or ""), kwargs_json,
                             arrays)
    weightfile.write_weightfile(out_path, [net], created_by="tools/convert_torch_state_dict.py",
                                source=os.path.basename(in_path))
    values = weightfile.count_values([a for _, a in arrays])
    print(f"{name}: class {net.class_name or '-'}, {len(arrays)} tensors, {values:,} parameters "
          f"(state dict from {used}, {fmt}) -> {out_path}", file=out)


def main(argv=None):
    p = weightfile.make_parser("convert_torch_state_dict.py", __doc__.split("\n\n")[0])
    p.add_argument("input", metavar="IN.pth")
    p.add_argument("output", metavar="OUT.h5")
    p.add_argument("--name", default="net", help="group name in the weight file (default: net)")
    p.add_argument("--prefix-strip", metavar="PREFIX", help="remove this prefix from keys (e.g. 'module.')")
    p.add_argument("--init-kwargs", metavar="JSON", help="constructor keyword arguments to record (JSON object)")
    p.add_argument("--class-name", metavar="X", help="class_name attribute (default: empty)")
    p.add_argument("--key", metavar="KEY", help="take the state dict from this top-level entry")
    args = p.parse_args(argv)
    return weightfile.run_cli(
        "convert_torch_state_dict.py",
        lambda: convert(args.input, args.output, args.name, args.prefix_strip, args.init_kwargs, args.class_name,
                        args.key),
        args.input)


if __name__ == "__main__":
    sys.exit(main())
