#!/usr/bin/env python3
"""Writes the images of a facetex shard folder as one PNG (or the stored JPEG) per row, for programs that read an
image folder — e.g. the public StyleGAN2-ADA / StyleGAN3 train.py, run side by side with `facetex train` on the same
data (scripts/gpu_check/run_full.sh, step `public`).

  tools/shards_to_images.py SHARDS_DIR OUT_DIR [--limit N]

Raw rows are encoded here (PNG, zlib level 1, no filtering: stdlib only); png/jpeg rows are written as stored. Files
are named <shard>-<row>.<ext> in shard order, so a sorted listing is the shard order. The folder must not exist or be
empty. Exit codes shared by the tools: 0 success, 2 usage error, 3 data error (one line on stderr naming the file).
Needs python3 + numpy + h5py.
"""

import argparse
import glob
import os
import struct
import sys
import zlib


def png_bytes(rgb):
    """A PNG of an (H, W, 3) uint8 array: 8-bit truecolour, filter type 0 on every row."""
    h, w, c = rgb.shape
    assert c == 3 and rgb.dtype.name == "uint8"
    rows = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b"")


def fail(code, message):
    print(f"shards_to_images: {message}", file=sys.stderr)
    sys.exit(code)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shards")
    ap.add_argument("out")
    ap.add_argument("--limit", type=int, default=0, help="write at most N images (0: all)")
    a = ap.parse_args()
    import h5py  # here, so --help works without it

    files = sorted(glob.glob(os.path.join(a.shards, "shard-*.h5")))
    if not files:
        fail(2, f"{a.shards}: no shard-*.h5 files")
    if os.path.isdir(a.out) and os.listdir(a.out):
        fail(2, f"{a.out}: exists and is not empty")
    os.makedirs(a.out, exist_ok=True)
    written = 0
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            with h5py.File(path, "r") as f:
                storage = f.attrs["storage"]
                storage = storage.decode() if isinstance(storage, bytes) else str(storage)
                n = int(f.attrs["count"])
                for i in range(n):
                    if a.limit and written >= a.limit:
                        break
                    if storage == "raw":
                        data, ext = png_bytes(f["images"][i]), "png"
                    elif storage in ("png", "jpeg"):
                        lo, hi = int(f["offsets"][i]), int(f["offsets"][i + 1])
                        data, ext = f["encoded"][lo:hi].tobytes(), ("png" if storage == "png" else "jpg")
                    else:
                        fail(3, f"{path}: unknown storage '{storage}'")
                    tmp = os.path.join(a.out, f".{stem}-{i:06d}.{ext}.tmp")
                    with open(tmp, "wb") as out:
                        out.write(data)
                    os.replace(tmp, os.path.join(a.out, f"{stem}-{i:06d}.{ext}"))
                    written += 1
        except (OSError, KeyError) as e:
            fail(3, f"{path}: {e}")
    print(f"shards_to_images: {written} images from {len(files)} shards -> {a.out}")


if __name__ == "__main__":
    main()
