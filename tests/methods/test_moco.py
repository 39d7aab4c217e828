"""MoCo machinery: queue order and wrap-around, checkpointed state, momentum schedule and EMA, key gathering, head."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ssl_skel.methods.moco import KeyQueue, ProjectionHead, gather_keys, momentum_at, momentum_update


def unit(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_enqueue_wraps_around_like_a_fifo() -> None:
    queue = KeyQueue(dim=3, size=5, generator=torch.Generator().manual_seed(0))
    slots = list(queue.keys.clone())
    ptr = 0
    for step, batch in enumerate([2, 2, 4, 1, 3]):  # 4 and 3 cross the end of the buffer
        keys = unit(batch, 3, seed=step + 1)
        queue.enqueue(keys)
        for row in keys:
            slots[ptr] = row
            ptr = (ptr + 1) % 5
        torch.testing.assert_close(queue.keys, torch.stack(slots))
        assert int(queue.ptr) == ptr
    assert queue.is_full and queue.filled == 5


def test_count_and_is_full() -> None:
    queue = KeyQueue(dim=2, size=6)
    queue.enqueue(unit(4, 2, 0))
    assert queue.filled == 4 and not queue.is_full
    queue.enqueue(unit(4, 2, 1))
    assert queue.filled == 6 and queue.is_full


def test_newest_returns_most_recent_keys_oldest_first_across_the_wrap() -> None:
    queue = KeyQueue(dim=4, size=5)
    a, b = unit(3, 4, 0), unit(4, 4, 1)
    queue.enqueue(a)
    torch.testing.assert_close(queue.newest(2), a[1:])
    queue.enqueue(b)  # ptr wraps to 2: slots hold b[2], b[3], a[2], b[0], b[1]
    torch.testing.assert_close(queue.newest(5), torch.cat([a[2:], b]))
    torch.testing.assert_close(queue.newest(3), b[1:])
    with pytest.raises(ValueError, match="newest 6"):
        queue.newest(6)


def test_enqueue_normalises_and_keeps_last_keys_of_an_oversized_batch() -> None:
    queue = KeyQueue(dim=2, size=3)
    keys = torch.tensor([[3.0, 4.0], [0.0, 2.0], [5.0, 0.0], [1.0, 1.0]])
    queue.enqueue(keys)
    torch.testing.assert_close(queue.newest(3), F.normalize(keys[1:], dim=1))
    assert int(queue.ptr) == 0


def test_enqueue_detaches() -> None:
    queue = KeyQueue(dim=2, size=4)
    queue.enqueue(torch.randn(2, 2, requires_grad=True))
    assert not queue.keys.requires_grad


def test_check_divisible() -> None:
    queue = KeyQueue(dim=2, size=1024)
    queue.check_divisible(256)
    with pytest.raises(ValueError, match="queue size 1024 must be divisible by the global batch size 96"):
        queue.check_divisible(96)


def test_queue_state_survives_state_dict_round_trip() -> None:
    queue = KeyQueue(dim=3, size=4)
    queue.enqueue(unit(3, 3, 0))
    queue.enqueue(unit(2, 3, 1))
    state = queue.state_dict()
    assert set(state) == {"keys", "ptr", "count"}
    restored = KeyQueue(dim=3, size=4)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.newest(4), queue.newest(4))
    assert restored.is_full and int(restored.ptr) == int(queue.ptr)


def test_initial_entries_are_unit_vectors() -> None:
    queue = KeyQueue(dim=8, size=16)
    torch.testing.assert_close(queue.keys.norm(dim=1), torch.ones(16))


def test_momentum_constant_and_cosine_schedule() -> None:
    assert momentum_at(500, 1000, base=0.99, cosine=False) == 0.99
    assert momentum_at(0, 1000, base=0.99, final=1.0, cosine=True) == pytest.approx(0.99)
    assert momentum_at(500, 1000, base=0.99, final=1.0, cosine=True) == pytest.approx(0.995)
    quarter = 1.0 - 0.01 * (1 + math.cos(math.pi / 4)) / 2
    assert momentum_at(250, 1000, base=0.99, final=1.0, cosine=True) == pytest.approx(quarter)
    assert momentum_at(1000, 1000, base=0.99, cosine=True) == pytest.approx(1.0)
    assert momentum_at(5000, 1000, base=0.99, cosine=True) == pytest.approx(1.0)


def test_momentum_update_is_ema_of_parameters_and_copies_buffers() -> None:
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    online.train()(torch.randn(8, 3))  # moves running statistics and num_batches_tracked
    before = [p.detach().clone() for p in target.parameters()]
    momentum_update(online, target, m=0.9)
    for t, o, b in zip(target.parameters(), online.parameters(), before, strict=True):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
    for t, o in zip(target.buffers(), online.buffers(), strict=True):
        assert torch.equal(t, o)
    assert int(target[1].num_batches_tracked) == 1


def test_momentum_update_rejects_different_architectures() -> None:
    with pytest.raises(ValueError, match="differ"):
        momentum_update(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), 0.9)


def test_gather_keys_single_process_returns_keys_without_gradient() -> None:
    keys = torch.randn(4, 3, requires_grad=True)
    out = gather_keys(keys)
    assert torch.equal(out, keys) and not out.requires_grad


def test_gather_keys_with_an_initialised_process_group() -> None:
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        keys = torch.randn(5, 3, requires_grad=True)
        out = gather_keys(keys)
        assert torch.equal(out, keys) and not out.requires_grad
    finally:
        dist.destroy_process_group()


def test_projection_head_layers_and_shapes() -> None:
    head = ProjectionHead(in_dim=16, hidden_dim=8, out_dim=4)
    kinds = [type(m) for m in head]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear]
    assert (head[0].in_features, head[0].out_features, head[2].out_features) == (16, 8, 4)
    x = torch.randn(5, 16)
    torch.testing.assert_close(head(x), head[2](torch.relu(head[0](x))))


@pytest.mark.parametrize("mode", ["batch", "running"])
def test_key_batch_norm_mode_decides_whether_a_key_depends_on_its_batch(mode: str) -> None:
    from ssl_skel.backbones import STGCN
    from ssl_skel.methods.contrastive import MomentumContrast

    torch.manual_seed(0)
    model = MomentumContrast(STGCN("ntu25", 3, width=4), queue_size=8, key_batch_norm=mode).train()
    x = torch.randn(4, 3, 8, 25, 1)
    alone = model.key(x[:2])
    together = model.key(x)[:2]
    if mode == "running":  # the key of a sample is a function of that sample alone
        torch.testing.assert_close(alone, together)
        assert not model.key_backbone.training
    else:  # batch statistics: the other samples of the batch change it
        assert not torch.allclose(alone, together)
    with pytest.raises(ValueError, match="key_batch_norm"):
        MomentumContrast(STGCN("ntu25", 3, width=4), queue_size=8, key_batch_norm="shuffle")


def test_shuffled_batch_norm_normalises_queries_and_keys_over_different_groups() -> None:
    from ssl_skel.backbones import STGCN
    from ssl_skel.methods.contrastive import MomentumContrast

    torch.manual_seed(0)
    model = MomentumContrast(
        STGCN("ntu25", 3, width=4, dropout=0.0), queue_size=8, key_batch_norm="shuffled", batch_norm_groups=2
    ).train()
    x = torch.randn(6, 3, 8, 25, 1)
    # queries: consecutive groups of three, each normalised alone
    q, _ = model.query(x)
    torch.manual_seed(1)
    order = torch.randperm(6)
    torch.manual_seed(1)
    k = model.key(x)
    assert model.key_backbone.training
    model.batch_norm_groups = 1
    torch.testing.assert_close(q, torch.cat([model.query(x[:3])[0], model.query(x[3:])[0]]))
    # keys: the groups of a random permutation, returned in the input's order
    first, second = order[:3], order[3:]
    expected = torch.empty_like(k)
    expected[first] = model.key(x[first])
    expected[second] = model.key(x[second])
    torch.testing.assert_close(k, expected)
    assert not torch.allclose(k, model.key(x))  # whole-batch statistics differ
    # outside training: running statistics, no groups and no permutation drawn
    model.batch_norm_groups = 2
    model.eval()
    state = torch.get_rng_state()
    keys = model.key(x)
    assert torch.equal(torch.get_rng_state(), state) and not model.key_backbone.training
    torch.testing.assert_close(model.key(x[:2]), keys[:2])
    with pytest.raises(ValueError, match="batch_norm_groups"):
        MomentumContrast(STGCN("ntu25", 3, width=4), queue_size=8, batch_norm_groups=0)
