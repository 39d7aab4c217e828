"""Temporal sampling of ONE sequence ``(C, T, V, M)`` to a fixed length, run per sample in DataLoader workers.

The cheap, shape-changing step that makes variable-length sequences batchable (spec/augment.md "temporal
crop-resize"): a crop of the valid frames (training: a random ratio at a random position; evaluation: the
centred 95%), resized to the target length by linear interpolation along time. Valid frames are the frames up
to the last non-zero one, so trailing zero padding is never sampled. Randomness comes from a numpy
:class:`~numpy.random.Generator` passed in by the caller (seeded per worker), never from global state.
"""

from __future__ import annotations

import numpy as np

__all__ = ["center_sample", "crop_resize", "resize_frames", "valid_length"]


def valid_length(x: np.ndarray) -> int:
    """Number of frames of ``x (C, T, V, M)`` up to and including the last non-zero frame (1 if all are zero)."""
    nonzero = np.flatnonzero(np.any(x != 0, axis=(0, 2, 3)))
    return int(nonzero[-1]) + 1 if nonzero.size else 1


def resize_frames(x: np.ndarray, start: int, length: int, num_frames: int) -> np.ndarray:
    """Frames ``[start, start + length)`` of ``x (C, T, V, M)`` linearly resampled to ``(C, num_frames, V, M)``.

    The first and last output frames are the crop's first and last frames (corners aligned); a one-frame crop is
    repeated. Returns a new float32 array.
    """
    if length < 1 or start < 0 or start + length > x.shape[1]:
        raise ValueError(f"crop [{start}, {start + length}) outside the {x.shape[1]} frames")
    pos = np.linspace(start, start + length - 1, num_frames) if num_frames > 1 else np.array([start + (length - 1) / 2])
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, start + length - 1)
    w = (pos - lo).astype(np.float32)[None, :, None, None]
    a = np.asarray(x[:, lo], dtype=np.float32)
    b = np.asarray(x[:, hi], dtype=np.float32)
    return a + (b - a) * w


def crop_resize(
    x: np.ndarray,
    num_frames: int,
    rng: np.random.Generator,
    ratio: tuple[float, float] = (0.5, 1.0),
    min_frames: int = 1,
) -> np.ndarray:
    """Training sampling: crop ``U(*ratio)`` of the valid frames at a random start, resize to ``num_frames``.

    Args:
        x: ``(C, T, V, M)`` sequence.
        num_frames: output length.
        rng: the source of randomness.
        ratio: range of the crop length as a fraction of the valid length.
        min_frames: the crop is at least this many frames (or the whole valid sequence if shorter).

    Returns:
        ``(C, num_frames, V, M)`` float32.
    """
    lo, hi = ratio
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"crop ratio range must satisfy 0 < low <= high <= 1, got {ratio}")
    valid = valid_length(x)
    length = int(np.clip(round(valid * rng.uniform(lo, hi)), min(max(min_frames, 1), valid), valid))
    start = int(rng.integers(0, valid - length + 1))
    return resize_frames(x, start, length, num_frames)


def center_sample(x: np.ndarray, num_frames: int, ratio: float = 0.95) -> np.ndarray:
    """Evaluation sampling (deterministic): the centred ``ratio`` of the valid frames, resized to ``num_frames``.

    Returns:
        ``(C, num_frames, V, M)`` float32.
    """
    if not 0 < ratio <= 1:
        raise ValueError(f"centre crop ratio must be in (0, 1], got {ratio}")
    valid = valid_length(x)
    length = max(1, int(valid * ratio))
    return resize_frames(x, (valid - length) // 2, length, num_frames)
