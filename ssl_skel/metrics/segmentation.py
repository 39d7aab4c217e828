"""Action segmentation metrics with the MS-TCN conventions (spec/evaluation.md), all in percent.

- frame accuracy: correct frames / all frames, over the whole set (background frames count);
- segmental edit score: ``(1 - Levenshtein(pred segments, true segments) / max(lengths)) * 100`` per video,
  averaged over videos; two videos without any action segment score 100;
- F1@k: each predicted segment is matched to the same-label ground-truth segment of highest IoU; it is a true
  positive when that IoU >= k and the ground truth was not matched before, otherwise a false positive; unmatched
  ground truth are false negatives; counts are summed over all videos before the F1;
- frame-wise mAP: per-class average precision of the frame scores, averaged over the classes that occur in the
  ground truth.

A segment is a maximal run of equal frame labels, ``(label, start, end)`` with ``end`` exclusive. Segments are
found on the whole sequence first and background segments (label ``background``, 0 by default) are then dropped
from edit and F1, so two actions separated by background stay two segments.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAveragePrecision

__all__ = [
    "SegmentationMetrics",
    "edit_score",
    "f1_counts",
    "f1_score",
    "levenshtein",
    "segmentation_metrics",
    "segments",
]

OVERLAPS = (0.1, 0.25, 0.5)


def segments(labels: torch.Tensor, background: int | None = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frame labels ``(T,)`` -> segment ``(labels (S,), starts (S,), ends (S,))``, ends exclusive, background
    segments dropped (none when ``background`` is ``None``)."""
    if labels.ndim != 1:
        raise ValueError(f"expected frame labels of shape (T,), got {tuple(labels.shape)}")
    if labels.numel() == 0:
        empty = labels.new_zeros(0, dtype=torch.long)
        return empty, empty, empty
    change = torch.nonzero(labels[1:] != labels[:-1]).flatten() + 1
    starts = torch.cat([change.new_zeros(1), change])
    ends = torch.cat([change, change.new_full((1,), labels.numel())])
    seg_labels = labels[starts].long()
    keep = seg_labels != background if background is not None else torch.ones_like(seg_labels, dtype=torch.bool)
    return seg_labels[keep], starts[keep], ends[keep]


def levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    """Edit distance (insertions, deletions, substitutions, each cost 1) between two label sequences."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def edit_score(pred: torch.Tensor, target: torch.Tensor, background: int | None = 0) -> float:
    """Segmental edit score of one video in percent (100 when neither has an action segment)."""
    p, t = segments(pred, background)[0].tolist(), segments(target, background)[0].tolist()
    longest = max(len(p), len(t))
    return 100.0 if longest == 0 else (1.0 - levenshtein(p, t) / longest) * 100.0


def f1_counts(
    pred: torch.Tensor, target: torch.Tensor, overlap: float, background: int | None = 0
) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` of one video at IoU threshold ``overlap`` with the matching rule of the module docstring."""
    p_labels, p_starts, p_ends = segments(pred, background)
    t_labels, t_starts, t_ends = segments(target, background)
    if len(t_labels) == 0:
        return 0, len(p_labels), 0
    # (S_pred, S_true) IoU, zero between segments of different labels
    inter = (torch.minimum(p_ends[:, None], t_ends[None]) - torch.maximum(p_starts[:, None], t_starts[None])).clamp(
        min=0
    )
    union = (p_ends - p_starts)[:, None] + (t_ends - t_starts)[None] - inter
    iou = torch.where(p_labels[:, None] == t_labels[None], inter / union, 0.0)
    matched = [False] * len(t_labels)
    tp = fp = 0
    for best_iou, best in zip(*iou.max(dim=1), strict=True):
        if best_iou >= overlap and not matched[best]:
            matched[best] = True
            tp += 1
        else:
            fp += 1
    return tp, fp, len(t_labels) - sum(matched)


def f1_score(tp: int | float, fp: int | float, fn: int | float) -> float:
    """F1 in percent from summed counts (0 without true positives)."""
    if tp == 0:
        return 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 200.0 * precision * recall / (precision + recall)


class SegmentationMetrics(Metric):
    """Frame accuracy, edit score, F1@``overlaps`` and (with scores) frame-wise mAP over a set of videos.

    ``update(pred (T,), target (T,), scores (T, num_classes) | None)`` adds one video; ``compute()`` returns
    ``{"acc", "edit", "f1@10", "f1@25", "f1@50", "map"}`` in percent (``map`` only when every video came with
    scores). Counts are summed states, so the result is the same on one process or gathered over several.

    Args:
        num_classes: number of frame classes, background included.
        background: label excluded from edit and F1 (``None``: no background).
        overlaps: IoU thresholds of F1.
        ap_thresholds: binned average precision with this many thresholds (constant memory) instead of the exact
            one, which keeps every frame score.
        kwargs: torchmetrics ``Metric`` options.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        num_classes: int,
        background: int | None = 0,
        overlaps: Sequence[float] = OVERLAPS,
        ap_thresholds: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.background = background
        self.overlaps = tuple(overlaps)
        self.average_precision = MulticlassAveragePrecision(num_classes, average=None, thresholds=ap_thresholds)
        zero = torch.zeros((), dtype=torch.long)
        for name in ("correct", "frames", "videos", "scored_videos"):
            self.add_state(name, default=zero.clone(), dist_reduce_fx="sum")
        self.add_state("edit_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(len(self.overlaps), 3, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("class_frames", default=torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, scores: torch.Tensor | None = None) -> None:
        """Add one video: predicted and true frame labels ``(T,)``, optional frame scores ``(T, num_classes)``."""
        if pred.shape != target.shape or pred.ndim != 1:
            raise ValueError(f"expected pred and target of one shape (T,), got {tuple(pred.shape)}, "
                             f"{tuple(target.shape)}")
        pred, target = pred.detach().long().cpu(), target.detach().long().cpu()
        if target.numel() and (min(pred.min(), target.min()) < 0 or max(pred.max(), target.max()) >= self.num_classes):
            raise ValueError(f"frame labels must lie in [0, {self.num_classes})")
        self.correct += int((pred == target).sum())
        self.frames += target.numel()
        self.videos += 1
        self.edit_sum += edit_score(pred, target, self.background)
        for i, overlap in enumerate(self.overlaps):
            self.counts[i] += torch.tensor(f1_counts(pred, target, overlap, self.background), device=self.device)
        self.class_frames += torch.bincount(target, minlength=self.num_classes).to(self.device)
        if scores is not None:
            if scores.shape != (target.numel(), self.num_classes):
                raise ValueError(f"expected scores of shape ({target.numel()}, {self.num_classes}), got "
                                 f"{tuple(scores.shape)}")
            self.average_precision.update(scores.detach().float(), target.to(scores.device))
            self.scored_videos += 1

    def compute(self) -> dict[str, torch.Tensor]:
        if int(self.videos) == 0:
            raise ValueError("SegmentationMetrics needs at least one video before compute")
        result = {
            "acc": 100.0 * self.correct.double() / self.frames,
            "edit": self.edit_sum / self.videos,
        }
        for overlap, (tp, fp, fn) in zip(self.overlaps, self.counts.tolist(), strict=True):
            result[f"f1@{round(overlap * 100)}"] = torch.tensor(f1_score(tp, fp, fn), dtype=torch.float64)
        if int(self.scored_videos) == int(self.videos):
            per_class = self.average_precision.compute().to(torch.float64).cpu()
            present = self.class_frames > 0
            result["map"] = 100.0 * per_class[present].mean()
        return result

    def reset(self) -> None:
        super().reset()
        self.average_precision.reset()


def segmentation_metrics(
    preds: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    scores: Sequence[torch.Tensor] | None = None,
    num_classes: int | None = None,
    background: int | None = 0,
    overlaps: Sequence[float] = OVERLAPS,
) -> dict[str, float]:
    """:class:`SegmentationMetrics` of a list of videos, as floats; ``num_classes`` defaults to the largest label
    (or score width) + 1."""
    if len(preds) != len(targets) or (scores is not None and len(scores) != len(targets)):
        raise ValueError("give one prediction (and one score map) per target video")
    if num_classes is None:
        num_classes = scores[0].shape[1] if scores is not None else int(torch.cat([*preds, *targets]).max()) + 1
    metric = SegmentationMetrics(num_classes, background, overlaps)
    for i, (pred, target) in enumerate(zip(preds, targets, strict=True)):
        metric.update(pred, target, None if scores is None else scores[i])
    return {name: float(value) for name, value in metric.compute().items()}
