#!/usr/bin/env python3
"""tools/shards_to_images.py: a synthetic world's shard rows, exported as PNGs and packed again by `facetex data pack`,
come back pixel for pixel (OpenCV decodes what the stdlib-only PNG writer wrote); bad arguments get exit 2.

  FACETEX_BINARY=build/facetex python3 tests/tools/test_shards_to_images.py
"""

import glob
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "tools", "shards_to_images.py")


def rows(shards):
    import h5py
    import numpy as np

    out = []
    for path in sorted(glob.glob(os.path.join(shards, "shard-*.h5"))):
        with h5py.File(path, "r") as f:
            out.extend(np.asarray(f["images"][i]) for i in range(int(f.attrs["count"])))
    return out


class ShardsToImages(unittest.TestCase):
    def test_round_trip_through_data_pack(self):
        binary = os.environ.get("FACETEX_BINARY")
        if not binary:
            self.skipTest("FACETEX_BINARY not set")
        with tempfile.TemporaryDirectory() as tmp:
            world, pngs, packed = (os.path.join(tmp, d) for d in ("world", "pngs", "packed"))
            subprocess.run([binary, "data", "synth", "--out", world, "--count", "6", "--resolution", "32"], check=True,
                           capture_output=True)
            r = subprocess.run([sys.executable, TOOL, os.path.join(world, "shards"), pngs], capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("6 images", r.stdout)
            names = sorted(os.listdir(pngs))
            self.assertEqual(len(names), 6)
            self.assertTrue(all(n.endswith(".png") for n in names), names)
            subprocess.run([binary, "data", "pack", "--images", pngs, "--out", packed, "--resolution", "32",
                            "--storage", "raw"], check=True, capture_output=True)
            before, after = rows(os.path.join(world, "shards")), rows(packed)
            self.assertEqual(len(before), len(after))
            for i, (a, b) in enumerate(zip(before, after)):  # pack keeps the sorted file order = the shard order
                self.assertTrue((a == b).all(), f"row {i} changed")

            # A non-empty output folder or a folder without shards: usage errors, nothing written.
            r = subprocess.run([sys.executable, TOOL, os.path.join(world, "shards"), pngs], capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 2)
            self.assertIn("not empty", r.stderr)
            r = subprocess.run([sys.executable, TOOL, tmp, os.path.join(tmp, "none")], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
            self.assertIn("no shard-*.h5", r.stderr)


if __name__ == "__main__":
    try:
        import h5py  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as e:
        # Another python3 first on PATH (pyenv): Debian's has numpy and h5py (scripts/setup.sh installs them).
        system = "/usr/bin/python3"
        if os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(system):
            os.execv(system, [system, os.path.abspath(__file__)] + sys.argv[1:])
        print(f"skipped: {e}")
        sys.exit(77)
    unittest.main()
