"""Long-tailed recognition metrics: top-1, mean class accuracy and many / medium / few-shot accuracies.

A class is *many-shot* with more than 100 training samples, *medium-shot* with 20 to 100 (both ends included)
and *few-shot* with fewer than 20 (the BRL / OLTR convention). A bucket's accuracy is the mean of the per-class
accuracies of its classes (as is mean class accuracy over all classes); classes without test samples are left
out of every mean. Top-1 is pooled over all test samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

__all__ = ["SHOT_BUCKETS", "LongTailAccuracy", "long_tail_accuracies", "shot_buckets"]

#: bucket names, in the order of the ids :func:`shot_buckets` returns.
SHOT_BUCKETS = ("many", "medium", "few")
MANY_SHOT_ABOVE = 100  # many-shot: more than this many training samples
FEW_SHOT_BELOW = 20  # few-shot: fewer than this many training samples


def shot_buckets(train_counts: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """``(C,)`` training samples per class -> ``(C,)`` int64 bucket id: 0 many (> 100), 1 medium (20..100), 2 few
    (< 20)."""
    counts = torch.as_tensor(train_counts, dtype=torch.long)
    buckets = torch.ones_like(counts)
    buckets[counts > MANY_SHOT_ABOVE] = 0
    buckets[counts < FEW_SHOT_BELOW] = 2
    return buckets


def long_tail_accuracies(
    correct: torch.Tensor, total: torch.Tensor, train_counts: torch.Tensor | Sequence[int]
) -> dict[str, torch.Tensor]:
    """Accuracies in [0, 1] from per-class test counts.

    Args:
        correct: ``(C,)`` correctly classified test samples per class.
        total: ``(C,)`` test samples per class.
        train_counts: ``(C,)`` training samples per class (define the buckets).

    Returns:
        ``{"top1", "mean_class", "many_shot", "medium_shot", "few_shot"}`` as float64 scalars; a bucket without a
        class that has test samples is NaN.
    """
    correct, total = correct.double(), total.double()
    buckets = shot_buckets(train_counts).to(total.device)
    if not correct.shape == total.shape == buckets.shape:
        raise ValueError(
            f"need one count per class: correct {tuple(correct.shape)}, total {tuple(total.shape)}, "
            f"train_counts {tuple(buckets.shape)}"
        )
    if total.sum() == 0:
        raise ValueError("no test samples: every class has a test count of 0")
    tested = total > 0
    per_class = correct / total.clamp(min=1)
    result = {"top1": correct.sum() / total.sum(), "mean_class": per_class[tested].mean()}
    for bucket, name in enumerate(SHOT_BUCKETS):
        # the mean of an empty selection is NaN, which is what an empty bucket reports
        result[f"{name}_shot"] = per_class[tested & (buckets == bucket)].mean()
    return result


class LongTailAccuracy(Metric):
    """Long-tail accuracies (:func:`long_tail_accuracies`) of a classifier, summed across processes.

    Args:
        train_counts: ``(C,)`` training samples per class of the (long-tailed) training set.

    ``update(preds, target)`` takes ``preds`` as ``(B, C)`` scores (argmax is the prediction) or ``(B,)`` labels
    and ``target`` as ``(B,)`` labels; ``compute()`` returns the dict of :func:`long_tail_accuracies`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    correct: torch.Tensor
    total: torch.Tensor

    def __init__(self, train_counts: torch.Tensor | Sequence[int], **kwargs) -> None:
        super().__init__(**kwargs)
        counts = torch.as_tensor(train_counts, dtype=torch.long)
        if counts.ndim != 1 or counts.numel() == 0 or bool((counts < 0).any()):
            raise ValueError(f"train_counts must be a non-empty (C,) sequence of counts >= 0, got {train_counts}")
        self.num_classes = counts.numel()
        self.register_buffer("train_counts", counts, persistent=False)
        self.add_state("correct", default=torch.zeros(self.num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros(self.num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Count ``(B, C)`` scores or ``(B,)`` predicted labels against ``(B,)`` true labels per class."""
        preds = preds.argmax(dim=1) if preds.ndim == 2 else preds
        target = target.long()
        if preds.shape != target.shape:
            raise ValueError(f"predictions {tuple(preds.shape)} and targets {tuple(target.shape)} do not match")
        if target.numel() and (target.min() < 0 or target.max() >= self.num_classes):
            raise ValueError(f"targets must be class ids in [0, {self.num_classes}), got {target.unique().tolist()}")
        self.total += torch.bincount(target, minlength=self.num_classes)
        self.correct += torch.bincount(target[preds.long() == target], minlength=self.num_classes)

    def compute(self) -> dict[str, torch.Tensor]:
        """Accuracies over every test sample seen (all processes)."""
        return long_tail_accuracies(self.correct, self.total, self.train_counts)
