"""CTR-GCN ``.npz`` reader: memory-mapped rows, valid-frame trimming, labels, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssl_skel.data.ntu_npz import NTUNpzSource, open_npz_member
from ssl_skel.data.sample import SkeletonFileError
from ssl_skel.data.source import DatasetSource, get_source

LENGTHS = {"train": [300, 40, 1], "test": [7, 120]}


def make_arrays(num_classes: int = 60) -> dict[str, np.ndarray]:
    """Rows with known valid lengths; frame t of sample i holds joint values coding (i, t, person, joint, axis)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for part, lengths in LENGTHS.items():
        x = np.zeros((len(lengths), 300, 150), dtype=np.float32)
        for i, length in enumerate(lengths):
            x[i, :length] = rng.normal(size=(length, 150))
            x[i, :length, 75:] *= i % 2  # odd samples have a second person
        labels = rng.integers(0, num_classes, len(lengths))
        arrays[f"x_{part}"], arrays[f"y_{part}"] = x, np.eye(num_classes, dtype=np.float32)[labels]
    return arrays


@pytest.fixture
def npz_file(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    arrays = make_arrays()
    np.savez(tmp_path / "NTU60_CS.npz", **arrays)
    return tmp_path / "NTU60_CS.npz", arrays


def test_stored_members_are_memory_mapped(npz_file: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    path, arrays = npz_file
    x = open_npz_member(path, "x_train")
    assert isinstance(x, np.memmap)
    np.testing.assert_array_equal(x, arrays["x_train"])
    np.savez_compressed(tmp_path / "packed.npz", **arrays)
    packed = open_npz_member(tmp_path / "packed.npz", "x_test")
    assert not isinstance(packed, np.memmap)
    np.testing.assert_array_equal(packed, arrays["x_test"])


def test_source_reads_rows(npz_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, arrays = npz_file
    source = get_source("ntu_npz", split="xview")
    assert isinstance(source, DatasetSource) and isinstance(source, NTUNpzSource)
    items = source.items(path.parent)
    assert items == ["train_000000", "train_000001", "train_000002", "test_000000", "test_000001"]
    metas = []
    for item in items:
        part, index = item.split("_")
        i = int(index)
        sample = source.load(path, item)
        length = LENGTHS[part][i]
        assert sample.data.shape == (3, length, 25, 2) and sample.data.dtype == np.float32
        want = arrays[f"x_{part}"][i, :length].reshape(length, 2, 25, 3)
        np.testing.assert_array_equal(sample.data[:, :, 4, 1], want[:, 1, 4, :].T)  # person 2, joint 4
        np.testing.assert_array_equal(sample.data[2, :, :, 0], want[:, 0, :, 2])  # person 1, z
        assert sample.label == int(np.argmax(arrays[f"y_{part}"][i]))
        metas.append(sample.meta)
    splits = source.splits(items, {"train": np.array([m["train"] for m in metas])})
    np.testing.assert_array_equal(splits["xview"], [1, 1, 1, 0, 0])


def test_class_count_is_checked(npz_file: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = npz_file
    with pytest.raises(SkeletonFileError, match=r"y_train has shape \(3, 60\), expected \(3, 120\)"):
        NTUNpzSource(num_classes=120).items(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"expected one \.npz"):
        NTUNpzSource().items(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        NTUNpzSource().items(tmp_path / "NTU60_CV.npz")
