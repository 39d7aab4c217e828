"""kNN accuracy against a brute-force reference, chunking invariance, and gathering across processes."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from ssl_skel.metrics.knn import KNNAccuracy, knn_predict


def brute_force(
    train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, k: int, num_classes: int, temperature: float
) -> torch.Tensor:
    """Reference: full similarity matrix, full sort, one-hot weighted votes."""
    sim = F.normalize(test_f, dim=1) @ F.normalize(train_f, dim=1).t()
    order = sim.argsort(dim=1, descending=True)[:, :k]
    if k == 1:
        return train_y[order[:, 0]]
    weights = torch.exp(sim.gather(1, order) / temperature)
    votes = (F.one_hot(train_y[order], num_classes).double() * weights.double().unsqueeze(-1)).sum(dim=1)
    return votes.argmax(dim=1)


def random_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    train_f, test_f = torch.randn(300, 16, generator=gen), torch.randn(70, 16, generator=gen)
    train_y, test_y = torch.randint(0, 6, (300,), generator=gen), torch.randint(0, 6, (70,), generator=gen)
    return train_f, train_y, test_f, test_y


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_knn_predict_matches_brute_force(temperature: float) -> None:
    train_f, train_y, test_f, _ = random_data()
    preds = knn_predict(train_f, train_y, test_f, ks=(1, 10, 20), num_classes=6, temperature=temperature)
    assert set(preds) == {1, 10, 20}
    for k in (1, 10, 20):
        assert torch.equal(preds[k], brute_force(train_f, train_y, test_f, k, 6, temperature)), k
    # k = 1 and the weighted votes are genuinely different predictions on this data
    assert not torch.equal(preds[1], preds[20])


def test_weighted_vote_by_hand() -> None:
    # nearest neighbour is class 0 (sim 0.99), the next two are class 1 (sims 0.98, 0.97), the last class 0
    sims = torch.tensor([0.99, 0.98, 0.97, 0.5])
    train_f = torch.stack([sims, (1 - sims**2).sqrt()], dim=1)
    train_y = torch.tensor([0, 1, 1, 0])
    test_f = torch.tensor([[1.0, 0.0]])
    preds = knn_predict(train_f, train_y, test_f, ks=(1, 3, 4), num_classes=2, temperature=0.07)
    # k = 3: class 0 weight exp(0.99/0.07) = 1.41e6 < class 1 weight exp(0.98/0.07) + exp(0.97/0.07) = 2.27e6
    assert preds[1].tolist() == [0] and preds[3].tolist() == [1] and preds[4].tolist() == [1]


def test_chunk_size_does_not_change_predictions() -> None:
    train_f, train_y, test_f, _ = random_data(1)
    whole = knn_predict(train_f, train_y, test_f, (1, 5, 20), 6, 0.07, chunk_size=10_000)
    for chunk in (1, 7, 64):
        chunked = knn_predict(train_f, train_y, test_f, (1, 5, 20), 6, 0.07, chunk_size=chunk)
        assert all(torch.equal(whole[k], chunked[k]) for k in (1, 5, 20))


def test_k_larger_than_the_bank_uses_every_training_sample() -> None:
    train_f, train_y, test_f, _ = random_data(2)
    preds = knn_predict(train_f[:8], train_y[:8], test_f, ks=(20,), num_classes=6)
    assert torch.equal(preds[20], brute_force(train_f[:8], train_y[:8], test_f, 8, 6, 0.07))


def clusters(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (n,), generator=gen)
    return torch.eye(12)[labels] * 3 + 0.1 * torch.randn(n, 12, generator=gen), labels


def test_metric_on_separated_clusters_is_perfect() -> None:
    metric = KNNAccuracy(ks=(1, 10, 20), chunk_size=16)
    for seed in range(3):
        metric.update(*clusters(seed, 40), train=True)
    metric.update(*clusters(10, 50), train=False)
    result = metric.compute()
    assert set(result) == {"knn_top1_k1", "knn_top1_k10", "knn_top1_k20"}
    assert all(v.item() == 1.0 for v in result.values())


def test_metric_equals_knn_predict_accuracy_and_resets() -> None:
    train_f, train_y, test_f, test_y = random_data(3)
    metric = KNNAccuracy(ks=(1, 10), num_classes=6)
    for f, y in zip(train_f.split(64), train_y.split(64), strict=True):
        metric.update(f, y, train=True)
    for f, y in zip(test_f.split(32), test_y.split(32), strict=True):
        metric.update(f, y, train=False)
    result = metric.compute()
    for k in (1, 10):
        expected = (brute_force(train_f, train_y, test_f, k, 6, 0.07) == test_y).float().mean()
        torch.testing.assert_close(result[f"knn_top1_k{k}"], expected)
    metric.reset()
    assert metric.train_features == [] and metric.test_labels == []


def test_metric_needs_both_banks() -> None:
    metric = KNNAccuracy()
    metric.update(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), train=True)
    with pytest.raises(ValueError, match="both train"):
        metric.compute()


def _distributed_worker(rank: int, world_size: int, init_file: str, queue: mp.SimpleQueue) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        train_f, train_y, test_f, test_y = random_data(4)
        metric = KNNAccuracy(ks=(1, 10), num_classes=6)
        # ranks hold different, unevenly sized shares of both banks
        cut_train, cut_test = (0, 100, 300), (0, 45, 70)
        sl_train = slice(cut_train[rank], cut_train[rank + 1])
        sl_test = slice(cut_test[rank], cut_test[rank + 1])
        metric.update(train_f[sl_train], train_y[sl_train], train=True)
        metric.update(test_f[sl_test], test_y[sl_test], train=False)
        result = metric.compute()
        queue.put((rank, {name: value.item() for name, value in result.items()}))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_metric_gathers_banks_across_processes() -> None:
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_distributed_worker, args=(2, os.path.join(tmp, "init"), queue), nprocs=2)
    results = dict(queue.get() for _ in range(2))
    train_f, train_y, test_f, test_y = random_data(4)
    for k in (1, 10):
        expected = (brute_force(train_f, train_y, test_f, k, 6, 0.07) == test_y).float().mean().item()
        assert results[0][f"knn_top1_k{k}"] == pytest.approx(expected)
        assert results[1][f"knn_top1_k{k}"] == pytest.approx(expected)
