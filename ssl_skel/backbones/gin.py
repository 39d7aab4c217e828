"""Graph isomorphism network over every frame's skeleton graph (SkeletonMAE's encoder)."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ssl_skel.skeleton.graph import binary_adjacency
from ssl_skel.skeleton.layouts import get_layout

__all__ = ["GINEncoder", "GINLayer"]


class GINLayer(nn.Module):
    """``h' = ReLU(BN(MLP((1 + eps) h + sum of neighbours)))`` with a learnable ``eps``.

    The MLP is Linear -> BN -> ReLU -> Linear. Works on ``(B, V, D_in)`` node features.

    Args:
        in_dim: input feature size.
        out_dim: output feature size.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(()))
        self.mlp_in = nn.Linear(in_dim, out_dim)
        self.mlp_bn = nn.BatchNorm1d(out_dim)
        self.mlp_out = nn.Linear(out_dim, out_dim)
        self.out_bn = nn.BatchNorm1d(out_dim)

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """``h``: ``(B, V, D_in)``; ``adjacency``: ``(V, V)`` binary without self loops -> ``(B, V, D_out)``."""
        b, v, _ = h.shape
        z = (1 + self.eps) * h + torch.einsum("ij,bjd->bid", adjacency, h)
        z = torch.relu(self.mlp_bn(self.mlp_in(z.reshape(b * v, -1))))
        z = torch.relu(self.out_bn(self.mlp_out(z)))
        return z.view(b, v, -1)


class GINEncoder(nn.Module):
    """Per-frame GIN over the layout's bone graph, ``(N, C, T, V, M) -> (N, dim)``.

    Coordinates are embedded linearly to ``dim``; each frame of each person is one graph. There is no temporal
    mixing (the downstream STRL module adds it).

    Args:
        layout: skeleton layout name (gives the physical adjacency).
        in_channels: C, coordinate channels per joint.
        dim: embedding and hidden size.
        num_layers: GIN layers.
    """

    def __init__(self, layout: str = "ntu25", in_channels: int = 3, dim: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        self.register_buffer("adjacency", binary_adjacency(get_layout(layout), self_loops=False), persistent=False)
        self.embed = nn.Linear(in_channels, dim)
        self.layers = nn.ModuleList(GINLayer(dim, dim) for _ in range(num_layers))
        self.feature_dim: int = dim

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """Run the GIN layers on embedded graphs ``(B, V, dim) -> (B, V, dim)``."""
        for layer in self.layers:
            h = layer(h, self.adjacency)
        return h

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M) -> (N, M, T, V, dim)``."""
        n, _, t, _, m = x.shape
        h = self.encode(self.embed(rearrange(x, "n c t v m -> (n m t) v c")))
        return rearrange(h, "(n m t) v d -> n m t v d", n=n, m=m, t=t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M) -> (N, dim)``: mean over persons, frames and joints."""
        return self.forward_features(x).mean(dim=(1, 2, 3))
