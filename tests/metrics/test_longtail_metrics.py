"""Long-tail accuracies: shot buckets at their boundaries, a hand-worked example, the Metric and its merging."""

from __future__ import annotations

import math

import pytest
import torch

from ssl_skel.metrics.longtail import LongTailAccuracy, long_tail_accuracies, shot_buckets


def test_bucket_boundaries() -> None:
    # many: > 100; medium: 20..100 with both ends included; few: < 20
    counts = [600, 101, 100, 99, 21, 20, 19, 1, 0]
    assert shot_buckets(counts).tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2]


def hand_example() -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """4 classes with 150 / 100 / 20 / 19 training samples (many, medium, medium, few).

    Test samples: class 0: 4, 3 right (0.75); class 1: 2, 1 right (0.5); class 2: 2, 2 right (1.0);
    class 3: 2, none right (0.0).
    """
    target = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 3, 3])
    preds = torch.tensor([0, 0, 0, 1, 1, 3, 2, 2, 0, 2])
    return preds, target, [150, 100, 20, 19]


def test_hand_worked_accuracies() -> None:
    preds, target, train_counts = hand_example()
    total = torch.bincount(target, minlength=4)
    correct = torch.bincount(target[preds == target], minlength=4)
    result = long_tail_accuracies(correct, total, train_counts)
    assert result["top1"].item() == pytest.approx(6 / 10)
    assert result["mean_class"].item() == pytest.approx((0.75 + 0.5 + 1.0 + 0.0) / 4)
    assert result["many_shot"].item() == pytest.approx(0.75)
    # class 1 (100 training samples) and class 2 (20) are both medium-shot
    assert result["medium_shot"].item() == pytest.approx((0.5 + 1.0) / 2)
    assert result["few_shot"].item() == pytest.approx(0.0)


def test_bucket_is_the_mean_of_class_accuracies_not_pooled() -> None:
    # two medium classes: 1/1 right and 0/3 right -> mean class accuracy 0.5, pooled would be 0.25
    correct, total = torch.tensor([1, 0]), torch.tensor([1, 3])
    result = long_tail_accuracies(correct, total, [50, 50])
    assert result["medium_shot"].item() == pytest.approx(0.5)
    assert result["top1"].item() == pytest.approx(0.25)


def test_empty_bucket_is_nan_and_untested_classes_are_left_out() -> None:
    # class 2 (few) has no test samples: it counts in no mean; no class is many-shot
    correct, total = torch.tensor([2, 1, 0]), torch.tensor([2, 4, 0])
    result = long_tail_accuracies(correct, total, [60, 30, 5])
    assert math.isnan(result["many_shot"].item()) and math.isnan(result["few_shot"].item())
    assert result["mean_class"].item() == pytest.approx((1.0 + 0.25) / 2)
    assert result["top1"].item() == pytest.approx(3 / 6)


def test_shape_mismatch_and_no_test_samples_raise() -> None:
    with pytest.raises(ValueError, match="one count per class"):
        long_tail_accuracies(torch.tensor([1, 0]), torch.tensor([1, 1]), [5, 5, 5])
    with pytest.raises(ValueError, match="no test samples"):
        long_tail_accuracies(torch.zeros(2), torch.zeros(2), [5, 5])


def test_metric_accumulates_batches_of_labels_or_scores() -> None:
    preds, target, train_counts = hand_example()
    metric = LongTailAccuracy(train_counts)
    metric.update(preds[:3], target[:3])
    metric.update(torch.nn.functional.one_hot(preds[3:], 4).float(), target[3:])  # scores: argmax is the label
    result = metric.compute()
    assert set(result) == {"top1", "mean_class", "many_shot", "medium_shot", "few_shot"}
    assert result["top1"].item() == pytest.approx(0.6)
    assert result["mean_class"].item() == pytest.approx(0.5625)
    assert result["medium_shot"].item() == pytest.approx(0.75)
    metric.reset()
    assert metric.total.sum() == 0 and metric.correct.sum() == 0


def test_metric_states_sum_like_processes() -> None:
    # two "processes" each see half of the test set; merging their states (the same reduction a distributed
    # sync applies) equals one metric over everything
    preds, target, train_counts = hand_example()
    whole, first, second = (LongTailAccuracy(train_counts) for _ in range(3))
    whole.update(preds, target)
    first.update(preds[::2], target[::2])
    second.update(preds[1::2], target[1::2])
    first.merge_state(second)
    for name, value in whole.compute().items():
        torch.testing.assert_close(first.compute()[name], value)


def test_metric_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="train_counts"):
        LongTailAccuracy([])
    metric = LongTailAccuracy([10, 10])
    with pytest.raises(ValueError, match="class ids"):
        metric.update(torch.tensor([0, 1]), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="do not match"):
        metric.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1]))
