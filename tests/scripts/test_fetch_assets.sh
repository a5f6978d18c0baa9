#!/usr/bin/env bash
# Test of scripts/fetch_assets.sh: a verified assets folder passes (without npm or apt-get), a flipped byte in
# one photo makes --verify-only fail naming that file, and failures leave no staging folders behind.
# To save network it copies an already verified assets folder ($FACETEX_ASSETS or <repo>/assets) when there
# is one; otherwise it runs the real download into a temporary folder.
# Exit 0 = pass, non-zero = fail.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FETCH="$REPO_ROOT/scripts/fetch_assets.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_fetch_assets.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT
DEST="$TMP/assets"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

step "usage"
"$FETCH" --help >"$TMP/help.txt" || fail "--help exited non-zero"
for opt in --dest --verify-only --offline; do
  grep -q -- "$opt" "$TMP/help.txt" || fail "--help does not mention $opt"
done
rc=0; "$FETCH" --no-such-option >/dev/null 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "unknown option exited $rc, expected 2"

step "populate $DEST"
src="${FACETEX_ASSETS:-$REPO_ROOT/assets}"
if [[ -d "$src" ]] && "$FETCH" --verify-only --dest "$src" >/dev/null 2>&1; then
  cp -a --reflink=auto -- "$src" "$DEST"   # a real copy: the byte flip below must not reach $src
else
  echo "no verified assets at $src; downloading into $DEST"
  "$FETCH" --dest "$DEST" || fail "cold install into $DEST failed"
fi

step "warm run: verifies without npm or apt-get"
mkdir -p "$TMP/bin"
for tool in npm apt-get curl; do
  printf '#!/bin/sh\necho "%s called" >>"%s/network-tools-called"\nexit 99\n' "$tool" "$TMP" >"$TMP/bin/$tool"
  chmod +x "$TMP/bin/$tool"
done
out=$(PATH="$TMP/bin:$PATH" "$FETCH" --dest "$DEST" --offline) || fail "warm run exited non-zero"
[[ ! -e "$TMP/network-tools-called" ]] || fail "warm run called: $(cat "$TMP/network-tools-called")"
[[ "$out" == *"present and verified"* ]] || fail "warm run printed: $out"
echo "$out"

step "--verify-only on the intact folder"
"$FETCH" --verify-only --dest "$DEST" >/dev/null || fail "--verify-only failed on a verified folder"

step "flip one byte of a photo"
victim="dlib/faces/bald_guys.jpg"
f="$DEST/$victim"
[[ -f "$f" ]] || fail "$victim not installed"
offset=1000
byte=$(od -An -tu1 -j "$offset" -N1 -- "$f" | tr -d ' ')
printf '%b' "\\0$(printf '%03o' $((byte ^ 0xff)))" | dd of="$f" bs=1 seek="$offset" conv=notrunc status=none
rc=0
PATH="$TMP/bin:$PATH" "$FETCH" --verify-only --dest "$DEST" >"$TMP/out.txt" 2>&1 || rc=$?
cat "$TMP/out.txt"
[[ $rc -eq 1 ]] || fail "--verify-only exited $rc on a corrupted folder, expected 1"
grep -q "MISMATCH .*$victim" "$TMP/out.txt" || fail "--verify-only did not name $victim"
[[ $(grep -c -e MISMATCH -e MISSING "$TMP/out.txt") -eq 1 ]] || fail "--verify-only named more than the one corrupted file"

step "a missing file is named too"
rm -- "$DEST/human/LICENSE"
rc=0; "$FETCH" --verify-only --dest "$DEST" >"$TMP/out.txt" 2>&1 || rc=$?
[[ $rc -eq 1 ]] || fail "--verify-only exited $rc with a missing file"
grep -q "MISSING .*human/LICENSE" "$TMP/out.txt" || fail "--verify-only did not name the missing human/LICENSE"

step "no staging folders left next to the destination"
leftovers=$(find "$TMP" -maxdepth 1 -name 'assets.tmp.*' -o -maxdepth 1 -name 'assets.old.*')
[[ -z "$leftovers" ]] || fail "left behind: $leftovers"

echo "PASS"
