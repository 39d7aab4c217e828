"""Online kNN monitoring of a pretraining run."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from ..metrics.knn import KNNAccuracy

__all__ = ["KNNMonitor", "extract_features"]


@torch.no_grad()
def extract_features(
    module: L.LightningModule,
    loader: DataLoader,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled backbone features ``(N, D)`` and labels ``(N,)`` of every batch of ``loader``, backbone in eval mode.

    Batches ``x (N, C, T, V, M)`` go through ``transform`` (default: the module's feature-stream conversion
    ``to_stream``, when it has one) but no augmentation; the backbone's train/eval mode is restored afterwards.
    """
    backbone = module.backbone
    if transform is None and hasattr(module, "to_stream"):
        transform = module.to_stream
    was_training = backbone.training
    backbone.eval()
    features, labels = [], []
    try:
        for batch in loader:
            x = batch["x"].to(module.device, non_blocking=True)
            x = transform(x) if transform is not None else x
            features.append(backbone(x).float())
            labels.append(batch["label"].to(module.device))
    finally:
        backbone.train(was_training)
    return torch.cat(features), torch.cat(labels)


class KNNMonitor(L.Callback):
    """kNN accuracy (cosine, ``ks``) of the current backbone during pretraining.

    The bank is the UN-augmented training set (the data module's ``train_eval_dataloader``) and the queries are its
    evaluation split (``val_dataloader``), both with deterministic centre sampling. Runs before training
    (``at_start``: the encoder at initialisation, logged at step 0) and every ``every_n_epochs`` epochs and after
    the last one, logs ``knn/top1_k{k}`` through the module's loggers, and appends every result to
    ``knn.jsonl`` in the trainer's log directory.

    Args:
        every_n_epochs: epochs between evaluations.
        ks: neighbour counts (k = 1 plain nearest neighbour; k > 1 votes weighted by ``exp(sim / temperature)``).
        temperature: vote temperature.
        at_start: also evaluate the encoder before the first training step (skipped when resuming).
        chunk_size: queries per similarity chunk (bounds memory).
    """

    def __init__(
        self,
        every_n_epochs: int = 10,
        ks: Sequence[int] = (1, 20),
        temperature: float = 0.07,
        at_start: bool = True,
        chunk_size: int = 1024,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.ks = tuple(ks)
        self.temperature = temperature
        self.at_start = at_start
        self.chunk_size = chunk_size
        self.history: list[dict[str, float]] = []

    def evaluate(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, float]:
        """kNN accuracies in percent, ``{"top1_k1": ..., ...}``."""
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "train_eval_dataloader"):
            raise ValueError("KNNMonitor needs a SkeletonDataModule (train_eval_dataloader and val_dataloader)")
        metric = KNNAccuracy(self.ks, datamodule.num_classes, self.temperature, self.chunk_size).to(module.device)
        metric.update(*extract_features(module, datamodule.train_eval_dataloader()), train=True)
        metric.update(*extract_features(module, datamodule.val_dataloader()), train=False)
        return {key.replace("knn_", ""): 100.0 * float(value) for key, value in metric.compute().items()}

    def _record(self, trainer: L.Trainer, epoch: int, result: dict[str, float]) -> None:
        entry = {"epoch": epoch, "step": trainer.global_step, **result}
        self.history.append(entry)
        if trainer.is_global_zero:
            log_dir = Path(trainer.log_dir or trainer.default_root_dir)
            log_dir.mkdir(parents=True, exist_ok=True)
            with open(log_dir / "knn.jsonl", "a") as f:
                f.write(json.dumps(entry) + "\n")
            summary = ", ".join(f"kNN {k.replace('top1_', '')} {v:.2f}%" for k, v in result.items())
            print(f"[knn] epoch {epoch}: {summary}")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.at_start or trainer.ckpt_path is not None:
            return
        result = self.evaluate(trainer, pl_module)
        for logger in trainer.loggers:
            logger.log_metrics({f"knn/{k}": v for k, v in result.items()}, step=0)
        self._record(trainer, -1, result)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        if (epoch + 1) % self.every_n_epochs and not last:
            return
        result = self.evaluate(trainer, pl_module)
        pl_module.log_dict({f"knn/{k}": v for k, v in result.items()}, sync_dist=False)
        self._record(trainer, epoch, result)
