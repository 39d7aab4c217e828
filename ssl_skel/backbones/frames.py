"""Per-frame features of any backbone: its ``forward_features`` with the time axis kept and everything else pooled.

Frame-level objectives (LAC) and dense downstream tasks (action segmentation) need one feature vector per
(possibly strided) frame. The backbones return their unpooled maps in different shapes; :func:`frame_features`
brings them all to ``(N, T', D')`` and :func:`frame_feature_dim` gives ``D'``. ``T'`` is ``T`` except for the
temporally strided encoders (ST-GCN: ``ceil(ceil(T / 2) / 2)``, transformer: ``T / patch_frames``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .bigru import BiGRU
from .gin import GINEncoder
from .stgcn import STGCN
from .strl import STRL
from .transformer import SkeletonTransformer

__all__ = ["frame_feature_dim", "frame_features", "upsample_frames"]

_SUPPORTED = "STGCN, SkeletonTransformer, GINEncoder, STRL, BiGRU"


def frame_features(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-frame features ``(N, T', D')`` of ``x (N, C, T, V, M)``: the backbone's ``forward_features`` averaged
    over persons and joints.

    For ST-GCN, the transformer and the GIN encoder the mean over frames is the backbone's pooled output
    (``D' = feature_dim``). STRL's frames are its encoder's (``D' = dim``; its pooled output concatenates several
    temporal scales); BiGRU's are the GRU outputs of every frame (``T' = T``, zero past a clip's valid length).
    """
    if isinstance(backbone, STGCN):  # (N, M, D, T', V)
        return backbone.forward_features(x).mean(dim=(1, 4)).transpose(1, 2)
    if isinstance(backbone, (SkeletonTransformer, GINEncoder, STRL)):  # (N, M, T', V, D)
        return backbone.forward_features(x).mean(dim=(1, 3))
    if isinstance(backbone, BiGRU):  # (N, T_max, D) up to the batch's longest valid length
        outputs, _ = backbone.forward_features(x)
        return F.pad(outputs, (0, 0, 0, x.shape[2] - outputs.shape[1]))
    raise TypeError(f"no per-frame features for {type(backbone).__name__} (supported: {_SUPPORTED})")


def frame_feature_dim(backbone: nn.Module) -> int:
    """``D'``, the size of :func:`frame_features` of ``backbone``."""
    if isinstance(backbone, STRL):
        return int(backbone.encoder.feature_dim)
    if isinstance(backbone, (STGCN, SkeletonTransformer, GINEncoder, BiGRU)):
        return int(backbone.feature_dim)
    raise TypeError(f"no per-frame features for {type(backbone).__name__} (supported: {_SUPPORTED})")


def upsample_frames(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Linear interpolation along time, ``(N, T', D) -> (N, num_frames, D)`` (frames as cell centres, i.e.
    ``align_corners=False``); identity when ``T' == num_frames``."""
    if x.shape[1] == num_frames:
        return x
    return F.interpolate(x.transpose(1, 2), size=num_frames, mode="linear", align_corners=False).transpose(1, 2)
