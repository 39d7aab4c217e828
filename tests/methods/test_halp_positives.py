"""HaLP positives: the t_max closed form, slerp, candidate sampling, the positive loss, k-means and the bank."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_skel.methods.halp_positives import (
    PrototypeBank,
    hallucinate_positives,
    halp_positive_loss,
    halp_t_max,
    slerp,
    spherical_kmeans,
)
from ssl_skel.methods.moco import KeyQueue


def unit(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype), dim=-1)


def on_circle(degrees: float) -> torch.Tensor:
    rad = math.radians(degrees)
    return torch.tensor([math.cos(rad), math.sin(rad)], dtype=torch.float64)


def anchors_with_prototypes(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random anchors (N, d), their nearest prototype p0 (N, d), and every other prototype as p_sel (N, P-1, d)."""
    keys, protos = unit(16, 8, seed=seed), unit(6, 8, seed=seed + 100)
    order = (keys @ protos.t()).argsort(dim=1, descending=True)
    return keys, protos[order[:, 0]], protos[order[:, 1:]], protos


@pytest.mark.parametrize(
    ("k_deg", "p0_deg", "sel_deg"),
    [(0.0, 20.0, 90.0), (0.0, 60.0, 170.0), (0.0, -30.0, 100.0)],
)
def test_t_max_on_the_circle_reaches_the_bisector(k_deg: float, p0_deg: float, sel_deg: float) -> None:
    # In 2-D the points as close to p0 as to p_sel are the bisector of the two; slerp moves at constant angular
    # speed, so t_max = (bisector angle - k angle) / (p_sel angle - k angle). The middle case has K + cos w < 0,
    # where arctan(sin w / (K + cos w)) would give a negative fraction.
    expected = ((p0_deg + sel_deg) / 2 - k_deg) / (sel_deg - k_deg)
    t = halp_t_max(on_circle(k_deg), on_circle(p0_deg), on_circle(sel_deg))
    assert t.item() == pytest.approx(expected, abs=1e-12)


def test_point_at_t_max_is_equally_similar_to_p0_and_p_sel() -> None:
    keys, p0, p_sel, _ = anchors_with_prototypes(seed=0)
    k, p0 = keys.unsqueeze(1), p0.unsqueeze(1)
    t_max = halp_t_max(k, p0, p_sel)
    assert t_max.shape == p_sel.shape[:2]
    assert bool(((t_max > 0) & (t_max <= 1)).all())
    at_max = slerp(k, p_sel, t_max)
    torch.testing.assert_close((at_max * p0).sum(-1), (at_max * p_sel).sum(-1), rtol=0, atol=1e-10)
    for frac in (0.2, 0.5, 0.99):
        inside = slerp(k, p_sel, frac * t_max)
        assert bool(((inside * p0).sum(-1) > (inside * p_sel).sum(-1)).all())


def test_t_max_is_zero_for_an_anchor_equally_close_to_both() -> None:
    k, p0, p_sel = on_circle(0.0), on_circle(40.0), on_circle(-40.0)
    assert halp_t_max(k, p0, p_sel).item() == pytest.approx(0.0, abs=1e-6)


def test_t_max_when_anchor_sits_on_p0_is_half_way() -> None:
    p = on_circle(10.0)
    assert halp_t_max(p, p, on_circle(50.0)).item() == pytest.approx(0.5, abs=1e-12)


def test_t_max_is_finite_and_zero_for_coincident_vectors() -> None:
    p = on_circle(10.0)
    t = halp_t_max(p, p, p)
    assert torch.isfinite(t).all() and t.item() == 0.0


def test_slerp_endpoints_unit_norm_and_constant_angular_speed() -> None:
    a, b = unit(5, 6, seed=1), unit(5, 6, seed=2)
    torch.testing.assert_close(slerp(a, b, torch.zeros(5, dtype=torch.float64)), a)
    torch.testing.assert_close(slerp(a, b, torch.ones(5, dtype=torch.float64)), b)
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=torch.float64)
    out = slerp(a, b, t)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(5, dtype=torch.float64))
    angle_ab = torch.arccos((a * b).sum(-1))
    torch.testing.assert_close(torch.arccos((a * out).sum(-1)), t * angle_ab)
    torch.testing.assert_close(torch.arccos((out * b).sum(-1)), (1 - t) * angle_ab)


def test_slerp_of_nearly_equal_vectors_is_finite() -> None:
    a = unit(1, 4, seed=3)
    out = slerp(a, a, torch.tensor([0.4], dtype=torch.float64))
    torch.testing.assert_close(out, a)


def recover_selected(keys: torch.Tensor, protos: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Index of the prototype whose great circle through the anchor contains each positive (reference)."""
    n, c, _ = positives.shape
    found = torch.full((n, c), -1, dtype=torch.long)
    for i in range(n):
        for j in range(protos.shape[0]):
            basis = torch.linalg.qr(torch.stack([keys[i], protos[j]], dim=1)).Q  # (d, 2)
            residual = positives[i] - (positives[i] @ basis) @ basis.t()
            found[i, residual.norm(dim=-1) < 1e-9] = j
    return found


def test_hallucinated_positives_follow_the_recipe() -> None:
    keys, protos = unit(4, 8, seed=5), unit(5, 8, seed=6)
    lam = 0.8
    positives, keep = hallucinate_positives(keys, protos, 300, lam, torch.Generator().manual_seed(0))
    assert positives.shape == (4, 300, 8) and keep.shape == (4, 300) and keep.dtype == torch.bool
    torch.testing.assert_close(positives.norm(dim=-1), torch.ones(4, 300, dtype=torch.float64))
    nearest = (keys @ protos.t()).argmax(dim=1)
    selected = recover_selected(keys, protos, positives)
    assert bool((selected >= 0).all()) and bool((selected != nearest[:, None]).all())
    # p_sel is uniform over the other P - 1 = 4 prototypes: each gets about 75 of 300 draws
    for i in range(4):
        counts = torch.bincount(selected[i], minlength=5)
        assert int(counts[nearest[i]]) == 0 and int(counts.max()) < 110 and int(counts.sort().values[1]) > 45
    # the fraction travelled toward p_sel lies in [(1 - lam) t_max, t_max]
    p_sel = protos[selected]
    t_max = halp_t_max(keys[:, None], protos[nearest][:, None], p_sel)
    t = torch.arccos((keys[:, None] * positives).sum(-1).clamp(-1, 1)) / torch.arccos((keys[:, None] * p_sel).sum(-1))
    assert bool((t >= (1 - lam) * t_max - 1e-9).all()) and bool((t <= t_max + 1e-9).all())
    assert float(((t / t_max) - (1 - lam)).min()) < 0.05 and float((1 - t / t_max).min()) < 0.05
    # keep = the candidate's nearest prototype is still p0
    torch.testing.assert_close(keep, (positives @ protos.t()).argmax(-1) == nearest[:, None])


def test_keep_drops_candidates_that_cross_into_a_third_prototype() -> None:
    # p_sel is far (150 deg), a third prototype (60 deg) lies on the way: points near the p0/p_sel bisector are
    # closer to the third prototype and must be dropped.
    protos = torch.stack([on_circle(0.0), on_circle(150.0), on_circle(60.0)])
    keys = on_circle(5.0).unsqueeze(0)
    positives, keep = hallucinate_positives(keys, protos, 200, 0.8, torch.Generator().manual_seed(1))
    angles = torch.rad2deg(torch.atan2(positives[..., 1], positives[..., 0]))
    torch.testing.assert_close(keep, angles < 30.0)
    assert bool(keep.any()) and not bool(keep.all())


def test_hallucinate_is_deterministic_and_detached() -> None:
    keys = unit(3, 8, seed=7, dtype=torch.float32).requires_grad_()
    protos = unit(20, 8, seed=8, dtype=torch.float32)
    a = hallucinate_positives(keys, protos, generator=torch.Generator().manual_seed(3))
    b = hallucinate_positives(keys, protos, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (3, 100, 8) and not a[0].requires_grad


def test_halp_positive_loss_by_hand() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    positives = torch.tensor([[[0.6, 0.8], [1.0, 0.0]], [[0.8, 0.6], [0.0, -1.0]]])
    keep = torch.tensor([[True, True], [True, False]])
    loss = halp_positive_loss(q, positives, keep, temperature=0.5)
    # kept dots: 0.6, 1.0, 0.6 -> - (2.2 / 0.5) / 3
    assert loss.item() == pytest.approx(-2.2 / 0.5 / 3)
    loss.backward()
    torch.testing.assert_close(q.grad, -torch.tensor([[1.6, 0.8], [0.8, 0.6]]) / 0.5 / 3)


def test_halp_positive_loss_without_kept_positives_is_zero() -> None:
    q = torch.randn(2, 3, requires_grad=True)
    loss = halp_positive_loss(q, torch.randn(2, 4, 3), torch.zeros(2, 4, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(q.grad).all()


def clustered(seed: int, per: int = 30, noise: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
    centres = torch.eye(8)[:4]
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(per)
    points = F.normalize(centres[labels] + noise * torch.randn(4 * per, 8, generator=gen), dim=1)
    perm = torch.randperm(4 * per, generator=gen)
    return points[perm], labels[perm]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spherical_kmeans_recovers_separated_clusters(seed: int) -> None:
    points, labels = clustered(seed)
    protos = spherical_kmeans(points, k=4, iters=10, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(protos.norm(dim=1), torch.ones(4))
    assign = (points @ protos.t()).argmax(dim=1)
    # each cluster maps to exactly one prototype and vice versa, and the prototype is the re-normalised mean
    pairs = torch.unique(torch.stack([labels, assign], dim=1), dim=0)
    assert pairs.shape[0] == 4 and torch.unique(pairs[:, 1]).numel() == 4
    for label, proto in pairs.tolist():
        torch.testing.assert_close(protos[proto], F.normalize(points[labels == label].mean(0), dim=0))


def test_spherical_kmeans_with_more_clusters_than_distinct_points_stays_finite() -> None:
    points = torch.cat([torch.eye(3)[:1].repeat(5, 1), torch.eye(3)[1:2].repeat(5, 1)])
    protos = spherical_kmeans(points, k=4, iters=5, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(protos).all()
    torch.testing.assert_close(protos.norm(dim=1), torch.ones(4))


def test_spherical_kmeans_is_deterministic_given_the_generator() -> None:
    points, _ = clustered(3, noise=0.5)
    a = spherical_kmeans(points, k=6, generator=torch.Generator().manual_seed(9))
    b = spherical_kmeans(points, k=6, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


def filled_queue(size: int = 64, dim: int = 8) -> KeyQueue:
    queue = KeyQueue(dim=dim, size=size)
    queue.enqueue(unit(size, dim, seed=11, dtype=torch.float32))
    return queue


def test_prototype_bank_refresh_schedule() -> None:
    bank = PrototypeBank(dim=8, num_prototypes=4, num_keys=32, interval=10)
    queue = KeyQueue(dim=8, size=64)
    queue.enqueue(unit(32, 8, seed=1, dtype=torch.float32))
    assert not bank.maybe_refresh(queue, step=3) and not bank.ready  # queue not full yet
    queue.enqueue(unit(32, 8, seed=2, dtype=torch.float32))
    assert bank.maybe_refresh(queue, step=4) and bank.ready and int(bank.last_refresh) == 4
    torch.testing.assert_close(bank.prototypes.norm(dim=1), torch.ones(4))
    expected = spherical_kmeans(queue.newest(32), 4, 10, torch.Generator().manual_seed(4))
    torch.testing.assert_close(bank.prototypes, expected)
    assert [bank.maybe_refresh(queue, step=s) for s in range(5, 15)] == [False] * 9 + [True]


def test_prototype_bank_resume_continues_exactly() -> None:
    queue = filled_queue()
    bank = PrototypeBank(dim=8, num_prototypes=4, num_keys=32, interval=10, seed=5)
    bank.maybe_refresh(queue, step=7)
    state = {"bank": bank.state_dict(), "queue": queue.state_dict()}
    assert set(state["bank"]) == {"prototypes", "last_refresh"}
    resumed_bank = PrototypeBank(dim=8, num_prototypes=4, num_keys=32, interval=10, seed=5)
    resumed_queue = KeyQueue(dim=8, size=64)
    resumed_bank.load_state_dict(state["bank"])
    resumed_queue.load_state_dict(state["queue"])
    assert torch.equal(resumed_bank.prototypes, bank.prototypes)
    for step in range(8, 30):
        new_keys = unit(8, 8, seed=step, dtype=torch.float32)
        queue.enqueue(new_keys)
        resumed_queue.enqueue(new_keys)
        assert bank.maybe_refresh(queue, step) == resumed_bank.maybe_refresh(resumed_queue, step)
        assert torch.equal(resumed_bank.prototypes, bank.prototypes)
    assert int(bank.last_refresh) == 27


def test_prototype_bank_rejects_a_queue_smaller_than_the_key_window() -> None:
    bank = PrototypeBank(dim=8, num_prototypes=4, num_keys=256)
    with pytest.raises(ValueError, match="newest 256 keys"):
        bank.maybe_refresh(filled_queue(size=64), step=0)
