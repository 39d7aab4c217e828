"""The downstream LightningModule: a (pretrained) backbone and a linear classifier, trained by protocol.

- ``linear``: the backbone is frozen (no gradients) AND stays in eval mode whatever ``train()`` is called with,
  so BatchNorm statistics and dropout stay as pretrained; only the head learns. The head may see clips
  (``batch["x"] (N, C, T, V, M)``, run through the backbone) or features computed once
  (``batch["features"] (N, D)``): the two give the same result (:mod:`ssl_skel.downstream.run`).
- ``finetune``: the whole network is trained (semi-supervised = fine-tuning on a labelled subset).

Validation (the data module's evaluation split) logs ``val/top1``, ``val/top5`` (5+ classes), ``val/mean_class_acc``
in percent after every validated epoch, and the best of them as ``val/top1_best_epoch_extra`` (selection on the
evaluation split: an extra, never the result). :meth:`test` after training gives the result, the LAST epoch's
``test/*`` metrics, and keeps the test set's pooled features, logits, labels and predictions in :attr:`test_result`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from ..data.datamodule import trainer_stream
from .checkpoint import load_pretrained_backbone

__all__ = ["PROTOCOLS", "DownstreamModule", "MeanClassAccuracy", "TestResult", "classification_metrics"]

PROTOCOLS = ("linear", "finetune")


class MeanClassAccuracy(MulticlassConfusionMatrix):
    """Accuracy of every class present in the targets, averaged over those classes (in [0, 1]).

    Unlike torchmetrics' macro average, a class that is predicted but absent from the targets does not count
    (as a zero).
    """

    def compute(self) -> torch.Tensor:
        confusion = super().compute()
        support = confusion.sum(dim=1)
        present = support > 0
        return (confusion.diagonal()[present] / support[present]).float().mean()


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """``top1``, ``top5`` (when ``num_classes >= 5``) and ``mean_class_acc`` of logits (N, C) against labels (N,)."""
    metrics: dict[str, Metric] = {
        "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
        "mean_class_acc": MeanClassAccuracy(num_classes),
    }
    if num_classes >= 5:
        metrics["top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
    return MetricCollection(metrics, prefix=prefix)


@dataclass
class TestResult:
    """What a test pass saw: ``metrics`` (percent), ``confusion (C, C)`` (rows: true class), and per test sample
    the pooled ``features (N, D)``, ``logits (N, C)``, ``labels (N,)`` and ``predictions (N,)`` (on the CPU)."""

    metrics: dict[str, float]
    confusion: torch.Tensor
    features: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    predictions: torch.Tensor


class DownstreamModule(L.LightningModule):
    """A backbone with a linear classifier, trained by ``protocol`` (see the module docstring).

    Args:
        backbone: encoder ``(N, C, T, V, M) -> (N, D)`` with a ``feature_dim`` attribute.
        num_classes: classes of the data set (linked from the data module by the CLI).
        protocol: ``linear`` (frozen backbone in eval mode) or ``finetune`` (everything trained).
        pretrained: checkpoint to load the backbone from (any pretraining checkpoint, ``backbone.*`` keys, strict);
            ``None`` keeps the random initialisation (the baseline).
        optimizer: optimizer factory over the trainable parameters.
        scheduler: optional learning-rate scheduler factory, stepped every epoch.
        bn_before_linear: ``BatchNorm1d(affine=False)`` on the features before the linear layer (MAMP's probe).
        label_smoothing: label smoothing of the cross-entropy.
        augment: batch augmentation ``(N, C, T, V, M) -> same`` applied to training clips on the device
            (fine-tuning only; the linear probe trains on un-augmented clips).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        protocol: Literal["linear", "finetune"] = "linear",
        pretrained: str | None = None,
        optimizer: OptimizerCallable = torch.optim.SGD,
        scheduler: LRSchedulerCallable | None = None,
        bn_before_linear: bool = False,
        label_smoothing: float = 0.0,
        augment: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if protocol == "linear" and augment is not None:
            raise ValueError("the linear probe trains on un-augmented clips: augment must be None")
        if num_classes < 2:
            raise ValueError(f"need at least 2 classes, got {num_classes}")
        self.backbone = backbone
        if pretrained is not None:
            load_pretrained_backbone(backbone, pretrained)
        dim = int(backbone.feature_dim)
        linear = nn.Linear(dim, num_classes)
        self.head = nn.Sequential(nn.BatchNorm1d(dim, affine=False), linear) if bn_before_linear else linear
        self.protocol = protocol
        self.num_classes = num_classes
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.label_smoothing = label_smoothing
        self.augment = augment
        if protocol == "linear":
            backbone.requires_grad_(False)
            backbone.eval()
        self.val_metrics = classification_metrics(num_classes, "val/")
        self.test_metrics = classification_metrics(num_classes, "test/")
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.best_val_top1: float | None = None
        self.best_val_epoch: int | None = None
        self.test_result: TestResult | None = None
        self._test_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # features, logits, labels
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler", "augment"])

    # --- modes and inputs -----------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> DownstreamModule:
        """Set the training mode; the linear probe's backbone stays in eval mode whatever ``mode`` is."""
        super().train(mode)
        if self.protocol == "linear":
            self.backbone.eval()
        return self

    def to_stream(self, x: torch.Tensor) -> torch.Tensor:
        """Joint coordinates -> the data module's feature stream (identity without a data module)."""
        return trainer_stream(self._trainer, x)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Clips ``batch["x"]``: augmented when fine-tuning (training only), then converted to the feature stream."""
        if "x" in batch:
            x = batch["x"]
            if self.augment is not None and self._trainer is not None and self.trainer.training:
                x = self.augment(x)
            batch["x"] = self.to_stream(x)
        return batch

    def encode(self, batch: dict[str, Any]) -> torch.Tensor:
        """Pooled features ``(N, D)``: ``batch["features"]`` when given, else the backbone on ``batch["x"]``."""
        if "features" in batch:
            return batch["features"]
        return self.backbone(batch["x"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of clips ``x (N, C, T, V, M)`` (already in the model's feature stream)."""
        return self.head(self.backbone(x))

    # --- training -------------------------------------------------------------------------------------------------
    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self.head(self.encode(batch))
        labels = batch["label"]
        loss = self._loss(logits, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.global_step}")
        n = labels.shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/top1", 100.0 * (logits.argmax(1) == labels).float().mean(), on_epoch=True, batch_size=n)
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer)}}

    # --- evaluation -----------------------------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self.head(self.encode(batch))
        self.val_metrics.update(logits, batch["label"])
        self.log("val/loss", self._loss(logits, batch["label"]), batch_size=batch["label"].shape[0])

    def on_validation_epoch_end(self) -> None:
        values = {k: 100.0 * float(v) for k, v in self.val_metrics.compute().items()}
        self.val_metrics.reset()
        self.log_dict(values)
        if self.trainer.sanity_checking:
            return
        if self.best_val_top1 is None or values["val/top1"] > self.best_val_top1:
            self.best_val_top1, self.best_val_epoch = values["val/top1"], self.current_epoch
        self.log_dict({"val/top1_best_epoch_extra": self.best_val_top1, "val/best_epoch_extra": self.best_val_epoch})

    def on_test_epoch_start(self) -> None:
        self._test_outputs = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        features = self.encode(batch)
        logits = self.head(features)
        labels = batch["label"]
        self.test_metrics.update(logits, labels)
        self.test_confusion.update(logits, labels)
        self.log("test/loss", self._loss(logits, labels), batch_size=labels.shape[0])
        self._test_outputs.append((features.detach().float().cpu(), logits.detach().float().cpu(), labels.cpu()))

    def on_test_epoch_end(self) -> None:
        values = {k: 100.0 * float(v) for k, v in self.test_metrics.compute().items()}
        confusion = self.test_confusion.compute().cpu()
        self.test_metrics.reset()
        self.test_confusion.reset()
        self.log_dict(values)
        features, logits, labels = (torch.cat(parts) for parts in zip(*self._test_outputs, strict=True))
        self._test_outputs = []
        self.test_result = TestResult(values, confusion, features, logits, labels, logits.argmax(1))
