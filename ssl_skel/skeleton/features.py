"""Feature streams on batches ``(N, C, T, V, M)``: joint, bone, motion, bone-motion.

Streams are computed on the batch with tensor ops (no loops over frames or joints). Frames beyond a sample's
valid length are zero padding; ``motion`` at the last valid frame would see the padding, so callers that care
pass a batch whose padding repeats the sequence or ignore the last valid frame's motion.
"""

from __future__ import annotations

import torch

from .layouts import Layout, get_layout

__all__ = ["STREAMS", "bone", "motion", "to_stream"]

STREAMS = ("joint", "bone", "motion", "bone_motion")


def bone(x: torch.Tensor, layout: str | Layout) -> torch.Tensor:
    """Joint minus its parent in the layout's bone tree; the root (centre) bone is zero. Shape preserved."""
    parents = torch.as_tensor(get_layout(layout).parents, device=x.device)
    if x.shape[3] != parents.numel():
        raise ValueError(f"expected {parents.numel()} joints on dim 3 of (N, C, T, V, M), got shape {tuple(x.shape)}")
    return x - x.index_select(3, parents)


def motion(x: torch.Tensor) -> torch.Tensor:
    """Temporal difference ``x[t + 1] - x[t]`` along dim 2; the last frame is zero. Shape preserved."""
    out = torch.zeros_like(x)
    out[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    return out


def to_stream(x: torch.Tensor, stream: str, layout: str | Layout) -> torch.Tensor:
    """Convert joint coordinates ``(N, C, T, V, M)`` to the named stream (one of :data:`STREAMS`)."""
    if stream == "joint":
        return x
    if stream == "bone":
        return bone(x, layout)
    if stream == "motion":
        return motion(x)
    if stream == "bone_motion":
        return motion(bone(x, layout))
    raise ValueError(f"unknown feature stream {stream!r}; choose one of {STREAMS}")
