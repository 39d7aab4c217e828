"""Untrimmed videos as overlapping fixed-length windows, for action segmentation.

Every stored sample of an untrimmed store (``ssl-skel prepare pku_mmd1_untrimmed``) is one whole video with
frame labels (background 0). The video is normalised as a whole (so a window sees the video's coordinate frame,
as in LAC's pretraining on windows of the same store) and cut into windows of ``window`` frames every ``stride``
frames (:func:`window_starts`); the last window is moved back to end at the video's last frame, so every window
is full unless the whole video is shorter than one window (then it is zero-padded and its padding frames carry
the label :data:`IGNORE`). A split is by video: a video and all its windows are on one side.

Batches are dicts: ``x`` ``(N, C, window, V, M)`` float32 joint coordinates, ``frame_labels`` ``(N, window)``
int64, ``index`` ``(N,)`` (the video's index in the store), ``start`` ``(N,)`` (the window's first frame),
``length`` ``(N,)`` (the video's frame count) and ``windows`` ``(N,)`` (the video's window count).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .datamodule import EpochSampler, SkeletonDataModule
from .preprocess import normalize
from .store import SkeletonStore

__all__ = ["IGNORE", "SegmentationDataModule", "WindowDataset", "check_window", "window_starts"]

#: frame label of the padding frames of a window longer than its video (ignored by the loss).
IGNORE = -1


def check_window(window: int, stride: int) -> None:
    """Raise ``ValueError`` unless ``window >= 1`` and ``1 <= stride <= window`` (no frame left uncovered)."""
    if window < 1 or not 1 <= stride <= window:
        raise ValueError(f"need window >= 1 and 1 <= stride <= window, got window {window}, stride {stride}")


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """First frames of the windows covering a video of ``length`` frames: ``0, stride, 2 * stride, ...`` and,
    when those stop short of the end, ``length - window`` (``[0]`` for a video no longer than one window)."""
    check_window(window, stride)
    if length < 1:
        raise ValueError(f"a video has at least one frame, got length {length}")
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


class WindowDataset(Dataset):
    """The windows of ``indices`` (videos of ``store``), video by video in order, each video normalised whole.

    Args:
        store: an untrimmed store with frame labels.
        indices: store indices of the videos served.
        window: frames per window.
        stride: frames between consecutive window starts (at most ``window``).
        normalization: one of :data:`~ssl_skel.data.preprocess.NORMALIZATIONS`, applied to the whole video.

    Items (also asked for as ``(position, seed)`` pairs by :class:`~ssl_skel.data.datamodule.EpochSampler`; the
    seed is not used) are dicts ``{"x": (C, window, V, M), "frame_labels": (window,), "index", "start",
    "length", "windows"}``.
    """

    def __init__(
        self, store: SkeletonStore, indices: np.ndarray, window: int, stride: int, normalization: str = "none"
    ) -> None:
        self.store = store
        self.window = window
        self.normalization = normalization
        self.items: list[tuple[int, int, int]] = []  # (video, start, windows of the video)
        for i in np.asarray(indices, dtype=np.int64):
            starts = window_starts(int(store.lengths[i]), window, stride)
            self.items += [(int(i), start, len(starts)) for start in starts]
        self._video: tuple[int, np.ndarray] | None = None  # the last normalised video

    def __len__(self) -> int:
        return len(self.items)

    def _normalised(self, index: int) -> np.ndarray:
        if self._video is None or self._video[0] != index:
            data = np.array(self.store[index][0], dtype=np.float32)
            if not np.isfinite(data).all():
                raise ValueError(f"{self.store.path}: video {index} ({self.store.names[index]}) has non-finite values")
            self._video = index, normalize(data, self.store.layout, self.normalization)
        return self._video[1]

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        index, start, windows = self.items[item[0] if isinstance(item, tuple) else item]
        video = self._normalised(index)
        clip = video[:, start : start + self.window]
        labels = np.array(self.store.frame_labels(index)[start : start + self.window], dtype=np.int64)
        pad = self.window - clip.shape[1]
        if pad:
            clip = np.concatenate([clip, np.zeros((clip.shape[0], pad, *clip.shape[2:]), np.float32)], axis=1)
            labels = np.concatenate([labels, np.full(pad, IGNORE, np.int64)])
        return {
            "x": torch.from_numpy(np.ascontiguousarray(clip)),
            "frame_labels": torch.from_numpy(labels),
            "index": index,
            "start": start,
            "length": video.shape[1],
            "windows": windows,
        }


class SegmentationDataModule(SkeletonDataModule):
    """Windows of an untrimmed store's videos: the training videos shuffled window by window, the test videos in
    order (the model merges each video's window scores back into one sequence).

    Args:
        root: the untrimmed store (``ssl-skel prepare pku_mmd1_untrimmed --raw RAW --out STORE``).
        dataset: source name to prepare into the cache instead of ``root``.
        raw: raw data directory of ``dataset``.
        source_options: constructor options of the ``dataset`` source.
        cache_dir: where prepared caches live.
        split: the store's split (``xsub``, ``xview``); ``None`` uses its only split. Both halves must hold videos.
        window: frames per window.
        stride: frames between window starts (``stride < window``: overlapping windows).
        normalization: one of ``none``, ``first_frame``, ``per_frame_shoulder``, applied to each whole video.
        stream: feature stream the model consumes (applied on the batch).
        batch_size: training windows per batch.
        eval_batch_size: evaluation windows per batch (default ``batch_size``).
        num_workers: DataLoader worker processes.
        persistent_workers: keep workers alive between epochs.
        pin_memory: pin batches for GPU transfer.
    """

    def __init__(
        self,
        root: str | None = None,
        dataset: str | None = None,
        raw: str | None = None,
        source_options: dict[str, int | float | str | bool] | None = None,
        cache_dir: str | None = None,
        split: str | None = None,
        window: int = 64,
        stride: int = 32,
        normalization: str = "none",
        stream: str = "joint",
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        persistent_workers: bool = True,
        pin_memory: bool = False,
    ) -> None:
        check_window(window, stride)
        super().__init__(
            root=root, dataset=dataset, raw=raw, source_options=source_options, cache_dir=cache_dir, split=split,
            num_frames=window, normalization=normalization, stream=stream, batch_size=batch_size,
            eval_batch_size=eval_batch_size, num_workers=num_workers, persistent_workers=persistent_workers,
            pin_memory=pin_memory, drop_last=False, on_bad_sample="raise",
        )
        self.window = window
        self.stride = stride

    def setup(self, stage: str | None = None) -> None:
        if self.train_indices is not None:
            return
        store = self.store
        if not store.manifest["frame_labels"]:
            raise ValueError(f"{self.store_path}: the store has no frame labels; segmentation needs an untrimmed "
                             "store (e.g. ssl-skel prepare pku_mmd1_untrimmed --raw RAW --out STORE)")
        split = self._split_name()
        train, test = store.split_indices(split, "train"), store.split_indices(split, "test")
        for part, indices in (("training", train), ("test", test)):
            if len(indices) == 0:
                raise ValueError(f"{self.store_path}: split {split!r} has no {part} videos (video counts per split: "
                                 f"{store.manifest['splits']}); choose a split with videos on both sides")
        self.train_indices, self.test_indices = train, test

    def _windows(self, indices: np.ndarray) -> WindowDataset:
        return WindowDataset(self.store, indices, self.window, self.stride, self.normalization)

    def train_dataloader(self) -> DataLoader:
        """The training videos' windows in a shuffled order (a function of the run's seed and the epoch)."""
        self.setup()
        dataset = self._windows(self.train_indices)
        if self.train_seed is None:
            self.train_seed = int(torch.randint(0, 2**31, ()).item())
        return self._loader(dataset, self.batch_size, False, EpochSampler(len(dataset), self.train_seed))

    def val_dataloader(self) -> DataLoader:
        """The test videos' windows, video by video in order."""
        self.setup()
        return self._loader(self._windows(self.test_indices), self.eval_batch_size, False)

    def train_eval_dataloader(self) -> DataLoader:
        """The training videos' windows, video by video in order."""
        self.setup()
        return self._loader(self._windows(self.train_indices), self.eval_batch_size, False)
