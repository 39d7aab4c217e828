"""NW-UCLA Multiview Action3D, CTR-GCN json release (``all_sqe/aAA_sSS_eEE_vVV.json``).

Each file is ``{"file_name": "aAA_sSS_eEE_vVV", "skeletons": [T][20][3], "label": 1..10}`` (metres, camera
coordinates, one person). Standard protocol (split ``view``): views 1 and 2 train, view 3 test.
"""

from __future__ import annotations

import json
import re
from os import PathLike
from pathlib import Path

import numpy as np

from .sample import SkeletonFileError, SkeletonSample

__all__ = ["NWUCLASource", "parse_nw_ucla_name", "read_nw_ucla"]

NUM_JOINTS = 20
NUM_CLASSES = 10
TRAIN_VIEWS = (1, 2)
_NAME = re.compile(r"a(\d+)_s(\d+)_e(\d+)_v(\d+)")


def parse_nw_ucla_name(name: str) -> dict[str, int]:
    """``aAA_sSS_eEE_vVV`` -> ``{action, subject, repetition, view}``.

    Raises:
        ValueError: ``name`` does not have that form.
    """
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not an NW-UCLA clip name (aAA_sSS_eEE_vVV)")
    return dict(zip(("action", "subject", "repetition", "view"), map(int, match.groups()), strict=True))


def read_nw_ucla(path: str | PathLike) -> SkeletonSample:
    """Read one json clip into data ``(3, T, 20, 1)`` float32, label ``label - 1`` and meta from its name.

    Raises:
        SkeletonFileError: unreadable or malformed json, a missing key, a name that does not match the file,
            a shape other than ``(T, 20, 3)`` with ``T >= 1``, non-finite values, or a label outside 1..10.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise SkeletonFileError(path, f"cannot parse json ({err})") from None
    if not isinstance(record, dict):
        raise SkeletonFileError(path, f"expected a json object, got {type(record).__name__}")
    missing = [key for key in ("file_name", "skeletons", "label") if key not in record]
    if missing:
        raise SkeletonFileError(path, f"missing key(s) {missing}")
    name = record["file_name"]
    if name != path.stem:
        raise SkeletonFileError(path, f"file_name {name!r} does not match the file name")
    try:
        meta = parse_nw_ucla_name(name)
    except ValueError as err:
        raise SkeletonFileError(path, str(err)) from None
    label = record["label"]
    if not isinstance(label, int) or isinstance(label, bool) or not 1 <= label <= NUM_CLASSES:
        raise SkeletonFileError(path, f"label {label!r} is not an integer in 1..{NUM_CLASSES}")
    try:
        joints = np.array(record["skeletons"], dtype=np.float32)
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        raise SkeletonFileError(path, f"skeletons are not a numeric (T, {NUM_JOINTS}, 3) array ({err})") from None
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) == 0:
        raise SkeletonFileError(path, f"skeletons have shape {joints.shape}, expected (T >= 1, {NUM_JOINTS}, 3)")
    if not np.isfinite(joints).all():
        raise SkeletonFileError(path, "non-finite (NaN/inf) coordinates")
    data = np.ascontiguousarray(joints.transpose(2, 0, 1)[..., None])
    return SkeletonSample(name=name, data=data, label=label - 1, meta=meta)


class NWUCLASource:
    """The NW-UCLA json clips in ``raw/all_sqe`` (or directly in ``raw``); split ``view``: views 1+2 train."""

    layout = "nw_ucla20"
    num_classes = NUM_CLASSES

    def __init__(self, dataset: str = "nw_ucla") -> None:
        self.name = dataset

    @staticmethod
    def _folder(raw: Path) -> Path:
        raw = Path(raw)
        return raw / "all_sqe" if (raw / "all_sqe").is_dir() else raw

    def items(self, raw: Path) -> list[str]:
        folder = self._folder(raw)
        items = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        if not items:
            raise FileNotFoundError(f"{self.name}: no .json clips in {folder}")
        return items

    def load(self, raw: Path, item: str) -> SkeletonSample:
        return read_nw_ucla(self._folder(raw) / f"{item}.json")

    def splits(self, names: list[str], meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"view": np.isin(meta["view"], TRAIN_VIEWS).astype(np.int8)}
