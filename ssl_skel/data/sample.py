"""The record every reader produces and the error every reader raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike

import numpy as np

__all__ = ["SkeletonFileError", "SkeletonSample"]


class SkeletonFileError(ValueError):
    """A skeleton file cannot be read: the message names the file and the problem."""

    def __init__(self, path: str | PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class SkeletonSample:
    """One skeleton sequence as read from disk.

    Attributes:
        name: unique sample name within its data set (e.g. ``S001C001P001R001A001``).
        data: ``(C, T, V, M)`` float32 coordinates; an absent person is exactly zero. ``T >= 1``.
        label: 0-based class index, ``-1`` when unknown.
        meta: integer metadata used by split rules (``subject``, ``camera``, ``setup``, ``view``, ...).
        frame_labels: optional ``(T,)`` int64 frame-wise labels (untrimmed data; background 0).
    """

    name: str
    data: np.ndarray
    label: int = -1
    meta: dict[str, int] = field(default_factory=dict)
    frame_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.data.ndim != 4:
            raise ValueError(f"{self.name}: data must be (C, T, V, M), got shape {self.data.shape}")
        if self.frame_labels is not None and len(self.frame_labels) != self.data.shape[1]:
            raise ValueError(f"{self.name}: {len(self.frame_labels)} frame labels for {self.data.shape[1]} frames")

    @property
    def num_frames(self) -> int:
        return int(self.data.shape[1])
