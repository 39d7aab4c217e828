"""Per-sample numpy implementation of HiCLR's four augmented views, the way the reference code bases run them in
their DataLoader workers: one sample ``(C, T, V, M)`` at a time, with the reference parameters.

It is the baseline of ``augment_speed.py`` and follows the specification (docs in ``ssl_skel.augment``):
view 1 and 2 = temporal shift crop + shear(0.5); view 3 = those, then mirror (p 0.5), main-axis rotation, gaussian
noise (p 0.5), temporal gaussian blur (p 0.5) and axis mask (p 0.5); view 4 = another such strong view followed
by a joint mask (int(0.1 V) joints per frame set to zero).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["four_views", "four_views_batch"]


def temporal_crop(x: np.ndarray, rng: np.random.Generator, padding_ratio: int = 6) -> np.ndarray:
    t = x.shape[1]
    pad = t // padding_ratio
    start = int(rng.integers(0, 2 * pad + 1))
    padded = np.concatenate([x[:, :pad][:, ::-1], x, x[:, t - pad :][:, ::-1]], axis=1)
    return padded[:, start : start + t]


def shear(x: np.ndarray, rng: np.random.Generator, amplitude: float = 0.5) -> np.ndarray:
    matrix = rng.uniform(-amplitude, amplitude, size=(3, 3))
    np.fill_diagonal(matrix, 1.0)
    return np.dot(x.transpose(1, 2, 3, 0), matrix.T).transpose(3, 0, 1, 2)


def mirror(x: np.ndarray, rng: np.random.Generator, permutation: np.ndarray, p: float = 0.5) -> np.ndarray:
    if rng.random() >= p:
        return x
    out = x[:, :, permutation]
    out[0] = -out[0]
    return out


def _axis_rotation(axis: int, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    if axis == 0:
        return np.array([[1, 0, 0], [0, c, s], [0, -s, c]])
    if axis == 1:
        return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])


def main_axis_rotate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    points = x.transpose(1, 2, 3, 0)
    main = int(rng.integers(0, 3))
    for axis in range(3):
        degrees = rng.uniform(0, 30) if axis == main else rng.uniform(0, 1)
        points = np.matmul(points, _axis_rotation(axis, math.radians(degrees)).T)
    return points.transpose(3, 0, 1, 2)


def gaussian_noise(x: np.ndarray, rng: np.random.Generator, sigma: float = 0.01, p: float = 0.5) -> np.ndarray:
    if rng.random() >= p:
        return x
    return x + rng.normal(0.0, sigma, size=x.shape)


def gaussian_blur(
    x: np.ndarray, rng: np.random.Generator, kernel_size: int = 15, sigma: tuple[float, float] = (0.1, 2.0),
    p: float = 0.5,
) -> np.ndarray:
    if rng.random() >= p:
        return x
    radius = kernel_size // 2
    s = rng.uniform(*sigma)
    taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * s**2))
    taps /= taps.sum()
    padded = np.pad(x, ((0, 0), (radius, radius), (0, 0), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel_size, axis=1)
    return np.tensordot(windows, taps[::-1], axes=([4], [0]))


def axis_mask(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    if rng.random() >= p:
        return x
    out = x.copy()
    out[int(rng.integers(0, 3))] = 0
    return out


def joint_mask(x: np.ndarray, rng: np.random.Generator, ratio: float = 0.1) -> np.ndarray:
    _, t, v, _ = x.shape
    hidden = np.argsort(rng.random((t, v)), axis=1)[:, : int(ratio * v)]
    out = x.copy()
    out[:, np.arange(t)[:, None], hidden] = 0
    return out


def _basic(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return shear(temporal_crop(x, rng), rng)


def _strong(x: np.ndarray, rng: np.random.Generator, permutation: np.ndarray) -> np.ndarray:
    x = mirror(_basic(x, rng), rng, permutation)
    x = main_axis_rotate(x, rng)
    x = gaussian_noise(x, rng)
    x = gaussian_blur(x, rng)
    return axis_mask(x, rng)


def four_views(
    x: np.ndarray, rng: np.random.Generator, permutation: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """HiCLR's four views of one sample ``(C, T, V, M)`` (float32 outputs, as a DataLoader would collate)."""
    strong = _strong(x, rng, permutation)
    masked = joint_mask(_strong(x, rng, permutation), rng)
    views = (_basic(x, rng), _basic(x, rng), strong, masked)
    return tuple(v.astype(np.float32) for v in views)


def four_views_batch(batch: np.ndarray, rng: np.random.Generator, permutation: np.ndarray) -> list[tuple]:
    """The four views of every sample of ``batch`` ``(N, C, T, V, M)``, one sample after the other."""
    return [four_views(sample, rng, permutation) for sample in batch]
