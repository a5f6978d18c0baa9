#!/usr/bin/env bash
# Prepares the GPU check: the GPU machine has a CUDA LibTorch and nvcc but none of our Debian -dev packages and no
# network, so header-only copies of fmt, spdlog and nlohmann-json and the GoogleTest sources are taken from this
# (Debian) machine into build-gpu/ (git-ignored), which the device run carries along.
#   scripts/gpu_check/prepare.sh  &&  <device run, carry build-gpu>: bash scripts/gpu_check/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
D=build-gpu
rm -rf "$D/third_party" "$D/googletest" && mkdir -p "$D/third_party/include"  # keeps prefix.tar.xz (build_deps.sh)
cp -r /usr/include/fmt /usr/include/spdlog /usr/include/nlohmann "$D/third_party/include/"
cp -r /usr/src/googletest/googletest "$D/googletest"
cp scripts/gpu_check/CMakeLists.txt "$D/CMakeLists.txt"
du -sh "$D"
