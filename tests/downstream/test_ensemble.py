"""Multi-stream ensembles: weighted logit sums, the weight search on training logits, its tie rule, bad input."""

from __future__ import annotations

import pytest
import torch

from ssl_skel.downstream.ensemble import choose_ensemble_weights, ensemble_logits, multi_stream_ensemble


def hand_example() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Three training samples where only a mix is right on all: with weights a, b the ensemble is right on sample 0
    iff 2a > b, on sample 1 iff a > b, on sample 2 iff 3b > a; stream a alone gets 2/3, stream b alone 1/3."""
    logits = {
        "a": torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]),
        "b": torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 3.0]]),
    }
    return logits, torch.tensor([0, 1, 1])


def test_weighted_sum() -> None:
    logits, _ = hand_example()
    out = ensemble_logits(logits, {"a": 0.5, "b": 2.0})
    torch.testing.assert_close(out, 0.5 * logits["a"].double() + 2.0 * logits["b"].double())


def test_search_by_hand() -> None:
    logits, labels = hand_example()
    # on the grid 0, .25, .5, .75, 1 the ratios a/b in (1, 3) are 4/3, 3/2 and 2, all 3/3 right; the tie goes to
    # the one closest to equal weights, a : b = 1 : 0.75
    weights, accuracy = choose_ensemble_weights(logits, labels)
    assert accuracy == 1.0
    assert weights == pytest.approx({"a": 4 / 7, "b": 3 / 7})


def test_all_ties_fall_back_to_equal_weights() -> None:
    labels = torch.tensor([0, 1, 2])
    perfect = {name: torch.eye(3) * scale for name, scale in (("joint", 1.0), ("bone", 5.0), ("motion", 0.1))}
    weights, accuracy = choose_ensemble_weights(perfect, labels)
    assert accuracy == 1.0
    assert weights == pytest.approx({"joint": 1 / 3, "bone": 1 / 3, "motion": 1 / 3})


def test_search_is_at_least_as_good_as_every_single_stream_and_the_plain_sum() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (300,), generator=gen)
    onehot = torch.nn.functional.one_hot(labels, 5).float()
    logits = {f"s{i}": onehot * (i + 1) * 0.5 + torch.randn(300, 5, generator=gen) * (i + 1) for i in range(3)}
    weights, accuracy = choose_ensemble_weights(logits, labels)

    def acc(w: dict[str, float]) -> float:
        return (ensemble_logits(logits, w).argmax(1) == labels).double().mean().item()

    assert accuracy == pytest.approx(acc(weights))
    assert accuracy >= acc({"s0": 1, "s1": 1, "s2": 1})
    for name in logits:
        assert accuracy >= acc({n: float(n == name) for n in logits})


def test_ensemble_never_looks_at_the_test_logits_to_choose() -> None:
    train, labels = hand_example()
    gen = torch.Generator().manual_seed(1)
    tests = [{name: torch.randn(7, 2, generator=gen) for name in ("a", "b")} for _ in range(2)]
    results = [multi_stream_ensemble(t, train_logits=train, train_labels=labels) for t in tests]
    assert results[0].weights == results[1].weights
    assert results[0].train_accuracy == 1.0
    for result, test in zip(results, tests, strict=True):
        expected = ensemble_logits(test, result.weights)
        torch.testing.assert_close(result.logits, expected)
        assert torch.equal(result.predictions, expected.argmax(1))


def test_given_weights_are_used_as_they_are() -> None:
    logits, _ = hand_example()
    result = multi_stream_ensemble(logits, weights={"a": 1.0, "b": 0.0})
    assert result.weights == {"a": 1.0, "b": 0.0} and result.train_accuracy is None
    assert result.predictions.tolist() == [0, 1, 0]


def test_bad_input_raises() -> None:
    logits, labels = hand_example()
    with pytest.raises(ValueError, match="give weights"):
        multi_stream_ensemble(logits)
    with pytest.raises(ValueError, match="differ from test streams"):
        multi_stream_ensemble({"a": logits["a"]}, train_logits=logits, train_labels=labels)
    with pytest.raises(ValueError, match="expected"):
        ensemble_logits(logits, {"a": 1.0})
    with pytest.raises(ValueError, match="one shape"):
        ensemble_logits({"a": logits["a"], "b": logits["b"][:2]}, {"a": 1.0, "b": 1.0})
    with pytest.raises(ValueError, match="train_labels"):
        choose_ensemble_weights(logits, labels[:2])
    with pytest.raises(ValueError, match="grid"):
        choose_ensemble_weights(logits, labels, grid=(-1.0, 1.0))
