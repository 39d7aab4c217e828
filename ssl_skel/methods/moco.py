"""MoCo machinery shared by the contrastive methods: key queue, momentum (EMA) update, key gathering, head.

Everything here is a plain ``nn.Module`` or function; the LightningModules wire them together. The queue and its
counters are registered buffers, so they live in the checkpoint and a resumed run continues with the same keys.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchmetrics.utilities.distributed import gather_all_tensors

__all__ = ["KeyQueue", "ProjectionHead", "gather_keys", "momentum_at", "momentum_update"]


class KeyQueue(nn.Module):
    """First-in first-out queue of ``size`` L2-normalised key embeddings of dimension ``dim``.

    Buffers: ``keys`` (size, dim), ``ptr`` (slot the next key is written to), ``count`` (keys enqueued so far,
    saturating at ``size``). Until the queue is full the unwritten slots hold random unit vectors (the MoCo
    initialisation), so ``keys`` can always be used as the negatives of InfoNCE.
    """

    keys: torch.Tensor
    ptr: torch.Tensor
    count: torch.Tensor

    def __init__(self, dim: int, size: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if dim <= 0 or size <= 0:
            raise ValueError(f"queue dim and size must be positive, got dim={dim}, size={size}")
        self.dim = dim
        self.size = size
        self.register_buffer("keys", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def check_divisible(self, global_batch: int) -> None:
        """Raise ``ValueError`` unless the queue size is a multiple of the global batch (call at start-up)."""
        if global_batch <= 0 or self.size % global_batch != 0:
            raise ValueError(
                f"queue size {self.size} must be divisible by the global batch size {global_batch} "
                "(per-device batch x devices x nodes); choose a queue size that is a multiple of it"
            )

    @property
    def is_full(self) -> bool:
        """True once ``size`` keys have been enqueued (no random initial entries left)."""
        return int(self.count) >= self.size

    @property
    def filled(self) -> int:
        """Number of slots holding enqueued (not initial random) keys."""
        return int(self.count)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Append keys ``(B, dim)`` (L2-normalised here, detached), overwriting the oldest; wraps around the end.

        If ``B > size`` only the last ``size`` keys are kept.
        """
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"expected keys of shape (B, {self.dim}), got {tuple(keys.shape)}")
        keys = F.normalize(keys.detach()[-self.size :].to(self.keys.dtype), dim=1)
        n = keys.shape[0]
        index = (self.ptr + torch.arange(n, device=self.keys.device)) % self.size
        self.keys.index_copy_(0, index, keys)
        self.ptr.copy_((self.ptr + n) % self.size)
        self.count.copy_(torch.clamp(self.count + n, max=self.size))

    def newest(self, n: int) -> torch.Tensor:
        """The ``n`` most recently enqueued keys ``(n, dim)``, oldest first; ``n`` must not exceed ``filled``."""
        if not 0 < n <= self.filled:
            raise ValueError(f"asked for the newest {n} keys but the queue holds {self.filled} enqueued keys")
        index = (self.ptr - n + torch.arange(n, device=self.keys.device)) % self.size
        return self.keys.index_select(0, index)


def momentum_at(step: int, total_steps: int, base: float = 0.999, final: float = 1.0, cosine: bool = False) -> float:
    """EMA momentum at optimiser step ``step`` (e.g. ``global_step``) so that a resumed run reproduces it.

    Constant ``base`` when ``cosine`` is False; otherwise ``final - (final - base) * (1 + cos(pi * s / S)) / 2``
    with ``s`` clamped to ``[0, S]``: ``base`` at step 0 rising to ``final`` at ``total_steps``.
    """
    if not cosine:
        return base
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive for a cosine momentum schedule, got {total_steps}")
    progress = min(max(step, 0), total_steps) / total_steps
    return final - (final - base) * (1.0 + math.cos(math.pi * progress)) / 2.0


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, m: float) -> None:
    """In place ``target <- m * target + (1 - m) * online`` for parameters; buffers are copied from ``online``.

    Both modules must have the same architecture (parameters and buffers in the same order and shapes).
    """
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    t_bufs = list(target.buffers())
    o_bufs = list(online.buffers())
    if len(t_params) != len(o_params) or len(t_bufs) != len(o_bufs):
        raise ValueError("online and target modules differ in their parameters or buffers")
    if t_params:
        torch._foreach_lerp_(t_params, o_params, 1.0 - m)
    if t_bufs:
        torch._foreach_copy_(t_bufs, o_bufs)


@torch.no_grad()
def gather_keys(keys: torch.Tensor) -> torch.Tensor:
    """Keys ``(B, D)`` of every process concatenated in rank order ``(sum B, D)``, without gradient.

    Returns ``keys`` detached when torch.distributed is not initialised (single process). Per-rank batch sizes
    may differ.
    """
    keys = keys.detach()
    if not (dist.is_available() and dist.is_initialized()):
        return keys
    return torch.cat(gather_all_tensors(keys.contiguous()), dim=0)


class ProjectionHead(nn.Sequential):
    """MoCo v2 head ``Linear(in, hidden) - ReLU - Linear(hidden, out)``, no BatchNorm: (N, in) -> (N, out)."""

    def __init__(self, in_dim: int = 256, hidden_dim: int = 256, out_dim: int = 128) -> None:
        super().__init__(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))
        self.in_dim = in_dim
        self.out_dim = out_dim
