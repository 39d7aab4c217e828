"""Long-tailed training sets (BRL, Liu et al. ICCV 2023: NTU-60-LT / NTU-120-LT).

Class ``c`` (0-based class id, which is also the class order) keeps
``n_c = floor(max_per_class * (1 / IF) ** (c / (C - 1)))`` of its training samples, ``max_per_class = 600``; the
protocol's imbalance factors are IF = 10, 50 and 100. The test set is not changed. Which samples a class keeps: its
training indices in ascending order are shuffled by one ``numpy.random.default_rng(seed)`` (PCG64, seed 0 by
default), drawn class after class in class order, and the first ``n_c`` are kept. The result is therefore a pure
function of the training indices, their labels, IF and the seed: the same on every machine and run, and
independent of the order in which the indices are given.

``SkeletonDataModule(long_tail_imbalance=IF, ...)`` trains on this subset; ``ssl-skel linear | finetune`` with
``data.long_tail_imbalance`` (``configs/eval/longtail/``) also report the many / medium / few-shot accuracies
(:mod:`ssl_skel.metrics.longtail`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["LongTailSplit", "long_tail_counts", "long_tail_split"]


def long_tail_counts(num_classes: int, imbalance_factor: float, max_per_class: int = 600) -> np.ndarray:
    """``(C,)`` int64 target training samples per class: ``floor(max_per_class * (1/IF) ** (c / (C - 1)))``.

    Class 0 gets ``max_per_class``, class ``C - 1`` gets ``floor(max_per_class / IF)`` (e.g. 600, 577, ..., 60 for
    C = 60, IF = 10); a single class gets ``max_per_class``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if imbalance_factor < 1:
        raise ValueError(f"the imbalance factor must be >= 1 (the protocol uses 10, 50, 100), got {imbalance_factor}")
    exponent = np.arange(num_classes) / max(num_classes - 1, 1)
    return np.floor(max_per_class * (1.0 / imbalance_factor) ** exponent).astype(np.int64)


@dataclass(frozen=True)
class LongTailSplit:
    """A long-tailed subset of a training set.

    Attributes:
        indices: sorted int64 sample indices kept (a subset of the given training indices).
        target: ``(C,)`` int64 ``n_c`` of :func:`long_tail_counts`.
        counts: ``(C,)`` int64 samples actually kept per class (``min(n_c, available)``); the training counts that
            define the many / medium / few-shot buckets.
    """

    indices: np.ndarray
    target: np.ndarray
    counts: np.ndarray

    @property
    def short_classes(self) -> np.ndarray:
        """Class ids that had fewer training samples than ``n_c`` (all of them were kept)."""
        return np.flatnonzero(self.counts < self.target)


def long_tail_split(
    labels: np.ndarray,
    train_indices: np.ndarray,
    num_classes: int,
    imbalance_factor: float,
    seed: int = 0,
    max_per_class: int = 600,
) -> LongTailSplit:
    """Keep ``n_c`` training samples of every class ``c`` (see the module docstring for the rule).

    A class with fewer than ``n_c`` training samples keeps all of them; this is listed in
    :attr:`LongTailSplit.short_classes` and warned about (``UserWarning``).

    Args:
        labels: ``(N,)`` class ids of every sample of the data set (e.g. ``store.labels``).
        train_indices: indices of the training samples into ``labels``.
        num_classes: number of classes C.
        imbalance_factor: IF, the ratio of the largest to the smallest ``n_c``.
        seed: seed of the within-class shuffle.
        max_per_class: ``n_0``.

    Raises:
        ValueError: a training sample's label is not a class id in ``[0, C)``, or an index repeats.
    """
    given = np.asarray(train_indices, dtype=np.int64)
    train_indices = np.unique(given)
    if len(train_indices) != len(given):
        raise ValueError("train_indices repeat a sample")
    train_labels = np.asarray(labels)[train_indices]
    bad = (train_labels < 0) | (train_labels >= num_classes)
    if bad.any():
        raise ValueError(
            f"training samples {train_indices[bad][:5].tolist()} have labels {train_labels[bad][:5].tolist()} "
            f"outside [0, {num_classes})"
        )
    target = long_tail_counts(num_classes, imbalance_factor, max_per_class)
    rng = np.random.default_rng(seed)
    kept = [rng.permutation(train_indices[train_labels == c])[: target[c]] for c in range(num_classes)]
    counts = np.array([len(k) for k in kept], dtype=np.int64)
    split = LongTailSplit(indices=np.sort(np.concatenate(kept)), target=target, counts=counts)
    short = split.short_classes
    if len(short):
        warnings.warn(
            f"long-tail split (IF={imbalance_factor}): {len(short)} classes have fewer training samples than n_c and "
            f"keep all of them: {', '.join(f'class {c} {counts[c]}/{target[c]}' for c in short)}",
            stacklevel=2,
        )
    return split
