"""Geometric augmentations: per-sample linear maps of the coordinate channels (shear, rotations, mirror, scale,
axis mask). All are :class:`LinearAugmentation`, so ``Compose`` fuses consecutive ones into one matrix per sample.

Rotation matrices follow the HiCLR/AimCLR/CTR-GCN references: for an angle ``a`` about x, the map is
``y' = cos(a) y + sin(a) z``, ``z' = -sin(a) y + cos(a) z`` (likewise for y and z), and the three axes are applied
in the order x, y, z (``R = Rz Ry Rx``). In 2D (``coords=2``) only the in-plane rotation about z exists.
"""

from __future__ import annotations

import functools
import math

import torch

from ..skeleton.layouts import Layout, get_layout
from .base import CoordMap, LinearAugmentation, cached_arange, cached_eye, param_dtype, uniform

__all__ = ["AxisMask", "MainAxisRotate", "Mirror", "Rotate", "Scale", "Shear", "rotation_matrices"]


@functools.lru_cache(maxsize=16)
def _axis_basis(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(27,)`` offset and ``(6, 27)`` basis with ``R_axis(a) = I - P[axis] + sin(a) K[axis] + cos(a) P[axis]``
    for all three axes at once: ``offset + [sin(ax), sin(ay), sin(az), cos(ax), cos(ay), cos(az)] @ basis``."""
    k = torch.zeros(3, 3, 3, dtype=dtype)
    k[0, 1, 2], k[0, 2, 1] = 1, -1
    k[1, 0, 2], k[1, 2, 0] = -1, 1
    k[2, 0, 1], k[2, 1, 0] = 1, -1
    p = torch.ones(3, 3, dtype=dtype).fill_diagonal_(0).diag_embed()
    basis = torch.zeros(6, 3, 9, dtype=dtype)
    for axis in range(3):
        basis[axis, axis] = k[axis].reshape(9)
        basis[3 + axis, axis] = p[axis].reshape(9)
    offset = (torch.eye(3, dtype=dtype) - p).reshape(27)
    return offset.to(device), basis.view(6, 27).to(device)


def rotation_matrices(angles: torch.Tensor, coords: int = 3) -> torch.Tensor:
    """``(N, c, c)`` rotations from ``(N, 3)`` angles in radians about x, y, z (2D: the z angle only)."""
    if coords == 2:
        c, s = angles[:, 2].cos(), angles[:, 2].sin()
        return torch.stack([c, s, -s, c], dim=1).view(-1, 2, 2)
    offset, basis = _axis_basis(angles.dtype, angles.device)
    per_axis = torch.addmm(offset, torch.cat([angles.sin(), angles.cos()], dim=1), basis).view(-1, 3, 3, 3)
    return torch.bmm(torch.bmm(per_axis[:, 2], per_axis[:, 1]), per_axis[:, 0])


@functools.lru_cache(maxsize=16)
def _flip_x(c: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The cached ``(c, c)`` map negating x (do not modify it in place)."""
    flip = torch.eye(c, dtype=dtype)
    flip[0, 0] = -1
    return flip.to(device)


class Shear(LinearAugmentation):
    """Multiply the coordinates by a matrix with ones on the diagonal and off-diagonals ``U(-amplitude, amplitude)``.

    Args:
        amplitude: off-diagonal range ``s`` (0.5 in HiCLR, 1.0 in HaLP); 0 is the identity.
        coords: number of coordinate channels (3 or 2).
    """

    def __init__(self, amplitude: float = 0.5, coords: int = 3) -> None:
        super().__init__(coords)
        self.amplitude = amplitude

    def coord_map(self, x: torch.Tensor, generator: torch.Generator | None) -> CoordMap:
        n, c = x.shape[0], self.coords
        off = uniform((n, c, c), -self.amplitude, self.amplitude, x, generator)
        return CoordMap(torch.where(cached_eye(c, torch.bool, x.device), 1.0, off))


class Rotate(LinearAugmentation):
    """Rotate about every axis by an angle ``U(-max_angle, max_angle)`` radians (MAMP / CTR-GCN style).

    Args:
        max_angle: largest angle per axis in radians (0.3 in MAMP).
        coords: number of coordinate channels (3 or 2; 2D rotates in-plane only).
    """

    def __init__(self, max_angle: float = 0.3, coords: int = 3) -> None:
        super().__init__(coords)
        self.max_angle = max_angle

    def sample_angles(self, n: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``(n, 3)`` angles in radians about x, y, z."""
        return uniform((n, 3), -self.max_angle, self.max_angle, like, generator)

    def coord_map(self, x: torch.Tensor, generator: torch.Generator | None) -> CoordMap:
        return CoordMap(rotation_matrices(self.sample_angles(x.shape[0], x, generator), self.coords))


class MainAxisRotate(LinearAugmentation):
    """HiCLR's strong rotation: one random main axis turns by ``U(*main_range)`` degrees, the others by
    ``U(*other_range)`` degrees.

    In 2D the in-plane angle is drawn from ``main_range``.

    Args:
        main_range: main-axis angle range in degrees (HiCLR: 0 to 30).
        other_range: range of the two other angles in degrees (HiCLR: 0 to 1).
        coords: number of coordinate channels (3 or 2).
    """

    def __init__(
        self, main_range: tuple[float, float] = (0.0, 30.0), other_range: tuple[float, float] = (0.0, 1.0),
        coords: int = 3,
    ) -> None:
        super().__init__(coords)
        self.main_range = tuple(main_range)
        self.other_range = tuple(other_range)

    def sample_angles(self, n: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``(n, 3)`` angles in radians about x, y, z."""
        main = uniform((n, 3), *self.main_range, like, generator)
        other = uniform((n, 3), *self.other_range, like, generator)
        if self.coords == 2:
            axis = torch.full((n,), 2, device=like.device)
        else:
            axis = torch.randint(3, (n,), generator=generator, device=like.device)
        is_main = axis[:, None] == cached_arange(3, like.device)
        return torch.where(is_main, main, other) * (math.pi / 180)

    def coord_map(self, x: torch.Tensor, generator: torch.Generator | None) -> CoordMap:
        return CoordMap(rotation_matrices(self.sample_angles(x.shape[0], x, generator), self.coords))


class Mirror(LinearAugmentation):
    """Mirror the body: swap the layout's left/right joints and negate x, giving a physically valid mirrored pose.

    Applied to every sample; wrap it in ``RandomApply`` for a probability (the references use 0.5 and only swap
    the joints, which produces a body with its left and right sides crossed).

    Args:
        layout: skeleton layout name (its ``pairs``).
        coords: number of coordinate channels (3 or 2).
    """

    def __init__(self, layout: str | Layout = "ntu25", coords: int = 3) -> None:
        super().__init__(coords)
        self.layout = get_layout(layout)
        self.register_buffer("permutation", torch.tensor(self.layout.mirror_permutation), persistent=False)

    def coord_map(self, x: torch.Tensor, generator: torch.Generator | None) -> CoordMap:
        n = x.shape[0]
        if x.shape[3] != self.layout.num_joints:
            raise ValueError(f"layout {self.layout.name} has {self.layout.num_joints} joints, batch has {x.shape[3]}")
        flip = _flip_x(self.coords, param_dtype(x.dtype), x.device).expand(n, self.coords, self.coords)
        swap = torch.ones(n, dtype=torch.bool, device=x.device)
        return CoordMap(flip, True, swap, self.permutation.to(x.device))


class Scale(LinearAugmentation):
    """Scale the coordinates by ``U(low, high)``: one factor per sample, or one per axis with ``per_axis``.

    Args:
        low: smallest factor.
        high: largest factor.
        per_axis: independent factor per coordinate axis.
        coords: number of coordinate channels (3 or 2).
    """

    def __init__(self, low: float = 0.9, high: float = 1.1, per_axis: bool = False, coords: int = 3) -> None:
        super().__init__(coords)
        self.low, self.high, self.per_axis = low, high, per_axis

    def coord_map(self, x: torch.Tensor, generator: torch.Generator | None) -> CoordMap:
        n, c = x.shape[0], self.coords
        factors = uniform((n, c if self.per_axis else 1), self.low, self.high, x, generator).expand(n, c)
        return CoordMap(torch.diag_embed(factors), diagonal=True)


class AxisMask(LinearAugmentation):
    """Zero one coordinate axis chosen uniformly per sample (AimCLR/HiCLR axis mask).

    Args:
        coords: number of coordinate channels (3 or 2).
    """

    def coord_map(self, x: torch.Tensor, generator: torch.Generator | None) -> CoordMap:
        n, c = x.shape[0], self.coords
        axis = torch.randint(c, (n,), generator=generator, device=x.device)
        keep = (axis[:, None] != cached_arange(c, x.device)).to(param_dtype(x.dtype))
        return CoordMap(torch.diag_embed(keep), diagonal=True)
