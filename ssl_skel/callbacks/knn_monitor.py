"""Online kNN monitoring of a pretraining run."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, SequentialSampler
from torchmetrics.utilities.distributed import gather_all_tensors

from ..metrics.knn import KNNAccuracy

__all__ = ["KNNMonitor", "extract_features"]


def _world() -> tuple[int, int]:
    """``(rank, world size)`` of this process; ``(0, 1)`` without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _shard(loader: DataLoader, rank: int, world: int) -> DataLoader:
    """The samples ``rank, rank + world, ...`` of an in-order ``loader``, batched like it (no padding, no repeats)."""
    if not isinstance(loader.sampler, SequentialSampler) or loader.batch_size is None:
        raise ValueError("distributed feature extraction needs an in-order loader with a batch size")
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=range(rank, len(loader.dataset), world),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        worker_init_fn=loader.worker_init_fn,
    )


def _gather_strided(local: torch.Tensor, world: int) -> torch.Tensor:
    """Inverse of :func:`_shard` over every process: rank ``r``'s rows ``(n_r, ...)`` go to rows ``r::world``."""
    parts = gather_all_tensors(local.contiguous())
    out = local.new_empty((sum(len(p) for p in parts), *local.shape[1:]))
    for rank, part in enumerate(parts):
        out[rank::world] = part
    return out


@torch.no_grad()
def extract_features(
    module: L.LightningModule,
    loader: DataLoader,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled backbone features ``(N, D)`` and labels ``(N,)`` of every sample of ``loader``, in its order, with
    the backbone in eval mode.

    Batches ``x (N, C, T, V, M)`` go through ``transform`` (default: the module's feature-stream conversion
    ``to_stream``, when it has one) but no augmentation; the backbone's train/eval mode is restored afterwards.
    In a distributed run (an initialised process group of W processes; ``loader`` in order) process ``r``
    computes the samples ``r, r + W, ...`` and every process returns the features of all of them, gathered back
    into the loader's order: each sample once, as in a single process. Every process must call it.
    """
    backbone = module.backbone
    if transform is None and hasattr(module, "to_stream"):
        transform = module.to_stream
    rank, world = _world()
    if world > 1:
        loader = _shard(loader, rank, world)
    was_training = backbone.training
    backbone.eval()
    features = [torch.empty(0, backbone.feature_dim, device=module.device)]
    labels = [torch.empty(0, dtype=torch.long, device=module.device)]
    try:
        for batch in loader:
            x = batch["x"].to(module.device, non_blocking=True)
            x = transform(x) if transform is not None else x
            features.append(backbone(x).float())
            labels.append(batch["label"].to(module.device))
    finally:
        backbone.train(was_training)
    features_all, labels_all = torch.cat(features), torch.cat(labels)
    if world > 1:
        return _gather_strided(features_all, world), _gather_strided(labels_all, world)
    return features_all, labels_all


class KNNMonitor(L.Callback):
    """kNN accuracy (cosine, ``ks``) of the current backbone during pretraining.

    The bank is the UN-augmented training set (the data module's ``train_eval_dataloader``) and the queries are its
    evaluation split (``val_dataloader``), both with deterministic centre sampling. In a distributed run every
    process computes its share of both and the features are gathered (:func:`extract_features`), so that the
    accuracy is the single-process one. Runs before training
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
        # extract_features gives every process all the features already: no second gathering in the metric
        metric = KNNAccuracy(
            self.ks, datamodule.num_classes, self.temperature, self.chunk_size, sync_on_compute=False
        ).to(module.device)
        metric.update(*extract_features(module, datamodule.train_eval_dataloader()), train=True)
        metric.update(*extract_features(module, datamodule.val_dataloader()), train=False)
        return {key.replace("knn_", ""): 100.0 * float(value) for key, value in metric.compute().items()}

    def _record(self, trainer: L.Trainer, epoch: int, result: dict[str, float]) -> None:
        entry = {"epoch": epoch, "step": trainer.global_step, **result}
        self.history.append(entry)
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)  # every process: a broadcast under DDP
        if trainer.is_global_zero:
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
