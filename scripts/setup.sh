#!/usr/bin/env bash
# Installs every Debian package facetex needs to build, test and run on Debian 12 (idempotent).
# Why each dependency is there: docs/dependencies.md.
#   scripts/setup.sh            install build + runtime + test packages
#   scripts/setup.sh --print    print the package list and exit
set -euo pipefail

PKGS=(
  # toolchain
  g++ cmake ninja-build pkg-config git curl ca-certificates python3 python3-numpy python3-h5py
  # core libraries
  libtorch-dev                    # tensors, autograd, CPU kernels (Debian: 1.13, CPU only)
  libblas3 liblapack3             # reference BLAS: keeps OpenBLAS out (breaks the prometheus-cpp exporter next to torch)
  libhdf5-dev                     # every binary artefact: shards, weights, checkpoints
  libopenmpi-dev openmpi-bin      # bootstrap + CPU collectives
  prometheus-cpp-dev              # metrics exporter / pushgateway client
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libopencv-imgcodecs-dev libopencv-imgproc-dev   # PNG/JPEG codecs, resizing
  libzip-dev                      # reading image collections from .zip (FFHQ is distributed as zips)
  zlib1g-dev                      # crc32 (fallback)
  libdeflate-dev                  # PCLMUL CRC-32 and fast inflate for shards
  libmatio-dev                    # Deep3DFaceRecon/BFM .mat files
  libdlib-dev libdlib-data        # HOG face detector + 68-point predictor; libdlib19.1 ships the example photos
  # tests and benchmarks
  libgtest-dev libgmock-dev
  python3-torch                   # tests/tools/test_convert.py builds real torch pickles (the converters never import torch)
  # local cluster services for integration tests
  slurm-wlm munge prometheus prometheus-pushgateway
)

if [[ "${1:-}" == "--print" ]]; then printf '%s\n' "${PKGS[@]}"; exit 0; fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
log=$(mktemp "${TMPDIR:-/tmp}/facetex-apt.XXXXXX")
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -40 "$log"
  echo "setup: apt-get failed (full log: $log)" >&2
  exit 1
fi
rm -f "$log"
echo "setup: done"
