"""pyskl / mmaction2 skeleton annotation pickles.

Format: ``{"split": {name: [frame_dir, ...]}, "annotations": [{"frame_dir", "label", "total_frames",
"keypoint" (M, T, V, C), "keypoint_score" (M, T, V) for 2D, "img_shape" (h, w)}, ...]}``. The file is read with
:mod:`~ssl_skel.data.safe_pickle`, so a hostile pickle cannot run code.

Split names ``<family>_train`` and ``<family>_val`` / ``<family>_test`` (e.g. ``xsub_train``, ``xsub_val``) form
the split ``<family>``; bare ``train`` / ``val`` / ``test`` form the split ``default``.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from ..skeleton.layouts import get_layout
from .safe_pickle import safe_load
from .sample import SkeletonFileError, SkeletonSample

__all__ = ["PysklAnnotations", "PysklSource", "annotation_to_sample", "split_family"]

_REQUIRED = ("frame_dir", "label", "total_frames", "keypoint")
_SPLIT_PREFIX = "split_"


def split_family(name: str) -> tuple[str, int] | None:
    """``"xsub_train"`` -> ``("xsub", 1)``, ``"xsub_val"`` / ``"xsub_test"`` -> ``("xsub", 0)``, ``"train"`` ->
    ``("default", 1)``; ``None`` for other names."""
    family, _, part = name.rpartition("_")
    role = {"train": 1, "val": 0, "test": 0}.get(part)
    return None if role is None else (family or "default", role)


def annotation_to_sample(path: str | PathLike, ann: Mapping[str, Any], num_joints: int, num_classes: int
                         ) -> SkeletonSample:
    """One annotation -> data ``(C, T, V, M)`` float32; 2D keypoints with scores give ``C = 3`` (x, y, score).

    Raises:
        SkeletonFileError: a missing key, a shape or joint count mismatch, no frames or persons, non-finite
            values, or a label outside ``0 .. num_classes - 1``.
    """
    if not isinstance(ann, Mapping):
        raise SkeletonFileError(path, f"an annotation is a {type(ann).__name__}, not a dict")
    name = ann.get("frame_dir", "?")
    missing = [key for key in _REQUIRED if key not in ann]
    if missing:
        raise SkeletonFileError(path, f"annotation {name!r}: missing key(s) {missing}")

    def fail(problem: str) -> SkeletonFileError:
        return SkeletonFileError(path, f"annotation {name!r}: {problem}")

    try:
        keypoint = np.asarray(ann["keypoint"], dtype=np.float32)
        score = None if ann.get("keypoint_score") is None else np.asarray(ann["keypoint_score"], dtype=np.float32)
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        raise fail(f"keypoint data are not numeric arrays ({err})") from None
    label, total_frames = ann["label"], ann["total_frames"]
    if isinstance(label, bool) or not isinstance(label, int | np.integer) or not 0 <= label < num_classes:
        raise fail(f"label {label!r} is not an integer in 0..{num_classes - 1}")
    if keypoint.ndim != 4 or keypoint.shape[3] not in (2, 3):
        raise fail(f"keypoint has shape {keypoint.shape}, expected (M, T, V, 2 or 3)")
    persons, frames, joints, _ = keypoint.shape
    if persons == 0 or frames == 0:
        raise fail(f"keypoint has {persons} persons and {frames} frames; both must be >= 1")
    if joints != num_joints:
        raise fail(f"keypoint has {joints} joints, the layout has {num_joints}")
    if isinstance(total_frames, bool) or not isinstance(total_frames, int | np.integer) or total_frames != frames:
        raise fail(f"total_frames is {total_frames!r} but keypoint has {frames} frames")
    if score is not None:
        if score.shape != keypoint.shape[:3]:
            raise fail(f"keypoint_score has shape {score.shape}, expected {keypoint.shape[:3]}")
        keypoint = np.concatenate([keypoint, score[..., None]], axis=3)
    if not np.isfinite(keypoint).all():
        raise fail("non-finite (NaN/inf) keypoints or scores")
    meta = {}
    img_shape = ann.get("img_shape")
    if isinstance(img_shape, tuple | list) and len(img_shape) == 2 and all(isinstance(s, int) for s in img_shape):
        meta = {"img_height": int(img_shape[0]), "img_width": int(img_shape[1])}
    data = np.ascontiguousarray(keypoint.transpose(3, 1, 2, 0))
    return SkeletonSample(name=str(name), data=data, label=int(label), meta=meta)


class PysklAnnotations:
    """A loaded annotation file: annotations by ``frame_dir`` and ``{family: {frame_dir: 1 train | 0 test}}``.

    Raises:
        SkeletonFileError: unsafe or malformed pickle, missing ``annotations`` / ``split``, duplicate
            ``frame_dir``, or a frame_dir in both the train and the test list of one split.
    """

    def __init__(self, path: str | PathLike) -> None:
        self.path = Path(path)
        content = safe_load(self.path)
        if not isinstance(content, dict) or not isinstance(content.get("annotations"), list):
            raise SkeletonFileError(path, "expected a dict with an 'annotations' list")
        splits = content.get("split")
        if not isinstance(splits, dict):
            raise SkeletonFileError(path, "missing key 'split' (a dict of frame_dir lists)")
        self.annotations: dict[str, Any] = {}
        for index, ann in enumerate(content["annotations"]):
            if not isinstance(ann, dict) or not isinstance(ann.get("frame_dir"), str):
                raise SkeletonFileError(path, f"annotation {index}: missing key 'frame_dir'")
            if ann["frame_dir"] in self.annotations:
                raise SkeletonFileError(path, f"duplicate frame_dir {ann['frame_dir']!r}")
            self.annotations[ann["frame_dir"]] = ann
        self.membership: dict[str, dict[str, int]] = {}
        for split_name, frame_dirs in splits.items():
            family = split_family(str(split_name))
            if family is None:
                continue
            if not isinstance(frame_dirs, list | tuple) or not all(isinstance(f, str) for f in frame_dirs):
                raise SkeletonFileError(path, f"split {split_name!r} is not a list of frame_dir names")
            members = self.membership.setdefault(family[0], {})
            for frame_dir in frame_dirs:
                if members.get(frame_dir, family[1]) != family[1]:
                    raise SkeletonFileError(path, f"{frame_dir!r} is in both the train and test lists of {family[0]}")
                members[frame_dir] = family[1]


class PysklSource:
    """A pyskl annotation pickle (``raw`` is the file, or a directory holding one ``.pkl``).

    Items are the ``frame_dir`` names in annotation order; meta carries ``split_<family>`` (1 train, 0 test,
    -1 in neither list) for each split family of the file, and ``img_height`` / ``img_width`` when given.

    Args:
        dataset: registry name.
        layout: layout of the keypoints (``coco17``, ``openpose18``, ``ntu25``, ...); checked against V.
        num_classes: number of action classes (labels are checked against it).
        filename: the ``.pkl`` inside ``raw`` when ``raw`` is a directory.
    """

    def __init__(self, dataset: str = "pyskl", layout: str = "coco17", num_classes: int = 60,
                 filename: str | None = None) -> None:
        self.name = dataset
        self.layout = get_layout(layout).name
        self.num_classes = num_classes
        self.filename = filename
        self._cache: dict[Path, PysklAnnotations] = {}

    def _annotations(self, raw: Path) -> PysklAnnotations:
        path = Path(raw)
        if path.is_dir():
            found = [path / self.filename] if self.filename else sorted(path.glob("*.pkl"))
            if len(found) != 1:
                raise FileNotFoundError(f"{self.name}: expected one .pkl in {path}, found {len(found)}; set `filename`")
            path = found[0]
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: annotation file {path} not found")
        if path not in self._cache:
            self._cache[path] = PysklAnnotations(path)
        return self._cache[path]

    def items(self, raw: Path) -> list[str]:
        return list(self._annotations(raw).annotations)

    def load(self, raw: Path, item: str) -> SkeletonSample:
        annotations = self._annotations(raw)
        sample = annotation_to_sample(annotations.path, annotations.annotations[item],
                                      get_layout(self.layout).num_joints, self.num_classes)
        for family, members in annotations.membership.items():
            sample.meta[_SPLIT_PREFIX + family] = members.get(item, -1)
        return sample

    def splits(self, names: list[str], meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {key.removeprefix(_SPLIT_PREFIX): np.asarray(values).astype(np.int8)
                for key, values in meta.items() if key.startswith(_SPLIT_PREFIX)}
