#!/bin/bash
# Writes the Prometheus file_sd target list of the running Slurm job: one target per task, <node>:<base + local
# rank>, labelled with the job's id and name, to $FACETEX_SD_DIR/<job id>.json (atomically: Prometheus watches the
# folder). The sbatch templates call it at start and remove the file when the job ends. It can also run as the
# cluster's PrologSlurmctld where FACETEX_SD_DIR is set there.
set -euo pipefail
: "${SLURM_JOB_ID:?not inside a Slurm job}" "${FACETEX_SD_DIR:?FACETEX_SD_DIR is not set}"
port=${FACETEX_METRICS_PORT:-9464}
# Tasks per node: --ntasks-per-node, else the first count of SLURM_TASKS_PER_NODE ("2(x3),1" -> 2), else 1.
per_node=${SLURM_NTASKS_PER_NODE:-${SLURM_TASKS_PER_NODE:-1}}
per_node=${per_node%%[(,]*}
targets=()
for node in $(scontrol show hostnames "${SLURM_JOB_NODELIST:-localhost}"); do
  for ((i = 0; i < per_node; i++)); do targets+=("\"$node:$((port + i))\""); done
done
labels="\"slurm_job_id\": \"${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}\", \"slurm_job_name\": \"${SLURM_JOB_NAME:-}\""
[[ -n "${SLURM_ARRAY_TASK_ID:-}" ]] && labels+=", \"array_task_id\": \"$SLURM_ARRAY_TASK_ID\""
mkdir -p "$FACETEX_SD_DIR"
tmp=$(mktemp "$FACETEX_SD_DIR/.$SLURM_JOB_ID.XXXXXX")
(IFS=,; printf '[{"targets": [%s], "labels": {%s}}]\n' "${targets[*]}" "$labels") > "$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$FACETEX_SD_DIR/$SLURM_JOB_ID.json"
