"""Shared machinery of the batched augmentations: frame occupancy, the module base classes, random helpers.

Conventions used by every augmentation in this package:

* A batch is ``(N, C, T, V, M)``. The first ``coords`` channels are coordinates (3 for xyz, 2 for image
  keypoints); further channels (e.g. a detection score) are carried along: geometric maps leave them unchanged and
  masks that hide a joint set them to zero.
* A person is *present* in a frame when any of its channels is non-zero there. The *valid length* of a sample is
  one past its last frame in which anybody is present; later frames are padding. An absent person and padded
  frames stay exactly zero through every augmentation.
* Random parameters are drawn per sample from ``generator`` (a ``torch.Generator`` on the device of the batch) or,
  when it is ``None``, from the global torch RNG (bulk random bits on a CPU: from a stream seeded by it, see
  :func:`random_words`).

Execution: a frame resampling and the linear maps around it run as one ``embedding_bag`` (:func:`remap`); the later
steps of a chain write in place into the buffer the chain made (:meth:`Augmentation.augment_owned`), transforms
applied to some samples only compute those (:meth:`Augmentation.augment_subset`), and large intermediates live in
reused per-thread :func:`scratch` buffers (on a CPU, fresh multi-megabyte temporaries cost more in page faults than
the arithmetic). The input batch is never modified.
"""

from __future__ import annotations

import functools
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = [
    "Augmentation", "CoordMap", "Frames", "LinearAugmentation", "OwnedAugmentation", "SubsetAugmentation",
    "channel_factors", "identity_maps", "param_dtype", "presence", "random_subset", "random_words", "remap",
    "scratch", "uniform", "valid_lengths",
]


class _Scratch(threading.local):
    def __init__(self) -> None:
        self.buffers: dict[tuple[str, torch.dtype], torch.Tensor] = {}


_SCRATCH = _Scratch()


def scratch(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised buffer for an intermediate result that never leaves the caller.

    On the CPU the memory is kept per thread and ``name`` and reused by the next call: fresh multi-megabyte
    intermediates cost more in page faults than the arithmetic on them (glibc returns them to the system on free).
    Two buffers in use at the same time need different names; never return one or keep it for autograd.
    """
    if device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    numel = math.prod(shape)
    buffer = _SCRATCH.buffers.get((name, dtype))
    if buffer is None or buffer.numel() < numel:
        buffer = torch.empty(numel, dtype=dtype)
        _SCRATCH.buffers[(name, dtype)] = buffer
    return buffer[:numel].view(shape)


def presence(x: torch.Tensor) -> torch.Tensor:
    """``(N, T, M)`` bool: person ``m`` of sample ``n`` has a non-zero channel at some joint in frame ``t``."""
    return _occupancy(x)[0]


def _occupancy(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """:func:`presence` of ``x`` and whether every person is present in every frame.

    A person whose first channel is non-zero at the first joint is present; when that holds for every person in
    every frame (no padding, nobody absent) the rest of the batch is not read. Otherwise the absolute values are
    summed over the joints of each person by one matrix product (a reduction over the strided joint axis is several
    times slower) and then over the channels. NaN counts as non-zero."""
    n, c, t, v, m = x.shape
    source = x.detach()
    if v > 0 and c > 0 and bool(source[:, 0, :, 0, :].ne(0).all()):
        return torch.ones(n, t, m, dtype=torch.bool, device=x.device), True
    dtype = param_dtype(x.dtype)
    source = source.to(dtype)
    magnitude = torch.abs(source, out=scratch("presence", x.shape, dtype, x.device))
    sums = torch.mm(_person_selector(v, m, dtype, x.device), magnitude.view(n * c * t, v * m).t())
    present = sums.view(m, n, c, t).sum(dim=2).permute(1, 2, 0) != 0
    return present, False


@functools.lru_cache(maxsize=16)
def _person_selector(v: int, m: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(M, V * M)`` 0/1 matrix: row ``p`` selects the entries of person ``p`` in a ``(V, M)`` frame row."""
    return (torch.arange(v * m, device=device) % m == torch.arange(m, device=device)[:, None]).to(dtype)


def valid_lengths(x: torch.Tensor) -> torch.Tensor:
    """``(N,)`` int64 number of valid frames: one past the last frame with any non-zero value (0 if none)."""
    return Frames(presence(x)).lengths


class Frames:
    """Which person holds data in which frame of a batch, computed once and handed from one augmentation to the next.

    Built from a batch (lazily, on first use), from a ``(N, T, M)`` bool ``present`` mask or (:meth:`deferred`)
    from a function computing it when first needed. The valid lengths and whether every person is present in every
    frame (:attr:`full`) are derived from it once, unless they are given by a transform that knows them.
    """

    def __init__(
        self, present: torch.Tensor | None = None, source: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None, full: bool | None = None,
    ) -> None:
        if (present is None) == (source is None):
            raise ValueError("give exactly one of present or source")
        self._set(present, source, None, lengths, full)

    @classmethod
    def deferred(
        cls, compute: Callable[[], torch.Tensor], lengths: torch.Tensor | None = None, full: bool | None = None
    ) -> Frames:
        """Occupancy given by ``compute()``, called only if it is needed."""
        frames = cls.__new__(cls)
        frames._set(None, None, compute, lengths, full)
        return frames

    def _set(
        self, present: torch.Tensor | None, source: torch.Tensor | None, compute: Callable[[], torch.Tensor] | None,
        lengths: torch.Tensor | None, full: bool | None,
    ) -> None:
        self._present, self._source, self._compute = present, source, compute
        self._lengths, self._full = lengths, full
        self._repeats: tuple[Frames, int] | None = None  # (base, k): this is base repeated k times

    @property
    def present(self) -> torch.Tensor:
        """``(N, T, M)`` bool occupancy."""
        if self._present is None:
            if self._compute is not None:
                self._present = self._compute()
            else:
                self._present, full = _occupancy(self._source)
                if full:
                    self._full = True
                    if self._lengths is None:
                        self._lengths = torch.full((self._present.shape[0],), self._present.shape[1],
                                                   dtype=torch.int64, device=self._present.device)
            self._source, self._compute = None, None
        return self._present

    @property
    def lengths(self) -> torch.Tensor:
        """``(N,)`` int64 valid lengths."""
        if self._lengths is None and self._repeats is not None:
            base, k = self._repeats
            self._lengths = torch.cat([base.lengths] * k)
        if self._lengths is None:
            occupied = self.present.any(dim=2)
            self._lengths = (occupied * cached_arange(occupied.shape[1], occupied.device, 1)).amax(dim=1)
        return self._lengths

    @property
    def full(self) -> bool:
        """Every person is present in every frame (no padding, nobody absent)."""
        if self._full is None:
            self._full = self._repeats[0].full if self._repeats is not None else bool(self.present.all())
        return self._full

    def select(self, index: torch.Tensor) -> Frames:
        """The occupancy of the samples ``index``; stays lazy if nothing was computed yet."""
        lengths = None if self._lengths is None else self._lengths.index_select(0, index)
        full = True if self._full else None
        if self._source is not None:
            return Frames(source=self._source.index_select(0, index), lengths=lengths, full=full)
        return Frames(self.present.index_select(0, index), lengths=lengths, full=full)

    def rows(self, start: int, stop: int) -> Frames:
        """The occupancy of the samples ``start:stop``."""
        lengths = None if self._lengths is None else self._lengths[start:stop]
        return Frames.deferred(lambda: self.present[start:stop], lengths, True if self._full else None)

    def repeat(self, k: int) -> Frames:
        """The occupancy of the batch repeated ``k`` times along the samples."""
        if k == 1:
            return self
        repeated = Frames.deferred(lambda: torch.cat([self.present] * k))
        repeated._repeats = (self, k)  # lengths and fullness are derived from this batch's when first needed
        return repeated

    def merge(self, index: torch.Tensor, part: Frames) -> Frames:
        """This occupancy with the samples ``index`` replaced by ``part``."""
        return Frames(self.present.index_copy(0, index, part.present))

    @staticmethod
    def cat(parts: list[Frames]) -> Frames:
        """The occupancy of the concatenated batches of ``parts``."""
        if len(parts) == 1:
            return parts[0]
        known = all(part._lengths is not None for part in parts)
        lengths = torch.cat([part._lengths for part in parts]) if known else None
        full = True if all(part._full for part in parts) else None
        return Frames.deferred(lambda: torch.cat([part.present for part in parts]), lengths, full)


@functools.lru_cache(maxsize=256)
def cached_arange(n: int, device: torch.device, start: int = 0) -> torch.Tensor:
    """The cached ``arange(start, start + n)`` (int64) on ``device``: do not modify it in place."""
    return torch.arange(start, start + n, device=device)


@functools.lru_cache(maxsize=64)
def cached_eye(c: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The cached ``(c, c)`` identity matrix: do not modify it in place."""
    return torch.eye(c, dtype=dtype, device=device)


def channel_factors(scale: torch.Tensor, c: int) -> torch.Tensor:
    """``(k, c)`` factors of the first ``c`` channels from per-channel factors ``scale`` ``(k, c')``: 1 beyond
    its width."""
    if scale.shape[1] >= c:
        return scale[:, :c]
    return torch.cat([scale, scale.new_ones(scale.shape[0], c - scale.shape[1])], dim=1)


def param_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype random parameters are drawn in: the batch dtype if it is float32/float64, else float32."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def uniform(
    shape: tuple[int, ...], low: float, high: float, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """``U(low, high)`` samples on the device of ``like`` (float32 or float64)."""
    u = torch.empty(shape, device=like.device, dtype=param_dtype(like.dtype))
    if low <= high:
        return u.uniform_(low, high, generator=generator)
    return u.uniform_(generator=generator) * (high - low) + low


def random_words(count: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``(count,)`` int64 uniformly random 64-bit words on ``device``.

    On a CPU they come from numpy's SFC64 generator seeded by one draw of ``generator`` (or of the global torch RNG
    when it is ``None``): as reproducible, and three times faster than torch's Mersenne twister."""
    if device.type != "cpu":
        return torch.empty(count, dtype=torch.int64, device=device).random_(-(2**63), None, generator=generator)
    seed = int(torch.randint(-(2**63), 2**63 - 1, (), generator=generator))
    return torch.from_numpy(np.random.SFC64(seed % 2**64).random_raw(count).view(np.int64))


def random_subset(
    rows: int, size: int, count: int, device: torch.device, generator: torch.Generator | None,
    as_index: bool = False,
) -> torch.Tensor:
    """``(rows, size)`` bool, each row with exactly ``count`` uniformly chosen ``True`` entries (or, with
    ``as_index``, the ``(rows, count)`` chosen indices).

    Floyd's sampling, vectorised over rows: the loop runs over the ``count`` draws, not over rows.
    """
    count = max(0, min(count, size))
    drawn = torch.empty(count, rows, dtype=torch.long, device=device)
    for i, top in enumerate(range(size - count, size)):
        draw = torch.randint(top + 1, (rows,), generator=generator, device=device, out=drawn[i])
        if i > 0:
            draw.masked_fill_((drawn[:i] == draw).any(dim=0), top)
    chosen = drawn.t()
    if as_index:
        return chosen
    mask = torch.zeros(rows, size, dtype=torch.bool, device=device)
    return mask.scatter_(1, chosen, True)


class Augmentation(nn.Module, ABC):
    """A batched augmentation: ``forward(x (N, C, T, V, M), generator=None) -> (N, C, T', V, M)``.

    Subclasses implement :meth:`augment`, which also receives and returns the batch's :class:`Frames` so that a
    chain computes the occupancy once.
    """

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected a batch (N, C, T, V, M), got shape {tuple(x.shape)}")
        return self.augment(x, Frames(source=x), generator)[0]

    @abstractmethod
    def augment(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Frames]:
        """Augment ``x`` whose occupancy is ``frames``; return the result and its occupancy."""

    def augment_owned(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None, owned: bool
    ) -> tuple[torch.Tensor, Frames, bool]:
        """:meth:`augment` that may overwrite ``x`` when ``owned`` (a buffer made by the caller's chain); also
        returns whether the result is such a buffer. Same random draws and result as :meth:`augment`."""
        return (*self.augment(x, frames, generator), False)

    def augment_subset(
        self, x: torch.Tensor, frames: Frames, index: torch.Tensor, generator: torch.Generator | None, owned: bool
    ) -> tuple[torch.Tensor, Frames, bool]:
        """Augment only the samples ``index`` (int64, non-empty) of ``x``; the others are kept. Returns the result,
        its occupancy and whether it is a new buffer (``x`` itself may be overwritten when ``owned``)."""
        if index.numel() == x.shape[0]:
            return self.augment_owned(x, frames, generator, owned)
        part_frames = frames.select(index)
        part, new_frames = self.augment(x.index_select(0, index), part_frames, generator)
        if part.shape[1:] != x.shape[1:]:
            raise ValueError(f"{type(self).__name__} changes the batch shape; it cannot be applied to some samples")
        out = x.index_copy_(0, index, part) if owned else x.index_copy(0, index, part)
        return out, (frames if new_frames is part_frames else frames.merge(index, new_frames)), True


class OwnedAugmentation(Augmentation):
    """An augmentation implemented by :meth:`augment_owned`; :meth:`augment` is its non-owning call."""

    def augment(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Frames]:
        return self.augment_owned(x, frames, generator, False)[:2]

    @abstractmethod
    def augment_owned(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None, owned: bool
    ) -> tuple[torch.Tensor, Frames, bool]:
        """See :meth:`Augmentation.augment_owned`."""


class SubsetAugmentation(OwnedAugmentation):
    """An augmentation implemented by :meth:`augment_subset`; the whole batch is the subset of every sample."""

    def augment_owned(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None, owned: bool
    ) -> tuple[torch.Tensor, Frames, bool]:
        return self.augment_subset(x, frames, torch.arange(x.shape[0], device=x.device), generator, owned)

    @abstractmethod
    def augment_subset(
        self, x: torch.Tensor, frames: Frames, index: torch.Tensor, generator: torch.Generator | None, owned: bool
    ) -> tuple[torch.Tensor, Frames, bool]:
        """See :meth:`Augmentation.augment_subset`."""


@dataclass
class CoordMap:
    """Per-sample linear map of the coordinate channels, optionally preceded by a left/right joint swap.

    ``matrix`` is ``(N, c, c)``; ``diagonal`` marks maps known to be diagonal (applied as a cheaper broadcast
    product). ``swap`` is ``(N,)`` bool (or ``None``) selecting the samples whose joints are permuted by
    ``permutation`` (``(V,)`` int64). Joint permutation and channel map commute.
    """

    matrix: torch.Tensor
    diagonal: bool = False
    swap: torch.Tensor | None = None
    permutation: torch.Tensor | None = None

    def then(self, other: CoordMap) -> CoordMap:
        """The map applying ``self`` first and ``other`` second."""
        swap, permutation = self.swap, self.permutation
        if other.swap is not None:
            if permutation is not None and not torch.equal(permutation, other.permutation):
                raise ValueError("cannot compose mirrors with different joint permutations")
            swap = other.swap if swap is None else swap ^ other.swap
            permutation = other.permutation
        both_3d = other.matrix.ndim == self.matrix.ndim == 3
        matrix = torch.bmm(other.matrix, self.matrix) if both_3d else other.matrix @ self.matrix
        return CoordMap(matrix, self.diagonal and other.diagonal, swap, permutation)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Map the first ``c`` channels of ``x`` ``(N, C, T, V, M)``; the others are copied (or joint-swapped)."""
        return remap(x, self)

    def joint_index(self) -> torch.Tensor | None:
        """``(N, V)`` int64 source joint of every joint, or ``None`` if no sample is swapped."""
        if self.swap is None or not bool(self.swap.any()):
            return None
        permutation = self.permutation.to(self.swap.device)
        identity = torch.arange(permutation.shape[0], device=self.swap.device)
        return torch.where(self.swap[:, None], permutation, identity)


_WORDS = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def permute_joints(x: torch.Tensor, joints: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``out[n, :, :, v] = x[n, :, :, joints[n, v]]`` for ``x`` ``(N, C, T, V, M)`` and int64 ``joints`` ``(N, V)``
    (written into the contiguous ``out`` if given)."""
    n, c, t, v, m = x.shape
    x = x.contiguous()
    word = _WORDS.get(m * x.element_size())
    if word is not None and not x.requires_grad:
        # the M persons of a joint form one machine word: gather V words per frame instead of V * M values
        rows = x.view(n, c * t, v * m).view(word)
        target = torch.empty_like(rows) if out is None else out.view(n, c * t, v * m).view(word)
        torch.gather(rows, 2, joints[:, None, :].expand(rows.shape), out=target)
        return target.view(x.dtype).view(x.shape)
    slots = (joints[:, :, None] * m + torch.arange(m, device=x.device)).view(n, 1, v * m)
    rows = x.view(n, c * t, v * m)
    if out is None:
        return rows.gather(2, slots.expand(rows.shape)).view(x.shape)
    return torch.gather(rows, 2, slots.expand(rows.shape), out=out.view(rows.shape)).view(x.shape)


def remap(
    x: torch.Tensor, coord_map: CoordMap | None = None, index: torch.Tensor | None = None,
    weight: torch.Tensor | None = None, inplace: bool = False, rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """``out[n, i, t] = sum_{j, k} A[n, i, j] weight[n, t, k] x[n, j, index[n, t, k]]`` with the joints then
    permuted as ``coord_map`` says, in one pass over the data.

    ``A`` is ``coord_map``'s matrix on the first ``c`` channels and the identity on the others (identity if
    ``coord_map`` is ``None``); ``index`` ``(N, T', K)`` int64 source frames (default: every frame, ``K = 1``) and
    ``weight`` ``(N, T', K)`` their weights (default 1). Runs as one ``embedding_bag`` over ``(V * M)``-wide rows
    (a diagonal map without frame resampling is a broadcast product, written into ``x`` when ``inplace``).
    With ``rows`` (``(N', C')`` int64 channel rows ``sample * C + channel`` of ``x``), output sample ``n`` is made
    of the channels ``rows[n]`` (``coord_map``, ``index`` and ``weight`` then describe the ``N'`` outputs, and
    ``coord_map`` mixes the ``C'`` selected channels).
    """
    total, all_channels, t, v, m = x.shape
    device = x.device
    if rows is None and index is None and weight is None and (coord_map is None or coord_map.diagonal):
        return _scale_channels(x, coord_map, inplace)
    joints = None if coord_map is None else coord_map.joint_index()
    if joints is not None:
        if rows is not None:
            raise ValueError("joint swaps apply to the whole batch, not to selected rows")
        # swap the joints of the input (into a reused buffer), so that the result is written once
        x = permute_joints(x, joints, None if x.requires_grad else scratch("joints", x.shape, x.dtype, device))
    if rows is None:
        rows = torch.add(cached_arange(all_channels, device), cached_arange(total, device)[:, None], alpha=all_channels)
    n, channels = rows.shape
    if index is None:
        index = cached_arange(t, device).expand(n, t)[:, :, None]
    t_out, k = index.shape[1], index.shape[2]
    table = x.contiguous().view(total * all_channels * t, v * m)
    # table rows as int32 where they fit: half the bytes to build and read
    row_dtype = torch.int32 if table.shape[0] < 2**31 else torch.int64
    first, index = (rows * t).to(row_dtype), index.to(row_dtype)  # first: the first table row of every output channel
    # (the frame index comes first in the sums below: the result then has the broadcast's layout, several times
    # faster to build and copy than the layout of the small channel operand)
    if coord_map is None or coord_map.diagonal:
        # out[n, i, t'] mixes the frames of channel rows[n, i] only
        source = index[:, None] + first[:, :, None, None]
        scale = None if weight is None else weight.to(x.dtype)[:, None].expand(n, channels, t_out, k)
        if coord_map is not None:
            diag = _channel_matrix(coord_map, channels, x.dtype).diagonal(dim1=1, dim2=2)[:, :, None, None]
            scale = diag.expand(n, channels, t_out, k) if scale is None else scale * diag
    else:
        # out[n, i, t'] mixes the frames of every selected channel
        source = (index[:, None, :, None, :] + first[:, None, None, :, None]).expand(n, channels, t_out, channels, k)
        matrix = _channel_matrix(coord_map, channels, x.dtype)[:, :, None, :, None]
        scale = matrix.expand(n, channels, t_out, channels, k) if weight is None else matrix * weight.to(x.dtype)[
            :, None, :, None, :
        ]
    source = source.reshape(n * channels * t_out, -1)
    if scale is None and source.shape[1] == 1:
        out = torch.nn.functional.embedding(source[:, 0], table)
    else:
        scale = None if scale is None else scale.reshape(source.shape)
        out = torch.nn.functional.embedding_bag(source, table, per_sample_weights=scale, mode="sum")
    return out.view(n, channels, t_out, v, m)


def _channel_matrix(coord_map: CoordMap, channels: int, dtype: torch.dtype) -> torch.Tensor:
    """``(N, channels, channels)`` matrix of ``coord_map``: its map on the first ``c`` channels, the identity on
    the others."""
    matrix = coord_map.matrix.to(dtype)
    c = matrix.shape[-1]
    if channels < c:
        raise ValueError(f"a {c}-d coordinate map needs at least {c} channels, got {channels}")
    if channels == c:
        return matrix
    full = torch.eye(channels, device=matrix.device, dtype=dtype).expand(matrix.shape[0], channels, channels).clone()
    full[:, :c, :c] = matrix
    return full


def _scale_channels(x: torch.Tensor, coord_map: CoordMap | None, inplace: bool) -> torch.Tensor:
    """``x`` with its channels scaled by a diagonal ``coord_map`` (and joint-swapped), in place if ``inplace``."""
    inplace = inplace and x.is_contiguous()
    if coord_map is None:
        return x if inplace else x.clone()
    n, channels = x.shape[:2]
    c = coord_map.matrix.shape[-1]
    if channels < c:
        raise ValueError(f"a {c}-d coordinate map needs at least {c} channels, got {channels}")
    joints = coord_map.joint_index()
    source = x
    if joints is not None:
        source = permute_joints(x, joints, None if x.requires_grad else scratch("joints", x.shape, x.dtype, x.device))
    diag = coord_map.matrix.diagonal(dim1=1, dim2=2).to(x.dtype)[:, :, None]
    flat = source.reshape(n, channels, -1)
    if torch.is_grad_enabled() and (x.requires_grad or diag.requires_grad):
        return torch.cat([flat[:, :c] * diag, flat[:, c:]], dim=1).view(x.shape)
    out = x if inplace else torch.empty_like(x, memory_format=torch.contiguous_format)
    flat_out = out.view(n, channels, -1)
    torch.mul(flat[:, :c], diag, out=flat_out[:, :c])
    if channels > c and source is not out:
        flat_out[:, c:].copy_(flat[:, c:])
    return out


class LinearAugmentation(Augmentation):
    """An augmentation that is a per-sample :class:`CoordMap`; consecutive ones are fused by ``Compose``.

    Args:
        coords: number of leading coordinate channels the map acts on.
    """

    def __init__(self, coords: int = 3) -> None:
        super().__init__()
        if coords not in (2, 3):
            raise ValueError(f"coords must be 2 or 3, got {coords}")
        self.coords = coords

    @abstractmethod
    def coord_map(self, x: torch.Tensor, generator: torch.Generator | None) -> CoordMap:
        """Sample this augmentation's map for the batch ``x`` (only its shape, device and dtype are used)."""

    def augment(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Frames]:
        return self.coord_map(x, generator).apply(x), frames

    def augment_owned(
        self, x: torch.Tensor, frames: Frames, generator: torch.Generator | None, owned: bool
    ) -> tuple[torch.Tensor, Frames, bool]:
        return remap(x, self.coord_map(x, generator), inplace=owned), frames, True


def identity_maps(n: int, c: int, like: torch.Tensor) -> torch.Tensor:
    """``(n, c, c)`` identity matrices in the parameter dtype of ``like``."""
    return cached_eye(c, param_dtype(like.dtype), like.device).expand(n, c, c).clone()
