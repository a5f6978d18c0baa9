#!/usr/bin/env bash
# (b) Preemption: USR1 to the batch shell (as --signal=B:USR1@120 does before the time limit) is forwarded to the
# training step, which checkpoints and exits 75; the job requeues itself, resumes from the checkpoint and finishes
# with the requested final kimg.
source "$(dirname "$0")/lib.sh"
ensure_world
TASKS=${IT_TASKS:-1}
RUN=$W/run
jid=$(submit -o "$W/train-%j.out" --ntasks-per-node="$TASKS" "$SRC/slurm/train.sbatch" "$RUN" "${TRAIN_ARGS[@]}" --kimg 0.32)
LOG=$W/train-$jid.out
note "submitted train job $jid"
end=$((SECONDS + 90))
until grep -q "train info: tick 2 " "$LOG" 2>/dev/null; do
  ((SECONDS < end)) || { show_log "$LOG"; fail "training did not reach tick 2"; }
  [[ $(job_field "$jid" JobState) =~ RUNNING|PENDING|CONFIGURING ]] || { show_log "$LOG"; fail "job ended early"; }
  sleep 0.2
done
scancel --signal=USR1 --batch "$jid" || fail "scancel --signal=USR1"
note "sent USR1 at tick 2"

state=$(wait_job "$jid" 180)
note "job $jid: $state after $(job_field "$jid" Restarts) restart(s)"
[[ $state == COMPLETED ]] || { show_log "$LOG" 60; fail "preempted job ended $state"; }
[[ $(job_field "$jid" Restarts) == 1 ]] || fail "expected exactly 1 restart"
for line in "signal 10 received: writing a checkpoint and exiting with 75" \
            "preempted: state saved (exit 75); requeueing" "train: preempted at kimg" \
            "start #2 on" "train info: resuming from" "train: finished at kimg 0.320 after"; do
  grep -qF "$line" "$LOG" || { show_log "$LOG" 80; fail "job log lacks '$line'"; }
done
grep -q "train: finished at kimg 0.320 after .* (resumed)" "$LOG" || fail "the second start did not resume"
[[ -f "$RUN/checkpoints/ckpt-000000000320.h5" ]] || { ls "$RUN/checkpoints"; fail "no final checkpoint at 0.320 kimg"; }
# The final push replaced the preempted one (75) with 0.
wait_prom "facetex_job_exit_code{job=\"facetex-train\",slurm_job_id=\"$jid\"} == 0" "$TASKS" 30 >/dev/null ||
  fail "the pushed exit code of job $jid is not 0 after the requeue"
note "OK: $(grep -o 'preempted at kimg [0-9.]*' "$LOG"), then resumed to 0.320"
