"""Backbones: each maps a skeleton batch ``(N, C, T, V, M)`` to pooled features ``(N, feature_dim)``."""

from __future__ import annotations

from torch import nn

from .bigru import BiGRU
from .frames import frame_feature_dim, frame_features, upsample_frames
from .gin import GINEncoder
from .stgcn import STGCN
from .strl import STRL
from .transformer import SkeletonTransformer

__all__ = [
    "BACKBONES", "STGCN", "STRL", "BiGRU", "GINEncoder", "SkeletonTransformer", "build_backbone", "frame_feature_dim",
    "frame_features", "upsample_frames",
]

BACKBONES: dict[str, type[nn.Module]] = {
    "stgcn": STGCN,
    "bigru": BiGRU,
    "transformer": SkeletonTransformer,
    "gin": GINEncoder,
    "strl": STRL,
}


def build_backbone(name: str, layout: str, in_channels: int, **kwargs: object) -> nn.Module:
    """Construct the backbone registered as ``name`` for ``layout`` and ``in_channels`` (plus its own kwargs)."""
    try:
        cls = BACKBONES[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; known backbones: {sorted(BACKBONES)}") from None
    return cls(layout=layout, in_channels=in_channels, **kwargs)
