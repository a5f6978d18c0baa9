#!/usr/bin/env bash
# All tests from a fresh Debian 12 machine: installs what is needed, fetches the real-photo assets, builds
# (compile-checking the CUDA kernels when nvcc exists), and runs every test with ctest. .ci/run calls this.
# Extra arguments go to ctest, e.g. scripts/test.sh -L data   or   scripts/test.sh -R Loader
set -euo pipefail
cd "$(dirname "$0")/.."
T0=$SECONDS
stamp() { echo "[test +$((SECONDS - T0))s] $*"; }
stamp setup;  scripts/setup.sh
stamp assets; scripts/fetch_assets.sh
stamp build;  scripts/build.sh
stamp ctest
# Missing assets fail the real-photo tests instead of skipping them; Open MPI may run as root in containers.
# One test at a time by default: the multi-rank tests start 2-3 processes each and time their failure bounds
# (FACETEX_TEST_JOBS=N to overlap). Not -j$(nproc): GNU nproc honours OMP_NUM_THREADS.
export FACETEX_REQUIRE_ASSETS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
ctest --test-dir "${FACETEX_BUILD_DIR:-build}" --output-on-failure -j"${FACETEX_TEST_JOBS:-1}" --timeout 600 "$@"
stamp done
