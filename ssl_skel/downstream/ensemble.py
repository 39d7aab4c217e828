"""Multi-stream ensembles: a weighted sum of the logits of models of different streams (joint, bone, motion, ...).

Weights are given, or chosen by a grid search on logits of TRAINING data. The test labels are never an input, so
the test set cannot take part in the choice. Logits of the training set itself are what a fitted model is most
confident about (often close to 100% accuracy for every weighting, so the choice falls back to the tie rule);
logits of a held-out part of the training set, from models trained without it, choose better.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "DEFAULT_WEIGHT_GRID",
    "EnsembleResult",
    "choose_ensemble_weights",
    "ensemble_logits",
    "multi_stream_ensemble",
]

#: weights tried per stream by :func:`choose_ensemble_weights` (0 drops a stream).
DEFAULT_WEIGHT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


def _stack(logits: Mapping[str, torch.Tensor], streams: Sequence[str], what: str) -> torch.Tensor:
    """``(S, N, K)`` float64 logits of ``streams``, checking that every stream has the same shape."""
    if set(logits) != set(streams):
        raise ValueError(f"{what}: streams {sorted(logits)}, expected {sorted(streams)}")
    shapes = {name: tuple(logits[name].shape) for name in streams}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 2:
        raise ValueError(f"{what}: every stream needs (N, K) logits of one shape, got {shapes}")
    return torch.stack([logits[name].detach().double() for name in streams])


def ensemble_logits(logits: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """``(N, K)`` float64 ``sum_s weights[s] * logits[s]`` of per-stream ``(N, K)`` logits."""
    streams = list(weights)
    stacked = _stack(logits, streams, "logits")
    w = torch.tensor([float(weights[s]) for s in streams], dtype=stacked.dtype, device=stacked.device)
    return torch.einsum("s,snk->nk", w, stacked)


def choose_ensemble_weights(
    train_logits: Mapping[str, torch.Tensor],
    train_labels: torch.Tensor,
    grid: Sequence[float] = DEFAULT_WEIGHT_GRID,
) -> tuple[dict[str, float], float]:
    """The weights (from ``grid`` per stream) of the best-scoring ensemble on training logits.

    Every combination of grid values except all-zero is scored by top-1 accuracy of the ensemble on
    ``train_logits`` (per stream ``(N, K)``) against ``train_labels`` ``(N,)``. Weights are normalised to sum 1,
    so combinations that are multiples of each other are one candidate. Ties go to the candidate closest
    (Euclidean) to equal weights, then to the first in grid order (streams in name order).

    Returns:
        ``(weights, training accuracy in [0, 1])``.
    """
    streams = sorted(train_logits)
    if not streams:
        raise ValueError("no streams to ensemble")
    stacked = _stack(train_logits, streams, "train_logits")
    labels = train_labels.to(stacked.device).long()
    if labels.shape != stacked.shape[1:2]:
        raise ValueError(f"train_labels {tuple(labels.shape)} for {stacked.shape[1]} samples")
    if not grid or min(grid) < 0 or max(grid) <= 0:
        raise ValueError(f"grid needs non-negative weights with at least one positive, got {grid}")
    uniform = torch.full((len(streams),), 1.0 / len(streams), dtype=torch.float64)
    seen: set[tuple[float, ...]] = set()
    best: tuple[float, float, torch.Tensor] | None = None  # (accuracy, -distance to uniform, weights)
    for combo in itertools.product(grid, repeat=len(streams)):
        w = torch.tensor(combo, dtype=torch.float64)
        if w.sum() <= 0:
            continue
        w = w / w.sum()
        key = tuple(round(x, 12) for x in w.tolist())
        if key in seen:
            continue
        seen.add(key)
        preds = torch.einsum("s,snk->nk", w.to(stacked.device), stacked).argmax(dim=1)
        score = ((preds == labels).double().mean().item(), -torch.dist(w, uniform).item())
        if best is None or score > best[:2]:
            best = (*score, w)
    return dict(zip(streams, best[2].tolist(), strict=True)), best[0]


@dataclass(frozen=True)
class EnsembleResult:
    """Outcome of :func:`multi_stream_ensemble`.

    Attributes:
        weights: ``{stream: weight}`` used.
        logits: ``(N_test, K)`` float64 weighted sum of the test logits.
        predictions: ``(N_test,)`` int64 argmax of ``logits``.
        train_accuracy: accuracy in [0, 1] of the chosen weights on the training logits (``None`` when the weights
            were given).
    """

    weights: dict[str, float]
    logits: torch.Tensor
    predictions: torch.Tensor
    train_accuracy: float | None


def multi_stream_ensemble(
    test_logits: Mapping[str, torch.Tensor],
    weights: Mapping[str, float] | None = None,
    train_logits: Mapping[str, torch.Tensor] | None = None,
    train_labels: torch.Tensor | None = None,
    grid: Sequence[float] = DEFAULT_WEIGHT_GRID,
) -> EnsembleResult:
    """Ensemble per-stream ``(N_test, K)`` test logits with given ``weights`` or weights chosen on training logits.

    Args:
        test_logits: ``{stream: (N_test, K)}``.
        weights: ``{stream: weight}`` for every stream; when ``None``, chosen by :func:`choose_ensemble_weights`.
        train_logits: ``{stream: (N_train, K)}`` logits of training data (needed when ``weights`` is ``None``).
        train_labels: ``(N_train,)`` labels of ``train_logits``.
        grid: per-stream weights tried by the search.
    """
    train_accuracy = None
    if weights is None:
        if train_logits is None or train_labels is None:
            raise ValueError("give weights, or train_logits and train_labels to choose them on training data")
        if set(train_logits) != set(test_logits):
            raise ValueError(f"train streams {sorted(train_logits)} differ from test streams {sorted(test_logits)}")
        weights, train_accuracy = choose_ensemble_weights(train_logits, train_labels, grid)
    logits = ensemble_logits(test_logits, weights)
    return EnsembleResult(dict(weights), logits, logits.argmax(dim=1), train_accuracy)
