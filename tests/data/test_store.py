"""The prepared-data store: streaming writer, memory-mapped reader, atomic output and clear errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from ssl_skel.data.sample import SkeletonSample
from ssl_skel.data.store import MANIFEST, SkeletonStore, StoreError, StoreWriter


def _samples(with_frame_labels: bool = False) -> list[SkeletonSample]:
    rng = np.random.default_rng(0)
    out = []
    for i, (t, m) in enumerate([(7, 2), (1, 2), (12, 1), (3, 2), (5, 2)]):
        data = rng.normal(size=(3, t, 4, m)).astype(np.float32)
        frame_labels = np.arange(t, dtype=np.int64) + 10 * i if with_frame_labels else None
        meta = {"subject": i % 2, "camera": i} if i != 4 else {"subject": 0}
        out.append(SkeletonSample(f"s{i}", data, label=i % 3, meta=meta, frame_labels=frame_labels))
    return out


def _write(path, samples, **kwargs):
    with StoreWriter(path, dataset="fake", layout="ntu25", num_classes=3, **kwargs) as writer:
        for s in samples:
            writer.append(s)
        n = len(samples)
        return writer.finish({"xs": np.array([1, 0] * (n // 2) + [1] * (n % 2), np.int8), "all": np.ones(n, np.int8)})


def test_round_trip(tmp_path):
    samples = _samples(with_frame_labels=True)
    path = _write(tmp_path / "store", samples)
    store = SkeletonStore(path)
    assert len(store) == 5
    assert store.shape == (3, 4, 2)
    assert store.layout == "ntu25" and store.num_classes == 3
    for i, s in enumerate(samples):
        data, label = store[i]
        t, m = s.data.shape[1], s.data.shape[3]
        assert data.shape == (3, t, 4, 2)
        np.testing.assert_array_equal(data[..., :m], s.data)
        assert not data[..., m:].any()  # a missing person is zero-padded
        assert label == s.label
        assert not data.flags.writeable
        assert np.shares_memory(data, store.frames)  # a view of the mapped frames, no copy
        np.testing.assert_array_equal(store.frame_labels(i), s.frame_labels)
    assert list(store.names) == [s.name for s in samples]
    np.testing.assert_array_equal(store.meta["camera"], [0, 1, 2, 3, -1])
    np.testing.assert_array_equal(store.meta["subject"], [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(store.split_indices("xs", "train"), [0, 2, 4])
    np.testing.assert_array_equal(store.split_indices("xs", "test"), [1, 3])
    np.testing.assert_array_equal(store.offsets, [0, 7, 8, 20, 23])
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["total_frames"] == 28 and manifest["num_samples"] == 5
    assert manifest["splits"]["xs"] == {"train": 3, "test": 2}
    assert manifest["shapes"] == {"C": 3, "V": 4, "M": 2}
    # the streamed frames file is a plain .npy: time-major (F, C, V, M)
    frames = np.load(path / "frames.npy", mmap_mode="r")
    assert frames.shape == (28, 3, 4, 2) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames[8:20, :, :, 0], samples[2].data[..., 0].transpose(1, 0, 2))
    assert not list(tmp_path.glob(".*"))  # no temporary directory left


def test_no_frame_labels_and_unknown_split(tmp_path):
    store = SkeletonStore(_write(tmp_path / "store", _samples()))
    with pytest.raises(KeyError, match="no frame labels"):
        store.frame_labels(0)
    with pytest.raises(KeyError, match="no split 'xview'"):
        store.split_indices("xview", "train")
    with pytest.raises(ValueError, match="train' or 'test"):
        store.split_indices("xs", "val")


def test_pickled_store_reopens_without_copying(tmp_path):
    store = SkeletonStore(_write(tmp_path / "store", _samples()))
    _ = store[0]
    blob = pickle.dumps(store)
    assert len(blob) < 4096
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone[2][0], store[2][0])


def test_release_pages_keeps_reading_correct(tmp_path):
    samples = _samples()
    path = _write(tmp_path / "store", samples)
    store = SkeletonStore(path, release_every_mb=1e-5)  # release after nearly every read
    for _ in range(3):
        for i, s in enumerate(samples):
            np.testing.assert_array_equal(store[i][0][..., : s.data.shape[3]], s.data)


def test_abort_on_exception_leaves_nothing(tmp_path):
    out = tmp_path / "store"
    with pytest.raises(RuntimeError, match="boom"), StoreWriter(out, dataset="f", layout="ntu25", num_classes=3) as w:
        w.append(_samples()[0])
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_overwrite_rules(tmp_path):
    out = _write(tmp_path / "store", _samples())
    with pytest.raises(FileExistsError, match="overwrite"):
        StoreWriter(out, dataset="f", layout="ntu25", num_classes=3)
    # with overwrite, the old store stays complete until the new one is finished
    samples = _samples()[:2]
    with StoreWriter(out, dataset="new", layout="ntu25", num_classes=3, overwrite=True) as writer:
        for s in samples:
            writer.append(s)
        assert SkeletonStore(out).manifest["dataset"] == "fake"
        writer.finish({})
    store = SkeletonStore(out)
    assert store.manifest["dataset"] == "new" and len(store) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a prepared store"):
        StoreWriter(other, dataset="f", layout="ntu25", num_classes=3, overwrite=True)


def test_inconsistent_samples_rejected(tmp_path):
    with StoreWriter(tmp_path / "s", dataset="f", layout="ntu25", num_classes=3) as writer:
        writer.append(SkeletonSample("a", np.zeros((3, 2, 4, 1), np.float32)))
        with pytest.raises(ValueError, match=r"sample b: .*\(C, V, M\) = \(3, 4, 1\)"):
            writer.append(SkeletonSample("b", np.zeros((3, 2, 4, 2), np.float32)))
        with pytest.raises(ValueError, match="sample c: frame labels"):
            writer.append(SkeletonSample("c", np.zeros((3, 2, 4, 1), np.float32), frame_labels=np.zeros(2)))
        with pytest.raises(ValueError, match="split 'x'"):
            writer.finish({"x": np.ones(5, np.int8)})


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(StoreError, match="not a directory"):
        SkeletonStore(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="incomplete"):
        SkeletonStore(tmp_path / "empty")
    path = _write(tmp_path / "store", _samples())
    manifest = json.loads((path / MANIFEST).read_text())
    (path / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(StoreError, match="format_version 99"):
        SkeletonStore(path)
    (path / MANIFEST).write_text(json.dumps(manifest))
    (path / "labels.npy").unlink()
    with pytest.raises(StoreError, match=r"labels.npy: missing"):
        SkeletonStore(path)


def test_truncated_frames_detected(tmp_path):
    path = _write(tmp_path / "store", _samples())
    with open(path / "frames.npy", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(StoreError, match=r"frames\.npy: truncated"):
        SkeletonStore(path)
