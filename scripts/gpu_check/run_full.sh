#!/usr/bin/env bash
# The whole facetex on the GPU machine: builds the real project (trainer, reconstruct, benches, tests) against the
# machine's CUDA LibTorch, NCCL and Open MPI, with every other dependency from the static prefix of build_deps.sh,
# then measures what the open issues ask of a GPU. Results under $OUT (summary.txt + logs).
#
# Here (once):   scripts/gpu_check/build_deps.sh          (writes build-gpu/prefix.tar.xz)
# Device run:    carry build-gpu;  command: bash scripts/gpu_check/run_full.sh [build|measure|all]
#   build   : configure + build (build-full/ stays on a warm machine, so a second call rebuilds nothing)
#   measure : the measurements below (builds first if needed)
#   all     : both (default)
# Measurements (each bounded by a timeout; a failing step is reported and the next one runs), in this order:
#   nccl     test_cluster's NCCL one-rank test; bench_reducer on CUDA gradients over NCCL; a 1-rank training run
#            with run.comm = nccl (synth64 networks on the GPU, 0.2 kimg).
#   cuda     the CUDA test cases of test_kernels/test_models/test_render/test_train (gtest filter *Cuda*:*CUDA*).
#   gd       bench_stylegan2 (G+D forward/backward of config F at 256² batch 32 and 1024² batch 4) and bench_render
#            (rasteriser/renderer, CPU vs CUDA).
#   recon    bench_reconstruct at 1024² (1024² texture, config-F channels, W 512; 32 synthetic 256² renders with
#            their annotations as landmarks; G with FP16 on its top 4 resolutions as a trained checkpoint, TF32 allowed
#            as in the public projector; LPIPS with a random-weight stand-in of vgg16.pt, tools/make_lpips_standin.py):
#            images/h of the public approach (one photo at a time with the public projector's per-photo and per-step
#            work), of batch 1 and of batch 32 (split and grouped modulated convolutions), and the ratios; then
#            `facetex reconstruct` itself (batch 8) on the bench's world and generator, for its exit status.
#   texture  bench_train_step, paper networks at 256², both background modes: step img/s and where the time goes.
#   image    `facetex train --preset stylegan2-256` (image mode, config F, batch 32, ADA) on a 256² synthetic world
#            for 3 ticks of 1 kimg: sec/kimg per tick from log.txt (the public implementation: ~11.8 on one H100);
#            once with the reference layout, once with model.fp16_channels_last = true (NHWC FP16 blocks). The
#            reference-layout run then trains a 4th kimg whose iterations 100-115 are profiled (FACETEX_PROFILE_*,
#            train/profile_window.h): device busy vs wall time and the kernels by device time (profile.txt). A
#            third, short run (16 iterations) logs the op census: calls and host syncs per iteration and phase.
#   public   the public implementation side by side: NVIDIA's StyleGAN3 code base with --cfg stylegan2 (StyleGAN2-ADA's
#            config F: same networks, FP16 on the top 4 resolutions, TF32 off, ADA, batch 32) for 4 ticks of 1 kimg on
#            the image step's 1,024 images (tools/shards_to_images.py), its sec/kimg per tick. Needs .public/stylegan3
#            (scripts/gpu_check/prepare_public.sh here; carry .public with build-gpu).
# FACETEX_GPU_DEVICE=cpu runs the same steps on the CPU with tiny sizes (a dry run of this script, on any machine;
# FACETEX_GPU_BUILD_TIMEOUT=3600 for a 2-core build). FACETEX_GPU_DEADLINE_S=N ends every step by N seconds after
# the start (a device call has a hard limit; what is left unmeasured is reported as skipped, the logs still come back).
# The build keeps going past errors (ninja -k 0): every target that links is measured, and the log holds every error.
# FACETEX_GPU_TARGETS="facetex test_kernels ..." builds fewer targets (a short second call).
# FACETEX_GPU_STEPS="nccl cuda gd recon texture image public" picks measurements (default: all, in that order);
# FACETEX_GPU_CUDA_TESTS narrows the cuda step's test binaries. A step that crashes has its backtrace (the
# fatal-signal report of core/fatal_signal.h) named with addr2line in the summary.
set -o pipefail
cd "$(dirname "$0")/../.."
STAGE=${1:-all}
export PATH=/usr/local/cuda/bin:$PATH
export NVIDIA_TF32_OVERRIDE=0  # the reference numerics: full FP32 in cuDNN/cuBLAS
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # the device machine runs commands as root
DEV=${FACETEX_GPU_DEVICE:-cuda}
OUT=${OUT:-/tmp/facetex-gpu-full}
B=${FACETEX_GPU_BUILD_DIR:-build-full}
W=${FACETEX_GPU_WORK_DIR:-/tmp/facetex-gpu-work}
mkdir -p "$OUT" "$W"
SUMMARY=$OUT/summary.txt
T0=$(date +%s)
DEADLINE=${FACETEX_GPU_DEADLINE_S:-0}
say() { echo "$*" | tee -a "$SUMMARY"; }
step() { say "=== $1 [t=$(($(date +%s) - T0)) s]"; }

prefix() {  # the static prefix, carried packed (build-gpu/prefix.tar.xz), unpacked once into the work folder
  if [ -f build-gpu/prefix.tar.xz ]; then
    local dir=$W/prefix
    [ -f "$dir/.built-opencv" ] || { mkdir -p "$dir" && tar -xJf build-gpu/prefix.tar.xz -C "$dir"; } || return 1
    echo "$dir"
  else
    echo "run_full: no static prefix: run scripts/gpu_check/build_deps.sh here and carry build-gpu" >&2
    return 1
  fi
}

build() {
  step "build ($DEV)"
  local P TP
  P=$(prefix) || exit 1
  TP=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)' 2>/dev/null) || TP=""
  [ "$DEV" = cuda ] && { nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$SUMMARY";
    python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$SUMMARY"; }
  local cuda_args=()
  if [ "$DEV" = cuda ]; then
    # NCCL: the system's, or the nvidia-nccl wheel that the pip LibTorch itself loads.
    [ -n "${NCCL_HOME:-}" ] || export NCCL_HOME=$(python3 -c 'import importlib.util as u; s = u.find_spec("nvidia.nccl"); print(list(s.submodule_search_locations)[0] if s else "")' 2>/dev/null)
    say "NCCL_HOME=${NCCL_HOME:-<system>}"
    cuda_args=(-DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DFACETEX_NCCL=AUTO)
  fi
  [ "$DEV" = cuda ] || cuda_args=(-DFACETEX_CUDA=OFF)
  run cmake 300 cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release ${TP:+-DCMAKE_PREFIX_PATH="$TP"} \
    -DFACETEX_STATIC_DEPS="$P" -DFACETEX_PROMETHEUS=OFF "${cuda_args[@]}" || exit 1
  log cmake | grep "facetex: CUDA" | tee -a "$SUMMARY"
  local t=$(date +%s)
  local targets=${FACETEX_GPU_TARGETS:-facetex bench_train_step bench_reconstruct bench_reducer bench_stylegan2 bench_render \
test_cluster test_kernels test_models test_render test_train}
  # shellcheck disable=SC2086 # a list of target names
  if ! run build "${FACETEX_GPU_BUILD_TIMEOUT:-900}" ninja -k 0 -C "$B" $targets; then
    log build | grep -E "error|undefined reference" -A3 | head -60 | tee -a "$SUMMARY"
    say "build incomplete after $(($(date +%s) - t)) s; measuring what linked"
    return 1
  fi
  say "built in $(($(date +%s) - t)) s"
}

# run <name> <timeout s> <command...>: output to $W/logs/<name>.log (all logs go back as $OUT/logs.tar.gz, rewritten
# after every step, since the device returns at most 8 files and a killed run has no exit trap); a FAILED line and
# the log's tail in the summary if it fails.
run() {
  local name=$1 limit=$2; shift 2
  mkdir -p "$W/logs"
  if [ "$DEADLINE" -gt 0 ]; then
    local left=$((DEADLINE - ($(date +%s) - T0)))
    if [ $left -lt 15 ]; then say "$name SKIPPED (deadline)"; return 124; fi
    [ $left -lt "$limit" ] && limit=$left
  fi
  if [ ! -x "$1" ] && ! command -v "$1" >/dev/null; then say "$name SKIPPED ($1 did not build)"; return 127; fi
  timeout "$limit" "$@" >"$W/logs/$name.log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then
    say "$name FAILED (exit $rc), tail of its log:"
    tail -5 "$W/logs/$name.log" | tee -a "$SUMMARY"
    [ $rc -gt 128 ] && symbolise "$W/logs/$name.log"
  fi
  tar -czf "$OUT/logs.tar.gz" -C "$W" logs
  return $rc
}
log() { cat "$W/logs/$1.log"; }
# symbolise <log>: the frames of a fatal-signal report ("path/binary(+0xOFFSET)[0x...]") as function and source
# line, through addr2line (Release builds keep the symbol table, so functions are named even without -g).
symbolise() {
  command -v addr2line >/dev/null || return 0
  say "backtrace, symbolised:"
  sed -n 's|^\([^ (][^(]*\)(+\(0x[0-9a-f]*\)).*|\1 \2|p' "$1" | head -40 | while read -r bin off; do
    say "  $(basename "$bin") $off $(addr2line -f -C -e "$bin" "$off" 2>/dev/null | tr '\n' ' ')"
  done
}
wants() { [ -z "${FACETEX_GPU_STEPS:-}" ] || [[ " $FACETEX_GPU_STEPS " == *" $1 "* ]]; }

measure() {
  local FT=$B/facetex small=0
  [ "$DEV" = cuda ] || small=1
  if wants nccl; then
    step "nccl: one-rank communicator test, allreduce bench, training run with run.comm = nccl"
    if run test_cluster 120 "$B/tests/test_cluster" --gtest_filter='NcclCommunicator.*'; then
      log test_cluster | grep -E "OK \]|SKIPPED|PASSED" | grep -i -E "nccl|PASSED" | tee -a "$SUMMARY"
    fi
    local comm=nccl
    [ "$DEV" = cuda ] || comm=mpi
    local red_args=(--mb 80 --iters 5)
    [ $small = 1 ] && red_args=(--mb 8 --iters 1)
    run bench_reducer 120 "$B/bench/bench_reducer" --comm $comm --device "$DEV" "${red_args[@]}" && log bench_reducer | tee -a "$SUMMARY"
    [ -f "$W/world64/shards/dataset.json" ] || run synth64 300 "$FT" data synth --out "$W/world64" --count 256
    rm -rf "$W/nccl-run"
    if run train_nccl 300 "$FT" train --preset synth64 --shards "$W/world64/shards" --run "$W/nccl-run" --device "$DEV" \
         --kimg 0.2 --set run.comm=$comm \
         --set model.face_model_mat="$W/world64/model.mat" --set model.face_model_uv="$W/world64/uv.npy"; then
      log train_nccl | grep -i -E "comm|nccl|kimg|tick" | tail -6 | tee -a "$SUMMARY"
    fi
  fi
  if wants cuda; then
    step "cuda tests: every kernel, G/D, rasteriser/renderer and augment pipe on the GPU vs the CPU/reference"
    for t in ${FACETEX_GPU_CUDA_TESTS:-test_kernels test_models test_render test_train}; do
      if FACETEX_KERNEL_TIMINGS=1 run $t 150 "$B/tests/$t" --gtest_filter='*Cuda*:*CUDA*'; then
        log $t | grep -E "^\[  (PASSED|FAILED) |^\[  SKIPPED \] [0-9]+ tests?,|\[timing\]|\[cuda\]" | tee -a "$SUMMARY"
      fi
    done
  fi
  if wants gd; then
    step "gd: G+D training-pass benchmark (config F, FP16 on the top 4 resolutions) and the renderer benchmark"
    local gd_sizes=("256 32" "1024 4") gd_iters=10
    [ $small = 1 ] && { gd_sizes=("64 2"); gd_iters=1; }
    for rb in "${gd_sizes[@]}"; do
      set -- $rb
      run bench_stylegan2_$1 120 "$B/bench/bench_stylegan2" --device "$DEV" --config f --resolution "$1" --batch "$2" \
        --iters $gd_iters && log bench_stylegan2_$1 | tee -a "$SUMMARY"
    done
    run bench_render 120 "$B/bench/bench_render" && log bench_render | tee -a "$SUMMARY"
  fi
  if wants recon; then
    step "recon: reconstructed images per hour, public approach vs batch 1 vs 32, 1024²"
    # Synthetic renders with their exact annotations as landmarks: the GPU machine has no dlib assets.
    # G as a trained paper1024 checkpoint has it (FP16 on the top 4 resolutions, conv_clamp 256), and LibTorch's
    # default numerics (TF32 allowed in cuDNN convolutions), as the public projector runs: no NVIDIA_TF32_OVERRIDE.
    local rec_args=(--synthetic 256 --crop 1024 --texture 1024 --channels 512 --channel-base 32768 --w-dim 512 --batch 32
                    --images 32 --steps 10 --fp16-res 4 --conv-clamp 256)
    [ $small = 1 ] && rec_args=(--synthetic 64 --batch 2 --images 2 --steps 2)
    # Then the command itself on the bench's world and generator (kept): whether `facetex reconstruct` ends cleanly
    # on the GPU (bench_reconstruct died of SIGSEGV after its results at stop 12).
    local cli_args=(--crop-resolution 1024 --batch 8 --steps 10 --w-avg-samples 2000)
    [ $small = 1 ] && cli_args=(--crop-resolution 256 --batch 2 --steps 2 --w-avg-samples 200)
    # The loss as the public projector has it: LPIPS on the full crop. NVIDIA's vgg16.pt cannot be downloaded there,
    # so a stand-in with its architecture and random weights (tools/make_lpips_standin.py; same cost). Should that
    # run fail (e.g. out of memory: VGG16 keeps about 2.3 GB of activations per 1024² image), the bench runs again
    # without LPIPS, as at stop 12.
    local lpips=()
    python3 tools/make_lpips_standin.py "$W/vgg16-standin.pt" | tee -a "$SUMMARY" && lpips=(--lpips-vgg "$W/vgg16-standin.pt")
    rm -rf "$W/recon-bench" "$W/recon-cli"
    (unset NVIDIA_TF32_OVERRIDE
     run bench_reconstruct 420 "$B/bench/bench_reconstruct" --device "$DEV" "${rec_args[@]}" "${lpips[@]}" \
       --keep "$W/recon-bench"
     # Its figures count when the ratio lines were printed, even if the process died afterwards (as at stop 12).
     if grep -q "split / batch 1" "$W/logs/bench_reconstruct.log"; then
       log bench_reconstruct | tee -a "$SUMMARY"
     elif [ ${#lpips[@]} -gt 0 ]; then
       say "bench_reconstruct with LPIPS failed (last lines above); again without it"
       lpips=()
       run bench_reconstruct_nolpips 300 "$B/bench/bench_reconstruct" --device "$DEV" "${rec_args[@]}" \
         --keep "$W/recon-bench" && log bench_reconstruct_nolpips | tee -a "$SUMMARY"
     fi
     run reconstruct_cli 300 "$FT" reconstruct --checkpoint "$W/recon-bench/G.h5" --inputs "$W/recon-bench/world/shards" \
       --out "$W/recon-cli" --landmarks annotations "${lpips[@]}" \
       --model "$W/recon-bench/world/model.mat:$W/recon-bench/world/uv.npy" --device "$DEV" "${cli_args[@]}" &&
       { say "facetex reconstruct (exit 0):"; grep "^reconstruct:" "$W/logs/reconstruct_cli.log" | tee -a "$SUMMARY"; })
  fi
  if wants texture; then
    step "texture: full training step at 256², both background modes"
    local tex_args=(--preset paper1024 --resolution 256 --batch 32 --iters 5)
    [ $small = 1 ] && tex_args=(--preset synth64 --batch 4 --iters 1)
    run bench_train_step 300 "$B/bench/bench_train_step" --device "$DEV" "${tex_args[@]}" && log bench_train_step | tee -a "$SUMMARY"
  fi
  if wants image; then
    step "image: stylegan2-256 (config F, batch 32, ADA) sec/kimg"
    local res=256 count=1024 kimg=3 tick=1 preset=stylegan2-256 profile_start=100 profile_iters=16
    [ $small = 1 ] && { res=64; count=128; kimg=0.064; tick=0.016; preset=synth64; profile_start=2; profile_iters=2; }
    [ -f "$W/world$res/shards/dataset.json" ] || run synth$res 300 "$FT" data synth --out "$W/world$res" --count $count --resolution $res
    # The reference layout (NCHW everywhere), then the FP16 blocks channels-last (model.fp16_channels_last, --nhwc).
    for layout in nchw nhwc; do
      rm -rf "$W/sg-$layout"
      local run_kimg=$kimg profile_env=()
      if [ $layout = nchw ]; then  # one more tick, with 16 profiled iterations after the three measured ticks
        run_kimg=$(awk "BEGIN{print $kimg + $tick}")
        profile_env=(FACETEX_PROFILE_ITERATIONS=$profile_iters FACETEX_PROFILE_START=$profile_start)
      fi
      local img_args=(--preset $preset --shards "$W/world$res/shards" --run "$W/sg-$layout" --device "$DEV"
                      --kimg "$run_kimg" --set run.kimg_per_tick=$tick --set run.snap_ticks=1000)
      [ $small = 1 ] && img_args+=(--set model.mode=image)
      [ $layout = nhwc ] && img_args+=(--set model.fp16_channels_last=true)
      if run train_image_$layout 420 env "${profile_env[@]}" "$FT" train "${img_args[@]}"; then
        say "image mode, $layout:"
        grep -E "tick [0-9]+ +kimg" "$W/sg-$layout/log.txt" | tee -a "$SUMMARY"
        [ -f "$W/sg-$layout/profile.txt" ] && cat "$W/sg-$layout/profile.txt" | tee -a "$SUMMARY"
      fi
    done
    # What one iteration asks of LibTorch on the GPU (FACETEX_OP_CENSUS: calls, host syncs), from a short third run.
    rm -rf "$W/sg-census"
    local census_kimg=$(awk "BEGIN{print 16 * ($small ? 16 : 32) / 1000}")
    local census_args=(--preset $preset --shards "$W/world$res/shards" --run "$W/sg-census" --device "$DEV"
                       --kimg "$census_kimg" --set run.kimg_per_tick=1000 --set run.snap_ticks=1000)
    [ $small = 1 ] && census_args+=(--set model.mode=image)
    run train_image_census 240 env FACETEX_OP_CENSUS=1 "$FT" train "${census_args[@]}" &&
      grep "op census" "$W/sg-census/log.txt" | tail -5 | tee -a "$SUMMARY"
  fi
  if wants public; then
    step "public: NVIDIA's StyleGAN3 code base, --cfg stylegan2 (config F, batch 32, ADA), same images, sec/kimg"
    local sg3=.public/stylegan3
    if [ ! -f $sg3/train.py ]; then
      say "public SKIPPED (no $sg3: run scripts/gpu_check/prepare_public.sh here and carry .public)"
    elif [ $small = 1 ]; then
      say "public SKIPPED (the public code trains on a GPU only)"
    else
      [ -f "$W/world256/shards/dataset.json" ] || run synth256 300 "$FT" data synth --out "$W/world256" --count 1024 --resolution 256
      rm -rf "$W/public-images" "$W/sg3"
      # Python 3.12 has no distutils and new setuptools no pkg_resources: the two names the code base imports, from
      # the standard library's successors, only where missing.
      local compat=$W/py-compat
      mkdir -p "$compat"
      python3 -c "import pkg_resources" 2>/dev/null || { mkdir -p "$compat/pkg_resources";
        echo "from packaging.version import parse as parse_version" > "$compat/pkg_resources/__init__.py"; }
      python3 -c "from distutils.util import strtobool" 2>/dev/null || { mkdir -p "$compat/distutils";
        : > "$compat/distutils/__init__.py"
        printf 'def strtobool(v):\n    return {"y": 1, "yes": 1, "t": 1, "true": 1, "on": 1, "1": 1}.get(v.lower(), 0)\n' \
          > "$compat/distutils/util.py"; }
      if run public_images 120 python3 tools/shards_to_images.py "$W/world256/shards" "$W/public-images" &&
         run public_train 420 env PYTHONUNBUFFERED=1 PYTHONPATH="$compat" TORCH_EXTENSIONS_DIR="$W/torch_extensions" \
           TORCH_CUDA_ARCH_LIST="$(python3 -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')" \
           python3 $sg3/train.py --outdir "$W/sg3" --cfg stylegan2 --data "$W/public-images" --gpus 1 --batch 32 \
           --gamma 10 --mirror 0 --aug ada --kimg 4 --tick 1 --snap 1000 --metrics none --workers 3; then
        say "public StyleGAN3 code base ($(cat $sg3/.source-commit 2>/dev/null || echo 'unknown commit')), --cfg stylegan2:"
        grep -E "^tick " "$W/logs/public_train.log" | tee -a "$SUMMARY"
      fi
    fi
  fi
  step "done"
}

case $STAGE in
  build) build ;;
  measure) [ -x "$B/facetex" ] || build; measure ;;
  all) build; measure ;;  # a partial build is still measured: each step skips a target that did not link
  *) echo "usage: run_full.sh [build|measure|all]" >&2; exit 2 ;;
esac
