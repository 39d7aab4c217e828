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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "Augmentation", "CoordMap", "Frames", "LinearAugmentation", "identity_maps", "param_dtype", "presence",
    "random_subset", "uniform", "valid_lengths",
]


def presence(x: torch.Tensor) -> torch.Tensor:
    """``(N, T, M)`` bool: person ``m`` of sample ``n`` has a non-zero channel at some joint in frame ``t``."""
    return x.abs().sum(dim=1).sum(dim=2) > 0


def valid_lengths(x: torch.Tensor) -> torch.Tensor:
    """``(N,)`` int64 number of valid frames: one past the last frame with any non-zero value (0 if none)."""
    return Frames(presence(x)).lengths


class Frames:
    """Which person holds data in which frame of a batch, computed once and handed from one augmentation to the next.

    Built from a batch (lazily, on first use) or from a ``(N, T, M)`` bool ``present`` mask.
    """

    def __init__(self, present: torch.Tensor | None = None, source: torch.Tensor | None = None) -> None:
        if (present is None) == (source is None):
            raise ValueError("give exactly one of present or source")
        self._present = present
        self._source = source
        self._lengths: torch.Tensor | None = None

    @property
    def present(self) -> torch.Tensor:
        """``(N, T, M)`` bool occupancy."""
        if self._present is None:
            self._present = presence(self._source)
            self._source = None
        return self._present

    @property
    def lengths(self) -> torch.Tensor:
        """``(N,)`` int64 valid lengths."""
        if self._lengths is None:
            occupied = self.present.any(dim=2)
            steps = torch.arange(1, occupied.shape[1] + 1, device=occupied.device)
            self._lengths = (occupied * steps).amax(dim=1)
        return self._lengths

    def mask(self, dtype: torch.dtype) -> torch.Tensor:
        """``(N, 1, T, 1, M)`` 0/1 mask of present persons, broadcastable against a batch."""
        return self.present.to(dtype)[:, None, :, None, :]

    def select(self, index: torch.Tensor) -> Frames:
        """The occupancy of the samples ``index``; stays lazy if nothing was computed yet."""
        if self._present is None:
            return Frames(source=self._source.index_select(0, index))
        return Frames(self._present.index_select(0, index))

    def merge(self, index: torch.Tensor, part: Frames) -> Frames:
        """This occupancy with the samples ``index`` replaced by ``part``."""
        return Frames(self.present.index_copy(0, index, part.present))


def param_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype random parameters are drawn in: the batch dtype if it is float32/float64, else float32."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def uniform(
    shape: tuple[int, ...], low: float, high: float, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """``U(low, high)`` samples on the device of ``like`` (float32 or float64)."""
    u = torch.rand(shape, generator=generator, device=like.device, dtype=param_dtype(like.dtype))
    return u * (high - low) + low


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
        return CoordMap(other.matrix @ self.matrix, self.diagonal and other.diagonal, swap, permutation)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Map the first ``c`` channels of ``x`` ``(N, C, T, V, M)``; the others are copied (or joint-swapped)."""
        n, channels, t, v, m = x.shape
        c = self.matrix.shape[-1]
        if channels < c:
            raise ValueError(f"a {c}-d coordinate map needs at least {c} channels, got {channels}")
        if self.swap is not None and bool(self.swap.any()):
            slab = (self.permutation[:, None] * m + torch.arange(m, device=x.device)).reshape(-1)
            swapped = x.reshape(-1, v * m).index_select(1, slab).view(x.shape)
            x = torch.where(self.swap[:, None, None, None, None], swapped, x)
        matrix = self.matrix.to(x.dtype)
        if self.diagonal:
            mapped = x[:, :c] * matrix.diagonal(dim1=1, dim2=2)[:, :, None, None, None]
        else:
            mapped = torch.matmul(matrix, x[:, :c].reshape(n, c, -1)).view(n, c, t, v, m)
        if channels == c:
            return mapped
        return torch.cat([mapped, x[:, c:]], dim=1)


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


def identity_maps(n: int, c: int, like: torch.Tensor) -> torch.Tensor:
    """``(n, c, c)`` identity matrices in the parameter dtype of ``like``."""
    return torch.eye(c, device=like.device, dtype=param_dtype(like.dtype)).expand(n, c, c).clone()
