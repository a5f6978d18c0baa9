#!/usr/bin/env bash
# (f) A dead rank: SIGKILL of task 1 of a 2-task training job. srun --kill-on-bad-exit ends the whole step, the job
# ends FAILED (not requeued) within a bound, its log names the killed task and carries the script's FAILED line,
# and the run folder holds only complete checkpoints (none, or ones that open) — nothing partial under a final name.
source "$(dirname "$0")/lib.sh"
ensure_world
RUN=$W/run-rank-down
jid=$(submit -o "$W/rank-down-%j.out" --ntasks-per-node=2 "$SRC/slurm/train.sbatch" "$RUN" "${TRAIN_ARGS[@]}" --kimg 50)
LOG=$W/rank-down-$jid.out
note "submitted 2-task train job $jid"

rank_pid() {  # the training process of task $1 of this job
  local p
  for p in $(pgrep -f -- "train --run $RUN"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -x "SLURM_JOB_ID=$jid" >/dev/null || continue
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -x "SLURM_PROCID=$1" >/dev/null && { echo "$p"; return; }
  done
}
for _ in $(seq 1200); do grep -q "tick 1 " "$LOG" 2>/dev/null && break; sleep 0.1; done
grep -q "tick 1 " "$LOG" || { show_log "$LOG"; fail "job $jid never reached tick 1"; }
pid=$(rank_pid 1)
[[ -n $pid ]] || { ps -ef | grep facetex; fail "no process for task 1 of job $jid"; }
t0=$SECONDS
kill -KILL "$pid"
note "killed task 1 (pid $pid)"
state=$(wait_job "$jid" 60)
el=$((SECONDS - t0))
[[ $state == FAILED ]] || { show_log "$LOG"; fail "job ended $state after a rank was killed, expected FAILED"; }
(( el <= 60 )) || fail "job took ${el}s to end after the kill"
[[ $(job_field "$jid" Restarts) == 0 ]] || fail "job $jid was requeued after a crash (only exit 75 requeues)"
grep -Eq "task 1: Killed|task 1.*(signal|Killed)" "$LOG" || { show_log "$LOG"; fail "the job log does not name the killed task"; }
grep -qF "FAILED with exit code" "$LOG" || { show_log "$LOG"; fail "no FAILED line from the job script"; }
# Only complete checkpoints: every .h5 under checkpoints/ opens as a facetex checkpoint.
for f in "$RUN"/checkpoints/*.h5; do
  [[ -e $f ]] || continue
  python3 -c "import h5py,sys; f=h5py.File(sys.argv[1],'r'); assert f.attrs['format']" "$f" 2>/dev/null ||
    /usr/bin/python3 -c "import h5py,sys; f=h5py.File(sys.argv[1],'r'); assert f.attrs['format']" "$f" ||
    fail "$f is not a complete checkpoint"
done
note "OK: FAILED ${el}s after SIGKILL of task 1; '$(grep -E "task 1" "$LOG" | head -1)'"
