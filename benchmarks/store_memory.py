"""Memory benchmark of the prepared-data store: a shuffled training pass over a store larger than 10 GB.

1. Writes a store of random variable-length sequences (``ntu25`` shape: C=3, V=25, M=2; 20..300 frames) through
   :class:`~ssl_skel.data.store.StoreWriter`, streaming sample by sample. The frames are random slices of a
   pre-generated random pool, which makes writing disk-bound rather than RNG-bound.
2. Runs one full training-order pass (shuffled; random crop-resize to T=64 in
   :class:`~ssl_skel.data.datamodule.SkeletonDataset`; a DataLoader with 0 workers, batch 64) and records
   resident memory: the peak RSS (``VmHWM``, reset before the pass), sampled RssAnon (private anonymous memory),
   RssFile (mapped file pages) and USS (memory unique to the process).

The bar: peak RSS during the pass stays under 1 GB. The store is deleted afterwards unless ``--keep``.

    python benchmarks/store_memory.py [--target-gb 10.5] [--dir DIR] [--keep] [--release-every-mb 128]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader

from ssl_skel.data.datamodule import SkeletonDataset
from ssl_skel.data.sample import SkeletonSample
from ssl_skel.data.store import SkeletonStore, StoreWriter

C, V, M = 3, 25, 2
FRAME_BYTES = C * V * M * 4
GB = 1e9


def _status() -> dict[str, int]:
    """Selected ``/proc/self/status`` fields in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Sampler(threading.Thread):
    """Samples RssAnon / RssFile every ``interval`` s and USS every ``uss_every`` samples; keeps the maxima."""

    def __init__(self, interval: float = 0.05, uss_every: int = 40) -> None:
        super().__init__(daemon=True)
        self.interval, self.uss_every = interval, uss_every
        self.peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "USS": 0}
        self._done = threading.Event()
        self._proc = psutil.Process()

    def run(self) -> None:
        n = 0
        while not self._done.is_set():
            for key, value in _status().items():
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], value)
            if n % self.uss_every == 0:
                self.peak["USS"] = max(self.peak["USS"], self._proc.memory_full_info().uss)
            n += 1
            self._done.wait(self.interval)

    def stop(self) -> dict[str, int]:
        self._done.set()
        self.join()
        return self.peak


def write_store(path: Path, target_bytes: float, seed: int) -> tuple[int, float]:
    """Stream random sequences into a store at ``path`` until ``target_bytes`` of frames; (samples, seconds)."""
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((1 << 17, C, V, M), dtype=np.float32)  # 157 MB of random frames
    started, written, n = time.time(), 0, 0
    with StoreWriter(path, dataset="benchmark", layout="ntu25", num_classes=60) as writer:
        while written < target_bytes:
            t = int(rng.integers(20, 301))
            start = int(rng.integers(0, len(pool) - t))
            data = pool[start : start + t].transpose(1, 0, 2, 3)
            writer.append(SkeletonSample(f"b{n:06d}", data, label=n % 60, meta={"subject": n % 40}))
            written += t * FRAME_BYTES
            n += 1
            if n % 10000 == 0:
                print(f"  wrote {n} samples, {written / GB:.2f} GB, {time.time() - started:.0f} s", flush=True)
        writer.finish({"all": np.ones(n, np.int8)})
    return n, time.time() - started


def training_pass(path: Path, release_every_mb: float | None, seed: int) -> dict[str, float]:
    """One shuffled pass with crop-resize to T=64; returns timings and memory maxima (bytes)."""
    store = SkeletonStore(path, release_every_mb=release_every_mb)
    dataset = SkeletonDataset(store, np.arange(len(store)), 64, train=True, seed=seed)
    loader = DataLoader(
        dataset, batch_size=64, shuffle=True, num_workers=0, generator=torch.Generator().manual_seed(seed)
    )
    before = _status()
    exact_peak = _reset_peak_rss()
    sampler = _Sampler()
    sampler.start()
    started, samples = time.time(), 0
    for batch in loader:
        samples += batch["x"].shape[0]
    seconds = time.time() - started
    peak = sampler.stop()
    after = _status()
    return {
        "samples": samples,
        "seconds": seconds,
        "rss_before": before["VmRSS"],
        "rss_peak": after["VmHWM"] if exact_peak else peak["VmRSS"],
        "rss_peak_exact": exact_peak,
        "rss_anon_peak": peak["RssAnon"],
        "rss_file_peak": peak["RssFile"],
        "uss_peak": peak["USS"],
        "bad_samples": dataset.bad_samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target-gb", type=float, default=10.5, help="frame bytes to write (GB = 1e9 bytes)")
    parser.add_argument("--dir", help="parent directory of the store (default: the system temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the store afterwards")
    parser.add_argument("--release-every-mb", type=float, default=128.0, help="0: never drop mapped pages")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    parent = Path(tempfile.mkdtemp(prefix="ssl_skel_store_bench_", dir=args.dir))
    path = parent / "store"
    try:
        print(f"writing a {args.target_gb:.1f} GB store to {path}", flush=True)
        n, write_s = write_store(path, args.target_gb * GB, args.seed)
        size = SkeletonStore(path).nbytes_on_disk()
        print(f"wrote {n} samples, {size / GB:.2f} GB on disk in {write_s:.0f} s ({size / GB / write_s:.2f} GB/s)")
        release = args.release_every_mb or None
        r = training_pass(path, release, args.seed)
        mb = 2**20
        print(
            f"shuffled pass (crop-resize to T=64, batch 64, 0 workers, release every {release} MB): "
            f"{r['samples']} samples in {r['seconds']:.0f} s ({r['samples'] / r['seconds']:.0f} samples/s)\n"
            f"  RSS before pass        {r['rss_before'] / mb:8.0f} MiB\n"
            f"  RSS peak during pass   {r['rss_peak'] / mb:8.0f} MiB "
            f"({'VmHWM' if r['rss_peak_exact'] else 'sampled'})\n"
            f"  RssAnon peak (private) {r['rss_anon_peak'] / mb:8.0f} MiB\n"
            f"  RssFile peak (mapped)  {r['rss_file_peak'] / mb:8.0f} MiB\n"
            f"  USS peak               {r['uss_peak'] / mb:8.0f} MiB\n"
            f"  bad samples            {r['bad_samples']:8d}\n"
            f"bar (peak RSS < 1 GB): {'PASS' if r['rss_peak'] < GB else 'FAIL'}"
        )
    finally:
        if args.keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
