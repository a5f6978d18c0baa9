#!/usr/bin/env python3
"""Reference implementation of the facetex loader order (docs/formats.md, "Stream order"), in plain Python.

It exists so that anyone can reproduce which image a facetex run saw at any step without facetex itself, and the
C++ loader is tested against it (tests/data/test_loader.cpp).

  tools/stream_order.py --items 70000 --seed 0 --epoch 3          # the epoch's permutation, one index per line
  tools/stream_order.py --items 70000 --seed 0 --position 123456  # the item at one global stream position
"""
import argparse

MASK = (1 << 64) - 1


class SplitMix64:
    """SplitMix64 (Steele, Lea & Flood 2014)."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, bound):
        """Uniform integer in [0, bound): Lemire's multiply-shift with rejection."""
        m = self.next() * bound
        low = m & MASK
        if low < bound:
            threshold = ((1 << 64) - bound) % bound
            while low < threshold:
                m = self.next() * bound
                low = m & MASK
        return m >> 64


def epoch_permutation(n, seed, epoch):
    perm = list(range(n))
    mixer = SplitMix64(seed ^ ((0xD1B54A32D192ED03 * (epoch + 1)) & MASK))
    rng = SplitMix64(mixer.next())
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, required=True, help="items per epoch (rows, doubled with xflip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epoch", type=int, default=0)
    ap.add_argument("--position", type=int, help="a global stream position (epoch * items + index)")
    args = ap.parse_args()
    if args.position is not None:
        epoch, index = divmod(args.position, args.items)
        print(epoch_permutation(args.items, args.seed, epoch)[index])
    else:
        print("\n".join(str(v) for v in epoch_permutation(args.items, args.seed, args.epoch)))


if __name__ == "__main__":
    main()
