"""Segmentation metrics against hand-worked examples (every expected number is derived in the comments)."""

from __future__ import annotations

import pytest
import torch

from ssl_skel.metrics.segmentation import (
    SegmentationMetrics,
    edit_score,
    f1_counts,
    f1_score,
    levenshtein,
    segmentation_metrics,
    segments,
)


def t(*labels: int) -> torch.Tensor:
    return torch.tensor(labels)


# over-segmentation: one true action split by a wrong label in the middle
OVER_TRUE, OVER_PRED = t(1, 1, 1, 1, 1, 1, 1, 1, 1, 1), t(1, 1, 1, 1, 2, 2, 1, 1, 1, 1)
# under-segmentation: two true actions predicted as one
UNDER_TRUE, UNDER_PRED = t(1, 1, 1, 1, 2, 2, 2, 2, 2, 2), t(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
# label mismatch: the right interval with the wrong label
WRONG_TRUE, WRONG_PRED = t(0, 0, 3, 3, 3, 3, 0, 0), t(0, 0, 4, 4, 4, 4, 0, 0)


def test_segments_drop_background_after_splitting():
    labels, starts, ends = segments(t(0, 0, 1, 1, 0, 0, 1, 1, 2, 0))
    assert labels.tolist() == [1, 1, 2] and starts.tolist() == [2, 6, 8] and ends.tolist() == [4, 8, 9]
    assert segments(t(0, 0, 1), background=None)[0].tolist() == [0, 1]
    assert all(s.numel() == 0 for s in segments(t(0, 0, 0)))


def test_levenshtein():
    assert levenshtein([1, 2, 1], [1]) == 2
    assert levenshtein([1, 2, 3], [1, 3]) == 1
    assert levenshtein([], [4, 5]) == 2
    assert levenshtein([3, 1], [1, 3]) == 2


def test_over_segmentation():
    # pred segments 1[0,4) 2[4,6) 1[6,10) vs true 1[0,10): Levenshtein([1,2,1], [1]) = 2 -> (1 - 2/3) * 100
    assert edit_score(OVER_PRED, OVER_TRUE) == pytest.approx(100 / 3)
    # IoUs with the true segment: 0.4, 0 (other label), 0.4. At 0.1 and 0.25 the first claims it (TP), the second
    # has no same-label truth (FP), the third would match the already matched truth again (FP)
    assert f1_counts(OVER_PRED, OVER_TRUE, 0.1) == (1, 2, 0)
    assert f1_counts(OVER_PRED, OVER_TRUE, 0.25) == (1, 2, 0)
    assert f1_counts(OVER_PRED, OVER_TRUE, 0.5) == (0, 3, 1)  # 0.4 < 0.5: nothing matches
    assert f1_score(1, 2, 0) == pytest.approx(50.0)  # P = 1/3, R = 1


def test_under_segmentation():
    # pred 1[0,10) vs true 1[0,4) 2[4,10): Levenshtein([1], [1,2]) = 1 -> 50; IoU with 1[0,4) = 0.4
    assert edit_score(UNDER_PRED, UNDER_TRUE) == pytest.approx(50.0)
    assert f1_counts(UNDER_PRED, UNDER_TRUE, 0.25) == (1, 0, 1)
    assert f1_counts(UNDER_PRED, UNDER_TRUE, 0.5) == (0, 1, 2)
    assert f1_score(1, 0, 1) == pytest.approx(200 / 3)  # P = 1, R = 1/2


def test_label_mismatch():
    assert edit_score(WRONG_PRED, WRONG_TRUE) == 0.0  # one substitution over one segment
    assert f1_counts(WRONG_PRED, WRONG_TRUE, 0.1) == (0, 1, 1)
    assert f1_score(0, 1, 1) == 0.0


def test_background_is_excluded_from_edit_and_f1():
    true, pred = t(0, 0, 1, 1, 0, 0, 1, 1, 0, 0), t(0, 0, 1, 1, 1, 1, 1, 1, 0, 0)
    # true segments 1[2,4) 1[6,8) stay two (split by background), pred is one 1[2,8): Levenshtein([1], [1,1]) = 1.
    # With background kept it would be Levenshtein([0,1,0], [0,1,0,1,0]) = 2 over 5 -> 60.
    assert edit_score(pred, true) == pytest.approx(50.0)
    assert edit_score(pred, true, background=None) == pytest.approx(60.0)
    # IoU of 1[2,8) with either true segment = 2/6: matched at 0.25 (one TP, one FN), not at 0.5
    assert f1_counts(pred, true, 0.25) == (1, 0, 1)
    assert f1_counts(pred, true, 0.5) == (0, 1, 2)
    # background only: perfect edit, nothing to count; an action predicted on background is one false positive
    assert edit_score(t(0, 0, 0), t(0, 0, 0)) == 100.0
    assert f1_counts(t(0, 0, 0), t(0, 0, 0), 0.1) == (0, 0, 0)
    assert edit_score(t(0, 5, 5, 0), t(0, 0, 0, 0)) == 0.0
    assert f1_counts(t(0, 5, 5, 0), t(0, 0, 0, 0), 0.1) == (0, 1, 0)


def test_matching_is_greedy_in_prediction_order():
    true, pred = t(1, 1, 1, 1, 1, 1, 1, 1, 1, 1), t(1, 1, 1, 0, 1, 1, 1, 1, 1, 1)
    # pred 1[0,3) IoU 0.3, then 1[4,10) IoU 0.6, both with the only true segment. At 0.25 the first claims it and
    # the better second one is a false positive; at 0.5 the first fails and the second matches.
    assert f1_counts(pred, true, 0.25) == (1, 1, 0)
    assert f1_counts(pred, true, 0.5) == (1, 1, 0)
    # a prediction is matched to its best same-label truth: true 2[0,2) 2[3,6) 2[7,9), pred 2[0,6) 2[7,9).
    # 2[0,6) has IoU 1/3 with 2[0,2) and 1/2 with 2[3,6), so it takes 2[3,6); 2[7,9) takes 2[7,9); 2[0,2) is missed
    true2, pred2 = t(2, 2, 0, 2, 2, 2, 0, 2, 2), t(2, 2, 2, 2, 2, 2, 0, 2, 2)
    assert f1_counts(pred2, true2, 0.45) == (2, 0, 1)


def test_whole_set_sums_counts_before_f1():
    metric = SegmentationMetrics(num_classes=5)
    for pred, true in [(OVER_PRED, OVER_TRUE), (UNDER_PRED, UNDER_TRUE), (WRONG_PRED, WRONG_TRUE)]:
        metric.update(pred, true)
    result = metric.compute()
    assert float(result["acc"]) == pytest.approx(100 * (8 + 4 + 4) / 28)  # frames, not the mean of 80, 40, 50
    assert float(result["edit"]) == pytest.approx((100 / 3 + 50 + 0) / 3)
    # @10: (1, 2, 0) + (1, 0, 1) + (0, 1, 1) = (2, 3, 2): P = 2/5, R = 1/2 -> F1 = 4/9
    assert float(result["f1@10"]) == pytest.approx(100 * 4 / 9)
    assert float(result["f1@25"]) == pytest.approx(100 * 4 / 9)
    # @50: (0, 3, 1) + (0, 1, 2) + (0, 1, 1): no true positive
    assert float(result["f1@50"]) == 0.0
    assert "map" not in result  # no scores given
    same = segmentation_metrics([OVER_PRED, UNDER_PRED, WRONG_PRED], [OVER_TRUE, UNDER_TRUE, WRONG_TRUE])
    assert same == pytest.approx({k: float(v) for k, v in result.items()})


def test_frame_map_over_classes_present_in_the_truth():
    true = t(0, 1, 1, 2)
    scores = torch.tensor([
        [0.9, 0.1, 0.0, 0.3],
        [0.2, 0.8, 0.0, 0.9],
        [0.6, 0.3, 0.1, 0.2],
        [0.1, 0.5, 0.4, 0.0],
    ])
    # class 0: its frame ranks first -> AP 1. Class 1: ranking 0.8 (pos), 0.5 (neg), 0.3 (pos), 0.1 (neg)
    # -> AP = (1/1 + 2/3) / 2. Class 2: its frame ranks first -> 1. Class 3 never occurs: left out of the mean.
    result = segmentation_metrics([scores.argmax(1)], [true], [scores])
    assert result["map"] == pytest.approx(100 * (1 + 5 / 6 + 1) / 3)
    assert result["acc"] == pytest.approx(25.0)  # argmax 0, 3, 0, 1 against 0, 1, 1, 2
    binned = SegmentationMetrics(num_classes=4, ap_thresholds=101)
    binned.update(scores.argmax(1), true, scores)
    assert float(binned.compute()["map"]) == pytest.approx(result["map"], abs=1e-6)


def test_bad_input_is_rejected():
    metric = SegmentationMetrics(num_classes=3)
    with pytest.raises(ValueError, match="one shape"):
        metric.update(t(0, 1), t(0, 1, 1))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        metric.update(t(0, 3), t(0, 1))
    with pytest.raises(ValueError, match="scores of shape"):
        metric.update(t(0, 1), t(0, 1), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="at least one video"), pytest.warns(UserWarning, match="before the"):
        SegmentationMetrics(num_classes=3).compute()
