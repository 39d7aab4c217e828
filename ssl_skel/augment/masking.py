"""Noise and masking augmentations: gaussian noise, joint mask, joint corruption, body-part mask.

Values are only ever written at present persons in valid frames; absent persons and padding stay exactly zero.
"""

from __future__ import annotations

import math
from functools import cache

import torch
from torch import nn

from ..skeleton.layouts import Layout, get_layout
from .base import (
    Augmentation,
    Frames,
    OwnedAugmentation,
    SubsetAugmentation,
    cached_arange,
    channel_factors,
    param_dtype,
    random_subset,
    random_words,
    scratch,
    uniform,
)

__all__ = ["BodyPartMask", "GaussianNoise", "JointCorruption", "JointMask", "standard_normal"]

@cache
def _normal_table() -> torch.Tensor:
    """Inverse normal CDF at the centres of ``2**16`` equiprobable bins, rescaled to unit variance."""
    centres = (torch.arange(2**16, dtype=torch.float64) + 0.5) / 2**16
    z = torch.special.ndtri(centres)
    return (z / z.square().mean().sqrt()).float()


def standard_normal(
    shape: tuple[int, ...], table: torch.Tensor, generator: torch.Generator | None, reuse: bool = False
) -> torch.Tensor:
    """Samples of ``table``'s distribution (see :class:`GaussianNoise`), one per 16 random bits, on its device.

    With ``reuse`` the result and its intermediates live in :func:`~ssl_skel.augment.base.scratch` buffers (the
    caller must consume the result before the next call)."""
    count = math.prod(shape)
    device = table.device
    bits = random_words(-(-count // 4), generator, device).view(torch.uint16)[:count]
    if not reuse:
        return table.index_select(0, bits.to(torch.int32)).view(shape)
    index = scratch("normal_index", (count,), torch.int32, device).copy_(bits)
    return torch.index_select(table, 0, index, out=scratch("normal", (count,), table.dtype, device)).view(shape)


def _hide(x: torch.Tensor, hidden: torch.Tensor, value: float | torch.Tensor, coords: int) -> torch.Tensor:
    """Coordinates of ``hidden`` joints (bool, broadcastable to ``(N, 1, T, V, M)``) set to ``value``, other
    channels to zero."""
    c = min(coords, x.shape[1])
    if isinstance(value, torch.Tensor):
        value = value.to(x.dtype).reshape(1, -1, 1, 1, 1) if value.numel() > 1 else value.to(x.dtype).reshape(())
    out = torch.where(hidden, value, x[:, :c])
    if c == x.shape[1]:
        return out
    return torch.cat([out, x[:, c:] * ~hidden], dim=1)


def _register_value(module: nn.Module, value: float | torch.Tensor) -> None:
    if isinstance(value, nn.Parameter):
        module.value = value
    elif isinstance(value, torch.Tensor):
        module.register_buffer("value", value.detach().clone())
    else:
        module.value = float(value)


class GaussianNoise(SubsetAugmentation):
    """Add ``N(0, sigma^2)`` to the coordinates of present persons (the references also noise the zero padding).

    By default each sample is looked up from 16 random bits in a table of the inverse normal CDF (65,536 levels,
    rescaled to unit variance, tails cut at about 4.2 sigma): four times cheaper than ``torch.randn`` on a CPU and
    indistinguishable for augmentation. ``exact=True`` uses ``torch.randn``.

    Args:
        sigma: noise standard deviation in coordinate units (0.01 in HiCLR).
        exact: draw with ``torch.randn`` instead of the table.
        coords: number of leading channels that receive noise.
    """

    def __init__(self, sigma: float = 0.01, exact: bool = False, coords: int = 3) -> None:
        super().__init__()
        self.sigma = sigma
        self.exact = exact
        self.coords = coords
        self.register_buffer("table", _normal_table(), persistent=False)

    def sample_noise(
        self, shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Standard normal samples of ``shape`` in the dtype and on the device of ``like`` (a scratch buffer, valid
        until the next call)."""
        if self.exact:
            dtype = param_dtype(like.dtype)
            return torch.randn(shape, generator=generator, device=like.device, dtype=dtype).to(like.dtype)
        return standard_normal(shape, self.table.to(device=like.device, dtype=like.dtype), generator, reuse=True)

    def augment_subset(
        self, x: torch.Tensor, frames: Frames, index: torch.Tensor, generator: torch.Generator | None, owned: bool,
        scale: torch.Tensor | None = None, binary: bool = False,
    ) -> tuple[torch.Tensor, Frames, bool]:
        """See :meth:`Augmentation.augment_subset`; ``scale`` (``(N, c')``, optional) multiplies the noise of the
        first ``c'`` channels per sample (``Compose`` passes a later diagonal map it applied before the noise;
        ``binary``: its factors are all 0 or 1, and no noise is drawn for the zeroed channels)."""
        n, channels, t, v, m = x.shape
        c = min(self.coords, channels)
        # the (sample, channel) rows of x that receive noise, and their factors
        rows = torch.add(cached_arange(c, x.device), index[:, None], alpha=channels).view(-1)
        factors = None if scale is None else channel_factors(scale.index_select(0, index), c).view(-1)
        if factors is not None and binary:
            rows, factors = rows[factors != 0], None
        if rows.numel() == 0:
            return x, frames, owned
        noise = self.sample_noise((rows.shape[0], t, v * m), x, generator)
        if factors is not None:
            noise.mul_(factors.to(x.dtype)[:, None, None])
        if not frames.full:  # absent persons stay zero
            mask = scratch("noise_mask", (rows.shape[0], t, v, m), x.dtype, x.device)
            mask.copy_(frames.present.index_select(0, rows // channels)[:, :, None, :].expand(mask.shape))
            noise.mul_(mask.view(noise.shape))
        out = x if owned else x.clone(memory_format=torch.contiguous_format)
        out.view(n * channels, t * v * m).index_add_(0, rows, noise.view(rows.shape[0], -1), alpha=self.sigma)
        return out, frames, True


class JointMask(OwnedAugmentation):
    """Hide ``int(ratio * V)`` random joints per sample, frame and person, replacing their coordinates by ``value``.

    ``value`` may be a learnable ``nn.Parameter`` (a scalar or one per coordinate channel) owned by the method, as
    HiCLR's mask token; gradients flow into it. Other channels (scores) of hidden joints become zero.

    Args:
        ratio: fraction of the joints hidden in each frame (HiCLR: 0.1, i.e. 2 of 25).
        value: replacement value (float, tensor or parameter).
        coords: number of leading coordinate channels.
    """

    def __init__(self, ratio: float = 0.1, value: float | torch.Tensor = 0.0, coords: int = 3) -> None:
        super().__init__()
        self.ratio = ratio
        self.coords = coords
        _register_value(self, value)

    def sample_joints(self, frames: Frames, joints: int, generator: torch.Generator | None) -> torch.Tensor:
        """``(N, T, M, int(ratio * V))`` int64 hidden joints per sample, frame and person (all persons)."""
        n, t, m = frames.present.shape
        count = int(self.ratio * joints)
        return random_subset(n * t * m, joints, count, frames.present.device, generator, as_index=True).reshape(
            n, t, m, count
        )

    def sample_mask(self, frames: Frames, joints: int, generator: torch.Generator | None) -> torch.Tensor:
        """``(N, T, V, M)`` bool: hidden joints of present persons."""
        present = frames.present
        n, t, m = present.shape
        chosen = self.sample_joints(frames, joints, generator)
        hidden = torch.zeros(n, t, m, joints, dtype=torch.bool, device=present.device)
        hidden.scatter_(3, chosen, True)
        return hidden.transpose(2, 3) & present[:, :, None, :]

    def augment_owned(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None, owned: bool
    ) -> tuple[torch.Tensor, Frames, bool]:
        n, channels, t, v, m = x.shape
        c = min(self.coords, channels)
        chosen = self.sample_joints(frames, v, generator)
        # offset of every hidden joint in the (T, V, M) block of a channel, the same in every channel
        frame_slot = cached_arange(t, x.device)[:, None, None] * (v * m) + cached_arange(m, x.device)[:, None]
        position = (chosen * m + frame_slot).reshape(n, 1, -1)
        value = torch.as_tensor(self.value, device=x.device).to(x.dtype).reshape(-1).expand(c)
        if c < channels:
            value = torch.cat([value, value.new_zeros(channels - c)])
        values = value[None, :, None]
        if not frames.full:  # absent persons get 0, i.e. stay zero
            values = values * frames.present.to(x.dtype)[..., None].expand(chosen.shape).reshape(n, 1, -1)
        shape = (n, channels, position.shape[2])
        out = x if owned else x.clone(memory_format=torch.contiguous_format)
        out.view(n, channels, -1).scatter_(2, position.expand(shape), values.expand(shape))
        return out, frames, True


class JointCorruption(Augmentation):
    """HaLP's joint corruption: pick ``round(ratio * V)`` joints per sample (same in every frame and person); with
    probability 1/2 zero them, otherwise multiply their coordinates by a random matrix with entries ``U(-1, 1)``.

    Args:
        ratio: fraction of corrupted joints (HaLP: 15 of 25, i.e. 0.6).
        coords: number of leading coordinate channels (zeroed joints also lose their other channels).
    """

    def __init__(self, ratio: float = 0.6, coords: int = 3) -> None:
        super().__init__()
        self.ratio = ratio
        self.coords = coords

    def augment(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Frames]:
        n, channels, _, v, _ = x.shape
        c = min(self.coords, channels)
        chosen = random_subset(n, v, round(self.ratio * v), x.device, generator)[:, None, None, :, None]
        zero = torch.rand(n, generator=generator, device=x.device) < 0.5
        matrix = uniform((n, c, c), -1.0, 1.0, x, generator) * (~zero).to(param_dtype(x.dtype))[:, None, None]
        mapped = torch.matmul(matrix.to(x.dtype), x[:, :c].reshape(n, c, -1)).view(n, c, *x.shape[2:])
        out = torch.where(chosen, mapped, x[:, :c])
        if c == channels:
            return out, frames
        rest = x[:, c:] * ~(chosen & zero[:, None, None, None, None])
        return torch.cat([out, rest], dim=1), frames


class BodyPartMask(Augmentation):
    """Hide ``num_parts`` whole body parts of the layout per sample (all frames and persons), replacing their
    coordinates by ``value`` (SkeletonMAE; the value may be a learnable parameter).

    Args:
        layout: skeleton layout name (its ``parts``).
        num_parts: number of parts hidden per sample.
        value: replacement value (float, tensor or parameter).
        coords: number of leading coordinate channels.
    """

    def __init__(
        self, layout: str | Layout = "ntu25", num_parts: int = 1, value: float | torch.Tensor = 0.0, coords: int = 3
    ) -> None:
        super().__init__()
        self.layout = get_layout(layout)
        if not 0 <= num_parts <= len(self.layout.parts):
            raise ValueError(f"num_parts must be in [0, {len(self.layout.parts)}], got {num_parts}")
        self.num_parts = num_parts
        self.coords = coords
        membership = torch.zeros(len(self.layout.parts), self.layout.num_joints)
        for row, joints in enumerate(self.layout.parts.values()):
            membership[row, list(joints)] = 1
        self.register_buffer("membership", membership, persistent=False)
        _register_value(self, value)

    def sample_mask(self, n: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
        """``(n, V)`` bool: joints of the hidden parts."""
        parts = random_subset(n, self.membership.shape[0], self.num_parts, device, generator)
        return (parts.to(self.membership.dtype) @ self.membership.to(device)) > 0

    def augment(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Frames]:
        if x.shape[3] != self.layout.num_joints:
            raise ValueError(f"layout {self.layout.name} has {self.layout.num_joints} joints, batch has {x.shape[3]}")
        joints = self.sample_mask(x.shape[0], x.device, generator)
        hidden = joints[:, None, None, :, None] & frames.present[:, None, :, None, :]
        return _hide(x, hidden, self.value, self.coords), frames
