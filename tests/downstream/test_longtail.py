"""Long-tailed training sets: n_c by hand, which samples are kept, determinism, short classes, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_skel.downstream.longtail import long_tail_counts, long_tail_split


def test_counts_by_hand() -> None:
    # C = 5, IF = 16: 600 * (1/16) ** (c/4) = 600, 300, 150, 75, 37.5 -> floor
    assert long_tail_counts(5, 16).tolist() == [600, 300, 150, 75, 37]
    # C = 3, IF = 10: 600 * 0.1 ** 0.5 = 189.7
    assert long_tail_counts(3, 10).tolist() == [600, 189, 60]
    assert long_tail_counts(3, 100).tolist() == [600, 60, 6]
    assert long_tail_counts(1, 10).tolist() == [600]


@pytest.mark.parametrize("num_classes", [60, 120])
@pytest.mark.parametrize("imbalance_factor", [10, 50, 100])
def test_protocol_counts_run_from_600_to_600_over_if(num_classes: int, imbalance_factor: int) -> None:
    counts = long_tail_counts(num_classes, imbalance_factor)
    assert counts.shape == (num_classes,) and counts.dtype == np.int64
    assert counts[0] == 600 and counts[-1] == 600 // imbalance_factor
    assert (np.diff(counts) <= 0).all()


def synthetic_labels() -> tuple[np.ndarray, np.ndarray]:
    """4 classes with 12 samples each; even positions are training samples (6 per class), odd ones test."""
    labels = np.repeat(np.arange(4), 12)
    return labels, np.arange(0, len(labels), 2)


def test_split_keeps_n_c_training_samples_per_class() -> None:
    labels, train = synthetic_labels()
    # max_per_class 8, IF 8, C 4: n_c = 8, 4, 2, 1; class 0 has only 6 training samples
    with pytest.warns(UserWarning, match="class 0 6/8"):
        split = long_tail_split(labels, train, num_classes=4, imbalance_factor=8, max_per_class=8)
    assert split.target.tolist() == [8, 4, 2, 1]
    assert split.counts.tolist() == [6, 4, 2, 1]
    assert split.short_classes.tolist() == [0]
    assert np.isin(split.indices, train).all()
    assert (np.diff(split.indices) > 0).all()
    assert np.bincount(labels[split.indices], minlength=4).tolist() == [6, 4, 2, 1]


def test_split_is_the_documented_seeded_shuffle() -> None:
    labels, train = synthetic_labels()
    split = long_tail_split(labels, train, num_classes=4, imbalance_factor=6, max_per_class=6)
    # one default_rng(0), classes in id order, each class's ascending training indices permuted, first n_c kept
    rng = np.random.default_rng(0)
    expected = [rng.permutation(train[labels[train] == c])[:n] for c, n in enumerate(split.target)]
    assert split.indices.tolist() == sorted(np.concatenate(expected).tolist())


def test_split_is_deterministic_and_independent_of_index_order() -> None:
    labels, train = synthetic_labels()
    kwargs = {"num_classes": 4, "imbalance_factor": 6, "max_per_class": 6}
    first = long_tail_split(labels, train, **kwargs)
    again = long_tail_split(labels, np.random.default_rng(5).permutation(train), **kwargs)
    assert np.array_equal(first.indices, again.indices)
    other_seed = long_tail_split(labels, train, seed=1, **kwargs)
    assert not np.array_equal(first.indices, other_seed.indices)
    assert np.array_equal(first.counts, other_seed.counts)


def test_split_rejects_bad_input() -> None:
    labels, train = synthetic_labels()
    with pytest.raises(ValueError, match="repeat"):
        long_tail_split(labels, np.concatenate([train, train[:1]]), num_classes=4, imbalance_factor=10)
    bad = labels.copy()
    bad[train[3]] = -1
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        long_tail_split(bad, train, num_classes=4, imbalance_factor=10)
    with pytest.raises(ValueError, match="imbalance factor"):
        long_tail_split(labels, train, num_classes=4, imbalance_factor=0.5)
