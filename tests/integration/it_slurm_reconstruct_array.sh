#!/usr/bin/env bash
# `slurm/reconstruct.sbatch` as a 2-part array over real photos (dlib's examples) plus one file that is not an
# image: both parts finish, every input gets its manifest status in the part manifests, finished items are complete,
# and each task's pushed metrics — exit code and facetex_reconstruct_items_total by status — are visible through
# Prometheus's HTTP API (Prometheus scraping the Pushgateway).
source "$(dirname "$0")/lib.sh"
ensure_world
PHOTOS=${FACETEX_ASSETS:-$SRC/assets}/dlib/faces
[[ -d $PHOTOS ]] || { echo "SKIP: no dlib example photos in $PHOTOS (scripts/fetch_assets.sh)"; exit 77; }
mkdir -p "$W/inputs"
n=0
for f in "$PHOTOS"/2008_002470.jpg "$PHOTOS"/2009_004587.jpg "$PHOTOS"/2008_004950.jpg; do
  [[ -f $f ]] && cp "$f" "$W/inputs/" && n=$((n + 1))
done
((n >= 2)) || { echo "SKIP: expected dlib example photos missing in $PHOTOS"; exit 77; }
echo "not an image" >"$W/inputs/notes.jpg"
total=$((n + 1))

# A small texture generator to project into: one training iteration of the test preset.
"$FACETEX" train "${TRAIN_ARGS[@]}" --run "$W/ckpt-run" --kimg 0.004 >"$W/ckpt.log" 2>&1 || { cat "$W/ckpt.log"; fail "train"; }
CKPT=$W/ckpt-run/checkpoints/latest.h5
[[ -f $CKPT ]] || fail "no checkpoint"

jid=$(submit -o "$W/recon-%A_%a.out" --array=0-1 --cpus-per-task=1 "$SRC/slurm/reconstruct.sbatch" 2 \
        --checkpoint "$CKPT" --inputs "$W/inputs" --out "$W/recon" --steps 3 --w-avg-samples 64 \
        --crop-resolution 64 --batch 2)
note "submitted reconstruct array $jid (2 parts, $total inputs)"
states=$(wait_array "$jid" 240)
note "task states: $states"
[[ "$states" == "0:COMPLETED 1:COMPLETED" ]] || { for f in "$W"/recon-*.out; do show_log "$f" 20; done; fail "not every part completed"; }

# Every input has exactly one status line across the part manifests; the non-image is bad_input.
lines=$(cat "$W"/recon/manifest*.jsonl | wc -l)
[[ $lines == "$total" ]] || { cat "$W"/recon/manifest*.jsonl; fail "$lines manifest lines for $total inputs"; }
grep -h 'notes.jpg' "$W"/recon/manifest*.jsonl | grep '"bad_input"' >/dev/null || { cat "$W"/recon/manifest*.jsonl; fail "notes.jpg is not bad_input"; }
ok=$(grep -h '"status": *"ok"' "$W"/recon/manifest*.jsonl | wc -l)
((ok >= 1)) || { cat "$W"/recon/manifest*.jsonl; fail "no photo reconstructed"; }

sel="job=\"facetex-reconstruct\",slurm_job_id=\"$jid\""
got=$(wait_prom "facetex_job_exit_code{$sel} == 0" 2 30) || { prom_query "facetex_job_exit_code{$sel}"; fail "not both tasks' exit codes arrived"; }
items=$(prom_query "sum(facetex_reconstruct_items_total{$sel})" | awk '{print $NF}')
[[ "$items" == "$total" ]] || { prom_query "facetex_reconstruct_items_total{$sel}"; fail "pushed items sum to '$items', expected $total"; }
note "OK: 2 parts COMPLETED; $ok ok of $total inputs; pushed items by status:"
prom_query "sum by (status) (facetex_reconstruct_items_total{$sel})"
