"""Scale benchmark of the kNN evaluation: NTU-120-sized banks (60,000 train x 60,000 test, D = 256).

Runs :func:`~ssl_skel.metrics.knn.knn_predict` once with k = 1, 10, 20 (one pass) over random unit vectors with
random labels, and prints the wall time and the process's memory:

- peak RSS of the whole process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``; run this script as a fresh process
  so that nothing else has raised it), which must stay under 2 GB;
- the peak during the ``knn_predict`` call alone (``VmHWM`` reset just before it, where the kernel allows) and the
  RSS before it (features, labels and the torch runtime).

Afterwards ``--check`` queries are compared with a brute-force search (full similarity rows, full sort).

    python benchmarks/knn_scale.py [--n-train 60000] [--n-test 60000] [--dim 256] [--classes 120]
                                   [--chunk-size 256] [--check 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import torch
import torch.nn.functional as F

from ssl_skel.metrics.knn import knn_predict

KS = (1, 10, 20)
MIB = 2**20


def _status(key: str) -> int:
    """A ``/proc/self/status`` memory field in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name == key:
                return int(value.split()[0]) * 1024
    raise KeyError(key)


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS; ``False`` where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _brute_force(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, k: int, classes: int) -> torch.Tensor:
    """Reference predictions: full similarity rows, full sort, weighted one-hot votes (unit-norm features)."""
    sim = test @ train.t()
    order = sim.argsort(dim=1, descending=True)[:, :k]
    if k == 1:
        return train_y[order[:, 0]]
    weights = torch.exp(sim.gather(1, order).double() / 0.07)
    return (F.one_hot(train_y[order], classes).double() * weights.unsqueeze(-1)).sum(dim=1).argmax(dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=60_000)
    parser.add_argument("--n-test", type=int, default=60_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=120)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--check", type=int, default=200, help="test queries compared with brute force afterwards")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(args.seed)
    train = F.normalize(torch.randn(args.n_train, args.dim, generator=gen), dim=1)
    test = F.normalize(torch.randn(args.n_test, args.dim, generator=gen), dim=1)
    train_y = torch.randint(0, args.classes, (args.n_train,), generator=gen)
    test_y = torch.randint(0, args.classes, (args.n_test,), generator=gen)
    print(
        f"kNN: {args.n_test:,} queries x {args.n_train:,} bank, D = {args.dim}, {args.classes} classes, k = {KS}, "
        f"chunk {args.chunk_size}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}"
    )

    rss_before = _status("VmRSS")
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    reset = _reset_peak_rss()  # also lowers what ru_maxrss reports from here on, hence the max below
    start = time.perf_counter()
    preds = knn_predict(train, train_y, test, KS, args.classes, chunk_size=args.chunk_size)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    call_peak = _status("VmHWM")
    process_peak = max(usage_before.ru_maxrss, usage.ru_maxrss) * 1024  # kilobytes on Linux
    user, system = usage.ru_utime - usage_before.ru_utime, usage.ru_stime - usage_before.ru_stime

    print(f"wall time            {seconds:.1f} s ({args.n_test / seconds:,.0f} queries/s)")
    print(f"CPU time             {user:.1f} s user + {system:.1f} s system")
    print(f"RSS before the call  {rss_before / MIB:,.0f} MiB")
    if reset:
        print(f"peak RSS of the call {call_peak / MIB:,.0f} MiB (VmHWM reset before it)")
    print(f"peak RSS of process  {process_peak / MIB:,.0f} MiB (ru_maxrss; bar: under 2 GB = 1,907 MiB)")
    print(f"load average after   {os.getloadavg()[0]:.2f}")
    for k in KS:
        accuracy = (preds[k] == test_y).double().mean().item()
        print(f"accuracy k={k:<2}        {accuracy:.4f} (chance {1 / args.classes:.4f})")
    if args.check:
        queries = test[: args.check]
        reference = {k: _brute_force(train, train_y, queries, k, args.classes) for k in KS}
        agree = {k: torch.equal(preds[k][: args.check], reference[k]) for k in KS}
        print(f"brute-force check on {args.check} queries, same predictions: {agree}")
    if process_peak >= 2e9:
        raise SystemExit(f"peak RSS {process_peak / 1e9:.2f} GB is over the 2 GB bar")


if __name__ == "__main__":
    main()
