"""Contrastive losses against hand computations: InfoNCE, directional consistency, nearest-neighbour mining."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_skel.methods.losses import directional_consistency, info_nce, info_nce_logits, nn_mining_loss

# Two samples, a queue of three, 2-D unit embeddings.
Q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
K = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
QUEUE = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])


def test_info_nce_logits_by_hand() -> None:
    expected = torch.tensor([[0.6, 1.0, 0.0, -1.0], [0.0, 0.0, 1.0, 0.0]]) / 0.5
    torch.testing.assert_close(info_nce_logits(Q, K, QUEUE, temperature=0.5), expected)


def test_info_nce_by_hand() -> None:
    # sample 0: logits [1.2, 2, 0, -2], positive 1.2; sample 1: logits [0, 0, 2, 0], positive 0
    loss0 = -1.2 + math.log(math.exp(1.2) + math.exp(2.0) + 1.0 + math.exp(-2.0))
    loss1 = math.log(3.0 + math.exp(2.0))
    assert loss0 == pytest.approx(1.271864, abs=1e-6) and loss1 == pytest.approx(2.340753, abs=1e-6)
    assert info_nce(Q, K, QUEUE, temperature=0.5).item() == pytest.approx((loss0 + loss1) / 2, abs=1e-6)


def test_fused_info_nce_matches_the_cross_entropy_of_the_logits() -> None:
    torch.manual_seed(0)
    q = F.normalize(torch.randn(7, 5, dtype=torch.double), dim=1).requires_grad_()
    k = F.normalize(torch.randn(7, 5, dtype=torch.double), dim=1).requires_grad_()
    queue = F.normalize(torch.randn(11, 5, dtype=torch.double), dim=1)
    loss = info_nce(q, k, queue, temperature=0.1)
    grad_q, grad_k = torch.autograd.grad(loss, (q, k))
    logits = info_nce_logits(q, k, queue, temperature=0.1)
    ref = F.cross_entropy(logits, torch.zeros(7, dtype=torch.long))
    ref_q, ref_k = torch.autograd.grad(ref, (q, k))
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(grad_q, ref_q)
    torch.testing.assert_close(grad_k, ref_k)
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, queue, 0.1), (q, k))
    # large logits (temperature 0.01) stay finite: the softmax is shifted by its peak
    assert torch.isfinite(info_nce(q.detach().float(), k.detach().float(), queue.float(), 0.01))


def test_info_nce_default_temperature_and_no_gradient_into_queue() -> None:
    q = Q.clone().requires_grad_()
    queue = QUEUE.clone().requires_grad_()
    loss = info_nce(q, K, queue)
    logits = torch.tensor([[0.6, 1.0, 0.0, -1.0], [0.0, 0.0, 1.0, 0.0]]) / 0.07
    ref = (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert queue.grad is None and q.grad is not None


def test_directional_consistency_by_hand() -> None:
    # target softmax of [0, log 3] = [1/4, 3/4]; student log_softmax of [0, 0] = [-log 2, -log 2]
    target = torch.tensor([[0.0, math.log(3.0)]])
    student = torch.tensor([[0.0, 0.0]])
    assert directional_consistency(target, student).item() == pytest.approx(math.log(2.0))
    # sample 2: target = student = [log 1, log 3] -> entropy of [1/4, 3/4]
    target2 = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    student2 = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert directional_consistency(target2, student2).item() == pytest.approx((math.log(2.0) + entropy) / 2)


def test_directional_consistency_gradient_reaches_only_the_student() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(4, 6, generator=gen, requires_grad=True)
    student = torch.randn(4, 6, generator=gen, requires_grad=True)
    directional_consistency(target, student).backward()
    assert target.grad is None
    # d/d student of the batch-mean cross-entropy = (softmax(student) - softmax(target)) / N
    expected = (F.softmax(student, dim=1) - F.softmax(target, dim=1)).detach() / 4
    torch.testing.assert_close(student.grad, expected)


def test_directional_consistency_gradient_through_shared_encoder_comes_from_student_only() -> None:
    w = torch.tensor([[1.0, -2.0], [0.5, 1.5]], requires_grad=True)
    x_weak, x_strong = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    directional_consistency(x_weak @ w, x_strong @ w).backward()
    # only the student branch (x_strong) contributes: grad = x_strong^T (softmax(student) - target)
    diff = F.softmax(x_strong @ w, dim=1) - F.softmax(x_weak @ w, dim=1)
    torch.testing.assert_close(w.grad, (x_strong.t() @ diff).detach())


def log_softmax_by_hand(row: list[float]) -> list[float]:
    norm = math.log(sum(math.exp(v) for v in row))
    return [v - norm for v in row]


def test_nn_mining_counts_duplicate_positives_once() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0], [1.5, 0.2, 0.3, 0.1, -0.4]])
    # sample 0: branches pick queue columns 2, 2, 3 -> P = {0, 2, 3}; sample 1: all pick column 1 -> P = {0, 1}.
    # Column 0 is the largest in every branch, so a mining step that looked at the key column would pick it.
    b1 = torch.tensor([[9.0, 0.0, 5.0, 1.0, 0.0], [9.0, 4.0, 0.0, 0.0, 0.0]])
    b2 = torch.tensor([[9.0, 0.0, 3.0, 2.0, 0.0], [9.0, 3.0, 1.0, 0.0, 0.0]])
    b3 = torch.tensor([[9.0, 0.0, 1.0, 4.0, 0.0], [9.0, 2.0, 0.0, 1.0, 0.0]])
    ls0 = log_softmax_by_hand([2.0, 1.0, 0.5, -1.0, 0.0])
    ls1 = log_softmax_by_hand([1.5, 0.2, 0.3, 0.1, -0.4])
    expected = -((ls0[0] + ls0[2] + ls0[3]) / 3 + (ls1[0] + ls1[1]) / 2) / 2
    assert nn_mining_loss(logits, [b1, b2, b3]).item() == pytest.approx(expected, abs=1e-6)


def test_nn_mining_uses_the_basic_logits_own_top1_when_passed_as_a_branch() -> None:
    logits = torch.tensor([[0.0, 1.0, 3.0, 2.0]])
    ls = log_softmax_by_hand([0.0, 1.0, 3.0, 2.0])
    assert nn_mining_loss(logits, [logits]).item() == pytest.approx(-(ls[0] + ls[2]) / 2, abs=1e-6)


def test_nn_mining_without_branches_equals_info_nce() -> None:
    gen = torch.Generator().manual_seed(1)
    q, k = F.normalize(torch.randn(6, 8, generator=gen), dim=1), F.normalize(torch.randn(6, 8, generator=gen), dim=1)
    queue = F.normalize(torch.randn(10, 8, generator=gen), dim=1)
    torch.testing.assert_close(nn_mining_loss(info_nce_logits(q, k, queue), []), info_nce(q, k, queue))


def test_nn_mining_gradient_flows_through_basic_logits_only() -> None:
    logits = torch.randn(3, 5, requires_grad=True)
    branch = torch.randn(3, 5, requires_grad=True)
    nn_mining_loss(logits, [branch]).backward()
    assert branch.grad is None and logits.grad is not None
