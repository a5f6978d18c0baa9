#!/usr/bin/env bash
# (f) Failures end the job FAILED with the documented exit code and one clear line in the job log, and leave no
# output that looks complete: a bad config value (usage error, 2) and a missing weight file to start from
# (model.init_weights; `facetex train` has no --resume FILE: it resumes from RUN_DIR by itself) (data error, 3).
# Both push their exit codes, and Prometheus's FacetexBatchJobFailed alert fires for them.
source "$(dirname "$0")/lib.sh"
ensure_world
bad=$(submit -o "$W/bad-config-%j.out" "$SRC/slurm/train.sbatch" "$W/run-bad-config" "${TRAIN_ARGS[@]}" --kimg 0.1 \
        --set train.batch=many)
missing=$(submit -o "$W/missing-%j.out" "$SRC/slurm/train.sbatch" "$W/run-missing" "${TRAIN_ARGS[@]}" --kimg 0.1 \
        --set model.init_weights="$W/no-such-checkpoint.h5")
note "submitted bad-config job $bad and missing-checkpoint job $missing"

check() {  # job, expected exit code, expected message, run dir
  local id=$1 code=$2 msg=$3 run=$4 log state
  state=$(wait_job "$id" 120)
  log=$(ls "$W"/*-"$id".out)
  [[ $state == FAILED ]] || { show_log "$log"; fail "job $id ended $state, expected FAILED"; }
  [[ $(job_field "$id" ExitCode) == "$code:0" ]] || fail "job $id ExitCode $(job_field "$id" ExitCode), expected $code:0"
  grep -qF "$msg" "$log" || { show_log "$log"; fail "job $id log lacks '$msg'"; }
  grep -qF "FAILED with exit code $code" "$log" || { show_log "$log"; fail "job $id log lacks the script's FAILED line"; }
  [[ $(job_field "$id" Restarts) == 0 ]] || fail "job $id was requeued"
  # Nothing that looks like a finished (or resumable) run.
  if compgen -G "$run/checkpoints/*.h5" >/dev/null; then ls -R "$run"; fail "job $id left checkpoints"; fi
  note "job $id: FAILED, exit $code, '$(grep -F "$msg" "$log" | head -1)'"
}
check "$bad" 2 "facetex: usage error: config key 'train.batch': expected an integer" "$W/run-bad-config"
check "$missing" 3 "facetex: data error: $W/no-such-checkpoint.h5: no such file" "$W/run-missing"

# Pushed exit codes -> the FacetexBatchJobFailed alert (ops/alerts.yml) fires for both jobs.
for id in "$bad" "$missing"; do
  wait_prom "ALERTS{alertname=\"FacetexBatchJobFailed\",alertstate=\"firing\",slurm_job_id=\"$id\"}" 1 30 >/dev/null ||
    { prom_query "facetex_job_exit_code"; fail "FacetexBatchJobFailed did not fire for job $id"; }
done
note "OK: both FAILED with clear messages; FacetexBatchJobFailed firing for both"
