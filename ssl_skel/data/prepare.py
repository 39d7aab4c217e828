"""``ssl-skel prepare``: read a raw data set through its source and write a prepared store.

Samples stream from the source (optionally loaded by a process pool, in order) into a :class:`StoreWriter`, so
the data set is never held in RAM. Items whose reading raises :class:`SkeletonFileError` are skipped and listed
with their reason in the manifest; preparation aborts once more than ``max_bad_fraction`` of the items are bad.
Any other exception aborts too, and the output path is left untouched (see :class:`StoreWriter`).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .sample import SkeletonFileError, SkeletonSample
from .source import DatasetSource
from .store import StoreWriter

__all__ = ["PrepareError", "PrepareSummary", "prepare"]


class PrepareError(RuntimeError):
    """Preparation stopped: too many bad items, or nothing could be read."""


@dataclass
class PrepareSummary:
    """What :func:`prepare` wrote: counts, skipped items with reasons, split sizes, bytes on disk, seconds."""

    path: Path
    dataset: str
    num_samples: int
    skipped: list[dict[str, str]]
    splits: dict[str, dict[str, int]]
    total_frames: int
    nbytes: int
    seconds: float

    def format(self, max_skipped: int = 10) -> str:
        lines = [
            f"prepared {self.dataset}: {self.num_samples} samples, {self.total_frames} frames, "
            f"{self.nbytes / 2**20:.1f} MiB in {self.seconds:.1f} s -> {self.path}",
            f"skipped {len(self.skipped)} item(s)" + (":" if self.skipped else ""),
        ]
        lines += [f"  {s['item']}: {s['reason']}" for s in self.skipped[:max_skipped]]
        if len(self.skipped) > max_skipped:
            lines.append(f"  ... and {len(self.skipped) - max_skipped} more (all listed in manifest.json)")
        lines += [f"split {name}: train {c['train']}, test {c['test']}" for name, c in sorted(self.splits.items())]
        return "\n".join(lines)


# Per-process state of pool workers: the source and the raw directory, sent once by the initializer.
_worker: dict[str, Any] = {}


def _init_worker(source: DatasetSource, raw: Path) -> None:
    _worker["source"], _worker["raw"] = source, raw


def _load(item: str, source: DatasetSource, raw: Path) -> tuple[str, SkeletonSample | None, str]:
    """``(item, sample, "")`` or ``(item, None, reason)`` for an item that raises :class:`SkeletonFileError`."""
    try:
        return item, source.load(raw, item), ""
    except SkeletonFileError as err:
        return item, None, str(err)


def _load_in_worker(item: str) -> tuple[str, SkeletonSample | None, str]:
    return _load(item, _worker["source"], _worker["raw"])


def _iter_loaded(
    source: DatasetSource, raw: Path, items: list[str], workers: int, chunksize: int
) -> Iterator[tuple[str, SkeletonSample | None, str]]:
    if workers <= 1:
        yield from (_load(item, source, raw) for item in items)
        return
    with multiprocessing.get_context().Pool(workers, initializer=_init_worker, initargs=(source, raw)) as pool:
        yield from pool.imap(_load_in_worker, items, chunksize=chunksize)


def _consume(
    bar: tqdm, writer: StoreWriter, dataset: str, num_items: int, max_bad: int, max_bad_fraction: float
) -> None:
    for item, sample, reason in bar:
        if sample is not None:
            writer.append(sample)
            continue
        writer.skip(item, reason)
        if len(writer.skipped) > max_bad:
            listed = "; ".join(s["reason"] for s in writer.skipped[:3])
            raise PrepareError(
                f"{dataset}: {len(writer.skipped)} of {num_items} items unreadable, more than "
                f"max_bad_fraction={max_bad_fraction}; first: {listed}"
            )
        bar.set_postfix(skipped=len(writer.skipped))


def prepare(
    source: DatasetSource,
    raw: str | Path | None,
    out: str | Path,
    *,
    workers: int = 0,
    max_bad_fraction: float = 0.05,
    overwrite: bool = False,
    source_options: dict[str, Any] | None = None,
    progress: bool = True,
    chunksize: int = 8,
) -> PrepareSummary:
    """Prepare ``source``'s data under ``raw`` into a store at ``out``.

    Args:
        source: the data-set reader.
        raw: the raw data directory or file (``None`` for sources that generate their data).
        out: the store directory to write (atomically: it appears only when complete).
        workers: loader processes; 0 or 1 loads in this process. Order is preserved either way.
        max_bad_fraction: abort once more than this fraction of all items failed to read.
        overwrite: replace an existing store at ``out`` (only after the new one is complete).
        source_options: the source's constructor options, recorded in the manifest.
        progress: show a tqdm progress bar.
        chunksize: items per task sent to a worker.
    """
    started = time.time()
    raw_path = Path(raw) if raw is not None else Path()
    items = source.items(raw_path)
    if not items:
        raise PrepareError(f"{source.name}: no items found under {raw_path}")
    max_bad = int(max_bad_fraction * len(items))
    with StoreWriter(
        out,
        dataset=source.name,
        layout=source.layout,
        num_classes=source.num_classes,
        overwrite=overwrite,
        source_options=source_options,
    ) as writer:
        loaded = _iter_loaded(source, raw_path, items, workers, chunksize)
        bar = tqdm(loaded, total=len(items), desc=f"prepare {source.name}", unit="item", disable=not progress)
        with closing(loaded), bar:
            _consume(bar, writer, source.name, len(items), max_bad, max_bad_fraction)
        if writer.num_samples == 0:
            raise PrepareError(f"{source.name}: none of the {len(items)} items could be read")
        splits = source.splits(list(writer.names), writer.meta)
        path = writer.finish({k: np.asarray(v, dtype=np.int8) for k, v in splits.items()})
    nbytes = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    counts = {k: {"train": int((v == 1).sum()), "test": int((v == 0).sum())} for k, v in splits.items()}
    return PrepareSummary(
        path=path,
        dataset=source.name,
        num_samples=writer.num_samples,
        skipped=writer.skipped,
        splits=counts,
        total_frames=writer.total_frames,
        nbytes=nbytes,
        seconds=time.time() - started,
    )
