"""Contrastive losses over a MoCo queue: InfoNCE, HiCLR's directional consistency and nearest-neighbour mining.

Conventions: ``q`` (N, D) queries and ``k`` (N, D) keys are L2-normalised, ``queue`` (K, D) holds L2-normalised
negatives; logits are cosine similarities divided by a temperature, laid out as ``[q.k, q.queue]`` -> (N, 1 + K),
so the positive key is column 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["directional_consistency", "info_nce", "info_nce_logits", "nn_mining_loss"]


def info_nce_logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Logits ``[q.k, q.queue] / temperature`` of shape (N, 1 + K); no gradient flows into ``queue``."""
    positive = (q * k).sum(dim=1, keepdim=True)
    negatives = q @ queue.detach().t()
    return torch.cat([positive, negatives], dim=1) / temperature


class _InfoNCE(torch.autograd.Function):
    """Fused :func:`info_nce` (the same function and gradients as the cross-entropy of :func:`info_nce_logits`).

    The ``(N, K)`` negative logits are the only full-size tensor: they are turned into softmax probabilities in
    place and kept for the backward pass, which is then one matrix product. The unfused form concatenates,
    divides, log-softmaxes and back-propagates through each of those full-size tensors (about 2.3 times slower
    and several times the memory for LAC's 2,048 frame queries against 65,536 frame keys).
    """

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
        scaled = q / temperature
        positive = (scaled * k).sum(dim=1, keepdim=True)  # (N, 1)
        probabilities = scaled @ queue.t()  # (N, K) negative logits, then their probabilities
        peak = torch.maximum(probabilities.amax(dim=1, keepdim=True), positive)
        probabilities.sub_(peak).exp_()
        positive_exp = (positive - peak).exp()
        total = probabilities.sum(dim=1, keepdim=True) + positive_exp
        loss = (total.log() + peak - positive).mean()
        probabilities.div_(total)
        ctx.save_for_backward(probabilities, positive_exp / total, q, k, queue)
        ctx.temperature = temperature
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        probabilities, positive_probability, q, k, queue = ctx.saved_tensors
        scale = grad / (probabilities.shape[0] * ctx.temperature)
        grad_q = grad_k = None
        if ctx.needs_input_grad[0]:  # d/dq = (sum_j p_j queue_j + (p_0 - 1) k) / (N t)
            grad_q = torch.addmm(k * (positive_probability - 1), probabilities, queue) * scale
        if ctx.needs_input_grad[1]:  # d/dk = (p_0 - 1) q / (N t)
            grad_k = q * (positive_probability - 1) * scale
        return grad_q, grad_k, None, None


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """MoCo InfoNCE: cross-entropy of :func:`info_nce_logits` with target index 0, averaged over the batch.

    Computed by a fused kernel (:class:`_InfoNCE`) with the same value and gradients; no gradient flows into
    ``queue``. Under autocast (or for mixed dtypes) the plain cross-entropy of the logits is used.
    """
    device = q.device.type
    same_dtype = q.dtype == k.dtype == queue.dtype
    if not same_dtype or (torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)):
        logits = info_nce_logits(q, k, queue, temperature)
        return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))
    return _InfoNCE.apply(q, k, queue.detach(), temperature)


def directional_consistency(logits_target: torch.Tensor, logits_student: torch.Tensor) -> torch.Tensor:
    """HiCLR consistency ``- sum_j softmax(target)_j log softmax(student)_j``, batch mean; (N, C) logits -> scalar.

    The target distribution is detached: the student (stronger view) is pulled toward the target (weaker view),
    never the reverse.
    """
    target = F.softmax(logits_target.detach(), dim=1)
    return -(target * F.log_softmax(logits_student, dim=1)).sum(dim=1).mean()


def nn_mining_loss(logits: torch.Tensor, branch_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """HiCLR multi-positive InfoNCE with nearest-neighbour mining; ``logits`` (N, 1 + K) of the basic branch.

    The positive set P_n of sample n is its key (column 0) plus, for each tensor of ``branch_logits`` (each
    (N, 1 + K) over the same ``[k, queue]``, typically the basic, strong and masked branches), the queue column
    of highest logit (top-1; the same column picked by several branches counts once). Returns
    ``- mean_n sum_{j in P_n} log_softmax(logits_n)_j / |P_n|``. With no branches it equals :func:`info_nce`.
    """
    positives = torch.zeros_like(logits, dtype=torch.bool)
    positives[:, 0] = True
    if branch_logits:
        nearest = torch.stack([b.detach()[:, 1:].argmax(dim=1) + 1 for b in branch_logits], dim=1)
        positives.scatter_(1, nearest, True)
    log_prob = F.log_softmax(logits, dim=1)
    per_sample = log_prob.masked_fill(~positives, 0.0).sum(dim=1) / positives.sum(dim=1)
    return -per_sample.mean()
