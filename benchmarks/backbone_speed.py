"""ST-GCN training-step throughput against the machine's fp32 matmul peak, measured in the same run.

One step = forward + backward of the encoder (optionally + an SGD step) on a ``(B, 3, T, 25, 2)`` NTU batch.
Rounds alternate a large square matmul (the peak) with one training step, so both see the same machine load;
the medians are reported. FLOPs per sample are counted with ``torch.utils.flop_counter.FlopCounterMode``.

    python benchmarks/backbone_speed.py                # defaults: batch 64, T 64, width 16, 2 threads
    python benchmarks/backbone_speed.py --compile      # the same through torch.compile
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ssl_skel.backbones import STGCN


def matmul_gflops(size: int = 2048, repeats: int = 4) -> float:
    """fp32 GFLOP/s of ``repeats`` square ``size x size`` matrix products."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--optimizer", action="store_true", help="include an SGD step in every training step")
    parser.add_argument("--compile", action="store_true", help="run the model through torch.compile")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = STGCN("ntu25", 3, width=args.width).train()
    step_model = torch.compile(model) if args.compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if args.optimizer else None
    x = torch.randn(args.batch, 3, args.frames, 25, 2)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        step_model(x).sum().backward()
        if optimizer is not None:
            optimizer.step()

    start = time.perf_counter()
    step()  # warm-up (and compilation)
    warmup = time.perf_counter() - start
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    flops_per_sample = counter.get_total_flops() / args.batch

    peaks, rates = [], []
    for _ in range(args.rounds):
        peaks.append(matmul_gflops())
        start = time.perf_counter()
        step()
        rates.append(args.batch / (time.perf_counter() - start))
    peak, rate = statistics.median(peaks), statistics.median(rates)
    achieved = rate * flops_per_sample / 1e9

    print(f"ST-GCN-{args.width}, batch {args.batch}, T {args.frames}, 2 persons, {args.threads} threads, "
          f"compile={args.compile}, optimizer={args.optimizer}, warm-up {warmup:.1f} s")  # fmt: skip
    print(f"matmul peak    median {peak:7.1f} GFLOP/s   rounds {[round(p) for p in peaks]}")
    print(f"training step  median {rate:7.2f} samples/s rounds {[round(r, 2) for r in rates]}")
    print(f"FLOPs/sample   {flops_per_sample / 1e9:.2f} GFLOP (forward + backward)")
    print(f"achieved       {achieved:7.1f} GFLOP/s = {achieved / peak:.1%} of the matmul peak")


if __name__ == "__main__":
    main()
