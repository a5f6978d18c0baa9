#!/usr/bin/env bash
# The main job on the built-in CPU default, from a fresh Debian 12 machine: installs what is needed, builds, then
# packs the real dlib example photos into HDF5 shards, verifies them, writes a contact sheet and streams them
# through the training loader, printing throughput. Outputs go to runs/demo (or $FACETEX_DEMO_DIR).
# (The training issues turn this into the synthetic-world training demo.)
set -euo pipefail
cd "$(dirname "$0")/.."
T0=$SECONDS
scripts/setup.sh
scripts/fetch_assets.sh
scripts/build.sh
OUT=${FACETEX_DEMO_DIR:-runs/demo}
FT=${FACETEX_BUILD_DIR:-build}/facetex
mkdir -p "$OUT"
echo "== pack: 12 photos (non-square, various sizes) -> 256x256 PNG shards; 55 aligned chips -> raw shards"
"$FT" data pack --images assets/dlib/faces --out "$OUT/faces" --resolution 256 --square center-crop --storage png \
  --shard-size 5 --overwrite
"$FT" data pack --images assets/dlib/johns --out "$OUT/johns" --storage raw --shard-size 16 --overwrite
echo "== verify and inspect"
"$FT" data verify "$OUT/faces"
"$FT" data verify "$OUT/johns"
"$FT" data inspect "$OUT/faces" --sheet "$OUT/faces-sheet.png" --rows 12
"$FT" data inspect "$OUT/johns" --sheet "$OUT/johns-sheet.png" --rows 55 --tile 75
echo "== stream through the loader (shuffled, mirrored, batches of uint8 NCHW)"
"$FT" data stream "$OUT/faces" --batch 4 --epochs 50 --xflip
"$FT" data stream "$OUT/johns" --batch 8 --epochs 50 --xflip
echo "== demo done in $((SECONDS - T0)) s; outputs in $OUT"
