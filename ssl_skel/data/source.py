"""Data-set sources: how ``ssl-skel prepare`` discovers, reads and splits one raw data set.

A source lists its items cheaply (for a progress bar), reads one item into a :class:`SkeletonSample` (raising
:class:`SkeletonFileError` for bad input, so that preparation can skip and count it), and computes its named
splits from the samples' metadata.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .sample import SkeletonSample

__all__ = ["SOURCES", "DatasetSource", "get_source"]


@runtime_checkable
class DatasetSource(Protocol):
    """Protocol of a raw data set reader used by ``prepare``.

    Attributes:
        name: data-set name (a key of :data:`SOURCES`).
        layout: skeleton layout name of the samples.
        num_classes: number of action classes.
    """

    name: str
    layout: str
    num_classes: int

    def items(self, raw: Path) -> list[str]:
        """Keys of every item under ``raw`` in a stable order; raises ``FileNotFoundError`` naming what is missing."""
        ...

    def load(self, raw: Path, item: str) -> SkeletonSample:
        """Read one item; raises :class:`~ssl_skel.data.sample.SkeletonFileError` naming the file and problem."""
        ...

    def splits(self, names: list[str], meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named splits over the loaded samples: ``{split: int8 array}`` with 1 = train, 0 = test, -1 = unused.

        ``meta`` holds one array per metadata key, aligned with ``names``.
        """
        ...


#: data-set name -> "module:class" of its source (imported on first use).
SOURCES: dict[str, str] = {
    "ntu60": "ssl_skel.data.ntu_raw:NTURawSource",
    "ntu120": "ssl_skel.data.ntu_raw:NTURawSource",
    "ntu_npz": "ssl_skel.data.ntu_npz:NTUNpzSource",
    "nw_ucla": "ssl_skel.data.nw_ucla:NWUCLASource",
    "pku_mmd1": "ssl_skel.data.pku_mmd:PKUMMDClipSource",
    "pku_mmd1_untrimmed": "ssl_skel.data.pku_mmd:PKUMMDSequenceSource",
    "pyskl": "ssl_skel.data.pyskl_pkl:PysklSource",
    "synthetic": "ssl_skel.data.synthetic:SyntheticSource",
}


def get_source(name: str, **options: object) -> DatasetSource:
    """Instantiate the source registered as ``name``; ``options`` go to its constructor.

    Every source class takes ``dataset: str`` (its registry name) as its first keyword argument.
    """
    try:
        target = SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; choose one of {sorted(SOURCES)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(dataset=name, **options)
