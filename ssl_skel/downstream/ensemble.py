"""Multi-stream ensembles: a weighted sum of the logits of models of different streams (joint, bone, motion, ...).

Weights are given, or chosen by a grid search on logits of TRAINING data. The test labels are never an input, so
the test set cannot take part in the choice. Logits of the training set itself are what a fitted model is most
confident about (often close to 100% accuracy for every weighting, so the choice falls back to the tie rule);
logits of a held-out part of the training set, from models trained without it, choose better.

``ssl-skel ensemble --runs joint=DIR bone=DIR motion=DIR [--weights joint=1,bone=1,motion=0.5] [--out DIR]``
(:func:`run_ensemble`) combines finished ``ssl-skel linear | finetune`` runs, one per stream: their
``test_logits.pt`` (and, to choose the weights, ``train_logits.pt``: the final model on the un-augmented training
set), which must hold the same samples in the same order in every run. It prints each stream's and the ensemble's
test top-1 and writes them, with the weights, to ``<out>/metrics.json``.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint_io import load_checkpoint_file
from .errors import EvaluationError
from .report import format_table, write_metrics

__all__ = [
    "DEFAULT_WEIGHT_GRID",
    "EnsembleResult",
    "choose_ensemble_weights",
    "ensemble_logits",
    "load_run_logits",
    "multi_stream_ensemble",
    "run_ensemble",
]

LOGIT_KEYS = ("logits", "labels", "indices")

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


def load_run_logits(run_dir: str | Path, part: str) -> dict[str, torch.Tensor]:
    """``<run_dir>/<part>_logits.pt`` (``part``: ``test`` or ``train``) of a linear / finetune run, read weights-only:
    ``{"logits": (N, K), "labels": (N,), "indices": (N,)}``.

    Raises:
        FileNotFoundError: the run directory has no such file.
        CheckpointError: the file is unreadable or holds objects other than tensors and plain containers.
        EvaluationError: the file does not hold the three tensors of matching lengths.
    """
    path = Path(run_dir) / f"{part}_logits.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: is {run_dir} the directory of a finished ssl-skel linear or finetune run?"
        )
    record = load_checkpoint_file(path)
    if not isinstance(record, Mapping) or not all(isinstance(record.get(k), torch.Tensor) for k in LOGIT_KEYS):
        raise EvaluationError(f"{path}: expected a dict of tensors {list(LOGIT_KEYS)}")
    logits, labels, indices = (record[k] for k in LOGIT_KEYS)
    if logits.ndim != 2 or not labels.shape == indices.shape == (logits.shape[0],):
        raise EvaluationError(
            f"{path}: logits {tuple(logits.shape)}, labels {tuple(labels.shape)} and indices {tuple(indices.shape)} "
            "are not (N, K), (N,), (N,)"
        )
    return {k: record[k] for k in LOGIT_KEYS}


def _same_samples(records: Mapping[str, Mapping[str, torch.Tensor]], runs: Mapping[str, Path], part: str) -> None:
    """Refuse ``part`` logits of the streams that differ from the first stream's in samples, order or classes."""
    (first, reference), *others = records.items()
    for stream, record in others:
        problem = None
        if record["logits"].shape[1] != reference["logits"].shape[1]:
            problem = f"{record['logits'].shape[1]} classes against {reference['logits'].shape[1]}"
        elif not torch.equal(record["indices"], reference["indices"]):
            problem = f"other samples or order ({len(record['indices'])} against {len(reference['indices'])} samples)"
        elif not torch.equal(record["labels"], reference["labels"]):
            problem = "the same samples with other labels"
        if problem:
            raise EvaluationError(
                f"streams {first} ({runs[first]}) and {stream} ({runs[stream]}) differ in their {part} logits: "
                f"{problem}; an ensemble needs runs on the same store, split and training subset"
            )


def _assignments(items: Sequence[str], what: str) -> dict[str, str]:
    """``["joint=a", "bone=b,motion=c"]`` -> ``{"joint": "a", "bone": "b", "motion": "c"}``."""
    pairs: dict[str, str] = {}
    for item in (part for arg in items for part in arg.split(",") if part):
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{what}: expected STREAM=VALUE, got {item!r}")
        if name in pairs:
            raise ValueError(f"{what}: stream {name!r} given twice")
        pairs[name] = value
    return pairs


def _top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * float((logits.argmax(dim=1) == labels.to(logits.device)).double().mean())


def run_ensemble(argv: list[str]) -> dict[str, float]:
    """``ssl-skel ensemble ARGS`` (see the module docstring); returns ``metrics.json``'s content: per stream
    ``<stream>/test/top1``, and ``ensemble/test/top1``, ``ensemble/weight/<stream>`` and, when the weights were
    chosen, ``ensemble/train/top1`` (their accuracy on the training logits), in percent."""
    parser = argparse.ArgumentParser(
        prog="ssl-skel ensemble",
        description="Multi-stream ensemble: the weighted sum of the test logits of ssl-skel linear / finetune runs "
        "(one per stream), the weights given or chosen on the runs' training-set logits (never the test set).",
    )
    parser.add_argument("--runs", nargs="+", required=True, metavar="STREAM=DIR", help="run directory of each stream")
    parser.add_argument(
        "--weights",
        nargs="+",
        metavar="STREAM=W",
        help="weight of every stream, e.g. joint=1,bone=1,motion=0.5 "
        "(default: the best on the training logits over --grid)",
    )
    parser.add_argument(
        "--grid", default=",".join(f"{w:g}" for w in DEFAULT_WEIGHT_GRID), help="weights tried per stream when choosing"
    )
    parser.add_argument("--out", default="runs/ensemble", help="output directory (metrics.json)")
    args = parser.parse_args(argv)
    try:
        runs = {stream: Path(d) for stream, d in _assignments(args.runs, "--runs").items()}
        weights = None
        if args.weights is not None:
            weights = {stream: float(w) for stream, w in _assignments(args.weights, "--weights").items()}
        grid = [float(w) for w in args.grid.split(",")]
    except ValueError as err:
        parser.error(str(err))
    if weights is not None and set(weights) != set(runs):
        parser.error(f"--weights names streams {sorted(weights)}, --runs {sorted(runs)}: give a weight for every run")
    if min(grid) < 0 or max(grid) <= 0:
        parser.error(f"--grid needs non-negative weights with at least one positive, got {args.grid}")
    test = {stream: load_run_logits(d, "test") for stream, d in runs.items()}
    _same_samples(test, runs, "test")
    train_logits = train_labels = None
    if weights is None:
        train = {stream: load_run_logits(d, "train") for stream, d in runs.items()}
        _same_samples(train, runs, "train")
        train_logits = {stream: record["logits"] for stream, record in train.items()}
        train_labels = next(iter(train.values()))["labels"]
    labels = next(iter(test.values()))["labels"]
    result = multi_stream_ensemble({s: r["logits"] for s, r in test.items()}, weights, train_logits, train_labels, grid)
    metrics = {f"{stream}/test/top1": _top1(record["logits"], labels) for stream, record in test.items()}
    metrics["ensemble/test/top1"] = _top1(result.logits, labels)
    metrics.update({f"ensemble/weight/{stream}": float(w) for stream, w in result.weights.items()})
    chosen = "given"
    if result.train_accuracy is not None:
        metrics["ensemble/train/top1"] = 100.0 * result.train_accuracy
        chosen = f"chosen on the training logits (train top-1 {100.0 * result.train_accuracy:.2f})"
    out = Path(args.out)
    write_metrics(out, metrics)
    rows = [(f"{stream} ({runs[stream]})", f"{metrics[f'{stream}/test/top1']:.2f}") for stream in runs]
    rows.append(("weights " + chosen, ", ".join(f"{s}={w:.3g}" for s, w in result.weights.items())))
    rows.append(("ensemble test/top1", f"{metrics['ensemble/test/top1']:.2f}"))
    print(format_table(f"ssl-skel ensemble: {out} ({len(labels)} test samples)", rows))
    return metrics
