#!/usr/bin/env bash
# Configures and builds facetex (Release, Ninja) into build/ (or $FACETEX_BUILD_DIR). Extra arguments go to cmake's
# configure step, e.g. scripts/build.sh -DFACETEX_CUDA=OFF. CUDA kernels are compiled when nvcc is found
# (PATH or /usr/local/cuda/bin); with a CUDA LibTorch, pass -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)').
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FACETEX_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >"${TMPDIR:-/tmp}/facetex-configure.log" 2>&1 ||
  { cat "${TMPDIR:-/tmp}/facetex-configure.log"; exit 1; }
grep -E "^-- facetex:" "${TMPDIR:-/tmp}/facetex-configure.log" || true
cmake --build "$BUILD" -j"$(getconf _NPROCESSORS_ONLN)"
