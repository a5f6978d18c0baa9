#!/usr/bin/env bash
# (a) `sbatch slurm/train.sbatch` with the synth64 preset completes; (d) Prometheus scrapes the trainer's metrics
# (file_sd target written by the prologue) while it runs, and the pushed final exit code arrives via the Pushgateway.
# IT_TASKS sets the task count (it_slurm_train_2ranks runs it with 2).
source "$(dirname "$0")/lib.sh"
ensure_world
TASKS=${IT_TASKS:-1}
RUN=$W/run
jid=$(submit -o "$W/train-%j.out" --ntasks-per-node="$TASKS" "$SRC/slurm/train.sbatch" "$RUN" "${TRAIN_ARGS[@]}" --kimg 0.32)
note "submitted train job $jid ($TASKS task(s))"
LOG=$W/train-$jid.out

# (d) scraped while running: the series comes from the file_sd job "facetex", labelled with the Slurm job id.
if ! got=$(wait_prom "facetex_train_images_total{job=\"facetex\",slurm_job_id=\"$jid\"} > 0" "$TASKS" 90); then
  show_log "$LOG"; ls -la "$FACETEX_SD_DIR"; fail "Prometheus never scraped the trainer of job $jid"
fi
state=$(job_field "$jid" JobState)
note "scraped while $state: $got"
[[ $state == RUNNING ]] || fail "the job was $state when its metrics were first seen"
# Captured, not piped into grep -q: under pipefail an early grep exit breaks the writer's pipe (a flaky failure).
up=$(prom_query "facetex_up{job=\"facetex\",slurm_job_id=\"$jid\"}")
(($(grep -c ' 1$' <<<"$up") == TASKS)) || fail "facetex_up is not 1 on every rank: $up"

state=$(wait_job "$jid" 180)
note "job $jid: $state"
[[ $state == COMPLETED ]] || { show_log "$LOG"; fail "train job ended $state"; }
grep -q "train: finished at kimg 0.320" "$LOG" || { show_log "$LOG"; fail "no 'finished at kimg 0.320' line"; }
[[ -f "$RUN/checkpoints/latest.h5" ]] || fail "no latest.h5"
[[ ! -e "$FACETEX_SD_DIR/$jid.json" ]] || fail "the job's file_sd targets were not removed at the end"

# The final push: exit code 0 and facetex_up 0 for this job, scraped from the Pushgateway.
wait_prom "facetex_job_exit_code{job=\"facetex-train\",slurm_job_id=\"$jid\"} == 0" "$TASKS" 30 >/dev/null ||
  fail "no pushed facetex_job_exit_code 0 for job $jid"
note "OK"
