"""The NTU RGB+D 120 one-shot protocol (Liu et al., TPAMI 2020; used by SkeletonX and others).

- Evaluation classes: the 20 actions A001, A007, ..., A115 (every 6th; 0-based class ids 0, 6, ..., 114).
  The other 100 classes are auxiliary data, the only labelled data a model may train on.
- Exemplars: one sample per evaluation class, ``S001C003P008R001Axxx`` for actions up to 60 and
  ``S018C003P008R001Axxx`` above.
- Evaluation set: "every other sample of the 20 classes", read as ALL samples of the 20 classes except the 20
  exemplars (not every second sample).
- Prediction: the class of the exemplar with the highest cosine similarity of pooled features.

The protocol uses the whole data set: the xsub / xset split columns of a store play no part in it.
``ssl-skel oneshot -c configs/eval/oneshot/ntu120.yaml --model.pretrained CKPT --data.root STORE`` runs it
(:mod:`ssl_skel.downstream.run`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..metrics.knn import knn_predict
from .errors import EvaluationError

__all__ = [
    "ONE_SHOT_CLASSES",
    "OneShotSplit",
    "exemplar_name",
    "one_shot_accuracy",
    "one_shot_predict",
    "one_shot_split",
]

NUM_CLASSES = 120
#: 0-based class ids of the evaluation classes A001, A007, ..., A115.
ONE_SHOT_CLASSES: tuple[int, ...] = tuple(range(0, NUM_CLASSES, 6))


def exemplar_name(class_id: int) -> str:
    """Sample name of the exemplar of 0-based ``class_id`` (setup 1 up to A060, setup 18 above)."""
    action = class_id + 1
    return f"S{1 if action <= 60 else 18:03d}C003P008R001A{action:03d}"


@dataclass(frozen=True)
class OneShotSplit:
    """Sample indices of the one-shot protocol.

    Attributes:
        classes: ``(20,)`` int64 evaluation class ids, ascending.
        exemplars: ``(20,)`` int64 index of the exemplar of ``classes[i]``.
        evaluation: sorted int64 indices of the other samples of the evaluation classes.
        auxiliary: sorted int64 indices of the samples of the 100 auxiliary classes.
    """

    classes: np.ndarray
    exemplars: np.ndarray
    evaluation: np.ndarray
    auxiliary: np.ndarray


def one_shot_split(names: Sequence[str] | np.ndarray, labels: np.ndarray) -> OneShotSplit:
    """The one-shot split of an NTU-120 sample list (e.g. ``store.names``, ``store.labels``).

    Samples with a label outside ``[0, 120)`` (unknown, -1) belong to no part.

    Raises:
        ValueError: ``names`` and ``labels`` differ in length.
        EvaluationError: an exemplar is missing, repeated, or labelled with another class (the message lists every
            such exemplar): the sample list is not the full NTU RGB+D 120 set.
    """
    names = np.asarray(names).astype(str)
    labels = np.asarray(labels, dtype=np.int64)
    if names.shape != labels.shape or names.ndim != 1:
        raise ValueError(f"need one label per sample name, got {names.shape} names and {labels.shape} labels")
    classes = np.array(ONE_SHOT_CLASSES, dtype=np.int64)
    problems = []
    exemplars = []
    for c in classes:
        name = exemplar_name(int(c))
        hits = np.flatnonzero(names == name)
        if len(hits) != 1:
            problems.append(f"{name} ({'missing' if len(hits) == 0 else f'{len(hits)} samples'})")
        elif labels[hits[0]] != c:
            problems.append(f"{name} (labelled {labels[hits[0]]}, expected {c})")
        else:
            exemplars.append(hits[0])
    if problems:
        raise EvaluationError(
            f"one-shot protocol: {len(problems)} of the 20 exemplars are not usable in this sample list (it needs "
            f"the full NTU RGB+D 120 set): {', '.join(problems)}"
        )
    exemplars = np.array(exemplars, dtype=np.int64)
    in_eval = np.isin(labels, classes)
    in_eval[exemplars] = False
    auxiliary = (labels >= 0) & (labels < NUM_CLASSES) & ~np.isin(labels, classes)
    return OneShotSplit(
        classes=classes, exemplars=exemplars, evaluation=np.flatnonzero(in_eval), auxiliary=np.flatnonzero(auxiliary)
    )


def one_shot_predict(
    exemplar_features: torch.Tensor, classes: torch.Tensor, query_features: torch.Tensor, chunk_size: int = 256
) -> torch.Tensor:
    """``(N,)`` class of the exemplar most cosine-similar to each query.

    Args:
        exemplar_features: ``(E, D)`` pooled features of the exemplars.
        classes: ``(E,)`` class id of each exemplar.
        query_features: ``(N, D)`` pooled features of the evaluation samples.
        chunk_size: queries compared at a time.
    """
    return knn_predict(exemplar_features, classes, query_features, ks=(1,), chunk_size=chunk_size)[1]


def one_shot_accuracy(
    exemplar_features: torch.Tensor, classes: torch.Tensor, query_features: torch.Tensor, query_labels: torch.Tensor
) -> float:
    """Top-1 accuracy in [0, 1] of :func:`one_shot_predict` against ``(N,)`` query labels."""
    preds = one_shot_predict(exemplar_features, classes, query_features)
    return (preds == query_labels.to(preds.device).long()).double().mean().item()
