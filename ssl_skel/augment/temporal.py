"""Temporal augmentations on the valid frames of each sample: shift crop, crop-resize, time flip, gaussian blur.

Frames are resampled by gathering whole ``(V, M)`` frame slabs (one ``embedding``/``embedding_bag`` per batch, see
:func:`~ssl_skel.augment.base.remap`); output frames beyond a sample's valid length read one of its padding frames,
so they stay exactly zero. The resampling transforms are :class:`FrameAugmentation`, which ``Compose`` fuses with
the neighbouring linear maps into a single pass.
"""

from __future__ import annotations

import functools
from abc import abstractmethod

import torch

from .base import (
    Augmentation,
    Frames,
    SubsetAugmentation,
    cached_arange,
    channel_factors,
    param_dtype,
    remap,
    uniform,
)

__all__ = [
    "FrameAugmentation", "GaussianBlur", "TemporalCropResize", "TemporalShiftCrop", "TimeFlip", "gather_frames",
]


def gather_frames(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``out[n, :, t] = x[n, :, index[n, t]]`` for ``x`` ``(N, C, T, V, M)`` and int64 ``index`` ``(N, T')``."""
    return remap(x, index=index[:, :, None])


class FrameAugmentation(Augmentation):
    """A temporal resampling: each output frame is a weighted sum of ``K`` input frames (see :meth:`frame_map`)."""

    @abstractmethod
    def frame_map(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, Frames]:
        """Sample the resampling of ``x``: ``(N, T', K)`` int64 source frames, their ``(N, T', K)`` weights
        (``None``: all 1) and the occupancy of the result."""

    def augment(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Frames]:
        index, weight, new_frames = self.frame_map(x, frames, generator)
        return remap(x, index=index, weight=weight), new_frames

    def augment_owned(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None, owned: bool
    ) -> tuple[torch.Tensor, Frames, bool]:
        return (*self.augment(x, frames, generator), True)


def _gather_present(frames: Frames, index: torch.Tensor, keep: torch.Tensor) -> Frames:
    """The occupancy after a reordering of the valid frames: frame ``t`` is frame ``index[n, t]`` where ``keep``
    (``(N, T)``), padding elsewhere (so a full batch stays full)."""
    if frames.full:
        return frames

    def compute() -> torch.Tensor:
        present = frames.present
        picked = present.gather(1, index[:, :, None].expand(-1, -1, present.shape[2]))
        return picked & keep[:, :, None]

    return Frames.deferred(compute)


class TemporalShiftCrop(FrameAugmentation):
    """HiCLR/AimCLR temporal crop: mirror-pad the valid frames by ``L // padding_ratio`` at both ends (``L`` the
    valid length) and crop ``L`` frames at an offset ``U{0, ..., 2 * pad}``. Padding frames stay padding.

    The references pad ``T // padding_ratio`` of the whole (padded) clip; on clips without padding it is the same.

    Args:
        padding_ratio: the mirror padding is ``L // padding_ratio`` frames (6 in the references).
    """

    def __init__(self, padding_ratio: int = 6) -> None:
        super().__init__()
        if padding_ratio < 1:
            raise ValueError(f"padding_ratio must be >= 1, got {padding_ratio}")
        self.padding_ratio = padding_ratio

    def frame_map(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, None, Frames]:
        n, t = x.shape[0], x.shape[2]
        length = frames.lengths[:, None]
        pad = length // self.padding_ratio
        span = 2 * pad + 1
        offset = torch.minimum((torch.rand(n, 1, generator=generator, device=x.device) * span).long(), span - 1)
        frame = cached_arange(t, x.device)
        source = frame + (offset - pad)
        source = source ^ (source >> 63)  # mirror at the start: -1 -> 0, -2 -> 1, ... (~s == -s - 1)
        source = torch.minimum(source, 2 * length - 1 - source)  # mirror at the end
        keep = frame < length
        source = torch.where(keep, source, t - 1)
        return source[:, :, None], None, _gather_present(frames, source, keep)


class TemporalCropResize(FrameAugmentation):
    """Crop part of the valid frames and resize it to ``size`` frames by linear interpolation (CTR-GCN/HaLP/MAMP).

    Random mode: crop ``min(max(floor(L * r), min_frames), L)`` frames, ``r ~ U(*ratio)``, at a uniform offset.
    Centre mode (``center_ratio`` given, for evaluation): drop ``int((1 - center_ratio) * L / 2)`` frames at both
    ends. Interpolation matches ``F.interpolate(mode="linear", align_corners=False)``. Every output frame is valid
    (unless the sample is empty).

    Args:
        size: output number of frames.
        ratio: range of the cropped fraction of the valid frames.
        min_frames: lower bound of the crop length (64 in the references), capped by ``L``.
        center_ratio: deterministic centre crop keeping this fraction (0.95 in the references' test mode).
    """

    def __init__(
        self, size: int = 64, ratio: tuple[float, float] = (0.1, 1.0), min_frames: int = 64,
        center_ratio: float | None = None,
    ) -> None:
        super().__init__()
        self.size = size
        self.ratio = tuple(ratio)
        self.min_frames = min_frames
        self.center_ratio = center_ratio

    def sample_window(
        self, length: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(start, crop_length)`` int64 ``(N,)`` for valid lengths ``length``."""
        length = length.clamp(min=1)
        if self.center_ratio is not None:
            bias = ((1 - self.center_ratio) * length.double() / 2).long()
            return bias, length - 2 * bias
        r = uniform(tuple(length.shape), *self.ratio, length.double(), generator)
        crop = (length * r).floor().long().clamp(min=self.min_frames).minimum(length).clamp(min=1)
        start = (torch.rand(length.shape, generator=generator, device=length.device) * (length - crop + 1)).long()
        return start.minimum(length - crop), crop

    def frame_map(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, Frames]:
        start, crop = self.sample_window(frames.lengths, generator)
        steps = torch.arange(self.size, device=x.device, dtype=param_dtype(x.dtype))
        position = ((steps + 0.5) * (crop[:, None] / self.size) - 0.5).clamp(min=0)
        low = position.floor().long().minimum(crop[:, None] - 1)
        high = (low + 1).minimum(crop[:, None] - 1)
        weight = position - low
        low, high = low + start[:, None], high + start[:, None]
        present = frames.present
        m = present.shape[2]
        occupied = present.gather(1, low[:, :, None].expand(-1, -1, m))
        occupied |= present.gather(1, high[:, :, None].expand(-1, -1, m))
        return torch.stack([low, high], dim=2), torch.stack([1 - weight, weight], dim=2), Frames(occupied)


class TimeFlip(FrameAugmentation):
    """Reverse the valid frames of every sample (wrap in ``RandomApply`` for a probability); padding stays last."""

    def frame_map(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, None, Frames]:
        t = x.shape[2]
        length = frames.lengths[:, None]
        steps = torch.arange(t, device=x.device)
        keep = steps < length
        source = torch.where(keep, length - 1 - steps, t - 1)
        return source[:, :, None], None, _gather_present(frames, source, keep)


@functools.lru_cache(maxsize=32)
def _band_layout(
    kernel_size: int, frames: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For a centred filter of ``kernel_size`` taps over ``frames`` frames: the ``(T, K)`` int64 source frame of
    every tap (clamped into range), the ``(T, K)`` int64 last frame a tap needs to be valid (``frames`` if its source
    is before the start) and the ``(K,)`` exponents ``-offset^2 / 2`` of the taps at unit sigma."""
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, device=device)
    frame = torch.arange(frames, device=device)[:, None]
    source = frame + offsets
    last = torch.where(source < 0, frames, torch.maximum(source, frame))
    return source.clamp(0, frames - 1), last, offsets.square().to(dtype) * -0.5


class GaussianBlur(SubsetAugmentation):
    """Temporal gaussian filter per coordinate channel over the valid frames, ``sigma ~ U(*sigma)`` per sample.

    With ``normalize=True`` (default) each output frame is the kernel-weighted mean of the valid frames in its
    window, so a constant sequence stays constant, including near its ends. ``normalize=False`` reproduces the
    HiCLR/AimCLR reference, whose kernel ``exp(-d^2 / (2 sigma^2))`` is not normalised and which pads with zeros:
    it also scales the sequence by the kernel sum (about 1 at sigma 0.1, about 5 at sigma 2) and fades it towards
    its ends. Padding frames stay zero; a person missing in some valid frames counts as zeros there (as in the
    reference). Applied as ``kernel_size`` taps per frame in one ``embedding_bag`` (:func:`remap`) over the blurred
    channel rows, whose change is added in place.

    Args:
        kernel_size: odd number of taps (15 in the references).
        sigma: range of the standard deviation in frames.
        normalize: normalise the kernel (see above).
        coords: number of leading channels that are blurred; others are copied.
    """

    def __init__(
        self, kernel_size: int = 15, sigma: tuple[float, float] = (0.1, 2.0), normalize: bool = True, coords: int = 3
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.kernel_size = kernel_size
        self.sigma = tuple(sigma)
        self.normalize = normalize
        self.coords = coords

    def sample_sigma(self, n: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``(n,)`` standard deviations in frames."""
        return uniform((n,), *self.sigma, like, generator)

    def kernels(self, sigma: torch.Tensor, length: torch.Tensor, frames: int) -> torch.Tensor:
        """``(N, T, T)`` filter matrices ``out[t] = sum_s K[t, s] x[s]`` over the ``length`` valid frames."""
        radius = self.kernel_size // 2
        offsets = torch.arange(-radius, radius + 1, device=sigma.device, dtype=sigma.dtype)
        taps = torch.exp(-offsets.square() / (2 * sigma.square()[:, None]))
        steps = torch.arange(frames, device=sigma.device)
        distance = steps[None, :] - steps[:, None]
        band = (distance.abs() <= radius) & (steps[None, :] < length[:, None, None])
        kernel = taps[:, (distance + radius).clamp(0, 2 * radius)] * band
        if self.normalize:
            kernel = kernel / kernel.sum(dim=2, keepdim=True).clamp(min=1e-12)
        return kernel * (steps < length[:, None])[:, :, None]

    def band(
        self, sigma: torch.Tensor, length: torch.Tensor, frames: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The filters of :meth:`kernels` as ``(N, T, K)`` source frames and their weights (``K`` taps)."""
        source, last, exponent = _band_layout(self.kernel_size, frames, sigma.dtype, sigma.device)
        taps = torch.exp(exponent / sigma.square()[:, None])
        # a tap counts if both its source frame and the output frame are valid
        weight = torch.where(last < length[:, None, None], taps[:, None, :], 0.0)
        if self.normalize:
            weight /= weight.sum(dim=2, keepdim=True).clamp_(min=1e-12)
        return source.expand_as(weight), weight

    def augment_subset(
        self, x: torch.Tensor, frames: Frames, index: torch.Tensor, generator: torch.Generator | None, owned: bool,
        scale: torch.Tensor | None = None, binary: bool = False,
    ) -> tuple[torch.Tensor, Frames, bool]:
        """See :meth:`Augmentation.augment_subset`. ``Compose`` passes a later diagonal map it applied before the
        blur as ``scale`` (``(N, c')``, ``binary``: factors 0 or 1): the blur commutes with it, and the channels it
        zeroes are skipped."""
        n, channels, t = x.shape[:3]
        c = min(self.coords, channels)
        length = frames.lengths.index_select(0, index)
        source, weight = self.band(self.sample_sigma(index.shape[0], x, generator), length, t)
        rows = torch.add(cached_arange(c, x.device), index[:, None], alpha=channels)
        if scale is not None and binary:  # one filter per channel row that is not zero
            keep = channel_factors(scale.index_select(0, index), c) != 0
            rows, position = rows[keep][:, None], keep.nonzero()[:, 0]
            # (the source frames are the same for every filter)
            source, weight = source[:1].expand(rows.shape[0], -1, -1), weight.index_select(0, position)
            length = length.index_select(0, position)
        if rows.numel() == 0:
            return x, frames, owned
        if rows.shape == (n, channels):  # every channel row of the batch
            return remap(x, index=source, weight=weight, rows=rows), frames, True
        # the change of every blurred channel, added in place: the centre tap of a valid frame loses 1
        weight[:, :, self.kernel_size // 2] -= (cached_arange(t, x.device) < length[:, None]).to(weight.dtype)
        change = remap(x, index=source, weight=weight, rows=rows)
        out = x if owned else x.clone(memory_format=torch.contiguous_format)
        out.view(n * channels, -1).index_add_(0, rows.view(-1), change.view(rows.numel(), -1))
        return out, frames, True
