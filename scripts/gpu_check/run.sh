#!/usr/bin/env bash
# The GPU check, run on the GPU machine from the repository root after scripts/gpu_check/prepare.sh: builds the
# HDF5-free part of facetex against the machine's CUDA LibTorch, runs the CUDA tests (kernels vs the ATen reference,
# G/D CUDA vs reference vs CPU, including double backward) and the G+D benchmark. Results under $OUT.
# FACETEX_GPU_CHECK=render builds and runs only the rasteriser/renderer part (tests + bench, about a minute);
# FACETEX_GPU_CHECK=cluster only the communicators (NCCL one-rank test, MPI tests with 1 process).
set -o pipefail
export PATH=/usr/local/cuda/bin:$PATH
export NVIDIA_TF32_OVERRIDE=0  # the reference numerics: full FP32 in cuDNN/cuBLAS
OUT=${OUT:-/tmp/facetex-gpu-check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
TP=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)') || exit 1
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'
start=$(date +%s)
cmake -S build-gpu -B /tmp/fg -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TP" \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" >"$OUT/cmake.log" 2>&1 ||
  { tail -30 "$OUT/cmake.log"; exit 1; }
CHECK=${FACETEX_GPU_CHECK:-all}
TARGETS="test_render_gpu bench_render"
[ "$CHECK" = render ] || TARGETS="test_gpu bench_stylegan2 $TARGETS"
[ "$CHECK" = cluster ] && TARGETS="test_cluster_gpu"
[ "$CHECK" = all ] && TARGETS="$TARGETS test_cluster_gpu"
ninja -C /tmp/fg -k 0 $TARGETS >"$OUT/build.log" 2>&1 || { grep -E "error" -A3 "$OUT/build.log" | head -40; exit 1; }
echo "built in $(($(date +%s) - start)) s"
if [ "$CHECK" = all ] || [ "$CHECK" = cluster ]; then
  echo "=== communicators: NCCL one-rank test on the GPU"
  timeout 120 /tmp/fg/test_cluster_gpu 2>&1 | tee "$OUT/test_cluster.log" | grep -E "OK \]|FAILED|PASSED|SKIPPED|Failure" | head -20
  [ "$CHECK" = cluster ] && { echo "total $(($(date +%s) - start)) s"; exit 0; }
fi
echo "=== rasteriser + renderer: tests (CPU and CUDA) and benchmark"
timeout 120 /tmp/fg/test_render_gpu 2>&1 | tee "$OUT/test_render.log" |
  grep -E "OK \]|FAILED|PASSED|SKIPPED|Failure|Expected|differ" | head -60
timeout 120 /tmp/fg/bench_render 2>&1 | tee "$OUT/bench_render.log"
[ "$CHECK" = render ] && { echo "total $(($(date +%s) - start)) s"; exit 0; }
FACETEX_KERNEL_TIMINGS=1 timeout 240 /tmp/fg/test_gpu 2>&1 | tee "$OUT/test.log" |
  grep -E "\[cuda\]|\[timing\]|OK \]|FAILED|PASSED|SKIPPED|Failure|Expected" | head -80
echo "=== G+D benchmark (config F, FP16 on the top 4 resolutions, cuDNN benchmark on)"
timeout 90 /tmp/fg/bench_stylegan2 --device cuda --config f --resolution 256 --batch 32 --iters 10 2>&1 | tee "$OUT/bench256.log"
timeout 90 /tmp/fg/bench_stylegan2 --device cuda --config f --resolution 1024 --batch 4 --iters 10 2>&1 | tee "$OUT/bench1024.log"
echo "total $(($(date +%s) - start)) s"
