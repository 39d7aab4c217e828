"""Skeleton transformer encoder with MAE-style visible-token encoding (MAMP's encoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ssl_skel.skeleton.layouts import get_layout

__all__ = ["SkeletonTransformer", "TransformerBlock"]


class TransformerBlock(nn.Module):
    """Pre-norm ViT block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))`` on ``(B, L, dim)``.

    Args:
        dim: token size.
        heads: attention heads (must divide ``dim``).
        mlp_ratio: MLP hidden size as a multiple of ``dim``.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(self.norm1(x)), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        x = x + self.proj(rearrange(F.scaled_dot_product_attention(q, k, v), "b h l d -> b l (h d)"))
        return x + self.mlp(self.norm2(x))


class SkeletonTransformer(nn.Module):
    """Transformer over tokens of ``patch_frames`` frames x 1 joint, ``(N, C, T, V, M) -> (N, dim)``.

    Persons are folded into the batch (each person is its own token sequence). Token ``(t', v)`` has flat index
    ``t' * V + v`` with ``t' < T' = T / patch_frames``; its embedding is a Conv2d patch embedding plus a learnable
    temporal position (one per ``t'``, up to ``max_frames / patch_frames``) plus a learnable spatial position (one
    per joint). ``keep_index`` selects the visible tokens: masked tokens are dropped before the first block and
    never enter attention.

    Args:
        layout: skeleton layout name (gives V).
        in_channels: C, coordinate channels per joint.
        dim: token size.
        depth: number of transformer blocks.
        heads: attention heads.
        mlp_ratio: MLP hidden size as a multiple of ``dim``.
        patch_frames: frames per token.
        max_frames: longest supported clip (frames, a multiple of ``patch_frames``).
    """

    def __init__(
        self,
        layout: str = "ntu25",
        in_channels: int = 3,
        dim: int = 256,
        depth: int = 8,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        patch_frames: int = 4,
        max_frames: int = 120,
    ) -> None:
        super().__init__()
        if max_frames % patch_frames:
            raise ValueError(f"max_frames {max_frames} is not a multiple of patch_frames {patch_frames}")
        self.num_joints = get_layout(layout).num_joints
        self.patch_frames = patch_frames
        self.patch_embed = nn.Conv2d(in_channels, dim, (patch_frames, 1), (patch_frames, 1))
        self.temporal_pos = nn.Parameter(torch.zeros(max_frames // patch_frames, 1, dim))
        self.spatial_pos = nn.Parameter(torch.zeros(1, self.num_joints, dim))
        nn.init.trunc_normal_(self.temporal_pos, std=0.02)
        nn.init.trunc_normal_(self.spatial_pos, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.feature_dim: int = dim

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M) -> (N*M, T' * V, dim)`` embedded tokens with positions, persons folded (n-major)."""
        t = x.shape[2]
        if t % self.patch_frames or t // self.patch_frames > self.temporal_pos.shape[0]:
            raise ValueError(
                f"T={t} must be a multiple of patch_frames={self.patch_frames} and at most "
                f"{self.temporal_pos.shape[0] * self.patch_frames} frames"
            )
        tokens = self.patch_embed(rearrange(x, "n c t v m -> (n m) c t v"))  # (N*M, dim, T', V)
        tokens = rearrange(tokens, "b d t v -> b t v d") + self.temporal_pos[: tokens.shape[2]] + self.spatial_pos
        return rearrange(tokens, "b t v d -> b (t v) d")

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Run the blocks and the final LayerNorm on ``(B, L, dim)`` tokens."""
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward_features(self, x: torch.Tensor, keep_index: torch.Tensor | None = None) -> torch.Tensor:
        """Encode ``(N, C, T, V, M)``.

        Without ``keep_index`` returns ``(N, M, T', V, dim)``. With ``keep_index``, a ``(N*M, L)`` int64 tensor of
        flat token indices (rows ordered n-major like the folded persons), only those tokens are encoded and the
        result is ``(N, M, L, dim)`` in ``keep_index`` order.
        """
        n, m, v = x.shape[0], x.shape[4], x.shape[3]
        tokens = self.tokenize(x)
        if keep_index is None:
            return rearrange(self.encode(tokens), "(n m) (t v) d -> n m t v d", n=n, m=m, v=v)
        visible = torch.gather(tokens, 1, keep_index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        return rearrange(self.encode(visible), "(n m) l d -> n m l d", n=n, m=m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M) -> (N, dim)``: mean over tokens and persons."""
        return self.forward_features(x).mean(dim=(1, 2, 3))
