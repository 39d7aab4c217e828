"""Contrastive losses over a MoCo queue: InfoNCE, HiCLR's directional consistency and nearest-neighbour mining.

Conventions: ``q`` (N, D) queries and ``k`` (N, D) keys are L2-normalised, ``queue`` (K, D) holds L2-normalised
negatives; logits are cosine similarities divided by a temperature, laid out as ``[q.k, q.queue]`` -> (N, 1 + K),
so the positive key is column 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["directional_consistency", "info_nce", "info_nce_logits", "nn_mining_loss"]


def info_nce_logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Logits ``[q.k, q.queue] / temperature`` of shape (N, 1 + K); no gradient flows into ``queue``."""
    positive = (q * k).sum(dim=1, keepdim=True)
    negatives = q @ queue.detach().t()
    return torch.cat([positive, negatives], dim=1) / temperature


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """MoCo InfoNCE: cross-entropy of :func:`info_nce_logits` with target index 0, averaged over the batch."""
    logits = info_nce_logits(q, k, queue, temperature)
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))


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
