#!/usr/bin/env python3
"""Every facetex_* metric named in the Grafana dashboard and the alert rules exists in the exporter's output.

A short real run of the commands that exist today (data synth, train, data pack), each writing its final
exposition to FACETEX_METRICS_FILE, gives the families the binary really registers. A name used by ops/ must be one
of them, or be in NOT_YET_REGISTERED below.
"""
import glob
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

# Families the dashboard/alerts use that this build does not register yet, each with who will register it.
# Keep this list short: a name here is a promise, and it must leave the list when its code lands.
NOT_YET_REGISTERED = {
}

src = os.environ.get("FACETEX_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
facetex = os.environ["FACETEX_BINARY"]


def used_names():
    texts = {}
    for path in [os.path.join(src, "ops", "alerts.yml")] + glob.glob(os.path.join(src, "ops", "grafana", "*.json")):
        if path.endswith(".json"):
            dash = json.load(open(path))
            exprs = []

            def walk(o):
                if isinstance(o, dict):
                    for k, v in o.items():
                        if k in ("expr", "query", "definition") and isinstance(v, str):
                            exprs.append(v)
                        else:
                            walk(v)
                elif isinstance(o, list):
                    for v in o:
                        walk(v)
            walk(dash)
            texts[path] = "\n".join(exprs)
        else:
            # Only the expressions: annotations mention names in prose.
            texts[path] = "\n".join(re.findall(r"^\s*expr:\s*(.*)$", open(path).read(), re.M))
    names = {}
    for path, text in texts.items():
        for n in re.findall(r"\bfacetex_[a-zA-Z0-9_]+", text):
            names.setdefault(n, set()).add(os.path.relpath(path, src))
    return names


def write_png(path, seed):
    rows = b"".join(b"\0" + bytes(((x * 7 + y * 3 + seed * 40) % 256) for x in range(16 * 3)) for y in range(16))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def exported_families(work):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for k in ("FACETEX_METRICS_PORT", "FACETEX_PUSHGATEWAY", "SLURM_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(k, None)
    world = os.path.join(work, "world")
    os.makedirs(os.path.join(work, "images"))
    os.makedirs(os.path.join(work, "no_photos"))
    with open(os.path.join(work, "no_photos", "notes.txt"), "w") as f:
        f.write("not a photo\n")  # one input: an empty folder is refused
    for i in range(4):
        write_png(os.path.join(work, "images", f"{i}.png"), i)
    # One broken input, skipped: facetex_pack_skipped_inputs_total is registered at the first skip.
    with open(os.path.join(work, "images", "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really")
    runs = {
        "synth": ["data", "synth", "--out", world, "--count", "8", "--resolution", "32", "--texture-resolution", "32",
                  "--shard-size", "8"],
        "train": ["train", "--run", os.path.join(work, "run"), "--shards", f"{world}/shards", "--kimg", "0.016",
                  "--set", "model.resolution=32", "--set", "model.texture_resolution=32", "--set", "model.z_dim=16",
                  "--set", "model.w_dim=16", "--set", "model.channel_base=128", "--set", "model.channel_max=16",
                  "--set", "model.mbstd_group=2", "--set", "train.batch=4", "--set", "run.kimg_per_tick=0.008",
                  "--set", "run.snap_ticks=2", "--set", "run.grid_images=4",
                  "--set", f"model.face_model_mat={world}/model.mat", "--set", f"model.face_model_uv={world}/uv.npy"],
        # reconstruct registers facetex_reconstruct_items_total{status} at start; part 0/2 of one input has nothing
        # to do, so it opens neither the checkpoint nor the landmark predictor (any existing file passes the option
        # check): no assets are needed.
        "reconstruct": ["reconstruct", "--checkpoint", os.path.join(work, "run", "checkpoints", "latest.h5"),
                        "--inputs", os.path.join(work, "no_photos"), "--out", os.path.join(work, "recon"),
                        "--part", "0/2", "--model", "synthetic", "--predictor", os.path.abspath(__file__)],
        "pack": ["data", "pack", "--images", os.path.join(work, "images"), "--out", os.path.join(work, "shards"),
                 "--shard-size", "2", "--on-corrupt", "skip"],
    }
    families = {}
    for name, args in runs.items():
        out = os.path.join(work, f"{name}.prom")
        r = subprocess.run([facetex] + args, env=dict(env, FACETEX_METRICS_FILE=out), capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"FAIL: facetex {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        for fam, typ in re.findall(r"^# TYPE (\S+) (\S+)$", open(out).read(), re.M):
            families[fam] = typ
        print(f"{name}: {out} ok")
    return families


def main():
    names = used_names()
    with tempfile.TemporaryDirectory(prefix="facetex-names-") as work:
        families = exported_families(work)
    problems, promised = [], []
    for n, where in sorted(names.items()):
        base = n
        for suffix in ("_bucket", "_sum", "_count"):
            if n.endswith(suffix) and families.get(n[: -len(suffix)]) == "histogram":
                base = n[: -len(suffix)]
            elif n.endswith(suffix) and n[: -len(suffix)] in NOT_YET_REGISTERED:
                base = n[: -len(suffix)]
        if base in families:
            continue
        if base in NOT_YET_REGISTERED:
            promised.append(base)
            continue
        problems.append(f"{n} (used in {', '.join(sorted(where))}) is not exported")
    stale = [n for n in NOT_YET_REGISTERED if n in families]
    for n in stale:
        problems.append(f"{n} is exported now: remove it from NOT_YET_REGISTERED")
    print(f"{len(names)} names used by ops/, {len(families)} families exported by synth+train+pack; "
          f"not yet registered (allowed): {sorted(set(promised))}")
    if problems:
        print("FAIL:\n  " + "\n  ".join(problems))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
