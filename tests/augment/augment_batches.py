"""Batches for the augmentation tests: absent persons, padded frames, several layouts and channel counts."""

from __future__ import annotations

import torch

from ssl_skel.skeleton import get_layout


def make_batch(
    layout: str = "ntu25", n: int = 6, t: int = 40, channels: int | None = None, dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> torch.Tensor:
    """``(n, C, t, V, 2)`` random poses; sample 1 has no second person, samples 2 and 3 are padded after 25 and
    9 frames, sample 4 is padded and has no second person."""
    lay = get_layout(layout)
    c = channels if channels is not None else lay.dims
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, t, lay.num_joints, 2, generator=g, dtype=dtype) + 0.5
    x[1, :, :, :, 1] = 0
    x[2, :, 25:] = 0
    x[3, :, 9:] = 0
    x[4, :, 30:] = 0
    x[4, :, :, :, 1] = 0
    return x


def zero_regions(x: torch.Tensor) -> list[torch.Tensor]:
    """The regions of a :func:`make_batch` batch that must stay exactly zero (after temporal ops that keep T)."""
    return [x[1, :, :, :, 1], x[2, :, 25:], x[3, :, 9:], x[4, :, 30:], x[4, :, :, :, 1]]


def assert_fused_equals_steps(chain: list[torch.nn.Module], x: torch.Tensor, seed: int = 4) -> None:
    """``Compose(chain)`` (which fuses what it can) equals applying the modules one by one with the same draws."""
    from ssl_skel.augment import Compose

    fused = Compose(chain)(x, torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(seed)
    step = x
    for module in chain:
        step = module(step, generator)
    torch.testing.assert_close(fused, step)
