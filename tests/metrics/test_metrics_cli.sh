#!/bin/bash
# `facetex metrics fid|kid|recon` end to end on dlib's johns chips (dlib descriptors as the feature stand-in), one
# process and under `mpirun -np 2` (the multi-rank job must print the same numbers). Skips (77) without the assets.
# Usage: test_metrics_cli.sh FACETEX_BINARY
set -euo pipefail
BIN=$1
SRC=$(cd "$(dirname "$0")/../.." && pwd)
ASSETS=${FACETEX_ASSETS:-$SRC/assets}
MANIFEST=$ASSETS/face-api/model/face_recognition_model-weights_manifest.json
PREDICTOR=$ASSETS/dlib/shape_predictor_68_face_landmarks.dat
if [[ ! -f $MANIFEST || ! -d $ASSETS/dlib/johns || ! -f $PREDICTOR ]]; then
  echo "skip: assets missing (scripts/fetch_assets.sh)"; exit 77
fi
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
mkdir -p "$T/a" "$T/b"
cp "$ASSETS"/dlib/johns/John_Salley/*.jpg "$ASSETS"/dlib/johns/John_Savage/*.jpg "$T/a/"
cp "$ASSETS"/dlib/johns/John_Simm/*.jpg "$ASSETS"/dlib/johns/John_Shimkus/*.jpg "$T/b/"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader \
  OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1 FACETEX_COMM_TIMEOUT=120 FACETEX_CACHE_DIR=$T/cache
common=(--face-api "$MANIFEST" --batch 8)
value() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
fail() { echo "FAIL: $*"; exit 1; }

"$BIN" metrics fid --real "$T/a" --fake "$T/a" "${common[@]}" --out "$T/fid_self.json"
"$BIN" metrics fid --real "$T/a" --fake "$T/b" "${common[@]}" --out "$T/fid1.json"
"$BIN" metrics kid --real "$T/a" --fake "$T/b" "${common[@]}" --subsets 10 --out "$T/kid1.json"
[[ $(value "$T/fid1.json" metric) == FID_dlib ]] || fail "stand-in FID must be labelled FID_dlib"
# The real set's features: extracted by the first run, read from the cache by the next ones (same value as without
# the cache); a changed real image is a miss.
[[ $(value "$T/fid_self.json" real_features_cached) == False ]] || fail "first run cannot hit the cache"
[[ $(value "$T/fid1.json" real_features_cached) == True ]] || fail "second run must read the cached real features"
"$BIN" metrics fid --real "$T/a" --fake "$T/b" "${common[@]}" --cache off --out "$T/fid1_nocache.json"
[[ $(value "$T/fid1_nocache.json" value) == $(value "$T/fid1.json" value) ]] || fail "cached features differ"
[[ $(value "$T/fid1_nocache.json" real_features_cache) == None ]] || fail "--cache off must not use a cache"
"$BIN" metrics fid --real "$T/b" --fake "$T/a" "${common[@]}" --max-items 5 --out "$T/fid_b5.json"
[[ $(value "$T/fid_b5.json" real_features_cached) == False ]] || fail "another set or count is another key"
touch -d '2001-01-01' "$(ls "$T"/a/*.jpg | head -1)"
"$BIN" metrics fid --real "$T/a" --fake "$T/b" "${common[@]}" --out "$T/fid_touched.json"
[[ $(value "$T/fid_touched.json" real_features_cached) == False ]] || fail "a changed image must miss the cache"
/usr/bin/python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
self_fid = json.load(open(f"{t}/fid_self.json"))["value"]
fid = json.load(open(f"{t}/fid1.json"))["value"]
kid = json.load(open(f"{t}/kid1.json"))["value"]
print(f"FID_dlib(a, a) = {self_fid:.3e}, FID_dlib(a, b) = {fid:.4f}, KID_dlib(a, b) = {kid:.4f}")
assert abs(self_fid) < 1e-6, self_fid
assert fid > 0.1 and kid > 0.0, (fid, kid)
PY

# Reconstruction metrics from --pred/--target/--mask folders and from an output folder; masks written as PNG.
mkdir -p "$T/pred" "$T/target" "$T/mask" "$T/out"
i=0
for f in "$ASSETS"/dlib/johns/John_Salley/*.jpg; do
  g=$(ls "$ASSETS"/dlib/johns/John_Salley/*.jpg | sed -n "$(( (i + 1) % 11 + 1 ))p")
  cp "$f" "$T/target/$i.jpg"; cp "$g" "$T/pred/$i.jpg"; cp "$T/target/$i.jpg" "$T/mask/$i.jpg"
  i=$((i + 1))
done
/usr/bin/python3 - "$T" <<'PY'
import os, struct, sys, zlib
t = sys.argv[1]
def png(path, w, h, pix):  # pix(x, y) -> (r, g, b)
    raw = b"".join(b"\0" + bytes(v for x in range(w) for v in pix(x, y)) for y in range(h))
    chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
for f in os.listdir(f"{t}/mask"):
    os.remove(f"{t}/mask/{f}")
    n = f.split(".")[0]
    png(f"{t}/mask/{n}.jpg", 150, 150, lambda x, y: (255,) * 3 if (x - 75) ** 2 + (y - 80) ** 2 < 55 ** 2 else (0,) * 3)
PY
"$BIN" metrics recon --pred "$T/pred" --target "$T/target" --mask "$T/mask" --face-api "$MANIFEST" \
  --landmarks "$PREDICTOR" --out "$T/recon1.json"
mpirun -np 2 "$BIN" metrics recon --pred "$T/pred" --target "$T/target" --mask "$T/mask" --face-api "$MANIFEST" \
  --landmarks "$PREDICTOR" --out "$T/recon2.json"
mpirun -np 2 "$BIN" metrics fid --real "$T/a" --fake "$T/b" "${common[@]}" --out "$T/fid2.json"
mpirun -np 2 "$BIN" metrics kid --real "$T/a" --fake "$T/b" "${common[@]}" --subsets 10 --out "$T/kid2.json"
/usr/bin/python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
for name in ("fid", "kid"):
    one, two = json.load(open(f"{t}/{name}1.json")), json.load(open(f"{t}/{name}2.json"))
    assert two["ranks"] == 2 and two["real_features_cached"], two  # both ranks read rank 0's file
    print(f"{one['metric']}: 1 rank {one['value']!r}, 2 ranks {two['value']!r}")
    assert abs(one["value"] - two["value"]) <= 1e-9 * max(1.0, abs(one["value"])), (one, two)
one, two = json.load(open(f"{t}/recon1.json")), json.load(open(f"{t}/recon2.json"))
print("recon 1 rank:", {k: one[k] for k in ("ssim", "psnr", "l1", "id_cos_dlib")}, "2 ranks:",
      {k: two[k] for k in ("ssim", "psnr", "l1", "id_cos_dlib")})
assert len(one["items"]) == 11 and all(i["face_found"] for i in one["items"]), one["items"]
for k in ("ssim", "psnr", "l1", "id_cos_dlib"):
    assert abs(one[k] - two[k]) < 1e-9, (k, one[k], two[k])
assert 0 < one["ssim"] < 1 and one["l1"] > 0 and 0.5 < one["id_cos_dlib"] < 1.0, one
PY

# The same numbers from a reconstruction output folder (per-item folders with the projector's file names).
for n in $(seq 0 10); do
  mkdir -p "$T/out/$n"
  cp "$T/target/$n.jpg" "$T/out/$n/target.png"; cp "$T/pred/$n.jpg" "$T/out/$n/proj_composed.png"
  cp "$T/mask/$n.jpg" "$T/out/$n/mask.png"
done
mkdir -p "$T/out/.partial-x-1" && cp "$T/out/0/"* "$T/out/.partial-x-1/"  # an unfinished item: not counted
"$BIN" metrics recon --outputs "$T/out" --face-api none --out "$T/recon3.json"
/usr/bin/python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
one, three = json.load(open(f"{t}/recon1.json")), json.load(open(f"{t}/recon3.json"))
assert len(three["items"]) == 11 and "id_cos_dlib" not in three
for k in ("ssim", "psnr", "l1"):
    assert abs(one[k] - three[k]) < 1e-12, (k, one[k], three[k])
PY

# LightCNN-29v2 identity column with a random-weight network in the published layout (needs python3-torch).
if /usr/bin/python3 -c 'import torch, numpy, h5py' 2>/dev/null; then
  /usr/bin/python3 "$SRC/tests/metrics/make_light_cnn_reference.py" "$T"
  /usr/bin/python3 "$SRC/tools/convert_torch_state_dict.py" "$T/light_cnn.pth" "$T/light_cnn.h5" --key state_dict \
    --prefix-strip module. --name light_cnn
  "$BIN" metrics recon --outputs "$T/out" --lightcnn "$T/light_cnn.h5" --out "$T/recon4.json"
  /usr/bin/python3 - "$T" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/recon4.json"))
assert "id_cos_lightcnn" in r and -1 <= r["id_cos_lightcnn"] <= 1, r
print("id_cos_lightcnn (random weights, smoke value):", r["id_cos_lightcnn"])
PY
fi
echo "metrics cli: ok"
