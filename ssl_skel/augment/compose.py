"""Composition of augmentations: sequences, per-sample random application and choice, multiple views."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import Augmentation, CoordMap, Frames, LinearAugmentation, identity_maps

__all__ = ["Compose", "Identity", "MultiView", "RandomApply", "RandomChoice"]


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


class Compose(Augmentation):
    """Apply ``transforms`` in order. Runs of consecutive linear maps (shear, rotations, mirror, scale, axis mask,
    also inside ``RandomApply``) are fused into one matrix product per sample.

    Args:
        transforms: the augmentations, applied first to last.
    """

    def __init__(self, transforms: Sequence[Augmentation]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def augment(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Frames]:
        pending: CoordMap | None = None
        pending_coords: int | None = None
        for transform in self.transforms:
            coords = _linear_coords(transform)
            if coords is not None and pending_coords in (None, coords):
                step = transform.coord_map(x, generator)
                pending = step if pending is None else pending.then(step)
                pending_coords = coords
                continue
            if pending is not None:
                x, pending, pending_coords = pending.apply(x), None, None
            if coords is not None:
                pending, pending_coords = transform.coord_map(x, generator), coords
                continue
            x, frames = transform.augment(x, frames, generator)
        if pending is not None:
            x = pending.apply(x)
        return x, frames


class RandomApply(Augmentation):
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
        eye = identity_maps(x.shape[0], inner.matrix.shape[-1], x).to(inner.matrix.dtype)
        matrix = torch.where(applied[:, None, None], inner.matrix, eye)
        swap = None if inner.swap is None else inner.swap & applied
        return CoordMap(matrix, inner.diagonal, swap, inner.permutation)

    def augment(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Frames]:
        if _linear_coords(self.transform) is not None:
            return self.coord_map(x, generator).apply(x), frames
        applied = self.sample_applied(x.shape[0], x.device, generator)
        return _apply_subset(self.transform, x, frames, applied, generator)


def _apply_subset(
    transform: Augmentation, x: torch.Tensor, frames: Frames, chosen: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, Frames]:
    index = chosen.nonzero().squeeze(1)
    if index.numel() == 0:
        return x, frames
    if index.numel() == x.shape[0]:
        return transform.augment(x, frames, generator)
    part_frames = frames.select(index)
    part, new_frames = transform.augment(x.index_select(0, index), part_frames, generator)
    if part.shape[1:] != x.shape[1:]:
        raise ValueError(f"{type(transform).__name__} changes the batch shape; it cannot be applied to some samples")
    out = x.index_copy(0, index, part)
    return out, (frames if new_frames is part_frames else frames.merge(index, new_frames))


class RandomChoice(Augmentation):
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

    def augment(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Frames]:
        choice = self.sample_choice(x.shape[0], x.device, generator)
        for k, transform in enumerate(self.transforms):
            x, frames = _apply_subset(transform, x, frames, choice == k, generator)
        return x, frames


class MultiView(nn.Module):
    """Independently augmented views of one batch: ``forward(x, generator=None) -> list`` of one tensor per
    transform. The batch's occupancy is computed once and shared by all views.

    Args:
        transforms: one augmentation per view (repeat a module to get several views of the same policy).
    """

    def __init__(self, transforms: Sequence[Augmentation]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        if x.ndim != 5:
            raise ValueError(f"expected a batch (N, C, T, V, M), got shape {tuple(x.shape)}")
        frames = Frames(source=x)
        return [transform.augment(x, frames, generator)[0] for transform in self.transforms]
