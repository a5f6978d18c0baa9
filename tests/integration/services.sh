#!/usr/bin/env bash
# The integration tests' private services, all under one throwaway folder and on free ports, so that they never touch
# the machine's own munge/Slurm/Prometheus (recipe: shared/reference/local-services.md):
#   services.sh start DIR   munged (private socket), slurmctld + slurmd (node "localhost"), Prometheus (rules from
#                           ops/alerts.yml plus DIR/test-rules.yml, file_sd targets in DIR/sd, scraping the
#                           Pushgateway), Pushgateway; writes DIR/env.sh for the tests to source. Exit 77 (skip)
#                           when a service binary is missing.
#   services.sh stop DIR    stops them by their pids (munge last: slurm needs it to shut down) and removes DIR.
set -uo pipefail
cmd=${1:?start|stop} R=${2:?DIR}
SRC=$(cd "$(dirname "$0")/../.." && pwd)

stop() {
  [[ -d "$R" ]] || return 0
  local p pids=()
  for p in slurm/slurmctld.pid slurm/slurmd.pid prom/prometheus.pid pgw/pushgateway.pid; do
    [[ -s "$R/$p" ]] && pids+=("$(cat "$R/$p")")
  done
  [[ -f "$R/slurm/slurm.conf" ]] && SLURM_CONF=$R/slurm/slurm.conf timeout 10 scontrol shutdown >/dev/null 2>&1
  for p in prom/prometheus.pid pgw/pushgateway.pid; do [[ -s "$R/$p" ]] && kill "$(cat "$R/$p")" 2>/dev/null; done
  for _ in $(seq 1 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  [[ -s "$R/munge/munged.pid" ]] && kill "$(cat "$R/munge/munged.pid")" 2>/dev/null
  rm -rf "$R"
}

if [[ $cmd == stop ]]; then stop; exit 0; fi

missing=()
for b in munged mungekey slurmctld slurmd sbatch scontrol prometheus promtool prometheus-pushgateway curl python3; do
  command -v "$b" >/dev/null 2>&1 || missing+=("$b")
done
if ((${#missing[@]})); then
  echo "SKIP: integration services unavailable, missing: ${missing[*]} (scripts/setup.sh installs them)"
  exit 77
fi

stop  # a previous run's leftovers
mkdir -p "$R"/munge "$R"/slurm/state "$R"/slurm/spool "$R"/prom/data "$R"/pgw "$R"/sd "$R"/jobs
chmod 755 "$R" "$R"/munge
read -r P_CTLD P_SLURMD P_PROM P_PGW P_METRICS < <(python3 - <<'PY'
import socket
socks = []
for _ in range(5):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
# The metrics base port needs base and base + 1 free (two tasks per node): take a fresh one and check base + 1.
ports = [s.getsockname()[1] for s in socks]
for s in socks: s.close()
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); base = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", base + 1)); break
    except OSError: pass
    finally: a.close(); b.close()
ports[4] = base
print(*ports)
PY
)

mungekey -c -k "$R/munge/munge.key" -b 1024
munged --key-file="$R/munge/munge.key" --socket="$R/munge/munge.socket.2" --pid-file="$R/munge/munged.pid" \
       --seed-file="$R/munge/munged.seed" --log-file="$R/munge/munged.log" </dev/null >/dev/null 2>&1 ||
  { echo "munged failed"; cat "$R/munge/munged.log"; exit 1; }

S=$R/slurm
cat > "$S/slurm.conf" <<CONF
ClusterName=facetexit
SlurmctldHost=localhost
SlurmctldPort=$P_CTLD
SlurmdPort=$P_SLURMD
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$R/munge/munge.socket.2,cred_expire=5
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$S/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MailProg=/bin/true
MinJobAge=600
KillWait=5
# Start requeued and array jobs promptly (the defaults wait up to 30-60 s between scheduling passes).
SchedulerParameters=bf_interval=1,sched_interval=1
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(getconf _NPROCESSORS_ONLN) RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$S/slurm.conf
slurmctld -f "$SLURM_CONF" </dev/null >"$S/slurmctld.out" 2>&1 || { echo "slurmctld failed"; cat "$S"/slurmctld.*; exit 1; }
slurmd -f "$SLURM_CONF" -N localhost </dev/null >"$S/slurmd.out" 2>&1 || { echo "slurmd failed"; cat "$S"/slurmd.*; exit 1; }

# Prometheus: the shipped ops/prometheus.yml with this test's folders, ports and 1 s intervals.
PROM_URL=http://127.0.0.1:$P_PROM
touch "$R/test-rules.yml"
echo "groups: []" > "$R/test-rules.yml"
sed -e "s|scrape_interval: .*|scrape_interval: 1s|" -e "s|evaluation_interval: .*|evaluation_interval: 1s|" \
    -e "s|refresh_interval: .*|refresh_interval: 1s|" \
    -e "s|/var/lib/facetex/prometheus-targets|$R/sd|" -e "s|localhost:9091|127.0.0.1:$P_PGW|" \
    -e "s|- alerts.yml|- $SRC/ops/alerts.yml\n  - $R/test-rules.yml|" \
    "$SRC/ops/prometheus.yml" > "$R/prom/prometheus.yml"
promtool check config "$R/prom/prometheus.yml" >"$R/prom/check.log" 2>&1 || { cat "$R/prom/check.log"; exit 1; }
setsid prometheus --config.file="$R/prom/prometheus.yml" --storage.tsdb.path="$R/prom/data" \
  --web.listen-address="127.0.0.1:$P_PROM" --web.enable-lifecycle </dev/null >"$R/prom/prometheus.log" 2>&1 &
echo $! > "$R/prom/prometheus.pid"
setsid prometheus-pushgateway --web.listen-address="127.0.0.1:$P_PGW" </dev/null >"$R/pgw/pushgateway.log" 2>&1 &
echo $! > "$R/pgw/pushgateway.pid"

cat > "$R/env.sh" <<ENV
export SLURM_CONF=$SLURM_CONF
export IT_DIR=$R
export PROM_URL=$PROM_URL
export FACETEX_PUSHGATEWAY=127.0.0.1:$P_PGW
export FACETEX_SD_DIR=$R/sd
export FACETEX_METRICS_PORT=$P_METRICS
export FACETEX_METRICS_BIND=127.0.0.1
ENV

ok=0
for _ in $(seq 1 100); do
  if [[ "$(sinfo -h -o %T 2>/dev/null)" == idle ]] && curl -sf "$PROM_URL/-/ready" >/dev/null &&
     curl -sf "http://127.0.0.1:$P_PGW/-/ready" >/dev/null; then ok=1; break; fi
  sleep 0.2
done
if ((!ok)); then
  echo "services did not come up"; sinfo; tail -20 "$S"/*.log "$R"/prom/prometheus.log "$R"/pgw/pushgateway.log
  exit 1
fi
echo "services up in $R: slurmctld :$P_CTLD, slurmd :$P_SLURMD, prometheus :$P_PROM, pushgateway :$P_PGW, metrics base :$P_METRICS"
