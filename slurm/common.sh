# Sourced by the facetex sbatch templates (slurm/*.sbatch); not a job script itself. docs/operations.md explains
# how to submit, watch, preempt, resume and read failures.
#
# Environment the templates read (all optional; sbatch passes the submitting shell's environment on):
#   FACETEX               the facetex binary (default: `facetex` on PATH)
#   FACETEX_METRICS_PORT  base port of the per-rank /metrics endpoints; rank r on a node listens on base + its local
#                         rank. train.sbatch defaults to 9464; the array templates default to 0 (off: array tasks
#                         sharing a node would want the same port; they push instead)
#   FACETEX_METRICS_BIND  listen address (default 0.0.0.0 inside jobs, so the cluster's Prometheus can scrape)
#   FACETEX_SD_DIR        folder of Prometheus file_sd target files (ops/prometheus.yml); the prologue writes
#                         <job id>.json there and the job removes it when it ends; unset = none
#   FACETEX_PUSHGATEWAY   host:port of a Pushgateway; every task pushes its metrics and exit code when it ends
#   FACETEX_SLURM_DIR     where these templates live (default: the submitted script's folder)

FACETEX=${FACETEX:-facetex}
export FACETEX_METRICS_BIND=${FACETEX_METRICS_BIND:-0.0.0.0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}

log() { echo "[$(date '+%F %T')] ${SLURM_JOB_NAME:-job} ${SLURM_JOB_ID:-?}: $*" >&2; }

# The part of an array task (the templates' first argument is N, the number of parts — explicit, so that re-running a
# few failed tasks, e.g. --array=3,7, still splits the same way): sets FACETEX_PART=<task>/N, or logs the usage of
# TEMPLATE and returns 2.  Usage: facetex_array_part TEMPLATE "facetex COMMAND" N
facetex_array_part() {
  local template=$1 command=$2 n=${3:-}
  if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [[ -z "${SLURM_ARRAY_TASK_ID:-}" ]] || ((SLURM_ARRAY_TASK_ID >= n)); then
    log "usage: sbatch --array=0-<N-1> slurm/$template N [$command options...] (got N='$n', task ${SLURM_ARRAY_TASK_ID:-none})"
    return 2
  fi
  FACETEX_PART="$SLURM_ARRAY_TASK_ID/$n"
  log "part $FACETEX_PART on $(hostname)"
}

# Writes this job's Prometheus file_sd targets and removes them when the script exits.
facetex_prologue() {
  [[ -n "${FACETEX_SD_DIR:-}" && "${FACETEX_METRICS_PORT:-0}" != 0 ]] || return 0
  "$FACETEX_SLURM_DIR/prologue.sh" || log "warning: could not write the Prometheus targets (continuing)"
  trap 'rm -f "$FACETEX_SD_DIR/$SLURM_JOB_ID.json"' EXIT
}

# Runs one srun step, forwarding USR1 (sent to this shell by --signal=B:USR1@T, or by
# `scancel --signal=USR1 --batch JOB`) to every task, and ends the job the documented way:
#   0 -> COMPLETED;  75 (preempted, state saved) -> requeued, resumes on the next start;  other -> FAILED.
facetex_step() {
  local pid rc
  trap 'log "USR1: asking every task to save its state and stop"; [[ -n "${pid:-}" ]] && kill -USR1 "$pid" 2>/dev/null' USR1
  srun "$@" &
  pid=$!
  # `wait` returns early whenever a trapped signal arrives; keep waiting until the step has really ended.
  while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
  wait "$pid"
  rc=$?
  trap - USR1
  case $rc in
    0) log "finished" ;;
    75)
      log "preempted: state saved (exit 75); requeueing, the next start resumes"
      if scontrol requeue "$SLURM_JOB_ID"; then
        exit 0
      fi
      log "requeue refused (submit with --requeue); resubmit the same command to resume"
      ;;
    *) log "FAILED with exit code $rc (1 runtime error, 2 usage/config error, 3 data error); see the lines above" ;;
  esac
  exit "$rc"
}
