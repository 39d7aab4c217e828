"""SkeletonDataModule over a small store written by the test: batches, views, subsets, bad samples, caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_skel.data import datamodule as dm_module
from ssl_skel.data.datamodule import SkeletonDataModule, SkeletonDataset, labelled_subset
from ssl_skel.data.sample import SkeletonSample
from ssl_skel.data.store import SkeletonStore, StoreWriter
from ssl_skel.skeleton.features import bone

N = 30  # samples: labels k % 3, split: every third sample is test


def _sample(k: int) -> SkeletonSample:
    rng = np.random.default_rng(k)
    t = 1 + (7 * k) % 40
    data = rng.normal(size=(3, t, 25, 2)).astype(np.float32) + 1.0
    data[..., 1] = 0 if k % 2 else data[..., 1]  # odd samples have one person
    return SkeletonSample(f"s{k:02d}", data, label=k % 3, meta={"subject": k})


def _write_store(path: Path, nan_at: tuple[int, ...] = ()) -> Path:
    with StoreWriter(path, dataset="fake", layout="ntu25", num_classes=3) as writer:
        for k in range(N):
            sample = _sample(k)
            if k in nan_at:
                sample.data[0, 0, 0, 0] = np.nan
            writer.append(sample)
        return writer.finish({"xsub": np.array([0 if k % 3 == 2 else 1 for k in range(N)], np.int8)})


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    return _write_store(tmp_path_factory.mktemp("dm") / "store")


def _dm(root: Path, **kwargs) -> SkeletonDataModule:
    defaults = {"split": "xsub", "num_frames": 16, "batch_size": 4, "num_workers": 0}
    return SkeletonDataModule(root=str(root), **{**defaults, **kwargs})


def test_properties_and_batches(store_path):
    dm = _dm(store_path, normalization="first_frame")
    assert (dm.num_classes, dm.layout, dm.in_channels, dm.num_persons, dm.num_joints) == (3, "ntu25", 3, 2, 25)
    dm.setup("fit")
    train = [k for k in range(N) if k % 3 != 2]
    np.testing.assert_array_equal(dm.train_indices, train)
    batches = list(dm.train_dataloader())
    assert len(batches) == len(train) // 4  # drop_last
    batch = batches[0]
    assert batch["x"].shape == (4, 3, 16, 25, 2) and batch["x"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64
    np.testing.assert_array_equal(batch["label"], batch["index"] % 3)
    seen = torch.cat([b["index"] for b in batches]).tolist()
    assert set(seen) <= set(train) and seen != sorted(seen)  # shuffled training order
    for b in batches:  # an absent person stays zero through normalisation and sampling
        odd = b["index"] % 2 == 1
        assert not b["x"][odd][..., 1].any()


def test_eval_loaders_are_deterministic_and_complete(store_path):
    dm = _dm(store_path, normalization="per_frame_shoulder", eval_batch_size=5)
    first = list(dm.val_dataloader())
    second = list(dm.test_dataloader())
    assert torch.cat([b["index"] for b in first]).tolist() == [k for k in range(N) if k % 3 == 2]
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a["x"], b["x"])
    bank = torch.cat([b["index"] for b in dm.train_eval_dataloader()])
    assert bank.tolist() == dm.train_indices.tolist()
    # centre sampling of the stored clip, normalised
    store = SkeletonStore(store_path)
    ds = SkeletonDataset(store, np.array([4]), 16, train=False, normalization="none")
    expected = dm_module.center_sample(np.array(store[4][0]), 16)
    np.testing.assert_array_equal(ds[0]["x"], expected)


def test_views_are_independent_crops(store_path):
    dm = _dm(store_path, num_views=2, num_frames=8)
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch["x"], list) and len(batch["x"]) == 2
    a, b = batch["x"]
    assert a.shape == b.shape == (4, 3, 8, 25, 2)
    assert not torch.equal(a, b)
    assert next(iter(dm.val_dataloader()))["x"].shape == (4, 3, 8, 25, 2)  # evaluation: one view


def test_training_crops_reproducible_with_workers(store_path):
    dm = _dm(store_path, num_workers=2, persistent_workers=False)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append([b for b, _ in zip(dm.train_dataloader(), range(2), strict=False)])
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a["x"], b["x"])
        torch.testing.assert_close(a["index"], b["index"])


def test_label_fraction_subset_is_balanced_seeded_and_saved(store_path, tmp_path):
    labels = np.arange(200) % 4
    idx = np.arange(200)
    sub = labelled_subset(labels, idx, 0.1, seed=0)
    assert np.bincount(labels[sub]).tolist() == [5, 5, 5, 5]
    np.testing.assert_array_equal(sub, labelled_subset(labels, idx, 0.1, seed=0))
    assert not np.array_equal(sub, labelled_subset(labels, idx, 0.1, seed=1))
    assert labelled_subset(labels, idx, 0.001, seed=0).size == 4  # at least one per class
    saved = tmp_path / "subset.json"
    dm = _dm(store_path, label_fraction=0.5, label_seed=3, label_indices_path=str(saved))
    dm.setup("fit")
    record = json.loads(saved.read_text())
    assert record["indices"] == dm.train_indices.tolist()
    assert record["names"] == [f"s{k:02d}" for k in dm.train_indices]
    # 10 training samples of classes 0 and 1 each (class 2 is all test) -> 5 of each
    assert np.bincount(np.asarray(dm.train_indices) % 3, minlength=3).tolist() == [5, 5, 0]
    assert {int(i) for b in dm.train_dataloader() for i in b["index"]} <= set(record["indices"])


def test_bad_samples_are_skipped_or_raise(tmp_path):
    path = _write_store(tmp_path / "bad", nan_at=(0, 3))
    store = SkeletonStore(path)
    ds = SkeletonDataset(store, np.array([0, 1, 3, 4]), 8, train=True, seed=0)
    with pytest.warns(UserWarning, match=r"sample 0 \(s00\) has non-finite values"):
        item = ds[0]
    assert item["index"] == 1 and np.isfinite(item["x"]).all() and ds.bad_samples == 1
    with pytest.warns(UserWarning, match="s03"):
        assert ds[2]["index"] == 4
    strict = SkeletonDataset(store, np.array([3]), 8, train=False, on_bad_sample="raise")
    with pytest.raises(ValueError, match=r"bad: sample 3 \(s03\) has non-finite values"):
        strict[0]


def test_stream_applied_on_the_batch(store_path):
    dm = _dm(store_path, stream="bone")
    x = next(iter(dm.val_dataloader()))["x"]
    torch.testing.assert_close(dm.apply_stream(x), bone(x, "ntu25"))


def test_argument_errors(store_path):
    with pytest.raises(ValueError, match="exactly one of root"):
        SkeletonDataModule()
    with pytest.raises(ValueError, match="unknown normalization"):
        _dm(store_path, normalization="spine")
    with pytest.raises(ValueError, match="unknown stream"):
        _dm(store_path, stream="velocity")
    only = _dm(store_path, split=None)  # a store with one split needs no split name
    only.setup()
    assert only.test_indices.tolist() == [k for k in range(N) if k % 3 == 2]
    with pytest.raises(KeyError, match="no split 'xview'"):
        _dm(store_path, split="xview").setup()


class _CountingSource:
    name = "synthetic"
    layout = "ntu25"
    num_classes = 3
    calls = 0

    def __init__(self, dataset: str, num_samples: int) -> None:
        self.num_samples = num_samples
        type(self).calls += 1

    def items(self, raw: Path) -> list[str]:
        return [str(k) for k in range(self.num_samples)]

    def load(self, raw: Path, item: str) -> SkeletonSample:
        return _sample(int(item))

    def splits(self, names: list[str], meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"default": (meta["subject"] % 4 != 0).astype(np.int8)}


def test_dataset_name_is_prepared_into_the_cache_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dm_module, "get_source", lambda name, **options: _CountingSource(name, **options))
    kwargs = {"dataset": "synthetic", "source_options": {"num_samples": 12}, "cache_dir": str(tmp_path),
              "num_frames": 8, "batch_size": 2, "num_workers": 0}
    dm = SkeletonDataModule(**kwargs)
    assert dm.num_classes == 3 and dm.num_persons == 2
    assert "prepared synthetic: 12 samples" in capsys.readouterr().out
    assert dm.store_path.parent == tmp_path and dm.store_path.name.startswith("synthetic-")
    assert next(iter(dm.train_dataloader()))["x"].shape == (2, 3, 8, 25, 2)
    again = SkeletonDataModule(**kwargs)
    again.prepare_data()
    assert again.store_path == dm.store_path and _CountingSource.calls == 1
    other = SkeletonDataModule(**{**kwargs, "source_options": {"num_samples": 8}})
    assert len(other.store) == 8 and other.store_path != dm.store_path


def test_synthetic_dataset_needs_no_preparation_step(tmp_path):
    dm = SkeletonDataModule(dataset="synthetic", source_options={"num_samples": 24, "seed": 3},
                            cache_dir=str(tmp_path), split="xsub", num_frames=12, batch_size=4, num_workers=0,
                            normalization="per_frame_shoulder")
    assert dm.layout == "ntu25" and dm.in_channels == 3
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (4, 3, 12, 25, dm.num_persons) and torch.isfinite(batch["x"]).all()
    assert batch["label"].max() < dm.num_classes


def test_epoch_sampler_is_a_function_of_seed_and_epoch():
    from ssl_skel.data.datamodule import EpochSampler

    a, b = EpochSampler(20, seed=3), EpochSampler(20, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    first = list(a)
    assert first == list(b) == list(a)  # same seed and epoch: same order and crop seeds, however often drawn
    assert sorted(p for p, _ in first) == list(range(20))
    b.set_epoch(3)
    assert list(b) != first
    assert [p for p, _ in EpochSampler(5, seed=0, shuffle=False)] == list(range(5))


def test_training_batches_repeat_exactly_for_a_resumed_epoch(store_path):
    """A fresh data module with the same train seed gives the same epoch-1 batches (crops included)."""

    def epoch_batches(epoch: int) -> list[torch.Tensor]:
        dm = _dm(store_path)
        dm.train_seed = 11
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [b["x"] for b in loader]

    again = epoch_batches(1)
    for x, y in zip(epoch_batches(1), again, strict=True):
        assert torch.equal(x, y)
    assert not all(torch.equal(x, y) for x, y in zip(epoch_batches(0), again, strict=True))
