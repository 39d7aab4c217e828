"""MoCo-style query / momentum-key encoders shared by HiCLR and HaLP."""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import PretrainMethod
from .moco import KeyQueue, ProjectionHead, gather_keys, momentum_at, momentum_update

__all__ = ["MomentumContrast"]


class MomentumContrast(PretrainMethod):
    """Query encoder (backbone + projection head), its EMA key encoder and the key queue.

    The momentum is computed from ``global_step`` (:func:`~ssl_skel.methods.moco.momentum_at`), and the queue and
    key encoder are part of the module state, so a resumed run continues exactly.

    Args:
        backbone: encoder ``(N, C, T, V, M) -> (N, D)``.
        queue_size: K, number of negative keys (divisible by the global batch).
        embedding_dim: projection output dimension.
        hidden_dim: projection hidden width (default: the backbone's feature dimension).
        momentum: EMA momentum of the key encoder.
        momentum_cosine: raise the momentum to 1 over training with a cosine schedule.
        temperature: InfoNCE temperature.
        key_batch_norm: statistics the key encoder's BatchNorm layers use in training. ``"batch"``: those of the
            key batch (the references on one device). ``"running"``: the running statistics copied from the query
            encoder. In the logits ``[q.k, q.queue]`` the positive is the only key computed in the current batch, so
            batch statistics can mark it and the loss falls without learning instance features (the shortcut that
            MoCo's shuffled BatchNorm breaks on several devices); running statistics remove that signal.
        kwargs: ``optimizer``, ``scheduler`` and ``online_probe`` of :class:`~ssl_skel.methods.base.PretrainMethod`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        queue_size: int = 32768,
        embedding_dim: int = 128,
        hidden_dim: int | None = None,
        momentum: float = 0.999,
        momentum_cosine: bool = False,
        temperature: float = 0.07,
        key_batch_norm: Literal["batch", "running"] = "batch",
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        if key_batch_norm not in ("batch", "running"):
            raise ValueError(f"key_batch_norm must be 'batch' or 'running', got {key_batch_norm!r}")
        self.head = ProjectionHead(self.feature_dim, hidden_dim or self.feature_dim, embedding_dim)
        self.key_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.key_head = copy.deepcopy(self.head).requires_grad_(False)
        self.queue = KeyQueue(embedding_dim, queue_size)
        self.momentum = momentum
        self.momentum_cosine = momentum_cosine
        self.temperature = temperature
        self.key_batch_norm = key_batch_norm

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        batch_size = getattr(datamodule, "batch_size", None)
        if batch_size is not None:
            self.queue.check_divisible(batch_size * self.trainer.world_size)

    def query(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, T, V, M)`` -> (L2-normalised embedding (N, E), backbone features (N, D))."""
        features = self.backbone(x)
        return F.normalize(self.head(features), dim=1), features

    @torch.no_grad()
    def key(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised key embedding ``(N, E)`` from the momentum encoder (no gradient)."""
        self.key_backbone.train(self.training and self.key_batch_norm == "batch")
        return F.normalize(self.key_head(self.key_backbone(x)), dim=1)

    @torch.no_grad()
    def update_key_encoder(self) -> float:
        """EMA step of the key encoder at the current ``global_step``; returns the momentum used."""
        total = self.trainer.estimated_stepping_batches if self.momentum_cosine else 0
        m = momentum_at(self.global_step, int(total), self.momentum, cosine=self.momentum_cosine)
        momentum_update(self.backbone, self.key_backbone, m)
        momentum_update(self.head, self.key_head, m)
        return m

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Add the keys of every process to the queue."""
        self.queue.enqueue(gather_keys(keys))
