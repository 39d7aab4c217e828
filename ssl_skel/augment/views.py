"""Several independently augmented views of one batch, run as one batch of ``views * N`` samples when they allow it."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import nn

from .base import (
    Augmentation,
    CoordMap,
    Frames,
    cached_arange,
    identity_maps,
    permute_joints,
    remap,
    scratch,
)
from .compose import Compose, _channelwise, _hoistable, _inner, _linear_coords, _scaled_step
from .spatial import AxisMask
from .temporal import FrameAugmentation

__all__ = ["MultiView"]


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
    state_a, state_b = vars(a), vars(b)
    if type(a) is not type(b) or state_a.keys() != state_b.keys():
        return False
    for key, value in state_a.items():
        if key[0] != "_" and value is not state_b[key] and (isinstance(value, torch.Tensor) or value != state_b[key]):
            return False
    params_a, params_b = a._parameters, b._parameters
    if params_a.keys() != params_b.keys() or any(params_a[k] is not params_b[k] for k in params_a):
        return False
    buffers_a, buffers_b = a._buffers, b._buffers
    if buffers_a.keys() != buffers_b.keys() or any(
        buffers_a[k] is not buffers_b[k]
        and (buffers_a[k].shape != buffers_b[k].shape or not torch.equal(buffers_a[k], buffers_b[k]))
        for k in buffers_a
    ):
        return False
    children_a, children_b = a._modules, b._modules
    return children_a.keys() == children_b.keys() and all(_same(children_a[k], children_b[k]) for k in children_a)


def _runs(steps: Sequence[nn.Module | None], keys: Sequence[Hashable] | None = None) -> list[tuple[int, int]]:
    """``[start, stop)`` runs of consecutive views whose steps are interchangeable (and ``keys`` equal); views
    without a step (``None``) belong to no run."""
    runs, start = [], 0
    while start < len(steps):
        if steps[start] is None:
            start += 1
            continue
        stop = start + 1
        while stop < len(steps) and steps[stop] is not None and _same(steps[start], steps[stop]) and (
            keys is None or keys[stop] == keys[start]
        ):
            stop += 1
        runs.append((start, stop))
        start = stop
    return runs


class _FirstPass:
    """The frame resampling and the linear map of the first pass of ``views`` stacked views of ``N`` samples,
    gathered run by run: ``(views * N, c, c)`` matrices, the joint swaps and the resampled frames of each view."""

    def __init__(self, x: torch.Tensor, views: int) -> None:
        self.x, self.n, self.views = x, x.shape[0], views
        self.matrix: torch.Tensor | None = None
        self.identity = [True] * views
        self.diagonal = True
        self.swap: torch.Tensor | None = None
        self.permutation: torch.Tensor | None = None
        self.resamplings: list[tuple[int, int, torch.Tensor, torch.Tensor | None, Frames]] = []

    def add_map(self, start: int, stop: int, step: CoordMap) -> bool:
        """Apply ``step`` (for the rows of views ``start:stop``) after the maps so far; ``False`` if it cannot be
        stacked with them (other coordinate count or joint permutation)."""
        c = step.matrix.shape[-1]
        if self.matrix is None:
            self.matrix = identity_maps(self.views * self.n, c, self.x)
        if self.matrix.shape[-1] != c:
            return False
        rows = self.matrix[start * self.n:stop * self.n]
        if all(self.identity[start:stop]):
            rows.copy_(step.matrix)
        elif step.diagonal:
            rows.mul_(step.matrix.diagonal(dim1=1, dim2=2)[:, :, None])
        else:
            rows.copy_(torch.bmm(step.matrix.to(rows.dtype), rows))
        self.identity[start:stop] = [False] * (stop - start)
        self.diagonal = self.diagonal and step.diagonal
        if step.swap is not None:
            if self.permutation is not None and not torch.equal(self.permutation, step.permutation):
                return False
            self.permutation = step.permutation
            if self.swap is None:
                self.swap = torch.zeros(self.views * self.n, dtype=torch.bool, device=self.x.device)
            self.swap[start * self.n:stop * self.n] ^= step.swap
        return True

    def resampling(self, frames: Frames) -> tuple[torch.Tensor, torch.Tensor | None, Frames] | None:
        """``(views * N, T', K)`` source frames and weights of all views and their occupancy (views without a
        resampling keep the batch's ``frames``); ``None`` if the views' resamplings differ in output length or
        taps."""
        n, t, device = self.n, self.x.shape[2], self.x.device
        pieces, view = [], 0
        for start, stop, index, weight, new_frames in sorted(self.resamplings, key=lambda r: r[0]):
            if view < start:
                identity = cached_arange(t, device).expand((start - view) * n, t)[:, :, None]
                pieces.append((identity, None, frames.repeat(start - view)))
            pieces.append((index, weight, new_frames))
            view = stop
        if view < self.views:
            identity = cached_arange(t, device).expand((self.views - view) * n, t)[:, :, None]
            pieces.append((identity, None, frames.repeat(self.views - view)))
        if len({tuple(index.shape[1:]) for index, _, _ in pieces}) != 1:
            return None
        weight = None
        if any(w is not None for _, w, _ in pieces):
            weight = torch.cat([
                torch.ones(index.shape, dtype=self.x.dtype, device=device) if w is None else w.to(self.x.dtype)
                for index, w, _ in pieces
            ])
        index = pieces[0][0] if len(pieces) == 1 else torch.cat([index for index, _, _ in pieces])
        return index, weight, Frames.cat([f for _, _, f in pieces])

    def table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch the pass reads: ``x``, followed by its joint-swapped copy if some view swaps; and the
        ``(views * N, C)`` channel rows of it that each output sample reads (see :func:`remap`)."""
        x, n, c = self.x, self.n, self.x.shape[1]
        table, samples = x, torch.cat([cached_arange(n, x.device)] * self.views)
        if self.swap is not None and bool(self.swap.any()):
            table = scratch("stacked_views", (2 * n, *x.shape[1:]), x.dtype, x.device)
            table[:n].copy_(x)
            permute_joints(x, self.permutation.to(x.device).expand(n, -1), out=table[n:])
            samples = torch.where(self.swap, samples + n, samples)
        return table, torch.add(cached_arange(c, x.device), samples[:, None], alpha=c)


def _stacked_views(
    x: torch.Tensor, frames: Frames, plans: list[tuple[list[nn.Module], list[nn.Module]]],
    generator: torch.Generator | None,
) -> list[torch.Tensor] | None:
    """All views of ``plans`` as slices of one ``(views * N)`` batch: the first pass (resampling and linear maps)
    of every view runs as one :func:`remap`, then each later step runs once on the rows of the consecutive views
    that have an interchangeable step at that position. A step at the same position of consecutive views draws its
    parameters once for all their rows; they stay per sample. ``None`` if the views' first passes are incompatible
    (different output lengths, taps, coordinate counts or joint permutations)."""
    n, views = x.shape[0], len(plans)
    first = _FirstPass(x, views)
    prefixes = [prefix for prefix, _ in plans]
    for position in range(max(len(prefix) for prefix in prefixes)):
        steps = [prefix[position] if position < len(prefix) else None for prefix in prefixes]
        for start, stop in _runs(steps):
            step, like = steps[start], x[:1].expand((stop - start) * n, *x.shape[1:])
            if isinstance(step, FrameAugmentation) and _linear_coords(step) is None:
                index, weight, new_frames = step.frame_map(like, frames.repeat(stop - start), generator)
                first.resamplings.append((start, stop, index, weight, new_frames))
            elif not first.add_map(start, stop, step.coord_map(like, generator)):
                return None
    # a diagonal map after channel-wise steps joins the first pass (see Compose); the noise and blur before it know it
    tails = [tail for _, tail in plans]
    hoisted = [_hoistable(tail, 0, _prefix_coords(prefix)) for prefix, tail in plans]
    scale: torch.Tensor | None = None
    binary: list[bool | None] = [None] * views
    for start, stop in _runs([None if j is None else tail[j] for tail, j in zip(tails, hoisted, strict=True)]):
        step = tails[start][hoisted[start]]
        step_map = step.coord_map(x[:1].expand((stop - start) * n, *x.shape[1:]), generator)
        if not first.add_map(start, stop, step_map):
            return None
        factors = step_map.matrix.diagonal(dim1=1, dim2=2)
        if scale is None:
            scale = torch.ones(views * n, factors.shape[1], dtype=factors.dtype, device=x.device)
        scale[start * n:stop * n] = factors
        binary[start:stop] = [isinstance(_inner(step), AxisMask)] * (stop - start)
    resampling = first.resampling(frames)
    if resampling is None:
        return None
    index, weight, frames = resampling
    table, rows = first.table()
    coord_map = None if first.matrix is None else CoordMap(first.matrix, first.diagonal)
    out = remap(table, coord_map, index, weight, rows=rows)
    for position in range(max(len(tail) for tail in tails)):
        steps = [
            tail[position] if position < len(tail) and position != j else None
            for tail, j in zip(tails, hoisted, strict=True)
        ]
        # noise and blur before a hoisted map know it (see _scaled_step): only views scaled alike share a run
        keys = [
            binary[v] if steps[v] is not None and _channelwise(steps[v]) is not None and position < (hoisted[v] or 0)
            else None for v in range(views)
        ]
        for start, stop in _runs(steps, keys):
            step, rows, row_frames = steps[start], out[start * n:stop * n], frames.rows(start * n, stop * n)
            if keys[start] is not None:
                factors = scale[start * n:stop * n]
                result, new_frames, _ = _scaled_step(step, rows, row_frames, generator, True, factors, keys[start])
            else:
                result, new_frames, _ = step.augment_owned(rows, row_frames, generator, True)
            if result.data_ptr() != rows.data_ptr():
                rows.copy_(result)
            if new_frames is not row_frames:
                frames = frames.merge(torch.arange(start * n, stop * n, device=x.device), new_frames)
    return [out[k * n:(k + 1) * n] for k in range(views)]


def _prefix_coords(prefix: list[nn.Module]) -> int | None:
    """Coordinate count of the linear maps in a first pass (``None`` if it has none)."""
    return next((c for c in map(_linear_coords, prefix) if c is not None), None)
