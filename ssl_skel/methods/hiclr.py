"""HiCLR: hierarchical consistent contrastive learning with growing augmentations (Zhang et al., AAAI 2023)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..augment import HiCLRPolicy, MultiView
from .base import PretrainOutput
from .contrastive import MomentumContrast
from .losses import directional_consistency, info_nce_logits, nn_mining_loss

__all__ = ["HiCLR"]


class HiCLR(MomentumContrast):
    """Four views per sample: ``v1`` (query) and ``v2`` (key) BASIC, ``v3`` STRONG, ``v4`` STRONG + joint mask.

    Loss = InfoNCE(z1, k) + ``consistency_weight`` * (L(z1 -> z3) + L(z3 -> z4)), each consistency term a
    cross-entropy from the weaker branch's similarity distribution over ``[k, queue]`` (stop-gradient target) to
    the stronger one's. From ``mining_epoch`` on, the InfoNCE term becomes the multi-positive loss with the
    nearest queue entry of each branch as extra positives. The joint mask replaces hidden joints by a learnable
    scalar token (initialised 0), drawn per sample.

    Args:
        backbone: encoder ``(N, C, T, V, M) -> (N, D)``.
        layout: skeleton layout of the data (mirroring pairs).
        consistency_weight: weight of the two directional terms (0.5).
        mining_epoch: first epoch with nearest-neighbour mining (150 of 300).
        shear: shear amplitude of the views (0.5).
        mask_ratio: fraction of joints hidden per frame in ``v4`` (0.1).
        blur_normalize: normalised temporal blur kernel (``False`` reproduces the reference's scaling).
        kwargs: optimizer, scheduler, queue and encoder settings of
            :class:`~ssl_skel.methods.contrastive.MomentumContrast` (queue_size 32768 by default).
    """

    def __init__(
        self,
        backbone: nn.Module,
        layout: str = "ntu25",
        consistency_weight: float = 0.5,
        mining_epoch: int = 150,
        shear: float = 0.5,
        mask_ratio: float = 0.1,
        blur_normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        self.consistency_weight = consistency_weight
        self.mining_epoch = mining_epoch
        self.mask_token = nn.Parameter(torch.zeros(()))
        basic = HiCLRPolicy(layout, "basic", shear=shear)
        strong = HiCLRPolicy(layout, "strong", shear=shear, blur_normalize=blur_normalize)
        masked = HiCLRPolicy(
            layout, "strong_mask", shear=shear, blur_normalize=blur_normalize, mask_ratio=mask_ratio,
            mask_value=self.mask_token,
        )
        self.views = MultiView([basic, HiCLRPolicy(layout, "basic", shear=shear), strong, masked])

    def pretrain_step(self, batch: dict[str, Any]) -> PretrainOutput:
        v1, v2, v3, v4 = batch["views"]
        z1, features = self.query(v1)
        z3, _ = self.query(v3)
        z4, _ = self.query(v4)
        m = self.update_key_encoder()
        k = self.key(v2)
        queue = self.queue.keys.clone()
        logits1 = info_nce_logits(z1, k, queue, self.temperature)
        logits3 = info_nce_logits(z3, k, queue, self.temperature)
        logits4 = info_nce_logits(z4, k, queue, self.temperature)
        mining = self.current_epoch >= self.mining_epoch
        # before mining nn_mining_loss without branches is plain InfoNCE (target: the key)
        contrast = nn_mining_loss(logits1, [logits1, logits3, logits4] if mining else [])
        weak_strong = directional_consistency(logits1, logits3)
        strong_masked = directional_consistency(logits3, logits4)
        loss = contrast + self.consistency_weight * (weak_strong + strong_masked)
        self.enqueue(k)
        metrics = {
            "contrast": contrast.detach(),
            "weak_to_strong": weak_strong.detach(),
            "strong_to_masked": strong_masked.detach(),
            "momentum": torch.tensor(m),
            "mining": torch.tensor(float(mining)),
        }
        return loss, metrics, features
