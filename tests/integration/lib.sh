# Helpers for the integration tests (sourced). The services come from services.sh (the ctest fixture it_services);
# each test works in its own folder under them and skips (exit 77) when they are not running.
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IT_ROOT=${FACETEX_IT_DIR:?FACETEX_IT_DIR is not set (ctest sets it)}
FACETEX=${FACETEX_BINARY:?FACETEX_BINARY is not set (ctest sets it)}
export FACETEX OMP_NUM_THREADS=1
T0=$SECONDS
TEST=$(basename "$0" .sh)
[[ "${IT_TASKS:-1}" == 1 ]] || TEST+="_${IT_TASKS}ranks"

note() { echo "[$TEST +$((SECONDS - T0))s] $*"; }
fail() { echo "[$TEST +$((SECONDS - T0))s] FAIL: $*"; exit 1; }

if [[ ! -f "$IT_ROOT/env.sh" ]]; then
  echo "SKIP: the integration services are not running ($IT_ROOT/env.sh missing; see the it_services_start output)"
  exit 77
fi
source "$IT_ROOT/env.sh"
W=$IT_DIR/jobs/$TEST
rm -rf "$W"
mkdir -p "$W"

# The tiny synthetic world every training test uses (made once, ~1 s).
WORLD=$IT_DIR/world
ensure_world() {
  [[ -f "$WORLD/shards/dataset.json" ]] && return 0
  "$FACETEX" data synth --out "$WORLD" --count 16 --resolution 32 --texture-resolution 32 --shard-size 8 \
    >"$IT_DIR/world.log" 2>&1 || { cat "$IT_DIR/world.log"; fail "data synth"; }
}
# facetex train options for a seconds-long CPU run of the synth64 preset: 32x32, batch 4, a tick every 10 steps.
TRAIN_ARGS=(--preset synth64 --shards "$WORLD/shards"
  --set model.resolution=32 --set model.texture_resolution=32 --set model.z_dim=16 --set model.w_dim=16
  --set model.channel_base=128 --set model.channel_max=16 --set model.mbstd_group=2 --set train.batch=4
  --set run.kimg_per_tick=0.04 --set run.snap_ticks=5 --set run.grid_images=4
  --set model.face_model_mat="$WORLD/model.mat" --set model.face_model_uv="$WORLD/uv.npy")

# sbatch from the test folder (never the repository root), with an explicit -o.
submit() { (cd "$W" && sbatch --parsable "$@") || fail "sbatch $*"; }
job_field() { scontrol show job "$1" -o 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
# Waits until job $1 has left the queue for good (also through requeues); prints its final JobState.
wait_job() {
  local id=$1 limit=${2:-120} end=$((SECONDS + ${2:-120})) st
  while ((SECONDS < end)); do
    st=$(job_field "$id" JobState)
    case $st in COMPLETED | FAILED | CANCELLED | TIMEOUT | OUT_OF_MEMORY | NODE_FAIL | BOOT_FAIL | DEADLINE) echo "$st"; return 0 ;; esac
    sleep 0.3
  done
  echo "TIMEOUT_WAITING($st after ${limit}s)"
}
# Waits until array job $1 has left the queue (fails after $2 s, default 120); prints "task:JobState" per array task,
# sorted, on one line (e.g. "0:COMPLETED 1:COMPLETED").
wait_array() {
  local id=$1 limit=${2:-120} end=$((SECONDS + ${2:-120}))
  while [[ -n "$(squeue -h -j "$id" 2>/dev/null)" ]]; do
    ((SECONDS < end)) || fail "array job $id still queued after $limit s"
    sleep 0.3
  done
  echo $(scontrol show job "$id" -o | grep -o 'ArrayTaskId=[0-9]* .*JobState=[A-Z_]*' |
         sed 's/ArrayTaskId=\([0-9]*\).*JobState=\([A-Z_]*\)/\1:\2/' | sort)
}
# Prometheus instant query: prints one line per series, "labels value".
prom_query() {
  curl -sf "$PROM_URL/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    print(",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())), r["value"][1])'
}
# Waits until the query returns at least $2 series (default 1); prints them.
wait_prom() {
  local q=$1 want=${2:-1} end=$((SECONDS + ${3:-60})) out
  while ((SECONDS < end)); do
    out=$(prom_query "$q")
    if [[ -n "$out" ]] && (($(wc -l <<<"$out") >= want)); then echo "$out"; return 0; fi
    sleep 0.5
  done
  return 1
}
show_log() { echo "----- $1"; tail -n "${2:-40}" "$1"; echo "-----"; }
