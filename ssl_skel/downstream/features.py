"""Pooled features of a data module's splits, computed once, and loaders that serve them like clips.

The cached linear probe trains its head on :class:`FeatureDataset` batches drawn by the data module's own
training sampler (same order, batch size and ``drop_last`` as the clip loader), so that it sees exactly the
batches the end-to-end probe sees, only without running the frozen backbone every epoch.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from ..callbacks.knn_monitor import extract_features
from ..data.datamodule import SkeletonDataModule

__all__ = ["FeatureDataset", "feature_loaders", "split_features"]

Split = tuple[torch.Tensor, torch.Tensor]
"""``(features (N, D), labels (N,))``."""


class FeatureDataset(Dataset):
    """Precomputed ``features (N, D)`` with ``labels (N,)``; item ``i`` is ``{"features": (D,), "label": ()}``.

    Items may also be asked for as ``(position, seed)`` pairs (the data module's :class:`EpochSampler`); the seed
    is not used (features have no random crop).
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        if features.shape[0] != labels.shape[0]:
            raise ValueError(f"{features.shape[0]} features but {labels.shape[0]} labels")
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        position = item[0] if isinstance(item, tuple) else item
        return {"features": self.features[position], "label": self.labels[position]}


def split_features(module: L.LightningModule, datamodule: SkeletonDataModule) -> tuple[Split, Split]:
    """Pooled features of the un-augmented (labelled) training set in store order and of the evaluation split,
    from ``module.backbone`` in eval mode on the module's device, returned on the CPU."""
    train = extract_features(module, datamodule.train_eval_dataloader(), transform=datamodule.apply_stream)
    test = extract_features(module, datamodule.val_dataloader(), transform=datamodule.apply_stream)
    return (train[0].cpu(), train[1].cpu()), (test[0].cpu(), test[1].cpu())


def feature_loaders(
    train: Split, test: Split, train_loader: DataLoader, eval_batch_size: int
) -> tuple[DataLoader, DataLoader]:
    """Loaders over cached features: training batches in the order of ``train_loader`` (the data module's training
    loader over the same samples: its sampler, batch size and ``drop_last``), evaluation batches in order."""
    if len(train_loader.dataset) != len(train[0]):
        raise ValueError(f"the training loader has {len(train_loader.dataset)} samples, the cache {len(train[0])}")
    train_features = DataLoader(
        FeatureDataset(*train),
        batch_size=train_loader.batch_size,
        sampler=train_loader.sampler,
        drop_last=train_loader.drop_last,
    )
    test_features = DataLoader(FeatureDataset(*test), batch_size=eval_batch_size)
    return train_features, test_features
