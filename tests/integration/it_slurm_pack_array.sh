#!/usr/bin/env bash
# (c) `slurm/pack.sbatch` as a 4-part array (2 at a time): every part finishes, the parts merge into a dataset that
# verifies, and every task's pushed metrics (exit code, shards written) are visible through Prometheus's HTTP API
# (Prometheus scraping the Pushgateway).
source "$(dirname "$0")/lib.sh"
# 8 small PNGs (no image library needed: a PNG is zlib-compressed rows plus CRCs).
python3 - "$W/images" <<'PY'
import os, struct, sys, zlib
out = sys.argv[1]; os.makedirs(out, exist_ok=True)
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
for i in range(8):
    rows = b"".join(b"\0" + b"".join(bytes(((x * 7 + y * 3 + i * 40) % 256, (x * i) % 256, (y * 5) % 256))
                                      for x in range(32)) for y in range(32))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    open(os.path.join(out, f"img{i:02d}.png"), "wb").write(png)
PY
jid=$(submit -o "$W/pack-%A_%a.out" --array=0-3%2 --cpus-per-task=1 "$SRC/slurm/pack.sbatch" 4 \
        --images "$W/images" --out "$W/shards" --resolution 32 --shard-size 2)
note "submitted array job $jid (4 parts, 2 at a time)"
states=$(wait_array "$jid" 120)
note "task states: $states"
[[ "$states" == "0:COMPLETED 1:COMPLETED 2:COMPLETED 3:COMPLETED" ]] || { for f in "$W"/pack-*.out; do show_log "$f" 15; done; fail "not every part completed"; }
for i in 0 1 2 3; do
  [[ -f "$W/shards/dataset.part-0000$i-of-00004.json" ]] || fail "part $i wrote no part manifest"
done
"$FACETEX" data merge-manifest "$W/shards" >"$W/merge.log" 2>&1 || { cat "$W/merge.log"; fail "merge-manifest"; }
"$FACETEX" data verify "$W/shards" >"$W/verify.log" 2>&1 || { cat "$W/verify.log"; fail "verify"; }

# Pushed by each task at exit, scraped from the Pushgateway (honor_labels keeps job/slurm_job_id/array_task_id).
sel="job=\"facetex-pack\",slurm_job_id=\"$jid\""
got=$(wait_prom "facetex_job_exit_code{$sel} == 0" 4 30) || { prom_query "facetex_job_exit_code{$sel}"; fail "not all 4 tasks' exit codes arrived"; }
note "pushed exit codes:"; echo "$got"
tasks=$(prom_query "facetex_job_exit_code{$sel}" | grep -o 'array_task_id=[0-9]' | sort | tr '\n' ' ')
[[ "$tasks" == "array_task_id=0 array_task_id=1 array_task_id=2 array_task_id=3 " ]] || fail "array task ids: $tasks"
shards=$(prom_query "sum(facetex_pack_shards_total{$sel})" | awk '{print $NF}')
[[ "$shards" == 4 ]] || fail "pushed facetex_pack_shards_total sums to '$shards', expected 4"
note "OK: 4 parts, 4 shards, merged and verified"
