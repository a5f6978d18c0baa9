#!/usr/bin/env bash
# The main job on the built-in CPU default (the synth64 preset), from a fresh Debian 12 machine: installs what is
# needed, builds, synthesises a small world (rendered synthetic faces with known UV textures and exact geometry),
# trains the texture GAN on it for a few minutes on the CPU (grids, stats, checkpoints in runs/synth64), and prints
# how far the generated textures moved towards the world's true ones (`facetex metrics synth`).
# Also packs the real dlib example photos into shards and streams them through the loader (the data pipeline).
set -euo pipefail
cd "$(dirname "$0")/.."
T0=$SECONDS
scripts/setup.sh
scripts/fetch_assets.sh
scripts/build.sh
FT=${FACETEX_BUILD_DIR:-build}/facetex
echo "== data pipeline: pack the dlib photos into PNG shards, verify, stream"
"$FT" data pack --images assets/dlib/faces --out runs/demo/faces --resolution 256 --square center-crop --storage png \
  --shard-size 5 --overwrite
"$FT" data verify runs/demo/faces
"$FT" data stream runs/demo/faces --batch 4 --epochs 20 --xflip
echo "== synthetic world -> runs/synth-world"
[ -f runs/synth-world/shards/dataset.json ] || "$FT" data synth --out runs/synth-world --count 1024
echo "== train the texture GAN (preset synth64; resumes if runs/synth64 has a checkpoint)"
"$FT" train --preset synth64
"$FT" metrics synth --run runs/synth64
echo "== demo done in $((SECONDS - T0)) s: see runs/synth64 (fakes-*.png, textures-*.png, synth_distance.png)"
