#!/usr/bin/env python3
"""Predicted data-parallel efficiency of facetex training at 8, 64 and 256 GPUs (docs/scaling.md explains it).

  tools/scaling_model.py [--step-ms 159] [--batch-gpu 4] [--g-params 30.0e6] [--d-params 29.0e6]
                         [--bucket-mb 25] [--intra-busbw 370] [--inter-busbw 45] [--gpus-per-node 8]

Inputs are measured figures (step time of one GPU, from bench_stylegan2 on an H100) and the bandwidths the issue
states (NCCL ring allreduce: about 370 GB/s bus bandwidth inside an 8xH100 NVLink node, about 45 GB/s per node over
400 Gb/s InfiniBand). Per iteration the reducer averages G's gradients in Gmain and every 4th iteration in Greg, and
D's in Dmain and every 16th iteration in Dreg (float32). Each phase's allreduces start from autograd hooks and run
under its backward; what cannot hide is the last bucket (the first layers, reached last) plus any communication that
outlasts the backward. Ring allreduce time for B bytes on n ranks: B * 2(n-1)/n / busbw + latency, where the
latency is about 10 us inside a node plus 2 * (nodes - 1) * 5 us around the inter-node ring. The trainer's small
synchronous collectives (the preemption agreement each iteration, the ADA statistic every 4th) add pure latency.
Prints one table per bucket size and the bucket size that minimises the exposed time. Needs only python3.
"""
import argparse


def allreduce_s(nbytes, gpus, gpn, intra, inter):
    nodes = max(1, gpus // gpn)
    busbw = (intra if nodes == 1 else inter) * 1e9
    latency = 10e-6 + 2 * (nodes - 1) * 5e-6
    return nbytes * 2 * (gpus - 1) / gpus / busbw + latency


def exposed_s(grad_bytes, bucket_bytes, backward_s, gpus, a):
    """Communication of one phase left after its backward (buckets start as they fill; the last cannot hide)."""
    nb = max(1, -(-grad_bytes // bucket_bytes))
    last = allreduce_s(grad_bytes - (nb - 1) * bucket_bytes, gpus, a.gpus_per_node, a.intra_busbw, a.inter_busbw)
    total = sum(allreduce_s(bucket_bytes, gpus, a.gpus_per_node, a.intra_busbw, a.inter_busbw)
                for _ in range(nb - 1)) + last
    return max(last, total - max(0.0, backward_s - last)), total, nb


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--step-ms", type=float, default=159.0, help="one GPU's G+D iteration (ms)")
    p.add_argument("--batch-gpu", type=int, default=4)
    p.add_argument("--g-params", type=float, default=30.0e6)
    p.add_argument("--d-params", type=float, default=29.0e6)
    p.add_argument("--bucket-mb", type=float, nargs="*", default=[1, 5, 25, 100])
    p.add_argument("--intra-busbw", type=float, default=370.0)
    p.add_argument("--inter-busbw", type=float, default=45.0)
    p.add_argument("--gpus-per-node", type=int, default=8)
    a = p.parse_args()

    step = a.step_ms / 1e3
    # Phase shares of the iteration (G phases ~ half, backward ~ 2/3 of a phase), regularisation amortised.
    phases = [("Gmain", a.g_params, 0.5, 1.0), ("Greg", a.g_params, 0.5, 0.25),
              ("Dmain", a.d_params, 0.5, 1.0), ("Dreg", a.d_params, 0.5, 1.0 / 16)]
    grad_mb = sum(n * 4 * w for _, n, _, w in phases) / 2**20
    print(f"step {a.step_ms:.0f} ms at batch {a.batch_gpu}/GPU; G {a.g_params/1e6:.1f} M, D {a.d_params/1e6:.1f} M "
          f"params; {grad_mb:.0f} MB of float32 gradients averaged per iteration (regularisation amortised)")
    best = {}
    for bmb in a.bucket_mb:
        print(f"\nbucket {bmb:g} MB   gpus  comm/iter  exposed/iter  efficiency  img/s (x batch {a.batch_gpu})")
        for gpus in (8, 64, 256):
            comm = exp = 0.0
            for _, n, share, weight in phases:
                e, t, _ = exposed_s(int(n * 4), int(bmb * 2**20), step * share * (2 / 3), gpus, a)
                comm += t * weight
                exp += e * weight
            # Small synchronous collectives: the preemption flag every iteration, the ADA statistic every 4th.
            exp += 1.25 * allreduce_s(8, gpus, a.gpus_per_node, a.intra_busbw, a.inter_busbw)
            eff = step / (step + exp)
            best.setdefault(gpus, []).append((eff, bmb))
            print(f"{'':16}{gpus:5d} {comm*1e3:9.2f} ms {exp*1e3:10.2f} ms {eff:11.1%} "
                  f"{gpus * a.batch_gpu * eff / step:10.0f}")
    print()
    for gpus, rows in best.items():
        eff, bmb = max(rows)
        print(f"{gpus:4d} GPUs: best bucket {bmb:g} MB -> predicted efficiency {eff:.1%}")


if __name__ == "__main__":
    main()
