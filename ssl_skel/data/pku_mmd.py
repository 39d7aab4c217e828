"""PKU-MMD phase 1: untrimmed sequences with frame-wise labels, and the trimmed action clips.

Layout of ``raw``: ``skeleton/<video>.txt`` (one line per frame, 150 floats = 2 persons x 25 joints x xyz, metres),
``label/<video>.txt`` (one line per action instance: ``action_id,start,end,confidence``, action ids 1..51) and
``split/cross-subject.txt``, ``split/cross-view.txt`` (line 2 the training videos, line 4 the validation videos).
Videos are named ``NNNN-V`` (sequence number, camera view L/M/R).

Interval convention: frame indices are 0-based and ``end`` is exclusive, i.e. an instance covers frames
``start .. end - 1`` and its trimmed clip has ``end - start`` frames. The label files support this reading: the
first instances start at frame 0, and consecutive instances often share their boundary value (``end`` of one equals
``start`` of the next) while no two instances overlap by more than that value. Intervals are clamped to the
sequence, ``[max(start, 0), min(end, T))``; an interval that is empty after clamping labels no frame and yields
no clip.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache
from os import PathLike
from pathlib import Path

import numpy as np

from .sample import SkeletonFileError, SkeletonSample

__all__ = [
    "PKUMMDClipSource",
    "PKUMMDSequenceSource",
    "frame_labels_from_intervals",
    "parse_video_name",
    "read_pku_labels",
    "read_pku_skeleton",
    "read_pku_split",
]

NUM_ACTIONS = 51
NUM_JOINTS, NUM_PERSONS = 25, 2
VIEWS = {"L": 1, "M": 2, "R": 3}
SPLIT_FILES = {"xsub": "cross-subject.txt", "xview": "cross-view.txt"}
_VIDEO = re.compile(r"(\d{4})-([LMR])")


def parse_video_name(name: str) -> dict[str, int]:
    """``NNNN-V`` -> ``{video: NNNN, view: 1 | 2 | 3}`` (views L, M, R).

    Raises:
        ValueError: ``name`` does not have that form.
    """
    match = _VIDEO.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a PKU-MMD video name (NNNN-L, NNNN-M or NNNN-R)")
    return {"video": int(match.group(1)), "view": VIEWS[match.group(2)]}


def _loadtxt(path: Path, what: str, terminated: bool = False, **kwargs: object) -> np.ndarray:
    """``np.loadtxt`` of an ASCII file, every line a row, with every parsing failure turned into
    :class:`SkeletonFileError`. Blank lines (but trailing ones) and ``#`` are errors: ``np.loadtxt`` would skip
    them and shift every later row. With ``terminated`` a non-empty file must end with a line break (the released
    files do): a file cut inside its last number would otherwise read as a different value."""
    try:
        data = path.read_bytes()
        lines = data.decode("ascii").splitlines()
    except FileNotFoundError:
        raise SkeletonFileError(path, f"{what} file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SkeletonFileError(path, f"malformed {what} file ({err})") from None
    if terminated and data and not data.endswith((b"\n", b"\r")):
        raise SkeletonFileError(path, f"malformed {what} file (truncated: its last line has no line break)")
    while lines and not lines[-1].strip():
        lines.pop()
    blank = next((i for i, line in enumerate(lines) if not line.strip()), None)
    if blank is not None:
        raise SkeletonFileError(path, f"malformed {what} file (line {blank + 1} is empty)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            return np.loadtxt(lines, ndmin=2, comments=None, **kwargs)
    except (ValueError, OverflowError) as err:
        raise SkeletonFileError(path, f"malformed {what} file ({err})") from None


def read_pku_skeleton(path: str | PathLike) -> np.ndarray:
    """Read a skeleton file into ``(3, T, 25, 2)`` float32 (metres; an absent person is zero).

    Raises:
        SkeletonFileError: missing file, non-numeric, ragged or blank lines, a last line without a line break
            (truncation), a value count other than 150 per frame, non-finite values, or no frames.
    """
    path = Path(path)
    values = _loadtxt(path, "skeleton", terminated=True, dtype=np.float32)
    if values.size == 0:
        raise SkeletonFileError(path, "no frames")
    if values.shape[1] != NUM_PERSONS * NUM_JOINTS * 3:
        raise SkeletonFileError(path, f"{values.shape[1]} values per frame, expected {NUM_PERSONS * NUM_JOINTS * 3} "
                                f"({NUM_PERSONS} persons x {NUM_JOINTS} joints x 3)")
    if not np.isfinite(values).all():
        frame = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise SkeletonFileError(path, f"non-finite (NaN/inf) coordinates in frame {frame}")
    return np.ascontiguousarray(values.reshape(len(values), NUM_PERSONS, NUM_JOINTS, 3).transpose(3, 0, 2, 1))


def read_pku_labels(path: str | PathLike) -> np.ndarray:
    """Read a label file into ``(K, 4)`` int64 rows ``(action_id, start, end, confidence)``, in file order.

    Raises:
        SkeletonFileError: missing file, non-integer values, a row without 4 values, or an action id outside 1..51.
    """
    path = Path(path)
    rows = _loadtxt(path, "label", dtype=np.int64, delimiter=",")
    if rows.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    if rows.shape[1] != 4:
        raise SkeletonFileError(path, f"{rows.shape[1]} values per line, expected 4 (action_id,start,end,confidence)")
    bad = (rows[:, 0] < 1) | (rows[:, 0] > NUM_ACTIONS)
    if bad.any():
        line = int(np.argmax(bad)) + 1
        raise SkeletonFileError(path, f"line {line}: action id {rows[bad][0, 0]} outside 1..{NUM_ACTIONS}")
    return rows


def frame_labels_from_intervals(labels: np.ndarray, num_frames: int) -> np.ndarray:
    """``(K, 4)`` label rows -> ``(num_frames,)`` int64 frame labels: the action id inside ``[start, end)``
    (clamped to the sequence), 0 for background; a later row wins where rows overlap."""
    frame_labels = np.zeros(num_frames, dtype=np.int64)
    for action, start, end in labels[:, :3]:
        frame_labels[max(start, 0) : max(min(end, num_frames), 0)] = action
    return frame_labels


def read_pku_split(path: str | PathLike) -> tuple[list[str], list[str]]:
    """Read an official split file: (training videos from line 2, validation videos from line 4).

    Raises:
        SkeletonFileError: fewer than 4 lines, or a malformed video name.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
        train, val = ([v.strip() for v in lines[i].split(",") if v.strip()] for i in (1, 3))
        for name in (*train, *val):
            parse_video_name(name)
    except (IndexError, ValueError, UnicodeDecodeError) as err:
        raise SkeletonFileError(path, f"malformed split file ({err})") from None
    return train, val


@lru_cache(maxsize=4)
def _split_membership(split_dir: Path) -> dict[str, dict[str, int]]:
    """``{split: {video: 1 train | 0 validation}}`` from the official split files."""
    membership = {}
    for split, filename in SPLIT_FILES.items():
        train, val = read_pku_split(split_dir / filename)
        membership[split] = {**dict.fromkeys(val, 0), **dict.fromkeys(train, 1)}
    return membership


@lru_cache(maxsize=2)
def _cached_skeleton(path: Path) -> np.ndarray:
    """The last few sequences read, so that the clips of one video are cut from one parse."""
    data = read_pku_skeleton(path)
    data.flags.writeable = False
    return data


class _PKUMMDBase:
    layout = "ntu25"

    def __init__(self, dataset: str) -> None:
        self.name = dataset

    def _folders(self, raw: Path) -> tuple[Path, Path, Path]:
        raw = Path(raw)
        folders = (raw / "skeleton", raw / "label", raw / "split")
        for folder in folders:
            if not folder.is_dir():
                raise FileNotFoundError(f"{self.name}: folder {folder} not found (expected skeleton/, label/, split/)")
        for filename in SPLIT_FILES.values():
            if not (raw / "split" / filename).is_file():
                raise FileNotFoundError(f"{self.name}: split file {raw / 'split' / filename} not found")
        return folders

    def _videos(self, raw: Path) -> list[str]:
        skeleton_dir = self._folders(raw)[0]
        videos = sorted(p.stem for p in skeleton_dir.glob("*.txt") if _VIDEO.fullmatch(p.stem))
        if not videos:
            raise FileNotFoundError(f"{self.name}: no NNNN-V.txt skeleton files in {skeleton_dir}")
        return videos

    def _video_meta(self, raw: Path, video: str) -> dict[str, int]:
        path = Path(raw) / "skeleton" / f"{video}.txt"
        try:
            meta = parse_video_name(video)
        except ValueError as err:
            raise SkeletonFileError(path, str(err)) from None
        membership = _split_membership(Path(raw) / "split")
        return {**meta, **{split: videos.get(video, -1) for split, videos in membership.items()}}

    def splits(self, names: list[str], meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The official ``xsub`` and ``xview`` splits (meta carries each video's membership; -1: in neither list)."""
        return {split: np.asarray(meta[split]).astype(np.int8) for split in SPLIT_FILES}


class PKUMMDSequenceSource(_PKUMMDBase):
    """Whole untrimmed sequences with frame labels (0 background, 1..51 actions), for action segmentation.

    Items are video names; samples have data ``(3, T, 25, 2)``, label -1, ``frame_labels`` ``(T,)`` and meta
    ``{video, view, xsub, xview}``.
    """

    num_classes = NUM_ACTIONS + 1  # background and the 51 actions

    def __init__(self, dataset: str = "pku_mmd1_untrimmed") -> None:
        super().__init__(dataset)

    def items(self, raw: Path) -> list[str]:
        return self._videos(raw)

    def load(self, raw: Path, item: str) -> SkeletonSample:
        raw = Path(raw)
        meta = self._video_meta(raw, item)
        data = read_pku_skeleton(raw / "skeleton" / f"{item}.txt")
        labels = read_pku_labels(raw / "label" / f"{item}.txt")
        frame_labels = frame_labels_from_intervals(labels, data.shape[1])
        return SkeletonSample(name=item, data=data, label=-1, meta=meta, frame_labels=frame_labels)


class PKUMMDClipSource(_PKUMMDBase):
    """Trimmed action clips (51 classes), one per labelled interval of every video with a skeleton file.

    Items are ``<video>_<k>`` with ``k`` the 0-based line of the interval in the label file (e.g. ``0002-L_012``);
    samples have label ``action_id - 1`` and meta ``{video, view, xsub, xview, start, end}`` (clamped frames).
    """

    num_classes = NUM_ACTIONS

    def __init__(self, dataset: str = "pku_mmd1") -> None:
        super().__init__(dataset)

    def items(self, raw: Path) -> list[str]:
        """Clip keys; raises ``FileNotFoundError`` when a video's label file is missing."""
        raw = Path(raw)
        items = []
        for video in self._videos(raw):
            label_file = raw / "label" / f"{video}.txt"
            if not label_file.is_file():
                raise FileNotFoundError(f"{self.name}: label file {label_file} not found")
            labels = read_pku_labels(label_file)
            items.extend(f"{video}_{k:03d}" for k in np.flatnonzero(labels[:, 2] > labels[:, 1]))
        return items

    def load(self, raw: Path, item: str) -> SkeletonSample:
        raw = Path(raw)
        video, _, index = item.rpartition("_")
        label_file = raw / "label" / f"{video}.txt"
        labels = read_pku_labels(label_file)
        if not index.isdigit() or int(index) >= len(labels):
            raise SkeletonFileError(label_file, f"no interval {index!r} (the file has {len(labels)})")
        action, start, end, _ = labels[int(index)]
        meta = self._video_meta(raw, video)
        sequence = _cached_skeleton(raw / "skeleton" / f"{video}.txt")
        start, end = max(int(start), 0), min(int(end), sequence.shape[1])
        if end <= start:
            raise SkeletonFileError(label_file, f"interval {index} is empty within the {sequence.shape[1]} frames")
        data = sequence[:, start:end].copy()
        return SkeletonSample(name=item, data=data, label=int(action) - 1, meta={**meta, "start": start, "end": end})
