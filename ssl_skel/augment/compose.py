"""Composition of augmentations: sequences, per-sample random application and choice, multiple views."""

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
    cached_arange,
    cached_eye,
    permute_joints,
    remap,
    scratch,
)
from .masking import GaussianNoise
from .spatial import AxisMask, Scale
from .temporal import FrameAugmentation, GaussianBlur

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


class Compose(OwnedAugmentation):
    """Apply ``transforms`` in order. Runs of consecutive linear maps (shear, rotations, mirror, scale, axis mask,
    also inside ``RandomApply``) are fused into one matrix per sample, together with at most one temporal resampling
    (shift crop, crop-resize, time flip) in the same run: the run costs one pass over the data. A diagonal map
    (axis mask, scale) that follows such a run after channel-wise steps only (gaussian noise, temporal blur) joins
    the run too: blur commutes with it and the noise is scaled by it, so the result is the same, but its parameters
    are drawn before those of the noise and blur. Later steps work in place on buffers the chain made itself; the
    input batch is never modified.

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
            if scale is not None and _noise(transform) is not None:
                x, frames, owned = _scaled_noise(transform, x, frames, generator, owned, scale, binary)
                continue
            x, frames, owned = transform.augment_owned(x, frames, generator, owned)
        if pending is not None or resample is not None:
            index, weight = (None, None) if resample is None else resample
            x, owned = remap(x, pending, index, weight, inplace=owned), True
        return x, frames, owned


def _inner(module: nn.Module) -> nn.Module:
    """The transform of a ``RandomApply``, else ``module`` itself."""
    return module.transform if isinstance(module, RandomApply) else module


def _noise(module: nn.Module) -> GaussianNoise | None:
    """The :class:`GaussianNoise` of ``module`` (itself or inside ``RandomApply``), else ``None``."""
    module = _inner(module)
    return module if isinstance(module, GaussianNoise) else None


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


def _scaled_noise(
    transform: nn.Module, x: torch.Tensor, frames: Frames, generator: torch.Generator | None, owned: bool,
    scale: torch.Tensor, binary: bool,
) -> tuple[torch.Tensor, Frames, bool]:
    """Apply the noise ``transform`` (maybe in ``RandomApply``) with its noise scaled per sample and channel."""
    noise = _noise(transform)
    if isinstance(transform, RandomApply):
        index = transform.sample_applied(x.shape[0], x.device, generator).nonzero().squeeze(1)
        if index.numel() == 0:
            return x, frames, owned
    else:
        index = torch.arange(x.shape[0], device=x.device)
    return noise.augment_subset(x, frames, index, generator, owned, scale=scale, binary=binary)


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


class MultiView(nn.Module):
    """Independently augmented views of one batch: ``forward(x, generator=None) -> list`` of one tensor per
    transform. The batch's occupancy is computed once and shared by all views. When every view is a
    :class:`Compose` (e.g. HiCLR's policies), all views run as one batch of ``views * N`` samples (see
    :func:`_stacked_views`) and are returned as slices of one buffer; random parameters stay per sample.

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
        if len(self.transforms) > 1 and not x.requires_grad:
            plans = [_plan(transform) for transform in self.transforms]
            if all(plan is not None for plan in plans):
                views = _stacked_views(x, frames, plans, generator)
                if views is not None:
                    return views
        return [transform.augment(x, frames, generator)[0] for transform in self.transforms]


def _plan(transform: nn.Module) -> tuple[list[nn.Module], list[nn.Module]] | None:
    """``(prefix, tail)`` of a :class:`Compose` whose first steps (at most one frame resampling and linear maps of
    one coordinate count) form one pass, followed by steps that keep the batch shape; else ``None``."""
    if not isinstance(transform, Compose):
        return None
    transforms = list(transform.transforms)
    coords, resample, i = None, False, 0
    while i < len(transforms):
        step_coords = _linear_coords(transforms[i])
        if step_coords is not None and coords in (None, step_coords):
            coords = step_coords
        elif isinstance(transforms[i], FrameAugmentation) and not resample:
            resample = True
        else:
            break
        i += 1
    tail = transforms[i:]
    if i == 0 or any(isinstance(step, (FrameAugmentation, Compose)) for step in tail):
        return None
    return transforms[:i], tail


def _same(a: nn.Module, b: nn.Module) -> bool:
    """``a`` and ``b`` are interchangeable: same type, settings, buffers, parameters (by identity) and children."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    state_a = {k: v for k, v in vars(a).items() if not k.startswith("_")}
    state_b = {k: v for k, v in vars(b).items() if not k.startswith("_")}
    if state_a.keys() != state_b.keys() or any(
        not (state_a[k] is state_b[k] if isinstance(state_a[k], torch.Tensor) else state_a[k] == state_b[k])
        for k in state_a
    ):
        return False
    if dict(a.named_parameters(recurse=False)) != dict(b.named_parameters(recurse=False)):  # by identity
        return False
    buffers_a, buffers_b = dict(a.named_buffers(recurse=False)), dict(b.named_buffers(recurse=False))
    if buffers_a.keys() != buffers_b.keys() or any(
        buffers_a[k].shape != buffers_b[k].shape or not torch.equal(buffers_a[k], buffers_b[k]) for k in buffers_a
    ):
        return False
    children_a, children_b = list(a.children()), list(b.children())
    return len(children_a) == len(children_b) and all(map(_same, children_a, children_b))


def _draw_prefixes(
    x: torch.Tensor, frames: Frames, prefixes: list[list[nn.Module]], generator: torch.Generator | None
) -> dict[tuple[int, int], object]:
    """The random draws of the first passes, by ``(view, position)``: a step interchangeable with the steps at its
    position in the next views draws once for the rows of all of them."""
    n = x.shape[0]
    drawn: dict[tuple[int, int], object] = {}
    for position in range(max(len(prefix) for prefix in prefixes)):
        start = 0
        while start < len(prefixes):
            if position >= len(prefixes[start]):
                start += 1
                continue
            step, stop = prefixes[start][position], start + 1
            while stop < len(prefixes) and position < len(prefixes[stop]) and _same(step, prefixes[stop][position]):
                stop += 1
            k = stop - start
            like = x if k == 1 else x[:1].expand(k * n, *x.shape[1:])
            if isinstance(step, FrameAugmentation) and _linear_coords(step) is None:
                group_frames = frames if k == 1 else Frames(frames.present.repeat(k, 1, 1))
                index, weight, new_frames = step.frame_map(like, group_frames, generator)
                for i in range(k):
                    rows = slice(i * n, (i + 1) * n)
                    part = new_frames if k == 1 else Frames(new_frames.present[rows])
                    drawn[start + i, position] = (index[rows], None if weight is None else weight[rows], part)
            else:
                step_map = step.coord_map(like, generator)
                for i in range(k):
                    rows = slice(i * n, (i + 1) * n)
                    swap = None if step_map.swap is None else step_map.swap[rows]
                    drawn[start + i, position] = step_map if k == 1 else CoordMap(
                        step_map.matrix[rows], step_map.diagonal, swap, step_map.permutation
                    )
            start = stop
    return drawn


def _stacked_views(
    x: torch.Tensor, frames: Frames, plans: list[tuple[list[nn.Module], list[nn.Module]]],
    generator: torch.Generator | None,
) -> list[torch.Tensor] | None:
    """All views of ``plans`` as slices of one ``(views * N)`` batch: the first pass (resampling and linear maps)
    of every view runs as one :func:`remap`, then each later step runs once on the rows of the consecutive views
    that have an interchangeable step at that position. Random parameters stay per sample. ``None`` if the views'
    first passes are incompatible (different output lengths or taps)."""
    n, t = x.shape[0], x.shape[2]
    device = x.device
    maps: list[CoordMap | None] = []
    resamples: list[tuple[torch.Tensor, torch.Tensor | None] | None] = []
    view_frames: list[Frames] = []
    scales: list[tuple[torch.Tensor, bool] | None] = []
    hoisted: list[int] = []
    drawn = _draw_prefixes(x, frames, [prefix for prefix, _ in plans], generator)
    for view, (prefix, tail) in enumerate(plans):
        pending, coords, resample, new_frames = None, None, None, frames
        for position, step in enumerate(prefix):
            if isinstance(step, FrameAugmentation) and _linear_coords(step) is None:
                index, weight, new_frames = drawn[view, position]
                resample = (index, weight)
            else:
                coords = _linear_coords(step)
                step_map = drawn[view, position]
                pending = step_map if pending is None else pending.then(step_map)
        j = _hoistable(prefix + tail, len(prefix), coords)
        scale = None
        if j is not None:
            step_map = (prefix + tail)[j].coord_map(x, generator)
            pending = step_map if pending is None else pending.then(step_map)
            scale = (step_map.matrix.diagonal(dim1=1, dim2=2), isinstance(_inner((prefix + tail)[j]), AxisMask))
        maps.append(pending)
        resamples.append(resample)
        view_frames.append(new_frames)
        scales.append(scale)
        hoisted.append(-1 if j is None else j - len(prefix))
    # the resampling of all views: (views * N, T', K) source frames and weights
    indices = [cached_arange(t, device).expand(n, t)[:, :, None] if r is None else r[0] for r in resamples]
    if len({tuple(index.shape[1:]) for index in indices}) != 1:
        return None
    index = torch.cat(indices)
    weight = None
    if any(r is not None and r[1] is not None for r in resamples):
        weight = torch.cat([
            torch.ones(index.shape[1:], dtype=x.dtype, device=device).expand(n, *index.shape[1:])
            if r is None or r[1] is None else r[1].to(x.dtype) for r in resamples
        ])
    # the linear maps of all views; joint swaps read a joint-permuted copy of the batch
    table, samples, coord_map = x, cached_arange(n, device).repeat(len(plans)), None
    coord_sizes = {m.matrix.shape[-1] for m in maps if m is not None}
    if len(coord_sizes) > 1:
        return None
    if coord_sizes:
        c = coord_sizes.pop()
        reference = next(m for m in maps if m is not None)
        matrices = [
            cached_eye(c, reference.matrix.dtype, device).expand(n, c, c) if m is None else m.matrix.to(
                reference.matrix.dtype
            ).expand(n, c, c) for m in maps
        ]
        diagonal = all(m is None or m.diagonal for m in maps)
        coord_map = CoordMap(torch.cat(matrices), diagonal)
        swapped = [m for m in maps if m is not None and m.swap is not None]
        if swapped:
            permutation = swapped[0].permutation
            if any(not torch.equal(m.permutation, permutation) for m in swapped):
                return None
            swap = torch.cat([
                torch.zeros(n, dtype=torch.bool, device=device) if m is None or m.swap is None else m.swap
                for m in maps
            ])
            if bool(swap.any()):
                joints = permutation.to(device).expand(n, -1)
                table = scratch("stacked_views", (2 * n, *x.shape[1:]), x.dtype, device)
                table[:n].copy_(x)
                permute_joints(x, joints, out=table[n:])
                samples = samples + swap.long() * n
    out = remap(table, coord_map, index, weight, samples=samples)
    views = [out[k * n:(k + 1) * n] for k in range(len(plans))]
    for position in range(max(len(tail) for _, tail in plans)):
        start = 0
        while start < len(plans):
            tail = plans[start][1]
            if position >= len(tail) or position == hoisted[start]:
                start += 1
                continue
            step, scale = tail[position], scales[start]
            scaled = scale is not None and _noise(step) is not None
            stop = start + 1
            while stop < len(plans) and position < len(plans[stop][1]) and position != hoisted[stop] and _same(
                step, plans[stop][1][position]
            ) and (scales[stop] is not None) == scaled and (not scaled or scales[stop][1] == scale[1]):
                stop += 1
            rows = out[start * n:stop * n]
            group_frames = view_frames[start] if stop == start + 1 else Frames(
                torch.cat([f.present for f in view_frames[start:stop]])
            )
            if scaled:
                factors = torch.cat([scales[k][0] for k in range(start, stop)])
                result, new_frames, _ = _scaled_noise(step, rows, group_frames, generator, True, factors, scale[1])
            else:
                result, new_frames, _ = step.augment_owned(rows, group_frames, generator, True)
            if result is not rows and result.data_ptr() != rows.data_ptr():
                rows.copy_(result)
            if new_frames is not group_frames:
                for k in range(start, stop):
                    view_frames[k] = Frames(new_frames.present[(k - start) * n:(k - start + 1) * n])
            start = stop
    return views
