#!/usr/bin/env bash
# Installs the real offline assets facetex uses for tests, demos and the photo -> UV pipeline into a
# git-ignored folder (default: <repo>/assets), idempotently, with every file checked against
# scripts/assets.sha256. A second run with everything present verifies and exits without network access.
#
# What goes where (sources are pinned; see reference/real-assets.md in the shared docs):
#   dlib/faces/                 Debian libdlib19.1 /usr/share/doc/libdlib19.1/examples/faces/ : photos, incl. 43
#                               PASCAL-VOC faces with 68-point ground truth (*_with_face_landmarks.xml), bald_guys.jpg
#   dlib/johns/<name>/*.jpg     Debian libdlib19.1 examples/johns/ : 55 aligned 150x150 chips of 5 identities
#   dlib/shape_predictor_68_face_landmarks.dat   Debian libdlib-data /usr/share/dlib/
#   face-api/model/face_recognition_model*       npm @vladmandic/face-api@1.7.15 : dlib 128-D ResNet (tfjs, uint8)
#   face-api/LICENSE
#   mediapipe/face_mesh_solution_packed_assets.data   npm @mediapipe/face_mesh@0.4.1657299874
#   mediapipe/geometry_pipeline_metadata_landmarks.binarypb   bytes [3737848, 3757224) of the file above:
#                               the canonical face mesh (468 vertices + UVs, 898 triangles)
#   mediapipe/package.json      the package ships no LICENSE file; its package.json is the licence record
#   human/facemeshcoords.ts     npm @vladmandic/human@3.3.6 src/face/ : UV468 / TRI468 / VTX68 (68 -> 468 map)
#   human/LICENSE
# If the Debian files are not on this machine (packages absent, or /usr/share/doc excluded by a dpkg
# path-exclude), the .debs are fetched with `apt-get download` (no root needed) and unpacked with dpkg-deb -x.
# npm tarballs are fetched with `npm pack` and checked against the registry integrity (sha512) pinned below.
#
# LICENCES -- nothing under assets/ is ever committed (it is in .gitignore):
#   * shape_predictor_68_face_landmarks.dat: Debian labels it CC0, but upstream (dlib / iBUG 300-W training
#     data) says NO COMMERCIAL USE. Research and tests only; do not ship it in a product.
#   * dlib example photos: labelled public domain by Debian, but they are PASCAL-VOC/Flickr pictures and web
#     photos of real people (bald_guys, Tom Cruise, johns). They are installed from the packages, never copied
#     into the repository.
#   * MediaPipe face mesh data: Apache-2.0. face-api and human (code and weights): MIT. dlib recognition
#     weights: public domain per dlib-models.
#
# Usage: scripts/fetch_assets.sh [--dest DIR] [--verify-only] [--offline] [--write-checksums] [--help]
# Exit codes: 0 ok, 1 failure (missing tool, download or checksum mismatch), 2 usage error.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
MANIFEST="$SCRIPT_DIR/assets.sha256"
PROG="fetch_assets"

# npm packages: name@version and the registry's dist.integrity (`npm view <pkg>@<ver> dist.integrity`).
NPM_FACE_API="@vladmandic/face-api@1.7.15"
NPM_FACE_API_SRI="sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw=="
NPM_FACE_MESH="@mediapipe/face_mesh@0.4.1657299874"
NPM_FACE_MESH_SRI="sha512-Jdza+77HjDH4SQ6/DAYmnKUYdh2fU1GbhuGqXZbkK5rnJKpZLZe5KQeJmwUq9dmkYkCPSq4oe9vmcuveRPpwag=="
NPM_HUMAN="@vladmandic/human@3.3.6"
NPM_HUMAN_SRI="sha512-Nr5mPfq1gQ+uKeXY5uM3Fj8UxvF5CEh2s6txM5wRThqaW0mF9huooOuZSrT8hhGho0hGaXLFdAwfD/2+teCv6A=="
# Canonical mesh inside the packed assets (offsets from face_mesh_solution_packed_assets_loader.js).
MESH_START=3737848
MESH_END=3757224
MESH_MD5="42d2c39c5a6211c77b0e6d05801117a1"

usage() {
  cat <<EOF
Usage: scripts/fetch_assets.sh [options]

Installs real face photos (dlib examples), the dlib 68-point landmark model, the dlib face-recognition
weights (npm @vladmandic/face-api), the MediaPipe canonical face mesh (npm @mediapipe/face_mesh) and the
68->468 landmark map (npm @vladmandic/human) into an assets folder, and verifies every file against
scripts/assets.sha256. Files are assembled in DEST.tmp.XXXXXX and moved into place only after they verify,
so DEST is either complete and verified or left as it was. If DEST already verifies, nothing is downloaded.

Options:
  --dest DIR         install into DIR (default: \$FACETEX_ASSETS, else <repo>/assets).
                     DIR is owned by this script: a rebuild replaces it as a whole.
  --verify-only      only check DIR against the checksum list; exit 1 naming each bad or missing file.
  --offline          never use the network: take Debian files from the installed packages and npm
                     tarballs from npm's local cache only; fail instead of downloading.
  --write-checksums  maintainers: build from the sources without the list, then rewrite
                     scripts/assets.sha256 from the result (review the diff before committing).
  -h, --help         show this help.

Environment:
  FACETEX_ASSETS          default destination.
  FACETEX_ASSETS_SYSROOT  root to read the installed Debian files from (default /; tests use an
                          empty dir to exercise the apt-get download fallback).
  npm_config_*            npm settings (registry, cache, proxy) are honoured by npm pack.

Licences: the 68-point shape predictor is research/non-commercial upstream (iBUG 300-W) although Debian
labels it CC0; the photos are third-party pictures of real people. Both are installed from packages at
setup/test time and must never be committed. Mesh data Apache-2.0; face-api and human MIT.
EOF
}

say() { echo "$PROG: $*"; }
die() { echo "$PROG: error: $*" >&2; exit 1; }

DEST="${FACETEX_ASSETS:-$REPO_ROOT/assets}"
VERIFY_ONLY=0
OFFLINE=0
WRITE_CHECKSUMS=0
SYSROOT="${FACETEX_ASSETS_SYSROOT:-}"
while (($#)); do
  case "$1" in
    --dest) [[ $# -ge 2 && -n "$2" ]] || { echo "$PROG: --dest needs a directory" >&2; exit 2; }
            DEST="$2"; shift 2 ;;
    --dest=*) DEST="${1#--dest=}"; [[ -n "$DEST" ]] || { echo "$PROG: --dest needs a directory" >&2; exit 2; }; shift ;;
    --verify-only) VERIFY_ONLY=1; shift ;;
    --offline) OFFLINE=1; shift ;;
    --write-checksums) WRITE_CHECKSUMS=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "$PROG: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if ((VERIFY_ONLY && WRITE_CHECKSUMS)); then echo "$PROG: --verify-only and --write-checksums exclude each other" >&2; exit 2; fi

DEST=$(realpath -m -- "$DEST")
[[ "$DEST" != "/" ]] || die "refusing to use / as the assets folder"
DEST_PARENT=$(dirname -- "$DEST")
DEST_NAME=$(basename -- "$DEST")
export LC_ALL=C

# ---------------------------------------------------------------------------------------------------------
# Checksum list

manifest_paths=()
load_manifest() {
  [[ -f "$MANIFEST" ]] || die "checksum list $MANIFEST is missing"
  local line path
  manifest_paths=()
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ -z "$line" || "$line" == \#* ]] && continue
    [[ "$line" =~ ^[0-9a-f]{64}\ [\ *](.+)$ ]] || die "$MANIFEST: malformed line: $line"
    path="${BASH_REMATCH[1]}"
    [[ "$path" != /* && "/$path/" != */../* ]] || die "$MANIFEST: path must stay inside the assets folder: $path"
    manifest_paths+=("$path")
  done <"$MANIFEST"
  ((${#manifest_paths[@]} > 0)) || die "checksum list $MANIFEST is empty"
}

# verify_dir DIR [report [LABEL]]: 0 when every listed file is present with its checksum. Otherwise, with
# "report", prints one line per bad file to stderr (DIR/path, or "path (LABEL)" when LABEL is given) and
# returns 1.
verify_dir() {
  local dir="$1" mode="${2:-quiet}" label="${3:-}" out rc=0 line nbad=0 p
  [[ -d "$dir" ]] || { [[ "$mode" == report ]] && echo "$PROG: $dir does not exist" >&2; return 1; }
  out=$(cd "$dir" && sha256sum --check --quiet --strict "$MANIFEST" 2>/dev/null) || rc=$?
  ((rc == 0)) && return 0
  if [[ "$mode" == report ]]; then
    while IFS= read -r line; do
      case "$line" in
        *": FAILED open or read") p="${line%: FAILED open or read}"; echo -n "$PROG: MISSING  " >&2 ;;
        *": FAILED") p="${line%: FAILED}"; echo -n "$PROG: MISMATCH " >&2 ;;
        *) continue ;;
      esac
      nbad=$((nbad + 1))
      if [[ -n "$label" ]]; then echo "$p ($label)" >&2; else echo "$dir/$p" >&2; fi
    done <<<"$out"
    echo "$PROG: $nbad of ${#manifest_paths[@]} files failed verification (${label:-in $dir})" >&2
  fi
  return 1
}

summary() { # summary DIR VERB
  local dir="$1" total=0 p
  for p in "${manifest_paths[@]}"; do total=$((total + $(stat -c %s -- "$dir/$p"))); done
  printf 'assets: %d files %s and verified (%d.%d MiB) in %s\n' "${#manifest_paths[@]}" "$2" \
    $((total / 1048576)) $(((total % 1048576) * 10 / 1048576)) "$dir"
}

# ---------------------------------------------------------------------------------------------------------
# Fast paths: verify-only, and "already installed"

if ((VERIFY_ONLY)); then
  load_manifest
  if verify_dir "$DEST" report; then summary "$DEST" present; exit 0; fi
  exit 1
fi
if ((!WRITE_CHECKSUMS)); then
  load_manifest
  if verify_dir "$DEST"; then summary "$DEST" present; exit 0; fi
fi

# ---------------------------------------------------------------------------------------------------------
# Build: assemble into DEST.tmp.XXXXXX, verify, then move into place.

if ! command -v npm >/dev/null 2>&1 && ! command -v curl >/dev/null 2>&1; then
  die "neither npm nor curl is installed; one is needed to fetch $NPM_FACE_API, $NPM_FACE_MESH and $NPM_HUMAN (scripts/setup.sh installs curl)"
fi

mkdir -p -- "$DEST_PARENT"
# Serialise concurrent runs (e.g. parallel tests) that share the destination's parent folder.
if command -v flock >/dev/null 2>&1; then
  exec 9<"$DEST_PARENT"
  if ! flock -n 9; then say "waiting for another fetch_assets run on $DEST_PARENT"; flock 9; fi
  if ((!WRITE_CHECKSUMS)) && verify_dir "$DEST"; then summary "$DEST" present; exit 0; fi
  # Holding the lock, no other run is using staging folders: remove those left by killed runs.
  for stale in "$DEST_PARENT/$DEST_NAME".tmp.?????? "$DEST_PARENT/$DEST_NAME".old.*; do
    [[ -d "$stale" ]] || continue
    say "removing $stale left by an interrupted run"
    rm -rf -- "$stale"
  done
fi

# Refuse to replace a folder that does not look like an assets folder (protects against --dest ~).
if [[ -d "$DEST" ]]; then
  for entry in "$DEST"/* "$DEST"/.[!.]*; do
    [[ -e "$entry" ]] || continue
    case "$(basename -- "$entry")" in
      dlib|face-api|mediapipe|human) ;;
      *) die "$DEST contains '$(basename -- "$entry")', which this script does not install; refusing to replace it (choose another --dest or move it away)" ;;
    esac
  done
elif [[ -e "$DEST" ]]; then
  die "$DEST exists and is not a directory"
fi

STAGE=$(mktemp -d "$DEST_PARENT/$DEST_NAME.tmp.XXXXXX")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/facetex-assets.XXXXXX")
OLD=""
cleanup() {
  [[ -n "$STAGE" && -d "$STAGE" ]] && rm -rf -- "$STAGE"
  [[ -n "$WORK" && -d "$WORK" ]] && rm -rf -- "$WORK"
  [[ -n "$OLD" && -d "$OLD" ]] && rm -rf -- "$OLD"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T_START=$SECONDS
((WRITE_CHECKSUMS)) || { say "assets missing or not verified in $DEST; installing"; }

# --- Debian: dlib example photos and the 68-point model ----------------------------------------------------

# Files of the list under a prefix, e.g. listed_under dlib/faces/
listed_under() {
  local p
  ((WRITE_CHECKSUMS)) && return 0
  for p in "${manifest_paths[@]}"; do [[ "$p" == "$1"* ]] && echo "${p#"$1"}"; done
  return 0
}

# have_all SRC_DIR PREFIX: every listed file under PREFIX exists below SRC_DIR (without a list: SRC_DIR exists).
have_all() {
  local src="$1" prefix="$2" f
  [[ -d "$src" ]] || return 1
  while IFS= read -r f; do
    [[ -z "$f" ]] && continue
    [[ -f "$src/$f" ]] || return 1
  done < <(listed_under "$prefix")
  return 0
}

# deb_root PACKAGE: prints a directory holding the unpacked package (downloaded with apt-get download).
deb_root() {
  local pkg="$1" dir="$WORK/deb-$1" log="$WORK/apt-$1.log" deb
  if [[ -d "$dir/root" ]]; then echo "$dir/root"; return 0; fi
  ((OFFLINE)) && die "$pkg files are not installed on this machine and --offline forbids 'apt-get download $pkg' (install $pkg, and check /etc/dpkg/dpkg.cfg.d for a path-exclude of /usr/share/doc)"
  command -v apt-get >/dev/null 2>&1 || die "$pkg files are not installed and apt-get is not available to download $pkg"
  mkdir -p "$dir/root"
  say "downloading $pkg with apt-get download" >&2
  if ! (cd "$dir" && apt-get download -q "$pkg") >"$log" 2>&1; then
    tail -5 "$log" >&2
    die "apt-get download $pkg failed (run 'apt-get update' first if the package lists are empty)"
  fi
  deb=$(find "$dir" -maxdepth 1 -name '*.deb' -print -quit)
  [[ -n "$deb" ]] || die "apt-get download $pkg produced no .deb"
  dpkg-deb -x "$deb" "$dir/root" || die "dpkg-deb -x $deb failed"
  echo "$dir/root"
}

EXAMPLES_REL=usr/share/doc/libdlib19.1/examples
MODEL_REL=usr/share/dlib/shape_predictor_68_face_landmarks.dat
sys="${SYSROOT:-}"
sys="${sys%/}"

mkdir -p "$STAGE/dlib"
for sub in faces johns; do
  src="$sys/$EXAMPLES_REL/$sub"
  if ! have_all "$src" "dlib/$sub/"; then
    root=$(deb_root libdlib19.1)
    src="$root/$EXAMPLES_REL/$sub"
    [[ -d "$src" ]] || die "libdlib19.1 .deb has no $EXAMPLES_REL/$sub"
  fi
  cp -R -- "$src" "$STAGE/dlib/$sub"
done
src="$sys/$MODEL_REL"
if [[ ! -f "$src" ]]; then
  root=$(deb_root libdlib-data)
  src="$root/$MODEL_REL"
  [[ -f "$src" ]] || die "libdlib-data .deb has no $MODEL_REL"
fi
cp -- "$src" "$STAGE/dlib/"

# --- npm registry -----------------------------------------------------------------------------------------

# npm_fetch SPEC SRI: prints the path of the verified tarball. Uses `npm pack` when npm is installed (it honours
# npm's cache and proxy settings); otherwise downloads the tarball from the registry with curl — a fresh Debian
# machine has no npm, and the pinned integrity makes both paths equally safe.
npm_fetch() {
  local spec="$1" sri="$2" dir="$WORK/npm" log="$WORK/npm.log" tgz want got
  mkdir -p "$dir"
  if command -v npm >/dev/null 2>&1; then
    local args=(pack --silent --ignore-scripts --no-fund --no-audit --no-update-notifier)
    ((OFFLINE)) && args+=(--offline)
    if ! tgz=$(cd "$dir" && npm "${args[@]}" "$spec" 2>"$log"); then
      tail -5 "$log" >&2
      if ((OFFLINE)); then die "$spec is not in npm's local cache and --offline forbids downloading it"; fi
      die "npm pack $spec failed"
    fi
    tgz=$(printf '%s\n' "$tgz" | tail -n1)
  else
    ((OFFLINE)) && die "$spec: --offline needs npm's local cache, but npm is not installed"
    local name="${spec%@*}" version="${spec##*@}"
    tgz="$(basename -- "$name")-$version.tgz"
    local url="${npm_config_registry:-https://registry.npmjs.org}"
    url="${url%/}/$name/-/$tgz"
    curl -fsSL --retry 3 -o "$dir/$tgz" "$url" 2>"$log" || { tail -5 "$log" >&2; die "cannot download $url"; }
  fi
  [[ -f "$dir/$tgz" ]] || die "fetching $spec did not produce a tarball (got '$tgz')"
  [[ "$sri" == sha512-* ]] || die "internal: pinned integrity for $spec is not sha512"
  want=$(printf '%s' "${sri#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
  got=$(sha512sum -- "$dir/$tgz" | cut -d' ' -f1)
  [[ "$got" == "$want" ]] || die "$spec tarball does not match the pinned integrity $sri"
  echo "$dir/$tgz"
}

# untar TGZ OUTDIR MEMBER... : extracts package/MEMBER into OUTDIR/MEMBER
untar() {
  local tgz="$1" out="$2"; shift 2
  local m members=()
  for m in "$@"; do members+=("package/$m"); done
  mkdir -p "$out"
  tar -xzf "$tgz" -C "$out" --strip-components=1 --no-same-owner --no-same-permissions -- "${members[@]}" \
    || die "$(basename -- "$tgz") lacks one of: $*"
}

# face-api: the dlib face-recognition ResNet (manifest + the shards it names) and the licence.
tgz=$(npm_fetch "$NPM_FACE_API" "$NPM_FACE_API_SRI")
untar "$tgz" "$STAGE/face-api" LICENSE model/face_recognition_model-weights_manifest.json
mapfile -t shards < <(python3 -c '
import json, sys
for group in json.load(open(sys.argv[1])):
    for path in group["paths"]:
        print(path)' "$STAGE/face-api/model/face_recognition_model-weights_manifest.json")
((${#shards[@]} > 0)) || die "cannot read the shard list of the face-api weights manifest (python3 failed?)"
shard_members=()
for s in "${shards[@]}"; do
  [[ "$s" =~ ^[A-Za-z0-9._-]+$ && "$s" != .* ]] || die "face-api weights manifest names an odd shard path: $s"
  shard_members+=("model/$s")
done
untar "$tgz" "$STAGE/face-api" "${shard_members[@]}"

# face_mesh: the packed assets and the canonical mesh cut out of them. No LICENSE file in the package.
tgz=$(npm_fetch "$NPM_FACE_MESH" "$NPM_FACE_MESH_SRI")
untar "$tgz" "$STAGE/mediapipe" face_mesh_solution_packed_assets.data package.json
dd if="$STAGE/mediapipe/face_mesh_solution_packed_assets.data" \
   of="$STAGE/mediapipe/geometry_pipeline_metadata_landmarks.binarypb" \
   iflag=skip_bytes,count_bytes bs=65536 skip="$MESH_START" count=$((MESH_END - MESH_START)) status=none
got=$(md5sum -- "$STAGE/mediapipe/geometry_pipeline_metadata_landmarks.binarypb" | cut -d' ' -f1)
[[ "$got" == "$MESH_MD5" ]] || die "canonical mesh cut has md5 $got, expected $MESH_MD5"

# human: the 468-vertex UVs / triangles / 68-point map and the licence.
tgz=$(npm_fetch "$NPM_HUMAN" "$NPM_HUMAN_SRI")
untar "$tgz" "$STAGE/human" LICENSE src/face/facemeshcoords.ts
mv -- "$STAGE/human/src/face/facemeshcoords.ts" "$STAGE/human/facemeshcoords.ts"
rm -rf -- "$STAGE/human/src"

# Plain, user-owned permissions regardless of source (npm tarballs carry 0750 files).
find "$STAGE" -type d -exec chmod 0755 {} +
find "$STAGE" -type f -exec chmod 0644 {} +

# --- verify and move into place -----------------------------------------------------------------------------

if ((WRITE_CHECKSUMS)); then
  tmp_manifest=$(mktemp "$SCRIPT_DIR/.assets.sha256.XXXXXX")
  (cd "$STAGE" && find . -type f -printf '%P\n' | sort | xargs -d '\n' sha256sum --) >"$tmp_manifest"
  chmod 0644 "$tmp_manifest"
  mv -f -- "$tmp_manifest" "$MANIFEST"
  say "wrote $MANIFEST ($(wc -l <"$MANIFEST") files); review it before committing"
  load_manifest
fi

# Every staged file must be listed (and every listed file staged): the list is the contract.
declare -A listed=()
for p in "${manifest_paths[@]}"; do listed["$p"]=1; done
while IFS= read -r p; do
  [[ -n "${listed[$p]:-}" ]] || die "installed file $p is not in $MANIFEST (upstream changed? rerun with --write-checksums and review)"
done < <(cd "$STAGE" && find . -type f -printf '%P\n')
if ! verify_dir "$STAGE" report "newly fetched"; then
  die "checksum verification failed (upstream or package content changed?); $DEST was left unchanged"
fi

if [[ -d "$DEST" ]]; then
  OLD="$DEST_PARENT/$DEST_NAME.old.$$"
  mv -T -- "$DEST" "$OLD"
fi
if ! mv -T -- "$STAGE" "$DEST"; then
  [[ -n "$OLD" ]] && mv -T -- "$OLD" "$DEST" && OLD=""
  die "could not move $STAGE to $DEST"
fi
STAGE=""
summary "$DEST" installed
say "done in $((SECONDS - T_START)) s"
