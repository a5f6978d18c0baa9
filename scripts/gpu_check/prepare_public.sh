#!/usr/bin/env bash
# Puts a snapshot of NVIDIA's public StyleGAN3 code base (https://github.com/NVlabs/stylegan3; its `--cfg stylegan2`
# is StyleGAN2-ADA's config F with the same numerics) into .public/stylegan3 — git-ignored, never part of facetex —
# so run_full.sh can train it side by side with `facetex train` on the GPU machine, which has no network: carry
# .public with build-gpu.
#
#   scripts/gpu_check/prepare_public.sh SOURCE
# SOURCE: a git directory (a clone or a bare mirror: HEAD is exported) or a plain source folder. Only the code is
# copied (no docs/ images). Exit 2 when SOURCE holds no train.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=${1:?usage: prepare_public.sh SOURCE (git dir or source folder of NVlabs/stylegan3)}
DEST=.public/stylegan3
rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp"
if git --git-dir="$SRC" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  git --git-dir="$SRC" archive HEAD | tar -x -C "$DEST.tmp"
  git --git-dir="$SRC" rev-parse HEAD > "$DEST.tmp/.source-commit"
elif git -C "$SRC" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  git -C "$SRC" archive HEAD | tar -x -C "$DEST.tmp"
  git -C "$SRC" rev-parse HEAD > "$DEST.tmp/.source-commit"
else
  cp -r "$SRC"/. "$DEST.tmp"/
fi
[ -f "$DEST.tmp/train.py" ] || { echo "prepare_public: $SRC has no train.py" >&2; rm -rf "$DEST.tmp"; exit 2; }
rm -rf "$DEST.tmp/docs" "$DEST.tmp/.git"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
echo "prepare_public: $(du -sh "$DEST" | cut -f1) in $DEST ($(cat "$DEST/.source-commit" 2>/dev/null || echo 'no git commit'))"
