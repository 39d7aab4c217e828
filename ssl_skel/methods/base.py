"""The base LightningModule of every pretraining method.

A method subclass owns its backbone (``self.backbone``, a module mapping ``(N, C, T, V, M)`` to ``(N, D)``), says
which augmented views it needs (:attr:`views`, applied to the batch on the device in
:meth:`on_after_batch_transfer`) and implements :meth:`pretrain_step`, returning its loss, the metrics to log and
the features of one view (for the optional online linear probe, trained on detached features).

The base wires the optimizer and scheduler from the config (jsonargparse callables), logs the learning rate and
every metric, and seeds the random numbers of every step from the run's seed, the step and the process's rank
(augmentations, dropout), so that a run resumed with ``--ckpt_path last`` continues exactly as an uninterrupted
one, and the processes of a distributed run draw different augmentations.

A non-finite loss (on any process) stops the run with an error naming the step and the last checkpoint written,
or, with ``nonfinite_loss="skip"``, drops that step's update and counts it (``train/skipped_steps``).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ..augment import MultiView
from ..data.datamodule import trainer_stream

__all__ = ["PretrainMethod", "PretrainOutput", "step_seed"]

PretrainOutput = tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]
"""``(loss, metrics to log, detached-able features (N, D) of one view)``."""


def step_seed(run_seed: int, step: int, rank: int = 0) -> int:
    """Seed of the random numbers of training step ``step`` on process ``rank`` of a run seeded ``run_seed``.

    Distinct (step, rank) pairs get distinct, well-spread seeds; rank 0 of a distributed run draws exactly what
    a single-process run draws.
    """
    return (run_seed + step * 0x9E3779B97F4A7C15 + rank * 0xC2B2AE3D27D4EB4F) % 2**63


class PretrainMethod(L.LightningModule):
    """Common machinery of the pretraining methods (see the module docstring).

    Args:
        backbone: encoder ``(N, C, T, V, M) -> (N, D)`` with a ``feature_dim`` attribute.
        optimizer: optimizer factory over the parameters (``torch.optim.SGD`` with ``lr`` etc. in the config).
        scheduler: optional learning-rate scheduler factory, stepped every epoch.
        online_probe: train a linear classifier on detached features of the first view (needs labels).
        nonfinite_loss: what a non-finite loss does: ``"stop"`` the run with an error naming the step and the last
            checkpoint, or ``"skip"`` the step's parameter update (its gradients are dropped before the optimizer
            step) and count it. Processes decide together, so a distributed run stops or skips as one.
        max_skipped_steps: with ``"skip"``, a non-finite loss after this many skipped steps stops the run.
    """

    views: MultiView

    def __init__(
        self,
        backbone: nn.Module,
        optimizer: OptimizerCallable = torch.optim.SGD,
        scheduler: LRSchedulerCallable | None = None,
        online_probe: bool = False,
        nonfinite_loss: Literal["stop", "skip"] = "stop",
        max_skipped_steps: int = 10,
    ) -> None:
        super().__init__()
        if nonfinite_loss not in ("stop", "skip"):
            raise ValueError(f"nonfinite_loss must be 'stop' or 'skip', got {nonfinite_loss!r}")
        self.backbone = backbone
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.online_probe = online_probe
        self.probe: nn.Linear | None = None
        self.nonfinite_loss = nonfinite_loss
        self.max_skipped_steps = max_skipped_steps
        # steps skipped for a non-finite loss, checkpointed so that the count survives a resume
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long), persistent=True)
        self._drop_gradients = False
        # the run's seed for per-step randomness (see on_train_batch_start); checkpointed with the weights
        self.register_buffer("rng_seed", torch.randint(0, 2**62, ()), persistent=True)
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler"])

    @property
    def feature_dim(self) -> int:
        return int(self.backbone.feature_dim)

    # --- data ---------------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if self.online_probe and self.probe is None:
            datamodule = getattr(self.trainer, "datamodule", None)
            if datamodule is None or not getattr(datamodule, "num_classes", 0):
                raise ValueError("online_probe needs a data module with labelled classes (num_classes)")
            self.probe = nn.Linear(self.feature_dim, datamodule.num_classes)

    def to_stream(self, x: torch.Tensor) -> torch.Tensor:
        """Joint coordinates -> the data module's feature stream (identity without a data module)."""
        return trainer_stream(self._trainer, x)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Training: ``batch["views"]`` = the method's augmented views (on the device), as feature streams.
        Otherwise ``batch["x"]`` becomes the feature stream, un-augmented."""
        x = batch["x"]
        if self._trainer is not None and self.trainer.training:
            self.seed_step()
            inputs = x if isinstance(x, list) else [x]
            if len(inputs) == 1:
                views = self.views(inputs[0])
            elif len(inputs) == len(self.views.transforms):
                views = [t(v) for t, v in zip(self.views.transforms, inputs, strict=True)]
            else:
                raise ValueError(
                    f"the data module gives {len(inputs)} views per sample but {type(self).__name__} needs 1 or "
                    f"{len(self.views.transforms)}"
                )
            batch["views"] = [self.to_stream(v) for v in views]
        elif not isinstance(x, list):
            batch["x"] = self.to_stream(x)
        return batch

    def seed_step(self) -> None:
        """Seed torch's global RNG from ``(rng_seed, global_step, global_rank)`` at the start of every training step.

        The step's augmentations, dropout and any sampling inside the method draw from it, so the randomness of a
        step depends on the run's seed, the step and the process alone (:func:`step_seed`): a run resumed from a
        checkpoint repeats the uninterrupted run exactly, whatever the data loaders drew in between, and every
        process of a distributed run augments its share of the batch with its own draws.
        """
        torch.manual_seed(step_seed(int(self.rng_seed), self.global_step, self.global_rank))

    # --- training -------------------------------------------------------------------------------------------------
    def pretrain_step(self, batch: dict[str, Any]) -> PretrainOutput:
        """The method's loss on ``batch["views"]``; see :data:`PretrainOutput`."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, metrics, features = self.pretrain_step(batch)
        if not self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True):
            self._nonfinite_loss(loss, batch_idx, batch["label"].shape[0])
            # backward still runs (the processes of a distributed run stay in step); the update is dropped in
            # on_before_optimizer_step
            return loss
        if self.probe is not None:
            logits = self.probe(features.detach())
            probe_loss = F.cross_entropy(logits, batch["label"])
            metrics["probe/loss"] = probe_loss.detach()
            metrics["probe/acc"] = (logits.argmax(1) == batch["label"]).float().mean()
            loss = loss + probe_loss
        batch_size = batch["label"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{k}" if "/" not in k else k: v for k, v in metrics.items()}, batch_size=batch_size)
        return loss

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # checkpoints written before the count existed resume with none skipped
        checkpoint["state_dict"].setdefault("skipped_steps", torch.zeros((), dtype=torch.long))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self._drop_gradients:
            # parameters without a gradient are left alone by the optimizer (no momentum or weight-decay step)
            optimizer.zero_grad(set_to_none=True)
            self._drop_gradients = False

    def _nonfinite_loss(self, loss: torch.Tensor, batch_idx: int, batch_size: int) -> None:
        """After a non-finite loss: raise ``FloatingPointError`` (stop), or mark the step's update to be dropped."""
        where = f"step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
        value = f"{loss.item()} on this process" if not torch.isfinite(loss) else "on another process"
        if self.nonfinite_loss == "skip" and int(self.skipped_steps) < self.max_skipped_steps:
            self.skipped_steps += 1
            self._drop_gradients = True
            warnings.warn(
                f"non-finite pretraining loss ({value}) at {where}: step skipped, {int(self.skipped_steps)} so far",
                RuntimeWarning, stacklevel=2,
            )
            self.log("train/skipped_steps", self.skipped_steps.float(), batch_size=batch_size)
            return
        skipped = f" after {int(self.skipped_steps)} skipped steps" if self.nonfinite_loss == "skip" else ""
        raise FloatingPointError(
            f"non-finite pretraining loss ({value}) at {where}{skipped}; the run stops. {self._last_checkpoint()}"
        )

    def _last_checkpoint(self) -> str:
        """Where the run's last checkpoint is, for the divergence message."""
        callback = self.trainer.checkpoint_callback
        path = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
        if not path:
            return "No checkpoint of this run has been written yet."
        return f"The last good checkpoint is {path} (resume with --ckpt_path, e.g. with a lower learning rate)."

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer)}}
