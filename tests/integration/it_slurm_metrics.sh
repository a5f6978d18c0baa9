#!/usr/bin/env bash
# `slurm/metrics.sbatch fid` with 2 tasks (srun --mpi=pmix) on dlib's johns photos (dlib descriptors as the feature
# stand-in): the job completes and prints the FID_dlib of one process outside Slurm (to 1e-6 relative: the tasks batch
# other images with other thread counts, so the float features round differently); the pushed exit codes of both
# tasks arrive. A metric the template does not know fails with its usage line. Skips without assets.
source "$(dirname "$0")/lib.sh"
ASSETS=${FACETEX_ASSETS:-$SRC/assets}
MANIFEST=$ASSETS/face-api/model/face_recognition_model-weights_manifest.json
[[ -f $MANIFEST && -d $ASSETS/dlib/johns ]] || { echo "SKIP: assets missing (scripts/fetch_assets.sh)"; exit 77; }
mkdir -p "$W/a" "$W/b"
cp "$ASSETS"/dlib/johns/John_Salley/*.jpg "$W/a/"
cp "$ASSETS"/dlib/johns/John_Simm/*.jpg "$W/b/"
args=(--real "$W/a" --fake "$W/b" --face-api "$MANIFEST" --batch 4 --cache off)

"$FACETEX" metrics fid "${args[@]}" --out "$W/one.json" >"$W/one.log" 2>&1 || { cat "$W/one.log"; fail "one-process fid"; }
jid=$(submit -o "$W/metrics-%j.out" --ntasks=2 --cpus-per-task=1 "$SRC/slurm/metrics.sbatch" fid "${args[@]}" --out "$W/two.json")
state=$(wait_job "$jid" 180)
note "metrics job $jid (2 tasks): $state"
[[ $state == COMPLETED ]] || { show_log "$W/metrics-$jid.out"; fail "metrics job ended $state"; }
python3 - "$W" <<'PY' || fail "the 2-task job's FID differs"
import json, sys
w = sys.argv[1]
one, two = json.load(open(f"{w}/one.json")), json.load(open(f"{w}/two.json"))
print(f"FID_dlib: 1 process {one['value']!r}, 2 Slurm tasks {two['value']!r}")
assert one["metric"] == two["metric"] == "FID_dlib" and two["ranks"] == 2, (one, two)
assert abs(one["value"] - two["value"]) <= 1e-6 * abs(one["value"]), (one, two)
PY
sel="job=\"facetex-metrics\",slurm_job_id=\"$jid\""
wait_prom "facetex_job_exit_code{$sel} == 0" 2 30 >/dev/null || { prom_query "facetex_job_exit_code{$sel}"; fail "not both tasks' exit codes arrived"; }

bad=$(submit -o "$W/bad-%j.out" --ntasks=1 "$SRC/slurm/metrics.sbatch" fidd "${args[@]}")
state=$(wait_job "$bad" 60)
[[ $state == FAILED ]] || { show_log "$W/bad-$bad.out"; fail "an unknown metric must fail (got $state)"; }
grep -q "fid|kid|recon|synth" "$W/bad-$bad.out" || { show_log "$W/bad-$bad.out"; fail "no usage line"; }
note "OK: 2-task FID equals one process to 1e-6; pushed exit codes; unknown metric FAILED with usage"
