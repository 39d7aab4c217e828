"""Feature streams on batches ``(N, C, T, V, M)``: joint, bone, motion, bone-motion.

Streams are computed on the batch with tensor ops (no loops over frames or joints). Frames beyond a sample's
valid length are zero padding; ``motion`` at the last valid frame would see the padding, so callers that care
pass a batch whose padding repeats the sequence or ignore the last valid frame's motion.
"""

from __future__ import annotations

import torch

from .layouts import Layout, get_layout

__all__ = ["STREAMS", "bone", "joints_from_bones", "motion", "to_stream"]

STREAMS = ("joint", "bone", "motion", "bone_motion")


def bone(x: torch.Tensor, layout: str | Layout) -> torch.Tensor:
    """Joint minus its parent in the layout's bone tree; the root (centre) bone is zero. Shape preserved."""
    parents = torch.as_tensor(get_layout(layout).parents, device=x.device)
    if x.shape[3] != parents.numel():
        raise ValueError(f"expected {parents.numel()} joints on dim 3 of (N, C, T, V, M), got shape {tuple(x.shape)}")
    return x - x.index_select(3, parents)


def joints_from_bones(b: torch.Tensor, layout: str | Layout) -> torch.Tensor:
    """Inverse of :func:`bone` up to the root's position: every joint is the sum of the bones on its path from the
    centre joint, which is put at the origin. ``(N, C, T, V, M)`` -> same shape."""
    parents = get_layout(layout).parents
    v = len(parents)
    if b.shape[3] != v:
        raise ValueError(f"expected {v} joints on dim 3 of (N, C, T, V, M), got shape {tuple(b.shape)}")
    # path[j, u] = 1 when u lies on the path from the root to j (j included): one matrix power per tree level
    step = torch.zeros(v, v, dtype=b.dtype, device=b.device)
    step[torch.arange(v), torch.as_tensor(parents)] = 1.0
    path = torch.eye(v, dtype=b.dtype, device=b.device)
    reach = torch.eye(v, dtype=b.dtype, device=b.device)
    for _ in range(v - 1):
        reach = reach @ step
        path = path + reach
    root = get_layout(layout).center
    path[:, root] = 0.0  # the root's bone is zero by definition; the root itself sits at the origin
    return torch.einsum("ju,nctum->nctjm", path.clamp(max=1.0), b)


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
