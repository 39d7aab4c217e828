"""Skeleton data: readers (one module per on-disk format), the prepared-data store, preprocessing, the synthetic
data set and the LightningDataModule."""

from .datamodule import EpochSampler, SkeletonDataModule, SkeletonDataset
from .sample import SkeletonFileError, SkeletonSample
from .source import SOURCES, DatasetSource, get_source
from .store import SkeletonStore, StoreWriter

__all__ = [
    "SOURCES", "DatasetSource", "EpochSampler", "SkeletonDataModule", "SkeletonDataset", "SkeletonFileError",
    "SkeletonSample", "SkeletonStore", "StoreWriter", "get_source",
]
