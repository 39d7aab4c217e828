"""k-nearest-neighbour classification of embeddings by cosine similarity (the kNN evaluation protocol).

``k = 1`` is the plain nearest neighbour; ``k > 1`` is a vote of the k nearest training samples weighted by
``exp(sim / temperature)``. All ``ks`` are answered from one top-k search with the largest k, over chunks of
queries, so at most ``chunk_size x n_train`` similarities exist at a time (one buffer, reused by every chunk).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = ["KNNAccuracy", "knn_predict"]


def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    ks: Sequence[int] = (1, 10, 20),
    num_classes: int | None = None,
    temperature: float = 0.07,
    chunk_size: int = 256,
) -> dict[int, torch.Tensor]:
    """Predicted labels ``{k: (n_test,) long}`` of test features (n_test, D) against train (n_train, D).

    Features are L2-normalised here. ``num_classes`` defaults to ``train_labels.max() + 1``. A k larger than
    n_train uses all training samples.
    """
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks}")
    if train_features.shape[0] == 0 or train_features.shape[0] != train_labels.shape[0]:
        raise ValueError(
            f"need a non-empty training bank with one label per feature, got {train_features.shape[0]} features "
            f"and {train_labels.shape[0]} labels"
        )
    train_features = F.normalize(train_features.detach(), dim=1)
    test_features = F.normalize(test_features.detach().to(train_features.dtype), dim=1)
    train_labels = train_labels.long()
    n_train = train_features.shape[0]
    num_classes = int(train_labels.max()) + 1 if num_classes is None else num_classes
    k_max = min(max(ks), n_train)
    preds: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    # one similarity buffer for every chunk: a fresh (chunk_size, n_train) block per chunk goes back to the OS and
    # is page-faulted in again each time (about 15% of the CPU time of a 60k x 60k run)
    sim = train_features.new_empty(min(chunk_size, test_features.shape[0]), n_train)
    for chunk in test_features.split(chunk_size):
        chunk_sim = torch.mm(chunk, train_features.t(), out=sim[: chunk.shape[0]])
        top_sim, top_idx = chunk_sim.topk(k_max, dim=1)
        top_labels = train_labels[top_idx]
        # exp((s - s_max) / T) has the argmax of exp(s / T) without overflow for small temperatures
        weights = torch.exp((top_sim - top_sim[:, :1]) / temperature)
        for k in ks:
            if k == 1:
                preds[k].append(top_labels[:, 0])
                continue
            kk = min(k, n_train)
            votes = torch.zeros(chunk.shape[0], num_classes, dtype=weights.dtype, device=weights.device)
            votes.scatter_add_(1, top_labels[:, :kk], weights[:, :kk])
            preds[k].append(votes.argmax(dim=1))
    return {k: torch.cat(p) for k, p in preds.items()}


class KNNAccuracy(Metric):
    """Top-1 kNN accuracy of test embeddings against a bank of train embeddings, gathered across processes.

    ``update(features (B, D), labels (B,), train)`` adds to the train bank or to the test set; ``compute()``
    returns ``{"knn_top1_k{k}": accuracy in [0, 1]}`` for every k in ``ks``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    train_features: list[torch.Tensor]
    train_labels: list[torch.Tensor]
    test_features: list[torch.Tensor]
    test_labels: list[torch.Tensor]

    def __init__(
        self,
        ks: Sequence[int] = (1, 10, 20),
        num_classes: int | None = None,
        temperature: float = 0.07,
        chunk_size: int = 256,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not ks or min(ks) < 1:
            raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks}")
        self.ks = tuple(ks)
        self.num_classes = num_classes
        self.temperature = temperature
        self.chunk_size = chunk_size
        for name in ("train_features", "train_labels", "test_features", "test_labels"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, features: torch.Tensor, labels: torch.Tensor, train: bool) -> None:
        """Store L2-normalised, detached ``features`` (B, D) and ``labels`` (B,) in the train bank or test set."""
        features = F.normalize(features.detach().float(), dim=1)
        labels = labels.detach().long()
        if train:
            self.train_features.append(features)
            self.train_labels.append(labels)
        else:
            self.test_features.append(features)
            self.test_labels.append(labels)

    def compute(self) -> dict[str, torch.Tensor]:
        """Accuracy per k over every test sample seen (all processes)."""
        # states are lists before a distributed sync and concatenated tensors after it; len() works for both
        if len(self.train_features) == 0 or len(self.test_features) == 0:
            raise ValueError("KNNAccuracy needs both train (train=True) and test (train=False) updates before compute")
        train_labels = dim_zero_cat(self.train_labels)
        test_labels = dim_zero_cat(self.test_labels)
        num_classes = self.num_classes
        if num_classes is None:
            num_classes = int(torch.maximum(train_labels.max(), test_labels.max())) + 1
        preds = knn_predict(
            dim_zero_cat(self.train_features), train_labels, dim_zero_cat(self.test_features), self.ks, num_classes,
            self.temperature, self.chunk_size,
        )
        return {f"knn_top1_k{k}": (preds[k] == test_labels).float().mean() for k in self.ks}
