#!/usr/bin/env python3
"""(e) The stalled-training alert fires for a real trainer that is alive but makes no progress.

The trainer runs with its log (stderr) going into a 4 KiB pipe. Once Prometheus has seen it train, the test stops
reading; the trainer's tick lines fill the pipe and the next one blocks its main thread: the process stays up and its
exporter (on its own threads) keeps answering scrapes, but no image is consumed any more — the same picture as a hung
collective or a stuck filesystem. The alert rule is ops/alerts.yml's FacetexTrainingStalled with test windows
([10m] -> [4s], for: 5m -> 2s), loaded into the fixture's Prometheus next to the shipped rules.
"""
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import re
import urllib.request

T0 = time.time()


def note(msg):
    print(f"[it_alert_stall +{time.time() - T0:.0f}s] {msg}", flush=True)


def fail(msg):
    note("FAIL: " + msg)
    sys.exit(1)


it_root = os.environ["FACETEX_IT_DIR"]
facetex = os.environ["FACETEX_BINARY"]
src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
env_file = os.path.join(it_root, "env.sh")
if not os.path.exists(env_file):
    print(f"SKIP: the integration services are not running ({env_file} missing)")
    sys.exit(77)
env = dict(os.environ)
for line in open(env_file):
    if line.startswith("export "):
        k, v = line[len("export "):].strip().split("=", 1)
        env[k] = v
env["OMP_NUM_THREADS"] = "1"
for k in ("SLURM_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS", "FACETEX_PUSHGATEWAY"):
    env.pop(k, None)
prom = env["PROM_URL"]
work = os.path.join(env["IT_DIR"], "jobs", "it_alert_stall")
subprocess.run(["rm", "-rf", work], check=True)
os.makedirs(work)
world = os.path.join(env["IT_DIR"], "world")


def query(expr):
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)["data"]["result"]


def reload_prometheus():
    urllib.request.urlopen(urllib.request.Request(prom + "/-/reload", method="POST"), timeout=10).read()


# The test rule: the shipped expression with short windows.
m = re.search(r"- alert: FacetexTrainingStalled\n\s+expr: (.*)\n", open(os.path.join(src, "ops", "alerts.yml")).read())
if not m or "[10m]" not in m.group(1):
    fail("ops/alerts.yml: FacetexTrainingStalled with a [10m] window not found; update this test")
expr = m.group(1).replace("[10m]", "[4s]")
test_rules = os.path.join(env["IT_DIR"], "test-rules.yml")
with open(test_rules, "w") as f:  # JSON is YAML: no YAML library needed
    json.dump({"groups": [{"name": "facetex-test", "rules": [
        {"alert": "FacetexTrainingStalledTest", "expr": expr, "for": "2s", "labels": {"severity": "critical"}}]}]}, f)
reload_prometheus()

if not os.path.exists(os.path.join(world, "shards", "dataset.json")):
    subprocess.run([facetex, "data", "synth", "--out", world, "--count", "16", "--resolution", "32",
                    "--texture-resolution", "32", "--shard-size", "8"], env=env, check=True, capture_output=True)

port = int(env["FACETEX_METRICS_PORT"])
target = f"127.0.0.1:{port}"
sd_file = os.path.join(env["FACETEX_SD_DIR"], "stall-test.json")
with open(sd_file + ".tmp", "w") as f:
    json.dump([{"targets": [target], "labels": {"slurm_job_id": "stall-test"}}], f)
os.rename(sd_file + ".tmp", sd_file)

r, w = os.pipe()
fcntl.fcntl(w, 1031, 4096)  # F_SETPIPE_SZ: a small pipe fills with a few log lines
args = [facetex, "train", "--run", os.path.join(work, "run"), "--kimg", "100",
        "--preset", "synth64", "--shards", f"{world}/shards",
        "--set", "model.resolution=32", "--set", "model.texture_resolution=32", "--set", "model.z_dim=16",
        "--set", "model.w_dim=16", "--set", "model.channel_base=128", "--set", "model.channel_max=16",
        "--set", "model.mbstd_group=2", "--set", "train.batch=4", "--set", "run.kimg_per_tick=0.008",
        "--set", "run.snap_ticks=1000", "--set", "run.grid_images=4",
        "--set", f"model.face_model_mat={world}/model.mat", "--set", f"model.face_model_uv={world}/uv.npy"]
proc = subprocess.Popen(args, stdout=w, stderr=w, env=dict(env, FACETEX_METRICS_PORT=str(port)))
log = b""
try:
    # Read the log until Prometheus has scraped some training progress.
    os.set_blocking(r, False)
    deadline = time.time() + 90
    while True:
        try:
            log += os.read(r, 65536)
        except BlockingIOError:
            pass
        if proc.poll() is not None:
            fail(f"trainer exited ({proc.returncode}):\n{log.decode(errors='replace')[-3000:]}")
        if query(f'facetex_train_images_total{{instance="{target}"}} > 0'):
            break
        if time.time() > deadline:
            fail("Prometheus never saw the trainer progress:\n" + log.decode(errors="replace")[-3000:])
        time.sleep(0.3)
    note("trainer scraped and progressing; no longer reading its log")
    # From here on nobody reads: a few more tick lines fill the pipe and the next one blocks the training loop.
    # (Filling it from this side would need O_NONBLOCK on the shared pipe, which the trainer would see too.)
    # The alert: pending after the window shows no increase, firing 2 s later.
    deadline = time.time() + 60
    fired = None
    while time.time() < deadline and not fired:
        with urllib.request.urlopen(prom + "/api/v1/alerts", timeout=5) as resp:
            alerts = json.load(resp)["data"]["alerts"]
        fired = [a for a in alerts if a["labels"].get("alertname") == "FacetexTrainingStalledTest"
                 and a["labels"].get("instance") == target and a["state"] == "firing"]
        if proc.poll() is not None:
            fail(f"trainer exited ({proc.returncode}) instead of stalling")
        time.sleep(0.5)
    if not fired:
        fail("FacetexTrainingStalledTest did not fire within 60 s; series: "
             + json.dumps(query(f'facetex_train_images_total{{instance="{target}"}}')))
    up = query(f'up{{instance="{target}"}}')
    if not up or up[0]["value"][1] != "1":
        fail(f"the stalled trainer's exporter should still answer scrapes (up = {up})")
    note(f"FacetexTrainingStalledTest firing for {target} while up == 1 (trainer alive, stuck writing its log)")
finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.close(w)
    os.close(r)
    for f in (sd_file,):
        if os.path.exists(f):
            os.remove(f)
    with open(test_rules, "w") as f:
        f.write("groups: []\n")
    try:
        reload_prometheus()
    except Exception:
        pass
note("OK")
