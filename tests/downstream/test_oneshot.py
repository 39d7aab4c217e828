"""NTU-120 one-shot protocol on synthetic sample lists: classes, exemplars, evaluation and auxiliary sets, scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssl_skel.downstream.oneshot import (
    ONE_SHOT_CLASSES,
    exemplar_name,
    one_shot_accuracy,
    one_shot_predict,
    one_shot_split,
)


def sample_list(actions: range = range(1, 121)) -> tuple[np.ndarray, np.ndarray]:
    """4 samples per action (cameras 1..3 of the exemplar's setup, subject and replication, plus one more), shuffled,
    and one sample with an unknown label."""
    names = []
    for a in actions:
        s = 1 if a <= 60 else 18
        names += [f"S{s:03d}C{cam:03d}P008R001A{a:03d}" for cam in (1, 2, 3)] + [f"S{s + 1:03d}C001P010R002A{a:03d}"]
    names.append("S005C001P001R001A000")
    labels = [int(n[-3:]) - 1 for n in names]
    order = np.random.default_rng(0).permutation(len(names))
    return np.array(names)[order], np.array(labels)[order]


def test_classes_and_exemplar_names() -> None:
    assert ONE_SHOT_CLASSES == tuple(a - 1 for a in range(1, 116, 6))
    assert len(ONE_SHOT_CLASSES) == 20 and ONE_SHOT_CLASSES[-1] == 114  # A115
    assert exemplar_name(0) == "S001C003P008R001A001"
    assert exemplar_name(54) == "S001C003P008R001A055"
    assert exemplar_name(59) == "S001C003P008R001A060"  # action 60 is still from setup 1
    assert exemplar_name(60) == "S018C003P008R001A061"
    assert exemplar_name(114) == "S018C003P008R001A115"


def test_split_parts() -> None:
    names, labels = sample_list()
    split = one_shot_split(names, labels)
    assert split.classes.tolist() == list(ONE_SHOT_CLASSES)
    assert [names[i] for i in split.exemplars] == [exemplar_name(c) for c in ONE_SHOT_CLASSES]
    assert labels[split.exemplars].tolist() == list(ONE_SHOT_CLASSES)
    # evaluation: every sample of the 20 classes except the exemplar (3 of 4 per class)
    assert len(split.evaluation) == 20 * 3
    assert set(labels[split.evaluation]) == set(ONE_SHOT_CLASSES)
    assert not np.isin(split.exemplars, split.evaluation).any()
    # auxiliary: all 4 samples of each of the other 100 classes
    assert len(split.auxiliary) == 100 * 4
    assert not np.isin(labels[split.auxiliary], ONE_SHOT_CLASSES).any()
    # the three parts are disjoint and cover every sample with a known label
    parts = np.concatenate([split.exemplars, split.evaluation, split.auxiliary])
    assert len(np.unique(parts)) == len(parts) == len(names) - 1
    assert (labels[np.setdiff1d(np.arange(len(names)), parts)] == -1).all()
    assert (np.diff(split.evaluation) > 0).all() and (np.diff(split.auxiliary) > 0).all()


def test_missing_exemplars_are_all_named() -> None:
    names, labels = sample_list()
    keep = ~np.isin(names, ["S001C003P008R001A007", "S018C003P008R001A115"])
    with pytest.raises(ValueError, match=r"2 of the 20.*S001C003P008R001A007 \(missing\).*S018C003P008R001A115"):
        one_shot_split(names[keep], labels[keep])
    # an NTU-60 list lacks the exemplars of the ten classes above A060
    names60, labels60 = sample_list(range(1, 61))
    with pytest.raises(ValueError, match="10 of the 20 exemplars"):
        one_shot_split(names60, labels60)


def test_repeated_or_mislabelled_exemplar_raises() -> None:
    names, labels = sample_list()
    i = int(np.flatnonzero(names == "S001C003P008R001A013")[0])
    with pytest.raises(ValueError, match=r"S001C003P008R001A013 \(2 samples\)"):
        one_shot_split(np.append(names, names[i]), np.append(labels, labels[i]))
    wrong = labels.copy()
    wrong[i] = 13
    with pytest.raises(ValueError, match=r"S001C003P008R001A013 \(labelled 13, expected 12\)"):
        one_shot_split(names, wrong)
    with pytest.raises(ValueError, match="one label per sample"):
        one_shot_split(names, labels[:-1])


def test_prediction_is_by_cosine_similarity_not_dot_product() -> None:
    exemplars = torch.tensor([[10.0, 0.0], [0.0, 1.0]])  # classes 0 and 6; different norms
    classes = torch.tensor([0, 6])
    # (0.5, 1): dot products 5 vs 1 (class 0), cosines 0.45 vs 0.89 (class 6)
    queries = torch.tensor([[0.5, 1.0], [3.0, 1.0], [-1.0, 0.2]])
    assert one_shot_predict(exemplars, classes, queries).tolist() == [6, 0, 6]
    labels = torch.tensor([6, 0, 0])
    assert one_shot_accuracy(exemplars, classes, queries, labels) == pytest.approx(2 / 3)
