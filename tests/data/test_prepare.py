"""prepare(): streaming a source into a store, skipping bad items, the bad-item limit, atomic output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssl_skel.data.prepare import PrepareError, prepare
from ssl_skel.data.sample import SkeletonFileError, SkeletonSample
from ssl_skel.data.store import SkeletonStore


class FakeSource:
    """Items ``i0 .. i{n-1}``; ``bad`` items raise SkeletonFileError, ``crash`` items a RuntimeError."""

    name = "fake"
    layout = "ntu25"
    num_classes = 4

    def __init__(self, n: int = 12, bad: tuple[int, ...] = (), crash: tuple[int, ...] = ()) -> None:
        self.n, self.bad, self.crash = n, bad, crash

    def items(self, raw: Path) -> list[str]:
        return [f"i{k}" for k in range(self.n)]

    def load(self, raw: Path, item: str) -> SkeletonSample:
        k = int(item[1:])
        if k in self.bad:
            raise SkeletonFileError(raw / item, "truncated")
        if k in self.crash:
            raise RuntimeError(f"crash at {item}")
        data = np.random.default_rng(k).normal(size=(3, 2 + k, 25, 2)).astype(np.float32)
        return SkeletonSample(item, data, label=k % 4, meta={"subject": k % 3})

    def splits(self, names: list[str], meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"xsub": np.where(meta["subject"] == 0, 0, 1).astype(np.int8)}


def test_prepare_writes_all_good_items_and_lists_bad_ones(tmp_path):
    summary = prepare(FakeSource(bad=(3, 7)), tmp_path / "raw", tmp_path / "out", progress=False,
                      max_bad_fraction=0.2, source_options={"n": 12})
    store = SkeletonStore(tmp_path / "out")
    good = [k for k in range(12) if k not in (3, 7)]
    assert list(store.names) == [f"i{k}" for k in good]
    np.testing.assert_array_equal(store.lengths, [2 + k for k in good])
    np.testing.assert_array_equal(store.labels, [k % 4 for k in good])
    np.testing.assert_array_equal(store[4][0], FakeSource().load(Path(), "i5").data)
    m = store.manifest
    assert m["num_skipped"] == 2
    assert m["skipped"][0] == {"item": "i3", "reason": str(Path(tmp_path / "raw" / "i3")) + ": truncated"}
    assert m["source_options"] == {"n": 12}
    test = sum(k % 3 == 0 for k in good)
    assert m["splits"]["xsub"] == {"train": 10 - test, "test": test}
    assert summary.num_samples == 10 and len(summary.skipped) == 2
    text = summary.format()
    assert "10 samples" in text and "i7:" in text and f"split xsub: train {10 - test}, test {test}" in text


def test_worker_pool_gives_the_same_store(tmp_path):
    prepare(FakeSource(bad=(5,)), None, tmp_path / "serial", progress=False, max_bad_fraction=0.1)
    prepare(FakeSource(bad=(5,)), None, tmp_path / "pool", workers=2, chunksize=2, progress=False,
            max_bad_fraction=0.1)
    a, b = SkeletonStore(tmp_path / "serial"), SkeletonStore(tmp_path / "pool")
    np.testing.assert_array_equal(a.names, b.names)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.manifest["skipped"] == b.manifest["skipped"]


def test_too_many_bad_items_abort_without_output(tmp_path):
    with pytest.raises(PrepareError, match=r"3 of 12 items unreadable.*i1.*: truncated"):
        prepare(FakeSource(bad=(1, 2, 3, 4)), tmp_path, tmp_path / "out", max_bad_fraction=0.2, progress=False)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("workers", [0, 2])
def test_crash_midway_leaves_no_store_and_keeps_the_old_one(tmp_path, workers):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="crash at i6"):
        prepare(FakeSource(crash=(6,)), tmp_path, out, workers=workers, progress=False)
    assert not out.exists()
    prepare(FakeSource(n=4), tmp_path, out, progress=False)
    with pytest.raises(RuntimeError, match="crash at i6"):
        prepare(FakeSource(crash=(6,)), tmp_path, out, workers=workers, overwrite=True, progress=False)
    assert len(SkeletonStore(out)) == 4  # the complete old store survives the failed replacement
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_existing_store_needs_overwrite(tmp_path):
    prepare(FakeSource(n=3), tmp_path, tmp_path / "out", progress=False)
    with pytest.raises(FileExistsError, match="overwrite"):
        prepare(FakeSource(n=5), tmp_path, tmp_path / "out", progress=False)
    prepare(FakeSource(n=5), tmp_path, tmp_path / "out", overwrite=True, progress=False)
    assert len(SkeletonStore(tmp_path / "out")) == 5


def test_nothing_readable(tmp_path):
    with pytest.raises(PrepareError, match="none of the 2 items"):
        prepare(FakeSource(n=2, bad=(0, 1)), tmp_path, tmp_path / "out", max_bad_fraction=1.0, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.real_data
def test_prepare_real_nw_ucla(real_data, tmp_path):
    from ssl_skel.data.source import get_source

    summary = prepare(get_source("nw_ucla"), real_data / "nw_ucla", tmp_path / "ucla", workers=2, progress=False)
    assert summary.num_samples == 1484 and not summary.skipped
    store = SkeletonStore(tmp_path / "ucla")
    assert store.manifest["splits"]["view"] == {"train": 1020, "test": 464}
    assert store.shape == (3, 20, 1) and store.layout == "nw_ucla20" and store.num_classes == 10
    assert store.lengths.min() == 1 and np.isfinite(store.frames).all()


@pytest.mark.slow
@pytest.mark.real_data
def test_prepare_real_pku_mmd_untrimmed_keeps_frame_labels(real_data, tmp_path):
    from ssl_skel.data.source import get_source

    prepare(get_source("pku_mmd1_untrimmed"), real_data / "pku_mmd_v1", tmp_path / "pku", progress=False)
    store = SkeletonStore(tmp_path / "pku")
    assert len(store) == 24 and store.manifest["frame_labels"]
    labels = store.frame_labels(0)
    assert labels.shape == (store.lengths[0],) and labels.min() == 0 and labels.max() > 0
