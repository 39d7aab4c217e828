"""Shared machinery of the batched augmentations: frame occupancy, the module base classes, random helpers.

Conventions used by every augmentation in this package:

* A batch is ``(N, C, T, V, M)``. The first ``coords`` channels are coordinates (3 for xyz, 2 for image
  keypoints); further channels (e.g. a detection score) are carried along: geometric maps leave them unchanged and
  masks that hide a joint set them to zero.
* A person is *present* in a frame when any of its channels is non-zero there. The *valid length* of a sample is
  one past its last frame in which anybody is present; later frames are padding. An absent person and padded
  frames stay exactly zero through every augmentation.
* Random parameters are drawn per sample from ``generator`` (a ``torch.Generator`` on the device of the batch) or,
  when it is ``None``, from the global torch RNG.

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

import torch
from torch import nn

__all__ = [
    "Augmentation", "CoordMap", "Frames", "LinearAugmentation", "OwnedAugmentation", "SubsetAugmentation",
    "identity_maps", "param_dtype", "presence", "random_subset", "remap", "scratch", "uniform", "valid_lengths",
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
    magnitude = x.abs() if x.requires_grad else torch.abs(x, out=scratch("presence", x.shape, x.dtype, x.device))
    return magnitude.sum(dim=1).sum(dim=2) > 0


def valid_lengths(x: torch.Tensor) -> torch.Tensor:
    """``(N,)`` int64 number of valid frames: one past the last frame with any non-zero value (0 if none)."""
    return Frames(presence(x)).lengths


class Frames:
    """Which person holds data in which frame of a batch, computed once and handed from one augmentation to the next.

    Built from a batch (lazily, on first use), from a ``(N, T, M)`` bool ``present`` mask or (:meth:`deferred`)
    from a function computing it when first needed.
    """

    def __init__(self, present: torch.Tensor | None = None, source: torch.Tensor | None = None) -> None:
        if (present is None) == (source is None):
            raise ValueError("give exactly one of present or source")
        self._present = present
        self._source = source
        self._compute: Callable[[], torch.Tensor] | None = None
        self._lengths: torch.Tensor | None = None

    @classmethod
    def deferred(cls, compute: Callable[[], torch.Tensor]) -> Frames:
        """Occupancy given by ``compute()``, called only if it is needed."""
        frames = cls.__new__(cls)
        frames._present, frames._source, frames._compute, frames._lengths = None, None, compute, None
        return frames

    @property
    def present(self) -> torch.Tensor:
        """``(N, T, M)`` bool occupancy."""
        if self._present is None:
            self._present = self._compute() if self._compute is not None else presence(self._source)
            self._source, self._compute = None, None
        return self._present

    @property
    def lengths(self) -> torch.Tensor:
        """``(N,)`` int64 valid lengths."""
        if self._lengths is None:
            occupied = self.present.any(dim=2)
            self._lengths = (occupied * cached_arange(occupied.shape[1], occupied.device, 1)).amax(dim=1)
        return self._lengths

    def mask(self, dtype: torch.dtype) -> torch.Tensor:
        """``(N, 1, T, 1, M)`` 0/1 mask of present persons, broadcastable against a batch."""
        return self.present.to(dtype)[:, None, :, None, :]

    def select(self, index: torch.Tensor) -> Frames:
        """The occupancy of the samples ``index``; stays lazy if nothing was computed yet."""
        if self._present is None and self._compute is None:
            return Frames(source=self._source.index_select(0, index))
        return Frames(self._present.index_select(0, index))

    def merge(self, index: torch.Tensor, part: Frames) -> Frames:
        """This occupancy with the samples ``index`` replaced by ``part``."""
        return Frames(self.present.index_copy(0, index, part.present))


@functools.lru_cache(maxsize=256)
def cached_arange(n: int, device: torch.device, start: int = 0) -> torch.Tensor:
    """The cached ``arange(start, start + n)`` (int64) on ``device``: do not modify it in place."""
    return torch.arange(start, start + n, device=device)


@functools.lru_cache(maxsize=64)
def cached_eye(c: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The cached ``(c, c)`` identity matrix: do not modify it in place."""
    return torch.eye(c, dtype=dtype, device=device)


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


def random_subset(
    rows: int, size: int, count: int, device: torch.device, generator: torch.Generator | None,
    as_index: bool = False,
) -> torch.Tensor:
    """``(rows, size)`` bool, each row with exactly ``count`` uniformly chosen ``True`` entries (or, with
    ``as_index``, the ``(rows, count)`` chosen indices).

    Floyd's sampling, vectorised over rows: the loop runs over the ``count`` draws, not over rows.
    """
    count = max(0, min(count, size))
    chosen = torch.empty(rows, count, dtype=torch.long, device=device)
    for i, top in enumerate(range(size - count, size)):
        draw = (torch.rand(rows, generator=generator, device=device) * (top + 1)).long().clamp_(max=top)
        taken = (chosen[:, :i] == draw[:, None]).any(dim=1)
        chosen[:, i] = torch.where(taken, top, draw)
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
    weight: torch.Tensor | None = None, inplace: bool = False, samples: torch.Tensor | None = None,
    channels: int | None = None,
) -> torch.Tensor:
    """``out[n, i, t] = sum_{j, k} A[n, i, j] weight[n, t, k] x[n, j, index[n, t, k]]`` with the joints then
    permuted as ``coord_map`` says, in one pass over the data.

    ``A`` is ``coord_map``'s matrix on the first ``c`` channels and the identity on the others (identity if
    ``coord_map`` is ``None``); ``index`` ``(N, T', K)`` int64 source frames (default: every frame, ``K = 1``) and
    ``weight`` ``(N, T', K)`` their weights (default 1). Runs as one ``embedding_bag`` over ``(V * M)``-wide rows
    (a diagonal map without frame resampling is a broadcast product, written into ``x`` when ``inplace``).
    With ``samples`` (``(N',)`` int64), only those samples are computed (``coord_map``, ``index`` and ``weight``
    then describe them); with ``channels`` only that many leading channels (``coord_map`` must then be ``None``).
    """
    total, all_channels, t, v, m = x.shape
    device = x.device
    if samples is None and channels is None and index is None and weight is None and (
        coord_map is None or coord_map.diagonal
    ):
        return _scale_channels(x, coord_map, inplace)
    samples = cached_arange(total, device) if samples is None else samples
    n = samples.shape[0]
    channels = all_channels if channels is None else channels
    if index is None:
        index = cached_arange(t, device).expand(n, t)[:, :, None]
    t_out, k = index.shape[1], index.shape[2]
    rows = (samples[:, None] * all_channels + cached_arange(channels, device)) * t
    joints = None if coord_map is None else coord_map.joint_index()
    if joints is not None:
        # swap the joints of the input (into a reused buffer), so that the result is written once
        into = None if x.requires_grad else scratch("joints", x.shape, x.dtype, device)
        if n != total:
            joints = torch.arange(v, device=device).expand(total, v).index_copy(0, samples, joints)
        x = permute_joints(x, joints, into)
    table = x.contiguous().view(total * all_channels * t, v * m)
    matrix, diagonal = None, True
    if coord_map is not None:
        c = coord_map.matrix.shape[-1]
        if channels < c:
            raise ValueError(f"a {c}-d coordinate map needs at least {c} channels, got {channels}")
        diagonal = coord_map.diagonal
        matrix = coord_map.matrix.to(x.dtype)
        if channels > c:
            eye = torch.eye(channels, device=device, dtype=x.dtype).expand(n, channels, channels).clone()
            eye[:, :c, :c] = matrix
            matrix = eye
    if diagonal:
        source = rows[:, :, None, None] + index[:, None]
        scale = None if weight is None else weight.to(x.dtype)[:, None].expand(n, channels, t_out, k)
        if matrix is not None:
            diag = matrix.diagonal(dim1=1, dim2=2)[:, :, None, None]
            scale = diag.expand(n, channels, t_out, k) if scale is None else scale * diag
    else:
        source = (rows[:, None, None, :, None] + index[:, None, :, None, :]).expand(n, channels, t_out, channels, k)
        scale = matrix[:, :, None, :, None]
        if weight is not None:
            scale = scale * weight.to(x.dtype)[:, None, :, None, :]
        scale = scale.expand(n, channels, t_out, channels, k)
    source = source.reshape(n * channels * t_out, -1)
    if scale is None and source.shape[1] == 1:
        out = torch.nn.functional.embedding(source[:, 0], table)
    else:
        scale = None if scale is None else scale.reshape(source.shape)
        out = torch.nn.functional.embedding_bag(source, table, per_sample_weights=scale, mode="sum")
    return out.view(n, channels, t_out, v, m)


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
