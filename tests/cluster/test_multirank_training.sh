#!/usr/bin/env bash
# Multi-rank training on real Open MPI (issue 6's "must show"), on a tiny synthetic world, CPU, OMP_NUM_THREADS=1:
#   1. equivalence: W ranks x per-rank batch B give the same networks as 1 rank x batch W*B after K steps, in image
#      and in texture mode; a 2-rank run stopped and resumed is bit-identical to a straight one (pl_mean per rank);
#   2. agreement: ADA p and the collected statistics are identical on every rank (the trainer's own per-tick check);
#   3. preemption: SIGUSR1 to ONE rank -> all ranks checkpoint and exit 75; resume on 2 ranks, preempt again, resume
#      on 3 ranks; kimg continues and the data cursor has consumed exactly cur_nimg images (no batch lost or repeated);
#   4. failure: SIGKILL of one rank ends the job non-zero within a bound; a rank that stops (SIGSTOP) makes the others
#      leave through the collective watchdog (FACETEX_COMM_TIMEOUT) with a message naming the rank.
# Usage: test_multirank_training.sh FACETEX_BINARY. Exit 0 pass, 1 fail, 77 skip (no mpirun / python3 h5py).
set -euo pipefail

FACETEX=${1:?usage: test_multirank_training.sh FACETEX_BINARY}
command -v mpirun >/dev/null || { echo "SKIP: no mpirun"; exit 77; }
PY=/usr/bin/python3
$PY -c 'import h5py, numpy' 2>/dev/null || { echo "SKIP: $PY lacks h5py/numpy"; exit 77; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_multirank.XXXXXX")
trap 'pkill -KILL -f "$TMP" 2>/dev/null || true; rm -rf -- "$TMP"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader \
       OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1 FACETEX_PROGRESS=log
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }
mpi() { local np=$1; shift; mpirun -np "$np" "$@"; }

step "synthetic world"
"$FACETEX" data synth --out "$TMP/world" --count 48 --resolution 32 --texture-resolution 32 --shard-size 20 \
  >"$TMP/synth.log" 2>&1 || { cat "$TMP/synth.log"; fail "data synth"; }

# A tiny image-mode StyleGAN2 on the world's images. For the equivalence run every source of per-rank randomness
# is switched off (no augmentation, const noise, no style mixing, no path-length term) and the minibatch-stddev
# group is 1, because its groups are formed inside each rank's batch.
config() {  # $1 = file, $2 = batch, $3 = batch_gpu, $4 = total_kimg, $5 = extra TOML for [train], $6 = augment mode,
           # $7 = [model] lines of the mode (default image mode)
  local mode_lines='mode = "image"'
  [ -n "${7:-}" ] && mode_lines=$7
  cat >"$1" <<EOF
[model]
$mode_lines
resolution = 32
z_dim = 16
w_dim = 16
mapping_layers = 2
channel_base = 128
channel_max = 16
mbstd_group = 1
[data]
shards = "$TMP/world/shards"
threads = 1
[train]
batch = $2
batch_gpu = $3
r1_gamma = 0.05
ema_kimg = 0.01
G_reg_interval = 4
D_reg_interval = 2
$5
[augment]
mode = "$6"
interval = 2
kimg = 0.5
[run]
total_kimg = $4
kimg_per_tick = 0.012
snap_ticks = 1000
keep_checkpoints = 3
grid_images = 4
EOF
}

step "1. equivalence: 2 ranks x 4 vs 1 rank x 8, and 3 ranks x 4 vs 1 rank x 12 (6 steps each)"
compare() {  # $1 $2 = run folders; prints the worst differences
  $PY - "$1/checkpoints/latest.h5" "$2/checkpoints/latest.h5" <<'EOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
worst, frac_big, n = 0.0, 0, 0
for net in ("G", "D", "G_ema"):
    def visit(name, obj):
        global worst, frac_big, n
        if isinstance(obj, h5py.Dataset) and "w_avg" not in name:
            x, y = np.asarray(obj, np.float64), np.asarray(b[net][name], np.float64)
            d = np.abs(x - y)
            worst = max(worst, float(d.max(initial=0)))
            frac_big += int((d > 1e-5).sum()); n += d.size
    a[net].visititems(visit)
print(f"max_abs_diff {worst:.3e} entries_over_1e-5 {frac_big} of {n}")
assert a["train"].attrs["cur_nimg"] == b["train"].attrs["cur_nimg"]
EOF
}
for W in 2 3; do
  B=4; total=$($PY -c "print($W*$B*6/1000)")
  config "$TMP/eq$W-multi.toml" $((W * B)) $B "$total" 'style_mixing = 0.0
pl_weight = 0.0
noise_mode = "const"' noaug
  config "$TMP/eq$W-single.toml" $((W * B)) $((W * B)) "$total" 'style_mixing = 0.0
pl_weight = 0.0
noise_mode = "const"' noaug
  mpi $W "$FACETEX" train --config "$TMP/eq$W-multi.toml" --run "$TMP/eq$W-multi" >"$TMP/eq$W-multi.log" 2>&1 \
    || { tail -30 "$TMP/eq$W-multi.log"; fail "$W-rank run"; }
  "$FACETEX" train --config "$TMP/eq$W-single.toml" --run "$TMP/eq$W-single" >"$TMP/eq$W-single.log" 2>&1 \
    || { tail -30 "$TMP/eq$W-single.log"; fail "1-rank run"; }
  out=$(compare "$TMP/eq$W-multi" "$TMP/eq$W-single") || fail "compare: $out"
  echo "W=$W: $out"
  # Tolerance: the gradients differ only by float32 summation order (~1e-7 relative), so the networks agree to
  # ~1e-6 — except where Adam divides a near-zero gradient by its own square root: there the update is
  # lr * g / (|g| + eps) and a summation-order difference in g can move it by up to lr (2e-3) per step. Such entries
  # must be rare (<0.1%) and bounded by K * lr.
  max=$(awk '{print $2}' <<<"$out"); big=$(awk '{print $4}' <<<"$out"); total_n=$(awk '{print $6}' <<<"$out")
  $PY -c "import sys; sys.exit(0 if $max <= 6*0.002 and $big <= 0.001*$total_n else 1)" \
    || fail "W=$W ranks differ from 1 rank beyond the tolerance: $out"
done

step "1b. texture mode: 3 ranks x 3 vs 1 rank x 9 (each latent is rendered onto the same dataset face as with 1 rank)"
texture_mode="mode = \"texture\"
texture_resolution = 32
face_model_mat = \"$TMP/world/model.mat\"
face_model_uv = \"$TMP/world/uv.npy\""
for ranks in 3 1; do
  config "$TMP/tex$ranks.toml" 9 $((9 / ranks)) 0.054 'style_mixing = 0.0
pl_weight = 0.0
noise_mode = "const"' noaug "$texture_mode"
  mpi $ranks "$FACETEX" train --config "$TMP/tex$ranks.toml" --run "$TMP/tex$ranks" >"$TMP/tex$ranks.log" 2>&1 \
    || { tail -30 "$TMP/tex$ranks.log"; fail "texture-mode run on $ranks ranks"; }
done
out=$(compare "$TMP/tex3" "$TMP/tex1") || fail "compare: $out"
echo "texture W=3: $out"
max=$(awk '{print $2}' <<<"$out"); big=$(awk '{print $4}' <<<"$out"); total_n=$(awk '{print $6}' <<<"$out")
$PY -c "import sys; sys.exit(0 if $max <= 6*0.002 and $big <= 0.001*$total_n else 1)" \
  || fail "texture mode: 3 ranks differ from 1 rank beyond the tolerance: $out"

step "1c. 2 ranks resume bit-exactly with the path-length term on (each rank's pl_mean is checkpointed)"
config "$TMP/plx.toml" 8 4 0.064 'pl_weight = 2.0' noaug
mpi 2 "$FACETEX" train --config "$TMP/plx.toml" --run "$TMP/pl-straight" >"$TMP/pl-straight.log" 2>&1 \
  || { tail -30 "$TMP/pl-straight.log"; fail "straight 2-rank run"; }
for kimg in 0.032 0.064; do
  mpi 2 "$FACETEX" train --config "$TMP/plx.toml" --run "$TMP/pl-split" --kimg $kimg >"$TMP/pl-split-$kimg.log" 2>&1 \
    || { tail -30 "$TMP/pl-split-$kimg.log"; fail "split 2-rank run to $kimg"; }
done
$PY - "$TMP/pl-straight/checkpoints/latest.h5" "$TMP/pl-split/checkpoints/latest.h5" <<'EOF' \
  || fail "a 2-rank run stopped and resumed differs from the straight one"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
diff = []
def visit(name, obj):
    if isinstance(obj, h5py.Dataset) and not np.array_equal(np.asarray(obj), np.asarray(b[name])):
        diff.append(name)
a.visititems(visit)
assert not diff, f"{len(diff)} datasets differ, e.g. {diff[:3]}"
print("bit-exact at", a["train"].attrs["cur_nimg"], "images; pl_mean per rank", list(a["train/pl_mean_ranks"][()]))
EOF

step "2. ADA p and statistics agree on every rank"
config "$TMP/ada.toml" 8 4 0.048 '' ada
mpi 2 "$FACETEX" train --config "$TMP/ada.toml" --run "$TMP/ada" >"$TMP/ada.log" 2>&1 || { tail -30 "$TMP/ada.log"; fail "ADA run"; }
grep -q "rank statistics agree" "$TMP/ada.log" || { tail -30 "$TMP/ada.log"; fail "no per-tick agreement line"; }
$PY - "$TMP/ada/stats.jsonl" <<'EOF' || fail "stats.jsonl does not count both ranks' reports"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
# Each tick's Loss/signs/real count covers the whole job: batch 8 per Dmain step, both ranks summed.
assert any(l.get("Loss/signs/real", {}).get("num", 0) >= 8 for l in lines), lines[-1].keys()
assert lines[-1]["Progress/augment"]["mean"] >= 0
EOF

step "3. preemption: SIGUSR1 to rank 1 only -> exit 75 on every rank; resume on 2 ranks, then on 3"
config "$TMP/pre.toml" 12 0 1.2 '' ada  # 100 iterations: room for two preemptions on a fast machine
rank_pid() {  # $1 = run folder (unique in the command line), $2 = rank
  local p
  for p in $(pgrep -f -- "--run $1\$"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$p"; return; fi
  done
}
preempt_run() {  # $1 = ranks, $2 = log; signals rank 1 after the run has made progress past its resume point
  mpi "$1" "$FACETEX" train --config "$TMP/pre.toml" --run "$TMP/pre" >"$2" 2>&1 &
  local mp=$! pid="" start_ticks
  ticks() { local n; n=$(grep -c "tick " "$TMP/pre/log.txt" 2>/dev/null) || true; echo "${n:-0}"; }
  start_ticks=$(ticks)
  for _ in $(seq 600); do
    sleep 0.1
    [ "$(ticks)" -ge $((start_ticks + 2)) ] && break
  done
  pid=$(rank_pid "$TMP/pre" 1); [ -n "$pid" ] || fail "no rank 1 process of the run in $TMP/pre"
  kill -USR1 "$pid"
  local rc=0; wait "$mp" || rc=$?
  [ "$rc" -eq 75 ] || { tail -20 "$2"; fail "preempted $1-rank run exited $rc, expected 75"; }
}
preempt_run 2 "$TMP/pre1.log"
grep -q "another rank was signalled" "$TMP/pre1.log" || fail "rank 0 did not report the agreed preemption"
k1=$($PY -c "import h5py;print(h5py.File('$TMP/pre/checkpoints/latest.h5','r')['train'].attrs['cur_nimg'])")
preempt_run 2 "$TMP/pre2.log"
grep -q "resuming from .* at kimg $($PY -c "print(f'{$k1/1000:.3f}')")" "$TMP/pre2.log" || fail "second run did not resume at $k1"
k2=$($PY -c "import h5py;print(h5py.File('$TMP/pre/checkpoints/latest.h5','r')['train'].attrs['cur_nimg'])")
[ "$k2" -gt "$k1" ] || fail "kimg did not advance ($k1 -> $k2)"
mpi 3 "$FACETEX" train --config "$TMP/pre.toml" --run "$TMP/pre" >"$TMP/pre3.log" 2>&1 || { tail -20 "$TMP/pre3.log"; fail "3-rank resume"; }
grep -q "checkpoint written by 2 ranks, resuming on 3" "$TMP/pre3.log" || fail "3-rank resume did not notice the rank change"
$PY - "$TMP/pre/checkpoints/latest.h5" <<'EOF' || fail "data cursor does not match the images trained on"
import sys, h5py
t = h5py.File(sys.argv[1], "r")["train"].attrs
assert t["cur_nimg"] == 1200, t["cur_nimg"]
# One global order: (epoch, position) counts every image consumed exactly once, across all three launches.
consumed = t["loader_epoch"] * 48 + t["loader_position"]
assert consumed == t["cur_nimg"], (consumed, t["cur_nimg"])
print("final cur_nimg", t["cur_nimg"], "cursor", t["loader_epoch"], t["loader_position"])
EOF
echo "cur_nimg $k1 -> $k2 -> 1200 over launches on 2, 2 and 3 ranks"

step "4a. SIGKILL of one rank: the job ends non-zero within 30 s"
config "$TMP/kill.toml" 8 4 100 '' ada
mpi 2 "$FACETEX" train --config "$TMP/kill.toml" --run "$TMP/kill" >"$TMP/kill.log" 2>&1 &
mp=$!
for _ in $(seq 600); do sleep 0.1; grep -q "tick 2 " "$TMP/kill/log.txt" 2>/dev/null && break; done
pid=$(rank_pid "$TMP/kill" 1); [ -n "$pid" ] || fail "no rank 1"
t0=$(date +%s.%N); kill -KILL "$pid"; rc=0; wait "$mp" || rc=$?; t1=$(date +%s.%N)
el=$($PY -c "print(round($t1-$t0,1))")
[ "$rc" -ne 0 ] || fail "job exited 0 after a rank was killed"
$PY -c "import sys; sys.exit(0 if $el < 30 else 1)" || fail "job took $el s to end after SIGKILL"
echo "SIGKILL of rank 1: job exited $rc after $el s"

step "4b. a stopped rank: the others leave through the watchdog within FACETEX_COMM_TIMEOUT"
FACETEX_COMM_TIMEOUT=5 mpirun -np 2 -x FACETEX_COMM_TIMEOUT "$FACETEX" train --config "$TMP/kill.toml" --run "$TMP/hang" \
  >"$TMP/hang.log" 2>&1 &
mp=$!
for _ in $(seq 600); do sleep 0.1; grep -q "tick 2 " "$TMP/hang/log.txt" 2>/dev/null && break; done
pid=$(rank_pid "$TMP/hang" 1); [ -n "$pid" ] || fail "no rank 1"
t0=$(date +%s.%N); kill -STOP "$pid"
# Bound: timeout 5 s + one step + the launcher's teardown of the stopped rank.
( sleep 60; kill -KILL "$pid" 2>/dev/null ) & guard=$!
rc=0; wait "$mp" || rc=$?; t1=$(date +%s.%N); kill "$guard" 2>/dev/null || true
el=$($PY -c "print(round($t1-$t0,1))")
[ "$rc" -ne 0 ] || fail "job exited 0 with a stopped rank"
grep -q "rank 0 of 2: .* has not completed after" "$TMP/hang.log" || { tail -20 "$TMP/hang.log"; fail "no watchdog message naming the rank"; }
$PY -c "import sys; sys.exit(0 if $el < 40 else 1)" || fail "job took $el s to end with a stopped rank"
echo "stopped rank 1: job exited $rc after $el s ($(grep -o 'rank 0 of 2: [^;]*' "$TMP/hang.log" | head -1))"
echo PASS
