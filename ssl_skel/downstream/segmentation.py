"""Action segmentation: a (pretrained) encoder that keeps its time axis and a frame-wise linear head.

A window ``x (N, C, W, V, M)`` of an untrimmed video (:mod:`ssl_skel.data.windows`) goes through the backbone's
per-frame features (:func:`~ssl_skel.backbones.frame_features`, ``(N, W', D)``), a linear layer to frame logits
``(N, W', K)`` (no temporal model on top, as in LAC's evaluation) and a linear interpolation back to ``W`` frames
(:func:`~ssl_skel.backbones.upsample_frames`; interpolating the logits is interpolating the features, the head
being linear), then the per-frame cross-entropy. ``freeze_backbone`` trains the head alone on a frozen encoder
kept in eval mode (BatchNorm statistics and dropout as pretrained); otherwise everything is fine-tuned.

Evaluation merges the windows of a video (:class:`ScoreMerger`: the average of the overlapping windows' per-frame
softmax probabilities), takes the arg-max per frame and scores every whole video with
:class:`~ssl_skel.metrics.segmentation.SegmentationMetrics` (frame accuracy, edit, F1@{10,25,50}, frame mAP).
Validation logs ``val/*`` after every validated epoch; :meth:`test` after training gives the result (the LAST
epoch's ``test/*``) and keeps every test video's labels, prediction and own metrics in :attr:`test_result`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ..backbones import frame_feature_dim, frame_features, upsample_frames
from ..data.datamodule import trainer_stream
from ..data.windows import IGNORE
from ..metrics.segmentation import SegmentationMetrics, segmentation_metrics
from .checkpoint import load_pretrained_backbone

__all__ = ["ScoreMerger", "SegmentationModule", "SegmentationResult", "VideoResult"]


@dataclass
class _PartialVideo:
    """A video being merged: score sums ``(L, K)``, covering windows per frame ``(L,)``, labels ``(L,)``."""

    total: torch.Tensor
    count: torch.Tensor
    labels: torch.Tensor
    added: int = 0


class ScoreMerger:
    """Per-frame scores of whole videos from their overlapping windows, averaged where windows overlap.

    :meth:`add` takes one window at a time, in any order; once all ``windows`` windows of a video are in, it
    returns the video's merged scores and labels and forgets the video.
    """

    def __init__(self) -> None:
        self._videos: dict[int, _PartialVideo] = {}

    def add(
        self, index: int, start: int, length: int, windows: int, scores: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Add the window at frame ``start`` of video ``index`` (``length`` frames, ``windows`` windows in all):
        ``scores (W, K)`` and ``labels (W,)``, of which the frames past the video's end are ignored.

        Returns ``(scores (length, K), labels (length,))`` when this was the video's last window, else ``None``.
        """
        if index not in self._videos:
            self._videos[index] = _PartialVideo(
                scores.new_zeros(length, scores.shape[1]), scores.new_zeros(length), labels.new_full((length,), IGNORE)
            )
        video = self._videos[index]
        end = min(start + scores.shape[0], length)
        video.total[start:end] += scores[: end - start]
        video.count[start:end] += 1
        video.labels[start:end] = labels[: end - start]
        video.added += 1
        if video.added < windows:
            return None
        del self._videos[index]
        if not bool((video.count > 0).all()):
            raise ValueError(f"the {windows} windows of video {index} leave frames uncovered")
        return video.total / video.count[:, None], video.labels

    @property
    def pending(self) -> list[int]:
        """Videos with some but not all windows added."""
        return sorted(self._videos)

    def reset(self) -> None:
        self._videos = {}


@dataclass
class VideoResult:
    """One test video: true and predicted frame labels ``(T,)`` and its own metrics (percent)."""

    labels: torch.Tensor
    predictions: torch.Tensor
    metrics: dict[str, float]


@dataclass
class SegmentationResult:
    """What a test pass saw: the overall ``metrics`` (percent) and every video's :class:`VideoResult` by its store
    index."""

    metrics: dict[str, float]
    videos: dict[int, VideoResult]


class SegmentationModule(L.LightningModule):
    """A backbone's per-frame features with a frame-wise linear head (see the module docstring).

    Args:
        backbone: encoder with per-frame features (:func:`~ssl_skel.backbones.frame_features`: ST-GCN,
            transformer, GIN, STRL, BiGRU).
        num_classes: frame classes, background included (linked from the data module by the CLI).
        pretrained: checkpoint to load the backbone from (any pretraining checkpoint, ``backbone.*`` keys, strict);
            ``None`` keeps the random initialisation (the baseline).
        freeze_backbone: train the head alone, the backbone frozen and in eval mode; ``False`` fine-tunes all.
        optimizer: optimizer factory over the trainable parameters.
        scheduler: optional learning-rate scheduler factory, stepped every epoch.
        background: background label, excluded from edit and F1 (``None``: none).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        pretrained: str | None = None,
        freeze_backbone: bool = False,
        optimizer: OptimizerCallable = torch.optim.SGD,
        scheduler: LRSchedulerCallable | None = None,
        background: int | None = 0,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"need at least 2 frame classes, got {num_classes}")
        self.backbone = backbone
        if pretrained is not None:
            load_pretrained_backbone(backbone, pretrained)
        self.head = nn.Linear(frame_feature_dim(backbone), num_classes)
        self.num_classes = num_classes
        self.freeze_backbone = freeze_backbone
        self.background = background
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        if freeze_backbone:
            backbone.requires_grad_(False)
            backbone.eval()
        self.val_metrics = SegmentationMetrics(num_classes, background)
        self.test_metrics = SegmentationMetrics(num_classes, background)
        self.merger = ScoreMerger()
        self.test_result: SegmentationResult | None = None
        self._test_videos: dict[int, VideoResult] = {}
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler"])

    # --- modes and inputs -----------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> SegmentationModule:
        """Set the training mode; a frozen backbone stays in eval mode whatever ``mode`` is."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1:
            raise ValueError("ssl-skel segment runs in one process: the windows of a video are merged in one place")

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Windows ``batch["x"]`` converted to the data module's feature stream."""
        batch["x"] = trainer_stream(self._trainer, batch["x"])
        return batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Frame logits ``(N, T, num_classes)`` of windows ``x (N, C, T, V, M)`` (in the model's feature stream)."""
        return upsample_frames(self.head(frame_features(self.backbone, x)), x.shape[2])

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)

    # --- training -------------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits, labels = self(batch["x"]), batch["frame_labels"]
        loss = self._loss(logits, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.global_step}")
        valid = labels != IGNORE
        n = labels.shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        accuracy = 100.0 * (logits.argmax(2) == labels)[valid].float().mean()
        self.log("train/frame_acc", accuracy, on_epoch=True, batch_size=n)
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer)}}

    # --- evaluation -----------------------------------------------------------------------------------------------
    def _evaluate(self, batch: dict[str, Any], prefix: str, metrics: SegmentationMetrics) -> None:
        """Frame loss of the windows; every video completed by them scored by ``metrics`` (and kept when testing)."""
        logits, labels = self(batch["x"]), batch["frame_labels"]
        self.log(f"{prefix}/loss", self._loss(logits, labels), batch_size=labels.shape[0])
        probabilities = logits.float().softmax(dim=2).cpu()
        labels = labels.cpu()
        for i, (index, start, length, windows) in enumerate(
            zip(*(batch[k].tolist() for k in ("index", "start", "length", "windows")), strict=True)
        ):
            merged = self.merger.add(index, start, length, windows, probabilities[i], labels[i])
            if merged is None:
                continue
            scores, video_labels = merged
            predictions = scores.argmax(dim=1)
            metrics.update(predictions, video_labels, scores)
            if prefix == "test":
                own = segmentation_metrics([predictions], [video_labels], [scores], self.num_classes, self.background)
                self._test_videos[index] = VideoResult(video_labels, predictions, own)

    def _compute(self, prefix: str, metrics: SegmentationMetrics) -> dict[str, float]:
        if self.merger.pending:
            raise RuntimeError(
                f"videos {self.merger.pending} (store indices) got only some of their windows: every window of "
                "every evaluation video is needed (do not limit limit_val_batches / limit_test_batches)"
            )
        values = {f"{prefix}/{k}": float(v) for k, v in metrics.compute().items()}
        metrics.reset()
        self.log_dict(values)
        return values

    def on_validation_epoch_start(self) -> None:
        self.merger.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # a few batches only: no whole video
            self.merger.reset()
            self.val_metrics.reset()
            return
        self._compute("val", self.val_metrics)

    def on_test_epoch_start(self) -> None:
        self.merger.reset()
        self._test_videos = {}

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        values = self._compute("test", self.test_metrics)
        self.test_result = SegmentationResult(values, dict(sorted(self._test_videos.items())))
        self._test_videos = {}
