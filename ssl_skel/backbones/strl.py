"""STRL: SkeletonMAE's downstream model, the pretrained per-frame GIN encoder with temporal modelling added."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .gin import GINEncoder

__all__ = ["STRL"]


class STRL(nn.Module):
    """Spatial-temporal representation learning over a :class:`GINEncoder`, ``(N, C, T, V, M) -> (N, D)``.

    Coordinates are embedded by the encoder's ``embed``, then a learnable positional encoding (one vector per
    joint plus one per frame) is added. Each of the ``M = num_layers`` layers is one GIN layer of the encoder,
    run on every frame of every person (persons folded into the batch, so they share its weights), followed by a
    temporal average pooling (``pool_kernel`` frames, stride 1) that gives every frame its neighbours' context,
    and a residual connection: ``h <- h + pool_t(GIN_m(h))``. The result is averaged over joints, pooled over time
    at several scales (``scales``: the clip cut into 1, 2, 4 equal segments, each averaged; concatenated) and
    averaged over persons, so ``D = dim * sum(scales)``. The classifier (the paper's MLP) is the downstream
    module's head.

    SkeletonMAE pretrains ``encoder`` alone (its ``backbone`` is this module), so a pretraining checkpoint holds
    every ``backbone.*`` key of an STRL built with the same arguments; the positional encoding there is still at
    its initial value.

    Args:
        layout: skeleton layout name (the physical graph).
        in_channels: C, coordinate channels per joint.
        dim: embedding and hidden size of the encoder.
        num_layers: M, GIN layers of the encoder (3).
        max_frames: longest supported clip (size of the frame positional encoding).
        pool_kernel: frames of the temporal pooling after each layer (odd).
        scales: segment counts of the multi-scale temporal pooling.
    """

    def __init__(
        self,
        layout: str = "ntu25",
        in_channels: int = 3,
        dim: int = 64,
        num_layers: int = 3,
        max_frames: int = 300,
        pool_kernel: int = 3,
        scales: Sequence[int] = (1, 2, 4),
    ) -> None:
        super().__init__()
        if pool_kernel % 2 == 0:
            raise ValueError(f"pool_kernel must be odd, got {pool_kernel}")
        self.encoder = GINEncoder(layout, in_channels, dim, num_layers)
        v = self.encoder.adjacency.shape[0]
        self.joint_pos = nn.Parameter(torch.zeros(v, dim))
        self.frame_pos = nn.Parameter(torch.zeros(max_frames, 1, dim))
        nn.init.trunc_normal_(self.joint_pos, std=0.02)
        nn.init.trunc_normal_(self.frame_pos, std=0.02)
        self.pool_kernel = pool_kernel
        self.scales = tuple(scales)
        self.feature_dim: int = dim * sum(self.scales)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M) -> (N, M, T, V, dim)``."""
        n, _, t, v, m = x.shape
        if t > self.frame_pos.shape[0]:
            raise ValueError(f"T={t} exceeds max_frames={self.frame_pos.shape[0]}")
        h = self.encoder.embed(rearrange(x, "n c t v m -> (n m) t v c")) + self.frame_pos[:t] + self.joint_pos
        for layer in self.encoder.layers:
            z = layer(h.reshape(-1, v, h.shape[-1]), self.encoder.adjacency)  # every frame is one graph
            z = rearrange(z, "(b t) v d -> (b v) d t", t=t)
            z = F.avg_pool1d(z, self.pool_kernel, 1, self.pool_kernel // 2, count_include_pad=False)
            h = h + rearrange(z, "(b v) d t -> b t v d", v=v)
        return rearrange(h, "(n m) t v d -> n m t v d", n=n, m=m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M) -> (N, dim * sum(scales))``."""
        h = self.forward_features(x).mean(dim=3)  # (N, M, T, dim)
        n, m = h.shape[:2]
        h = rearrange(h, "n m t d -> (n m) d t")
        pooled = torch.cat([F.adaptive_avg_pool1d(h, s).flatten(1) for s in self.scales], dim=1)
        return pooled.view(n, m, -1).mean(dim=1)
