#!/usr/bin/env python3
"""facetex HDF5 weight files: the shared writer used by the converters, and an inspection mode.

Layout (docs: DESIGN.md §7; the C++ loader reads exactly this):
  root attributes   format = "facetex-weights" (variable-length UTF-8 string), version = 1 (int64),
                    created_by = the tool that wrote the file, source = basename of the input file
  /<network>        one group per network (G, D, G_ema, augment_pipe, or the --name of a state dict), with
                    attributes class_name (string) and init_kwargs (JSON object as a string); a network that was
                    constructed with positional arguments also gets init_args (JSON list; never the case for the
                    top-level StyleGAN2 networks, which training_loop builds from keyword arguments)
  /<network>/<key>  one dataset per state_dict entry, named by the full dotted key ("synthesis.b8.conv0.weight";
                    the dots are part of the link name, there is no nesting), in state_dict order. Floating-point
                    tensors are stored as float32, integer and bool tensors as int64, 0-d tensors as scalar
                    datasets (shape ()).
Each network group tracks and indexes link creation order, so iterating it with H5_INDEX_CRT_ORDER yields
state_dict order (plain H5_INDEX_NAME iteration is alphabetical). Look networks up by name: the root group does
not track creation order (HDF5 1.10 ignores it there).

Inspection:
  tools/weightfile.py --list FILE.h5 [-v]     groups, class names, tensor and value counts (-v: every dataset)

Exit codes shared by the tools: 0 success, 2 usage error, 3 data error (one line on stderr naming the file).
Needs only python3 + numpy + h5py.
"""

import argparse
import importlib
import json
import math
import os
import sys

FORMAT_NAME = "facetex-weights"
FORMAT_VERSION = 1

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DATA = 3


class UsageError(Exception):
    """Bad command line or unusable paths (exit 2)."""


class DataError(Exception):
    """The input file is not what it should be (exit 3)."""


def _import_numpy_h5py():
    try:
        for name in ("numpy", "h5py"):
            importlib.import_module(name)
    except ImportError as e:  # pragma: no cover - environment problem
        raise UsageError(f"missing Python package ({e}); install python3-numpy python3-h5py (scripts/setup.sh)")


# ----------------------------------------------------------------------------------------------------------------
# Values

def check_storable(arr, what):
    """Raise DataError unless the array's element type can be stored (float, integer or bool)."""
    kind = arr.dtype.kind
    if kind == "c":
        raise DataError(f"{what}: complex tensors are not supported by the weight file format")
    if kind not in "fiub":
        raise DataError(f"{what}: unsupported element type {arr.dtype}")


def storable_array(arr, what):
    """Convert a numpy array to the stored dtype: float -> float32, integer/bool -> int64 (native byte order)."""
    import numpy as np
    arr = np.asarray(arr)
    check_storable(arr, what)
    out = arr.astype(np.float32 if arr.dtype.kind == "f" else np.int64, copy=False)
    if not out.flags.c_contiguous:   # (np.ascontiguousarray would turn 0-d arrays into 1-d ones)
        out = out.copy(order="C")
    return out


def to_json_value(obj, where="init_kwargs"):
    """Make a pickled constructor-argument structure JSON-compatible: tuples/sets -> lists, numpy scalars -> Python
    numbers, dict subclasses (EasyDict) -> dict. Non-finite floats become null (JSON has no inf/nan) with a warning.
    Anything else (tensors, objects) is a DataError naming the path."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            print(f"warning: {where} = {obj!r} is not representable in JSON; stored as null", file=sys.stderr)
            return None
        return float(obj)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise DataError(f"{where}: dictionary key {k!r} is not a string")
            out[str(k)] = to_json_value(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_json_value(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        return [to_json_value(v, f"{where}[{i}]") for i, v in enumerate(sorted(obj, key=repr))]
    try:
        import numpy as np
        if isinstance(obj, np.generic):
            return to_json_value(obj.item(), where)
        if isinstance(obj, np.ndarray):
            return to_json_value(obj.tolist(), where)
    except ImportError:  # pragma: no cover
        pass
    raise DataError(f"{where}: value of type {type(obj).__name__} cannot be stored as JSON")


def init_kwargs_json(obj, where="init_kwargs"):
    value = to_json_value(obj if obj is not None else {}, where)
    if not isinstance(value, dict):
        raise DataError(f"{where} is a {type(value).__name__}, expected a dictionary")
    return json.dumps(value, sort_keys=False, allow_nan=False)


class Network:
    """One group of the weight file."""

    def __init__(self, name, class_name, init_kwargs, tensors, extra_attrs=None):
        self.name = name                      # group name
        self.class_name = class_name or ""    # e.g. "Generator"
        self.init_kwargs = init_kwargs        # JSON string
        self.tensors = tensors                # list of (key, numpy array) in state_dict order
        self.extra_attrs = extra_attrs or {}  # further string attributes (only written when given)


def check_key(key, group):
    if not isinstance(key, str):
        raise DataError(f"{group}: state_dict key {key!r} is not a string")
    if not key or "/" in key or key in (".", "..") or key != key.strip() or "\0" in key:
        raise DataError(f"{group}: state_dict key {key!r} cannot be an HDF5 link name")


# ----------------------------------------------------------------------------------------------------------------
# Writing

def _fsync_path(path, directory=False):
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_weightfile(out_path, networks, created_by, source):
    """Write networks (list of Network) to out_path atomically: OUT.partial-<pid>, fsync, rename."""
    _import_numpy_h5py()
    import numpy as np
    import h5py

    names = [n.name for n in networks]
    if not networks:
        raise DataError("nothing to write (no networks)")
    if len(set(names)) != len(names):
        raise DataError(f"duplicate network names {names}")
    for n in networks:
        if not n.name or "/" in n.name or n.name in (".", ".."):
            raise UsageError(f"network name {n.name!r} cannot be an HDF5 group name")
        seen = set()
        for key, _ in n.tensors:
            check_key(key, n.name)
            if key in seen:
                raise DataError(f"{n.name}: duplicate state_dict key {key!r}")
            seen.add(key)

    out_dir = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(out_dir):
        raise UsageError(f"{out_path}: output directory {out_dir} does not exist")
    tmp = f"{out_path}.partial-{os.getpid()}"
    str_t = h5py.string_dtype("utf-8")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.create("format", FORMAT_NAME, dtype=str_t)
            f.attrs.create("version", np.int64(FORMAT_VERSION))
            f.attrs.create("created_by", created_by, dtype=str_t)
            f.attrs.create("source", source, dtype=str_t)
            for n in networks:
                g = f.create_group(n.name, track_order=True)
                g.attrs.create("class_name", n.class_name, dtype=str_t)
                g.attrs.create("init_kwargs", n.init_kwargs, dtype=str_t)
                for k, v in n.extra_attrs.items():
                    g.attrs.create(k, v, dtype=str_t)
                for key, arr in n.tensors:
                    arr = storable_array(arr, f"{n.name}/{key}")
                    g.create_dataset(key, data=arr)
        _fsync_path(tmp)
        os.replace(tmp, out_path)
        _fsync_path(out_dir, directory=True)
    except OSError as e:
        raise UsageError(f"{out_path}: cannot write ({e.strerror or e})")
    finally:
        if os.path.exists(tmp):
            try:
                os.remove(tmp)
            except OSError:
                pass


def count_values(arrays):
    total = 0
    for a in arrays:
        n = 1
        for s in a.shape:
            n *= int(s)
        total += n
    return total


# ----------------------------------------------------------------------------------------------------------------
# Inspection

def _attr_str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v if isinstance(v, str) else repr(v.item() if hasattr(v, "item") else v)


def list_weightfile(path, verbose=False, out=sys.stdout):
    _import_numpy_h5py()
    import h5py
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"not an HDF5 file ({e})")
    with f:
        fmt = _attr_str(f.attrs.get("format", "(missing)"))
        ver = _attr_str(f.attrs.get("version", "(missing)"))
        print(f"{path}: format={fmt} version={ver} created_by={_attr_str(f.attrs.get('created_by', ''))} "
              f"source={_attr_str(f.attrs.get('source', ''))}", file=out)
        if fmt != FORMAT_NAME:
            raise DataError(f"format attribute is {fmt!r}, expected {FORMAT_NAME!r}")
        total = 0
        for name, g in f.items():
            if not isinstance(g, h5py.Group):
                print(f"  {name}: (not a group)", file=out)
                continue
            dsets = [(k, d) for k, d in g.items() if isinstance(d, h5py.Dataset)]
            values = count_values([d for _, d in dsets])
            total += values
            kw = _attr_str(g.attrs.get("init_kwargs", ""))
            print(f"  {name}: class={_attr_str(g.attrs.get('class_name', ''))} tensors={len(dsets)} "
                  f"values={values:,}", file=out)
            print(f"    init_kwargs={kw if verbose or len(kw) <= 200 else kw[:197] + '...'}", file=out)
            if verbose:
                for k, d in dsets:
                    print(f"    {k} {tuple(d.shape)} {d.dtype}", file=out)
        print(f"  total values: {total:,}", file=out)


# ----------------------------------------------------------------------------------------------------------------
# CLI helpers shared by the tools

class _ArgParser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def make_parser(prog, description):
    return _ArgParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)


def run_cli(prog, func, path_for_errors=None):
    """Run func() and translate exceptions to the shared exit codes with a one-line message."""
    try:
        func()
        return EXIT_OK
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except DataError as e:
        where = f"{path_for_errors}: " if path_for_errors else ""
        print(f"{prog}: error: {where}{e}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # e.g. `--list ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK


def main(argv=None):
    p = make_parser("weightfile.py", __doc__.split("\n\n")[0])
    p.add_argument("--list", metavar="FILE", required=True, help="print the groups and tensors of a weight file")
    p.add_argument("-v", "--verbose", action="store_true", help="list every dataset")
    args = p.parse_args(argv)
    return run_cli("weightfile.py", lambda: list_weightfile(args.list, args.verbose), args.list)


if __name__ == "__main__":
    sys.exit(main())
