"""Composition of augmentations: sequences, per-sample random application and choice."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import (
    Augmentation,
    CoordMap,
    Frames,
    LinearAugmentation,
    OwnedAugmentation,
    cached_eye,
    remap,
)
from .masking import GaussianNoise
from .spatial import AxisMask, Scale
from .temporal import FrameAugmentation, GaussianBlur

__all__ = ["Compose", "Identity", "RandomApply", "RandomChoice"]


def _linear_coords(module: nn.Module) -> int | None:
    """Coordinate count if ``module`` can be expressed as a :class:`CoordMap`, else ``None``."""
    if isinstance(module, LinearAugmentation):
        return module.coords
    if isinstance(module, RandomApply):
        return _linear_coords(module.transform)
    return None


class Identity(Augmentation):
    """No augmentation (for configs that need a transform)."""

    def augment(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Frames]:
        return x, frames


class Compose(OwnedAugmentation):
    """Apply ``transforms`` in order. Runs of consecutive linear maps (shear, rotations, mirror, scale, axis mask,
    also inside ``RandomApply``) are fused into one matrix per sample, together with at most one temporal resampling
    (shift crop, crop-resize, time flip) in the same run: the run costs one pass over the data. A diagonal map
    (axis mask, scale) that follows such a run after channel-wise steps only (gaussian noise, temporal blur) joins
    the run too: blur commutes with it and the noise is scaled by it, so the result has the same distribution, but
    its parameters are drawn before those of the noise and blur, and channels it zeroes get no noise draws and no
    blur. Later steps work in place on buffers the chain made itself; the input batch is never modified.

    Args:
        transforms: the augmentations, applied first to last.
    """

    def __init__(self, transforms: Sequence[Augmentation]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def augment_owned(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None, owned: bool
    ) -> tuple[torch.Tensor, Frames, bool]:
        pending: CoordMap | None = None
        pending_coords: int | None = None
        resample: tuple[torch.Tensor, torch.Tensor | None] | None = None
        # per-sample channel factors of a diagonal map hoisted into the last pass (noise until then is scaled)
        scale: torch.Tensor | None = None
        hoisted, binary = -1, False
        transforms = list(self.transforms)
        for i, transform in enumerate(transforms):
            if i == hoisted:
                scale = None
                continue
            coords = _linear_coords(transform)
            if coords is not None and pending_coords in (None, coords):
                step = transform.coord_map(x, generator)
                pending = step if pending is None else pending.then(step)
                pending_coords = coords
                continue
            if isinstance(transform, FrameAugmentation) and resample is None:
                index, weight, frames = transform.frame_map(x, frames, generator)
                resample = (index, weight)
                continue
            if pending is not None or resample is not None:
                j = _hoistable(transforms, i, pending_coords)
                if j is not None:
                    # a diagonal map after channel-wise steps (noise, blur) commutes with them (noise is scaled
                    # by it): apply it in this pass instead of one more pass over the data
                    step = transforms[j].coord_map(x, generator)
                    pending = step if pending is None else pending.then(step)
                    scale, hoisted = step.matrix.diagonal(dim1=1, dim2=2), j
                    binary = isinstance(_inner(transforms[j]), AxisMask)
                index, weight = (None, None) if resample is None else resample
                x = remap(x, pending, index, weight, inplace=owned)
                pending, pending_coords, resample, owned = None, None, None, True
            if coords is not None:
                pending, pending_coords = transform.coord_map(x, generator), coords
                continue
            if isinstance(transform, FrameAugmentation):
                index, weight, frames = transform.frame_map(x, frames, generator)
                resample = (index, weight)
                continue
            if scale is not None and _channelwise(transform) is not None:
                x, frames, owned = _scaled_step(transform, x, frames, generator, owned, scale, binary)
                continue
            x, frames, owned = transform.augment_owned(x, frames, generator, owned)
        if pending is not None or resample is not None:
            index, weight = (None, None) if resample is None else resample
            x, owned = remap(x, pending, index, weight, inplace=owned), True
        return x, frames, owned


def _inner(module: nn.Module) -> nn.Module:
    """The transform of a ``RandomApply``, else ``module`` itself."""
    return module.transform if isinstance(module, RandomApply) else module


def _channelwise(module: nn.Module) -> GaussianNoise | GaussianBlur | None:
    """The noise or blur of ``module`` (itself or inside ``RandomApply``), else ``None``."""
    module = _inner(module)
    return module if isinstance(module, (GaussianNoise, GaussianBlur)) else None


def _diagonal_only(module: nn.Module) -> bool:
    """``module`` is a linear map that is always diagonal without joint swap (axis mask, scale)."""
    return isinstance(_inner(module), (AxisMask, Scale))


def _hoistable(transforms: list[nn.Module], start: int, coords: int | None) -> int | None:
    """Position of a diagonal map that follows ``transforms[start:]`` after channel-wise steps only (at least one)
    and can join a pass of maps on ``coords`` channels, else ``None``."""
    j = start
    while j < len(transforms) and isinstance(_inner(transforms[j]), (GaussianNoise, GaussianBlur)):
        j += 1
    if j == start or j == len(transforms) or not _diagonal_only(transforms[j]):
        return None
    return j if coords in (None, _linear_coords(transforms[j])) else None


def _scaled_step(
    transform: nn.Module, x: torch.Tensor, frames: Frames, generator: torch.Generator | None, owned: bool,
    scale: torch.Tensor, binary: bool,
) -> tuple[torch.Tensor, Frames, bool]:
    """Apply the noise or blur ``transform`` (maybe in ``RandomApply``) before a diagonal map ``scale``
    (``(N, c)`` factors, all 0 or 1 if ``binary``) that was already applied: noise is scaled by it, and channels it
    zeroed are skipped."""
    step = _channelwise(transform)
    if isinstance(transform, RandomApply):
        index = transform.sample_applied(x.shape[0], x.device, generator).nonzero().squeeze(1)
        if index.numel() == 0:
            return x, frames, owned
    else:
        index = torch.arange(x.shape[0], device=x.device)
    return step.augment_subset(x, frames, index, generator, owned, scale=scale, binary=binary)


class RandomApply(OwnedAugmentation):
    """Apply ``transform`` to each sample independently with probability ``p`` (only the chosen samples are
    computed; linear maps are blended with the identity instead).

    Args:
        transform: the augmentation; it must keep the batch shape.
        p: probability per sample.
    """

    def __init__(self, transform: Augmentation, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.transform = transform
        self.p = p

    def sample_applied(self, n: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
        """``(n,)`` bool: which samples are augmented."""
        return torch.rand(n, generator=generator, device=device) < self.p

    def coord_map(self, x: torch.Tensor, generator: torch.Generator | None) -> CoordMap:
        """The map of a linear ``transform`` where applied, the identity elsewhere."""
        applied = self.sample_applied(x.shape[0], x.device, generator)
        inner = self.transform.coord_map(x, generator)
        eye = cached_eye(inner.matrix.shape[-1], inner.matrix.dtype, inner.matrix.device)
        matrix = torch.where(applied[:, None, None], inner.matrix, eye)
        swap = None if inner.swap is None else inner.swap & applied
        return CoordMap(matrix, inner.diagonal, swap, inner.permutation)

    def augment_owned(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None, owned: bool
    ) -> tuple[torch.Tensor, Frames, bool]:
        if _linear_coords(self.transform) is not None:
            return remap(x, self.coord_map(x, generator), inplace=owned), frames, True
        applied = self.sample_applied(x.shape[0], x.device, generator)
        index = applied.nonzero().squeeze(1)
        if index.numel() == 0:
            return x, frames, owned
        return self.transform.augment_subset(x, frames, index, generator, owned)


class RandomChoice(OwnedAugmentation):
    """Apply exactly one of ``transforms`` to each sample, chosen with probabilities ``probs`` (uniform if omitted).

    Args:
        transforms: the alternatives; each must keep the batch shape.
        probs: choice probabilities (normalised to sum 1).
    """

    def __init__(self, transforms: Sequence[Augmentation], probs: Sequence[float] | None = None) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)
        weights = torch.ones(len(transforms)) if probs is None else torch.tensor(list(probs), dtype=torch.float64)
        if weights.numel() != len(transforms) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"probs must be {len(transforms)} non-negative weights, got {probs}")
        self.probs = tuple((weights / weights.sum()).tolist())

    def sample_choice(self, n: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
        """``(n,)`` int64 index of the transform applied to each sample."""
        edges = torch.tensor(self.probs, device=device).cumsum(0)[:-1].to(torch.float32)
        return torch.bucketize(torch.rand(n, generator=generator, device=device), edges, right=True)

    def augment_owned(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None, owned: bool
    ) -> tuple[torch.Tensor, Frames, bool]:
        choice = self.sample_choice(x.shape[0], x.device, generator)
        for k, transform in enumerate(self.transforms):
            index = (choice == k).nonzero().squeeze(1)
            if index.numel() > 0:
                x, frames, owned = transform.augment_subset(x, frames, index, generator, owned)
        return x, frames, owned
