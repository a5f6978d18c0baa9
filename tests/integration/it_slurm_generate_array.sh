#!/usr/bin/env bash
# `slurm/generate.sbatch` as a 3-part array of `generate pairs` over 7 seeds with a trained texture generator: every
# part completes, each seed has its image and ws file exactly once (the parts split the seeds), the files equal a
# one-process run of the same seeds (outputs depend on the seed alone), and each task's pushed metrics — exit code and
# facetex_generate_seeds_total — are visible through Prometheus. A bad template call (no kind) fails with exit 2.
source "$(dirname "$0")/lib.sh"
ensure_world
"$FACETEX" train "${TRAIN_ARGS[@]}" --run "$W/ckpt-run" --kimg 0.004 >"$W/ckpt.log" 2>&1 || { cat "$W/ckpt.log"; fail "train"; }
CKPT=$W/ckpt-run/checkpoints/latest.h5
[[ -f $CKPT ]] || fail "no checkpoint"

jid=$(submit -o "$W/gen-%A_%a.out" --array=0-2 --cpus-per-task=1 "$SRC/slurm/generate.sbatch" 3 pairs \
        --generator "$CKPT" --seeds 0-6 --out "$W/pairs" --batch 2)
note "submitted generate array $jid (3 parts, 7 seeds)"
states=$(wait_array "$jid" 240)
note "task states: $states"
[[ "$states" == "0:COMPLETED 1:COMPLETED 2:COMPLETED" ]] || { for f in "$W"/gen-*.out; do show_log "$f" 20; done; fail "not every part completed"; }
for s in 0 1 2 3 4 5 6; do
  for suffix in .png .npz; do [[ -f "$W/pairs/seed000$s$suffix" ]] || fail "seed $s: no $suffix"; done
done
[[ -f "$W/pairs/generate.json" ]] || fail "no settings record"
"$FACETEX" generate pairs --generator "$CKPT" --seeds 0-6 --out "$W/one" --batch 7 >"$W/one.log" 2>&1 || { cat "$W/one.log"; fail "one-process run"; }
for f in "$W"/one/seed*; do cmp -s "$f" "$W/pairs/$(basename "$f")" || fail "$(basename "$f") differs between the array and one process"; done

sel="job=\"facetex-generate\",slurm_job_id=\"$jid\""
wait_prom "facetex_job_exit_code{$sel} == 0" 3 30 >/dev/null || { prom_query "facetex_job_exit_code{$sel}"; fail "not all three tasks' exit codes arrived"; }
seeds=$(prom_query "sum(facetex_generate_seeds_total{$sel})" | awk '{print $NF}')
[[ "$seeds" == 7 ]] || { prom_query "facetex_generate_seeds_total{$sel}"; fail "pushed seeds sum to '$seeds', expected 7"; }

bad=$(submit -o "$W/bad-%A_%a.out" --array=0 --cpus-per-task=1 "$SRC/slurm/generate.sbatch" 1 --seeds 0)
states=$(wait_array "$bad" 120)
[[ "$states" == "0:FAILED" ]] || { show_log "$W"/bad-*.out; fail "a call without a kind must fail (got $states)"; }
grep -q "textured|pairs" "$W"/bad-*.out || { show_log "$W"/bad-*.out; fail "no usage line"; }
note "OK: 3 parts COMPLETED, 7 seeds once each, equal to one process; pushed seeds 7; bad call FAILED with usage"
