#!/usr/bin/env bash
# `slurm/annotate.sbatch` as a 2-part array over the synthetic world's shards (landmarks from the world's own
# annotations, the deterministic provider): both parts finish, the part manifests merge into an annotated dataset
# that verifies, and every task's pushed exit code is visible through Prometheus's HTTP API.
source "$(dirname "$0")/lib.sh"
ensure_world
jid=$(submit -o "$W/annotate-%A_%a.out" --array=0-1 --cpus-per-task=1 "$SRC/slurm/annotate.sbatch" 2 \
        --shards "$WORLD/shards" --out "$W/annotated" --model synthetic --landmarks annotations --iterations 5)
note "submitted annotate array $jid (2 parts)"
states=$(wait_array "$jid" 180)
note "task states: $states"
[[ "$states" == "0:COMPLETED 1:COMPLETED" ]] || { for f in "$W"/annotate-*.out; do show_log "$f" 20; done; fail "not every part completed"; }
"$FACETEX" data merge-manifest "$W/annotated" >"$W/merge.log" 2>&1 || { cat "$W/merge.log"; fail "merge-manifest"; }
"$FACETEX" data verify "$W/annotated" >"$W/verify.log" 2>&1 || { cat "$W/verify.log"; fail "verify"; }
sel="slurm_job_id=\"$jid\""
wait_prom "facetex_job_exit_code{$sel} == 0" 2 30 >/dev/null || { prom_query "facetex_job_exit_code{$sel}"; fail "not both tasks' exit codes arrived"; }
note "OK: 2 parts COMPLETED, merged and verified; both exit codes pushed"
