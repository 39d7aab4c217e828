"""NTU RGB+D 60/120: sample names, the standard split rules, and the sample-statistics lists.

Split arrays follow :class:`~ssl_skel.data.source.DatasetSource`: int8, 1 = train, 0 = test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "NTU60_XSUB_TRAIN_SUBJECTS",
    "NTU120_XSUB_TRAIN_SUBJECTS",
    "XVIEW_TRAIN_CAMERAS",
    "NTUStatistics",
    "ntu_splits",
    "parse_ntu_name",
    "read_ntu_statistics",
    "xset_split",
    "xsub_split",
    "xview_split",
]

#: Cross-subject training performers of NTU RGB+D 60.
NTU60_XSUB_TRAIN_SUBJECTS: tuple[int, ...] = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
#: The 53 cross-subject training performers of NTU RGB+D 120 (the NTU-60 list plus 33 more).
NTU120_XSUB_TRAIN_SUBJECTS: tuple[int, ...] = (
    *NTU60_XSUB_TRAIN_SUBJECTS,
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93,
    94, 95, 97, 98, 100, 103,
)  # fmt: skip
#: Cross-view training cameras (NTU-60).
XVIEW_TRAIN_CAMERAS: tuple[int, ...] = (2, 3)

_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


def parse_ntu_name(name: str) -> dict[str, int]:
    """``SsssCcccPpppRrrrAaaa`` -> ``{setup, camera, subject, replication, action}`` (1-based ints).

    Raises:
        ValueError: ``name`` does not contain such a sample name.
    """
    match = _NAME.search(name)
    if match is None:
        raise ValueError(f"{name!r} is not an NTU sample name (SsssCcccPpppRrrrAaaa)")
    return dict(zip(("setup", "camera", "subject", "replication", "action"), map(int, match.groups()), strict=True))


def xsub_split(subject: np.ndarray, train_subjects: tuple[int, ...]) -> np.ndarray:
    """Cross-subject split: ``(N,)`` performer ids -> int8 1 where the performer is a training subject."""
    return np.isin(np.asarray(subject), train_subjects).astype(np.int8)


def xview_split(camera: np.ndarray) -> np.ndarray:
    """Cross-view split (NTU-60): ``(N,)`` camera ids -> int8 1 for cameras 2 and 3."""
    return np.isin(np.asarray(camera), XVIEW_TRAIN_CAMERAS).astype(np.int8)


def xset_split(setup: np.ndarray) -> np.ndarray:
    """Cross-setup split (NTU-120): ``(N,)`` setup ids -> int8 1 for even setup ids."""
    return (np.asarray(setup) % 2 == 0).astype(np.int8)


def ntu_splits(dataset: str, meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The standard splits of ``dataset`` (``"ntu60"``: xsub + xview; ``"ntu120"``: xsub + xset).

    ``meta`` needs ``subject`` and ``camera`` (ntu60) or ``subject`` and ``setup`` (ntu120) arrays.
    """
    if dataset == "ntu60":
        return {"xsub": xsub_split(meta["subject"], NTU60_XSUB_TRAIN_SUBJECTS), "xview": xview_split(meta["camera"])}
    if dataset == "ntu120":
        return {"xsub": xsub_split(meta["subject"], NTU120_XSUB_TRAIN_SUBJECTS), "xset": xset_split(meta["setup"])}
    raise ValueError(f"unknown NTU data set {dataset!r}; expected 'ntu60' or 'ntu120'")


@dataclass(frozen=True)
class NTUStatistics:
    """The sample lists of one NTU release, aligned row by row.

    Attributes:
        names: ``(N,)`` sample names of the samples with skeletons.
        meta: ``{setup, camera, subject, replication, action}`` -> ``(N,)`` int64, 1-based.
        missing: names of the samples whose skeleton files are empty (not in ``names``).
    """

    names: np.ndarray
    meta: dict[str, np.ndarray]
    missing: tuple[str, ...]


_STAT_FILES = {"setup": "setup", "camera": "camera", "subject": "performer", "replication": "replication",
               "action": "label"}  # fmt: skip
_MISSING_FILES = {
    "ntu60": "samples_with_missing_skeletons.txt",
    "ntu120": "NTU_RGBD120_samples_with_missing_skeletons.txt",
}


def read_ntu_statistics(directory: str | Path, dataset: str | None = None) -> NTUStatistics:
    """Read ``skes_available_name.txt`` and its aligned id lists from ``directory`` (e.g. ``statistics/ntu60``).

    ``dataset`` (``"ntu60"``/``"ntu120"``, default: the directory name) picks the missing-skeleton list.

    Raises:
        FileNotFoundError: a list is missing.
        ValueError: the lists are not aligned or not integer.
    """
    directory = Path(directory)
    dataset = dataset or directory.name
    if dataset not in _MISSING_FILES:
        raise ValueError(f"unknown NTU data set {dataset!r}; expected 'ntu60' or 'ntu120'")
    names_file = directory / "skes_available_name.txt"
    if not names_file.is_file():
        raise FileNotFoundError(f"NTU statistics: {names_file} not found")
    names = np.array(names_file.read_text().split())
    meta: dict[str, np.ndarray] = {}
    for key, stem in _STAT_FILES.items():
        path = directory / f"{stem}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"NTU statistics: {path} not found")
        values = np.array(path.read_text().split(), dtype=np.int64)
        if len(values) != len(names):
            raise ValueError(f"{path}: {len(values)} rows, but {names_file.name} lists {len(names)} samples")
        meta[key] = values
    missing_file = directory / _MISSING_FILES[dataset]
    if not missing_file.is_file():
        raise FileNotFoundError(f"NTU statistics: {missing_file} not found")
    return NTUStatistics(names=names, meta=meta, missing=tuple(missing_file.read_text().split()))
