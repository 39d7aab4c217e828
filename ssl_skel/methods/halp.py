"""HaLP: hallucinating latent positives (Shah et al., CVPR 2023) on top of MoCo."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..augment import JointCorruption, MultiView, RandomChoice, Shear
from ..skeleton.layouts import get_layout
from .base import PretrainOutput
from .contrastive import MomentumContrast
from .halp_positives import PrototypeBank, hallucinate_positives, halp_positive_loss
from .losses import info_nce

__all__ = ["HaLP"]


class HaLP(MomentumContrast):
    """MoCo InfoNCE plus ``mu`` times the hallucinated-positive term.

    Views: the data module's two independent temporal crop-resizes of each sample (HaLP: ratio U(0.1, 1) of the
    valid frames, at least 64, resized to 64: ``train_crop``, ``min_crop_frames``, ``num_frames`` and
    ``num_views: 2`` in the data config), then on the batch, per view and sample, joint corruption (probability
    ``corrupt_p``) or else shear. Prototypes: spherical k-means over the newest ``prototype_keys`` queue keys,
    refreshed every ``refresh_interval`` steps once the queue is full (state in the checkpoint). From
    ``halp_start_epoch`` on (the reference starts from a MoCo model) each anchor key gets ``num_candidates``
    positives slerped toward a non-nearest prototype by ``(1 - u) t_max``, ``u ~ U(0, lam)``, kept while their
    nearest prototype is unchanged.

    Args:
        backbone: encoder ``(N, C, T, V, M) -> (N, D)``.
        queue_size: number of negative keys (16384 in HaLP).
        layout: skeleton layout of the data (for the coordinate channels).
        mu: weight of the positive term (2 for NTU, 1 for PKU-MMD).
        halp_start_epoch: first epoch with hallucinated positives (plain MoCo before).
        num_prototypes: k of the spherical k-means.
        prototype_keys: newest queue keys clustered.
        refresh_interval: steps between prototype refreshes.
        num_candidates: candidates per anchor.
        lam: hardness control lambda.
        corrupt_ratio: fraction of joints corrupted (15 of 25).
        corrupt_p: probability of joint corruption instead of shear.
        shear: shear amplitude (1.0).
        kwargs: optimizer, scheduler and encoder settings of :class:`~ssl_skel.methods.contrastive.MomentumContrast`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        queue_size: int = 16384,
        layout: str = "ntu25",
        mu: float = 2.0,
        halp_start_epoch: int = 0,
        num_prototypes: int = 20,
        prototype_keys: int = 256,
        refresh_interval: int = 10,
        num_candidates: int = 100,
        lam: float = 0.8,
        corrupt_ratio: float = 0.6,
        corrupt_p: float = 0.5,
        shear: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, queue_size=queue_size, **kwargs)
        self.mu = mu
        self.halp_start_epoch = halp_start_epoch
        self.num_candidates = num_candidates
        self.lam = lam
        self.prototypes = PrototypeBank(self.queue.dim, num_prototypes, prototype_keys, refresh_interval)
        coords = get_layout(layout).dims

        def view() -> RandomChoice:
            return RandomChoice(
                [JointCorruption(corrupt_ratio, coords=coords), Shear(shear, coords=coords)], [corrupt_p, 1 - corrupt_p]
            )

        self.views = MultiView([view(), view()])

    def pretrain_step(self, batch: dict[str, Any]) -> PretrainOutput:
        v1, v2 = batch["views"]
        q, features = self.query(v1)
        m = self.update_key_encoder()
        k = self.key(v2)
        contrast = info_nce(q, k, self.queue.keys.clone(), self.temperature)
        loss = contrast
        metrics = {"contrast": contrast.detach(), "momentum": torch.tensor(m)}
        if self.current_epoch >= self.halp_start_epoch and self.prototypes.ready:
            positives, keep = hallucinate_positives(k, self.prototypes.prototypes, self.num_candidates, self.lam)
            positive = halp_positive_loss(q, positives, keep, self.temperature)
            loss = loss + self.mu * positive
            metrics["positive"] = positive.detach()
            metrics["kept_fraction"] = keep.float().mean()
        self.enqueue(k)
        self.prototypes.maybe_refresh(self.queue, self.global_step)
        return loss, metrics, features
