#!/usr/bin/env bash
# The shipped Prometheus config and alert rules are valid and the alert unit tests pass (promtool); the Grafana
# dashboard is valid JSON; the Slurm templates parse. Skips (77) without promtool.
set -euo pipefail
SRC=${FACETEX_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
for f in "$SRC"/slurm/*.sbatch "$SRC"/slurm/*.sh; do bash -n "$f"; done
python3 -c 'import json, sys; [json.load(open(f)) for f in sys.argv[1:]]' "$SRC"/ops/grafana/*.json
command -v promtool >/dev/null || { echo "SKIP: promtool not installed (scripts/setup.sh installs prometheus)"; exit 77; }
cd "$SRC/ops"
promtool check config prometheus.yml
promtool check rules alerts.yml
promtool test rules alerts_test.yml
