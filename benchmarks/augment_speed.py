"""Speed of HiCLR's four augmented views: the per-sample numpy baseline against the batched ``ssl_skel.augment``.

Both run on ONE CPU thread on a batch of 128 NTU-25 clips with two present persons, at T = 50 and T = 64. The two
are timed alternately (one call of each per repeat, after a warm-up call of each), so that both see the same load
of a shared machine. The table gives the median over repeats of milliseconds per sample (all four views), measured
as CPU time of the benchmarking thread (robust to other processes on the machine) and, in brackets, as wall time.

    python benchmarks/augment_speed.py [--repeats 7] [--batch 128]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from numpy_reference_augment import four_views_batch  # noqa: E402

from ssl_skel.augment import MultiView, build_policy  # noqa: E402
from ssl_skel.skeleton import get_layout  # noqa: E402


def synthetic_batch(n: int, t: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, 3, t, 25, 2)`` smooth random motion of two present persons (metres)."""
    base = torch.randn(n, 3, 1, 25, 2, generator=generator) * 0.3
    drift = torch.randn(n, 3, t, 25, 2, generator=generator).cumsum(dim=2) * 0.01
    return base + drift


def measure(runs: list[Callable[[], object]], repeats: int) -> list[tuple[float, float]]:
    """Median (CPU seconds, wall seconds) of each of ``runs``, called alternately ``repeats`` times after one
    warm-up call each."""
    for run in runs:
        run()
    cpu: list[list[float]] = [[] for _ in runs]
    wall: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for i, run in enumerate(runs):
            c0, w0 = time.thread_time(), time.perf_counter()
            run()
            cpu[i].append(time.thread_time() - c0)
            wall[i].append(time.perf_counter() - w0)
    return [(statistics.median(c), statistics.median(w)) for c, w in zip(cpu, wall, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--frames", type=int, nargs="+", default=[50, 64])
    args = parser.parse_args()
    torch.set_num_threads(1)

    permutation = np.array(get_layout("ntu25").mirror_permutation)
    views = MultiView([
        build_policy("hiclr_basic"), build_policy("hiclr_basic"),
        build_policy("hiclr_strong"), build_policy("hiclr_strong_mask"),
    ])
    rng = np.random.default_rng(0)
    generator = torch.Generator().manual_seed(0)

    rows = []
    for t in args.frames:
        batch = synthetic_batch(args.batch, t, generator)
        batch_np = batch.numpy()  # float32, like the references' feeders (their .npy data is float32)
        with torch.no_grad():
            (numpy_cpu, numpy_wall), (ours_cpu, ours_wall) = measure(
                [lambda b=batch_np: four_views_batch(b, rng, permutation), lambda b=batch: views(b, generator)],
                args.repeats,
            )
        rows.append((t, numpy_cpu, numpy_wall, ours_cpu, ours_wall))

    n = args.batch
    print(f"HiCLR four views, batch {n}, NTU-25, 2 persons, 1 CPU thread, median of {args.repeats} "
          "(ms per sample; CPU time [wall time])")
    print("| T  | numpy per-sample   | ssl_skel.augment   | speed-up      |")
    print("|----|--------------------|--------------------|---------------|")
    for t, numpy_cpu, numpy_wall, ours_cpu, ours_wall in rows:
        print(
            f"| {t:<2} | {1e3 * numpy_cpu / n:6.3f} [{1e3 * numpy_wall / n:6.3f}]   "
            f"| {1e3 * ours_cpu / n:6.4f} [{1e3 * ours_wall / n:6.4f}]  "
            f"| {numpy_cpu / ours_cpu:5.1f}x [{numpy_wall / ours_wall:5.1f}x] |"
        )


if __name__ == "__main__":
    main()
