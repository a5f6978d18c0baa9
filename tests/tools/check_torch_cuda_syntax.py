#!/usr/bin/env python3
"""Compile-checks the GPU-only C++ (the code under `#if FACETEX_HAVE_TORCH_CUDA`: the kernels' torch adapters, the
NCCL communicator, device memory) on a machine with nvcc's headers but a CPU LibTorch, where the build never compiles
it. Each such source file is compiled with -fsyntax-only, the flags of a torch translation unit of this build,
-DFACETEX_HAVE_TORCH_CUDA=1, the CUDA headers, and LibTorch's c10/cuda headers (a CPU LibTorch ships them; only the
CMake-generated c10/cuda/impl/cuda_cmake_macros.h is missing, and a stand-in with its one macro is used).

    check_torch_cuda_syntax.py BUILD_DIR SOURCE_DIR CUDA_INCLUDE_DIR

Exit 0 when every file compiles, 1 (with the compiler's errors) otherwise. What it does not check: LibTorch 2.x API
differences (the GPU machine's build does) and linking.
"""
import json
import os
import shlex
import subprocess
import sys
import tempfile

GUARD = "FACETEX_HAVE_TORCH_CUDA"
REFERENCE_TU = "kernels/bias_act.cpp"  # a torch translation unit of every build: its flags are the template


def torch_flags(build_dir, source_dir):
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        entries = json.load(f)
    ref = os.path.join(source_dir, REFERENCE_TU)
    entry = next((e for e in entries if os.path.realpath(e["file"]) == os.path.realpath(ref)), None)
    if entry is None:
        sys.exit(f"check_torch_cuda_syntax: {REFERENCE_TU} is not in {build_dir}/compile_commands.json")
    args = shlex.split(entry["command"]) if "command" in entry else entry["arguments"]
    flags, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
        elif a in ("-o", "-c", "-MF", "-MT", "-MQ", "-include"):
            skip = True  # the flag and its value (-include: the precompiled header)
        elif "pch" in a or a.endswith(".cpp") or a in ("-MD", "-MMD", "-Winvalid-pch"):
            continue
        else:
            flags.append(a)
    return args[0], flags, entry["directory"]


def guarded_sources(source_dir):
    """The library's .cpp files that mention the guard (not tests, build folders, runs or assets)."""
    found = []
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = [d for d in dirs if not d.startswith((".", "build")) and d not in ("tests", "runs", "assets")]
        for name in files:
            if name.endswith(".cpp"):
                path = os.path.join(root, name)
                with open(path, errors="replace") as f:
                    if GUARD in f.read():
                        found.append(os.path.relpath(path, source_dir))
    return sorted(found)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    build_dir, source_dir, cuda_include = sys.argv[1:]
    if not os.path.isfile(os.path.join(cuda_include, "cuda_runtime_api.h")):
        print(f"SKIP: no CUDA headers in {cuda_include}")
        return 77
    compiler, flags, cwd = torch_flags(build_dir, source_dir)
    files = guarded_sources(source_dir)
    if not files:
        sys.exit("check_torch_cuda_syntax: no source file uses " + GUARD)
    failed = []
    with tempfile.TemporaryDirectory() as stand_in:
        os.makedirs(os.path.join(stand_in, "c10/cuda/impl"))
        with open(os.path.join(stand_in, "c10/cuda/impl/cuda_cmake_macros.h"), "w") as f:
            f.write("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        for rel in files:
            cmd = [compiler, *flags, "-fsyntax-only", f"-D{GUARD}=1", "-idirafter", stand_in, "-isystem", cuda_include,
                   os.path.join(source_dir, rel)]
            r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
            status = "ok" if r.returncode == 0 else "FAILED"
            print(f"{status:6s} {rel}", flush=True)
            if r.returncode != 0:
                failed.append(rel)
                print(r.stderr[-4000:])
    print(f"{len(files) - len(failed)} of {len(files)} GPU-only sources compile")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
