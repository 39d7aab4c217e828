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
        key_batch_norm: statistics the encoders' BatchNorm layers use in training. ``"batch"``: query and key
            batch each normalised over the whole batch (the references on one device). ``"running"``: the key
            encoder uses the running statistics copied from the query encoder. ``"shuffled"``: MoCo's shuffling
            BatchNorm on one device: queries are normalised over ``batch_norm_groups`` consecutive groups of the
            batch and keys over the same number of groups of a random permutation of it, so that a query and its
            key rarely share statistics. In the logits ``[q.k, q.queue]`` the keys of the current batch are the
            only ones computed with the current batch's statistics; with ``"batch"`` the loss can fall to about
            ln(batch size) by telling those keys from the queue's without telling them apart.
        batch_norm_groups: number of groups of ``"shuffled"`` (the batch must hold at least that many samples).
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
        key_batch_norm: Literal["batch", "running", "shuffled"] = "batch",
        batch_norm_groups: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        if key_batch_norm not in ("batch", "running", "shuffled"):
            raise ValueError(f"key_batch_norm must be 'batch', 'running' or 'shuffled', got {key_batch_norm!r}")
        if batch_norm_groups < 1:
            raise ValueError(f"batch_norm_groups must be >= 1, got {batch_norm_groups}")
        self.head = ProjectionHead(self.feature_dim, hidden_dim or self.feature_dim, embedding_dim)
        self.key_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.key_head = copy.deepcopy(self.head).requires_grad_(False)
        self.queue = KeyQueue(embedding_dim, queue_size)
        self.momentum = momentum
        self.momentum_cosine = momentum_cosine
        self.temperature = temperature
        self.key_batch_norm = key_batch_norm
        self.batch_norm_groups = batch_norm_groups

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        batch_size = getattr(datamodule, "batch_size", None)
        if batch_size is not None:
            self.queue.check_divisible(batch_size * self.trainer.world_size)
            if self.key_batch_norm == "shuffled" and batch_size < self.batch_norm_groups:
                raise ValueError(
                    f"key_batch_norm 'shuffled' splits every batch into {self.batch_norm_groups} groups, but the "
                    f"batch size is {batch_size}"
                )

    def _grouped(self, encoder: nn.Module, x: torch.Tensor, shuffle: bool = False) -> torch.Tensor:
        """``encoder`` on ``batch_norm_groups`` chunks of ``x`` (BatchNorm statistics per chunk; with ``shuffle``,
        chunks of a random permutation of it) in training with ``key_batch_norm="shuffled"``, otherwise on the
        whole batch; rows in ``x``'s order."""
        if not (self.training and self.key_batch_norm == "shuffled") or self.batch_norm_groups == 1:
            return encoder(x)
        order = torch.randperm(len(x), device=x.device) if shuffle else None
        out = torch.cat([encoder(chunk) for chunk in (x if order is None else x[order]).chunk(self.batch_norm_groups)])
        return out if order is None else out[torch.argsort(order)]

    def query(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, T, V, M)`` -> (L2-normalised embedding (N, E), backbone features (N, D))."""
        features = self._grouped(self.backbone, x)
        return F.normalize(self.head(features), dim=1), features

    @torch.no_grad()
    def key(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised key embedding ``(N, E)`` from the momentum encoder (no gradient)."""
        self.key_backbone.train(self.training and self.key_batch_norm != "running")
        return F.normalize(self.key_head(self._grouped(self.key_backbone, x, shuffle=True)), dim=1)

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
