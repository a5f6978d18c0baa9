#!/usr/bin/env python3
"""Writes a StyleGAN2-ADA network-snapshot pickle whose G and D hold the parameters of the parity file's
`loss_terms` group, in the reference's pickle structure: persistent-object reduce records
(torch_utils.persistence._reconstruct_persistent_obj) wrapping real torch.nn.Module state with nested submodules,
parameters and buffers. tests/models/test_stylegan2_convert.cpp converts it with `facetex convert stylegan2-pkl`
and checks that facetex's networks then reproduce the parity outputs: pickle -> weight file -> same numbers.

Needs Debian's python3-torch and python3-h5py (test-only; the converter itself never imports torch).
  snapshot_from_parity.py PARITY.h5 OUT.pkl
"""
import json
import pickle
import sys
import types

import h5py
import numpy
import torch

BUFFERS = ("w_avg", "resample_filter", "noise_const")


def install_fake_persistence():
    """Importable stand-ins for the names a reference pickle refers to (never called: nothing is unpickled here)."""
    tu, pers = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        raise RuntimeError("not used")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    pers._reconstruct_persistent_obj = _reconstruct_persistent_obj
    tu.persistence = pers
    sys.modules.update({"torch_utils": tu, "torch_utils.persistence": pers})
    return _reconstruct_persistent_obj


RECONSTRUCT = install_fake_persistence()


class Persistent(torch.nn.Module):
    """A module pickled like torch_utils.persistence does: a meta record holding the module's __dict__."""

    def __init__(self, class_name, init_kwargs):
        super().__init__()
        self._orig_class_name = class_name
        self._init_args = ()
        self._init_kwargs = init_kwargs

    def __reduce__(self):
        state = dict(self.__dict__)
        del state["_orig_class_name"]
        meta = dict(type="class", version=6, module_src="raise SystemExit('never executed')\n",
                    class_name=self._orig_class_name, state=state)
        return RECONSTRUCT, (meta,)


def build(class_name, init_kwargs, params_group):
    root = Persistent(class_name, init_kwargs)
    for name, ds in params_group.items():
        *path, leaf = name.split(".")
        module = root
        for part in path:
            if part not in module._modules:
                module.add_module(part, torch.nn.Module())
            module = module._modules[part]
        tensor = torch.from_numpy(numpy.asarray(ds[()])).clone()  # 0-d datasets come back as numpy scalars
        if leaf in BUFFERS:
            module.register_buffer(leaf, tensor)
        else:
            module.register_parameter(leaf, torch.nn.Parameter(tensor))
    return root


def main():
    parity, out = sys.argv[1], sys.argv[2]
    with h5py.File(parity, "r") as f:
        g = f["loss_terms"]
        kwargs = json.loads(g.attrs["init_kwargs"])
        snapshot = dict(G=build("Generator", kwargs["G"], g["params/G"]),
                        D=build("Discriminator", kwargs["D"], g["params/D"]),
                        training_set_kwargs=dict(resolution=kwargs["G"]["img_resolution"]))
    with open(out, "wb") as fh:
        pickle.dump(snapshot, fh, protocol=4)


if __name__ == "__main__":
    main()
