#!/usr/bin/env python3
"""Convert a StyleGAN2-ADA network pickle (network-snapshot-*.pkl, ffhq.pkl) into a facetex HDF5 weight file,
without PyTorch and without the reference code.

  tools/convert_stylegan2_pkl.py IN.pkl OUT.h5 [--networks G,D,G_ema]

A snapshot is pickle.dump(dict(G=..., D=..., G_ema=..., augment_pipe=..., training_set_kwargs=...)). Each network
is a torch_utils.persistence record: torch_utils.persistence._reconstruct_persistent_obj(meta) with
meta = dict(type='class', version, module_src, class_name, state), where state is the module's __dict__
(_parameters, _buffers, _modules, _non_persistent_buffers_set, _init_args, _init_kwargs, ...). The embedded
module_src is never executed; submodules are further persistent records or plain torch.nn records. Tensors are
torch._utils._rebuild_tensor_v2 records whose storages are complete torch.save() streams
(torch.storage._load_from_bytes); reading them is shared with tools/convert_torch_state_dict.py.

Every network in the pickle (G, D, G_ema, augment_pipe when it is a module, in pickle order) becomes a group named
by its key, with class_name, init_kwargs (JSON) and one dataset per state_dict entry (layout: tools/weightfile.py).
A pickle holding a single module becomes the group "net" (or the one name given with --networks).
--networks selects and orders groups; naming a network the pickle does not hold is an error.

Exit codes: 0 success, 2 usage error, 3 data error (one line naming the file). Needs python3 + numpy + h5py only.
"""

import json
import os
import sys

sys.dont_write_bytecode = True   # sibling imports must not leave tools/__pycache__ behind
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weightfile  # noqa: E402
from weightfile import DataError, UsageError  # noqa: E402
from convert_torch_state_dict import (MAGIC_NUMBER, ModuleLike, PersistentObject, TorchReader,  # noqa: E402
                                      materialise, module_state_dict)

CREATED_BY = "tools/convert_stylegan2_pkl.py"
PRIMARY = ("G", "D", "G_ema")   # conversion failures of these are errors; of other entries, warnings


def network_to_group(name, obj):
    """Network record -> (weightfile.Network, parameter values, buffer values)."""
    state = obj.get_state()
    if "_init_kwargs" in state:
        kwargs = state["_init_kwargs"]
    elif "init_kwargs" in state:
        kwargs = state["init_kwargs"]
    else:
        kwargs = {}
        if isinstance(obj, PersistentObject):
            print(f"warning: {name} ({obj.class_name}) records no init_kwargs; storing {{}}", file=sys.stderr)
    kwargs_json = weightfile.init_kwargs_json(kwargs, f"{name}.init_kwargs")
    extra = {}
    args = state.get("_init_args", state.get("init_args"))
    if args:
        extra["init_args"] = json.dumps(weightfile.to_json_value(list(args), f"{name}.init_args"))
        print(f"warning: {name} was constructed with positional arguments; stored as attribute init_args",
              file=sys.stderr)
    entries = module_state_dict(obj, name)
    arrays = materialise(entries, name)
    kinds = {e[0]: e[2] for e in entries}
    n_param = weightfile.count_values([a for k, a in arrays if kinds[k] == "parameter"])
    n_buf = weightfile.count_values([a for k, a in arrays if kinds[k] != "parameter"])
    return weightfile.Network(name, obj.class_name, kwargs_json, arrays, extra), n_param, n_buf


def find_networks(data, selected):
    """[(group name, module record)] from the unpickled top-level object."""
    if isinstance(data, ModuleLike):
        if selected and len(selected) != 1:
            raise DataError(f"the pickle holds a single {data.class_name}, but --networks names {len(selected)}")
        return [(selected[0] if selected else "net", data)]
    if not isinstance(data, dict):
        raise DataError(f"no networks found (the pickle holds a {type(data).__name__})")
    present = [(k, v) for k, v in data.items() if isinstance(k, str) and isinstance(v, ModuleLike)]
    if selected:
        have = dict(present)
        missing = [n for n in selected if n not in have]
        if missing:
            raise DataError(f"network(s) {', '.join(missing)} not in the pickle (it holds: "
                            f"{', '.join(have) or 'none'})")
        return [(n, have[n]) for n in selected]
    if not present:
        keys = ", ".join(repr(k) for k in list(data)[:12]) or "(none)"
        raise DataError(f"no networks found (top-level keys: {keys})")
    return present


def convert(in_path, out_path, networks=None, out=sys.stdout):
    if not os.path.isfile(in_path):
        raise DataError("no such file")  # a missing input is a data error (exit 3), as in every facetex command
    if os.path.abspath(in_path) == os.path.abspath(out_path):
        raise UsageError("input and output are the same file")
    selected = None
    if networks is not None:
        selected = [n.strip() for n in networks.split(",") if n.strip()]
        if not selected or len(set(selected)) != len(selected):
            raise UsageError(f"--networks {networks!r}: give distinct comma-separated names")

    reader = TorchReader(in_path, allow_persistent=True)
    with open(in_path, "rb") as f:
        kind = reader.check_pickle_header(f.read(512))
        if kind in ("zip", "tar"):
            raise DataError("this is a torch.save() archive, not a network pickle; use "
                            "tools/convert_torch_state_dict.py")
        f.seek(0)
        data = reader.load_plain_pickle(f)
    if isinstance(data, int) and not isinstance(data, bool) and data == MAGIC_NUMBER:
        raise DataError("this is a torch.save() file, not a network pickle; use tools/convert_torch_state_dict.py")

    groups, lines = [], []
    for name, obj in find_networks(data, selected):
        try:
            net, n_param, n_buf = network_to_group(name, obj)
        except DataError as e:
            if selected or name in PRIMARY or isinstance(data, ModuleLike):
                raise
            print(f"warning: skipping {name} ({obj.class_name}): {e}", file=sys.stderr)
            continue
        groups.append(net)
        lines.append(f"{name}: class {net.class_name}, {len(net.tensors)} tensors, {n_param:,} parameters, "
                     f"{n_buf:,} buffer values")
    weightfile.write_weightfile(out_path, groups, created_by=CREATED_BY, source=os.path.basename(in_path))
    for line in lines:
        print(line, file=out)
    print(f"wrote {out_path}", file=out)


def main(argv=None):
    p = weightfile.make_parser("convert_stylegan2_pkl.py", __doc__.split("\n\n")[0])
    p.add_argument("input", metavar="IN.pkl")
    p.add_argument("output", metavar="OUT.h5")
    p.add_argument("--networks", metavar="LIST", help="comma-separated networks to convert (default: all)")
    args = p.parse_args(argv)
    return weightfile.run_cli("convert_stylegan2_pkl.py",
                              lambda: convert(args.input, args.output, args.networks), args.input)


if __name__ == "__main__":
    sys.exit(main())
