"""HaLP: hallucinated latent positives on the unit sphere of the embedding space.

Prototypes are spherical k-means centroids of the newest queue keys. For an anchor key ``k`` with nearest
prototype ``p0`` and a sampled other prototype ``p_sel``, a positive is the slerp from ``k`` toward ``p_sel`` by
``t = (1 - u) t_max``, where ``t_max`` is the interpolation at which the point becomes equally similar to ``p0``
and ``p_sel`` (closed form, :func:`halp_t_max`). All embeddings are L2-normalised ``(..., D)`` vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .moco import KeyQueue

__all__ = [
    "PrototypeBank", "hallucinate_positives", "halp_positive_loss", "halp_t_max", "slerp", "spherical_kmeans",
]


def _generator_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    return generator.device if generator is not None else fallback


def spherical_kmeans(
    x: torch.Tensor, k: int = 20, iters: int = 10, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Spherical k-means of unit vectors ``x`` (n, d) -> ``k`` unit-norm centroids (k, d).

    k-means++ seeding (each next seed drawn with probability proportional to its squared chordal distance
    ``2 - 2 cos`` to the nearest seed so far, uniformly if all distances vanish), then ``iters`` fixed rounds of
    assignment by cosine similarity and re-normalised cluster sums. A cluster that is empty (or whose sum
    vanishes) keeps its previous centroid. Deterministic given the generator state.
    """
    n = x.shape[0]
    if not 0 < k <= n:
        raise ValueError(f"spherical k-means needs 0 < k <= number of points, got k={k} with {n} points")
    x = F.normalize(x, dim=1)
    gen_device = _generator_device(generator, x.device)
    first = torch.randint(n, (1,), generator=generator, device=gen_device).to(x.device)
    centroids = x[first]
    best_sim = (x @ centroids.t()).squeeze(1)
    for _ in range(k - 1):
        weights = (2.0 - 2.0 * best_sim).clamp_min(0.0)
        weights = torch.where(weights.sum() > 0, weights, torch.ones_like(weights))
        pick = torch.multinomial(weights.to(gen_device), 1, generator=generator).to(x.device)
        centroids = torch.cat([centroids, x[pick]])
        best_sim = torch.maximum(best_sim, (x @ x[pick].t()).squeeze(1))
    eps = torch.finfo(x.dtype).eps
    for _ in range(iters):
        assign = (x @ centroids.t()).argmax(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        norms = sums.norm(dim=1, keepdim=True)
        centroids = torch.where(norms > eps, sums / norms.clamp_min(eps), centroids)
    return centroids


def halp_t_max(k: torch.Tensor, p0: torch.Tensor, p_sel: torch.Tensor) -> torch.Tensor:
    """Largest slerp fraction from ``k`` toward ``p_sel`` that stays at least as close to ``p0`` as to ``p_sel``.

    Unit vectors ``(..., d)``, broadcast against each other -> ``(...)`` in [0, 1]. With
    ``K = (1 - p_sel.p0) / (k.(p0 - p_sel))`` and ``w = arccos(p_sel.k)``, ``t_max = atan2(sin w, K + cos w) / w``,
    which equals ``arctan(sin w / (K + cos w)) / w`` whenever ``K + cos w > 0`` and stays correct (angle in
    ``(pi/2, w]``) when it is negative. Numerics: dot products clamped to [-1, 1], ``k.(p0 - p_sel)`` to a tiny
    positive value (an anchor equally close to both gives ``t_max ~ 0``), and ``t_max = 0`` when ``w ~ 0``.
    """
    eps = torch.finfo(k.dtype).eps
    k_p0 = (k * p0).sum(-1).clamp(-1.0, 1.0)
    k_sel = (k * p_sel).sum(-1).clamp(-1.0, 1.0)
    sel_p0 = (p_sel * p0).sum(-1).clamp(-1.0, 1.0)
    big_k = (1.0 - sel_p0) / (k_p0 - k_sel).clamp_min(eps)
    w = torch.arccos(k_sel)
    angle = torch.atan2(torch.sin(w), big_k + torch.cos(w))
    return torch.where(w > eps**0.5, angle / w.clamp_min(eps), torch.zeros_like(w))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of unit vectors ``a``, ``b`` (..., d) by fraction ``t`` (...) -> (..., d).

    ``t = 0`` gives ``a``, ``t = 1`` gives ``b``; falls back to linear interpolation when ``a ~ b``. Undefined for
    antipodal ``a``, ``b``.
    """
    eps = torch.finfo(a.dtype).eps
    t = t.unsqueeze(-1)
    w = torch.arccos((a * b).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    sin_w = torch.sin(w)
    near = sin_w < eps**0.5
    safe = sin_w.clamp_min(eps)
    coef_a = torch.where(near, 1.0 - t, torch.sin((1.0 - t) * w) / safe)
    coef_b = torch.where(near, t, torch.sin(t * w) / safe)
    return coef_a * a + coef_b * b


@torch.no_grad()
def hallucinate_positives(
    keys: torch.Tensor,
    prototypes: torch.Tensor,
    num_candidates: int = 100,
    lam: float = 0.8,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hallucinated positives for anchor keys (N, d) from prototypes (P, d), P >= 2; no gradient.

    Per anchor: ``p0`` = nearest prototype; ``num_candidates`` = C draws of ``p_sel`` uniformly among the other
    P - 1 prototypes (ranks 2..P by similarity to the anchor); ``t = (1 - u) t_max`` with ``u ~ U(0, lam)``; the
    candidate is ``slerp(k, p_sel, t)`` re-normalised. Returns positives (N, C, d) on the unit sphere and ``keep``
    (N, C) bool, True where the candidate's nearest prototype is still ``p0``.
    """
    n, p = keys.shape[0], prototypes.shape[0]
    if p < 2:
        raise ValueError(f"hallucinating positives needs at least 2 prototypes, got {p}")
    keys = F.normalize(keys.detach(), dim=1)
    prototypes = F.normalize(prototypes.detach(), dim=1)
    order = (keys @ prototypes.t()).argsort(dim=1, descending=True)
    nearest = order[:, 0]
    gen_device = _generator_device(generator, keys.device)
    rank = torch.randint(1, p, (n, num_candidates), generator=generator, device=gen_device).to(keys.device)
    selected = order.gather(1, rank)
    u = torch.rand((n, num_candidates), generator=generator, device=gen_device, dtype=keys.dtype).to(keys.device)
    anchors = keys.unsqueeze(1)
    p_sel = prototypes[selected]
    t = (1.0 - lam * u) * halp_t_max(anchors, prototypes[nearest].unsqueeze(1), p_sel)
    positives = F.normalize(slerp(anchors, p_sel, t), dim=-1)
    keep = (positives @ prototypes.t()).argmax(dim=-1) == nearest.unsqueeze(1)
    return positives, keep


def halp_positive_loss(
    q: torch.Tensor, positives: torch.Tensor, keep: torch.Tensor, temperature: float = 0.07
) -> torch.Tensor:
    """``- mean over kept (n, c) of q_n . positives_nc / temperature``; q (N, d) unit, positives (N, C, d), keep (N, C).

    Gradient flows into ``q`` only. Returns 0 (no NaN) when no positive is kept.
    """
    sim = torch.einsum("nd,ncd->nc", q, positives.detach()) / temperature
    return -sim.masked_fill(~keep, 0.0).sum() / keep.sum().clamp_min(1)


class PrototypeBank(nn.Module):
    """HaLP prototypes refreshed by spherical k-means over the newest queue keys, with checkpointed state.

    Buffers: ``prototypes`` (num_prototypes, dim) and ``last_refresh`` (step of the last refresh, -1 before the
    first). A refresh happens once the queue is full and then every ``interval`` steps; its k-means randomness
    is seeded by ``seed + step``, so a run resumed from a checkpoint refreshes at the same steps to the same
    prototypes. ``interval``, ``num_keys``, ``iters`` and ``seed`` are hyper-parameters (set from the config).
    """

    prototypes: torch.Tensor
    last_refresh: torch.Tensor

    def __init__(
        self, dim: int, num_prototypes: int = 20, num_keys: int = 256, interval: int = 10, iters: int = 10,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 2 <= num_prototypes <= num_keys:
            raise ValueError(f"need 2 <= num_prototypes <= num_keys, got {num_prototypes} and {num_keys}")
        if interval <= 0:
            raise ValueError(f"refresh interval must be positive, got {interval}")
        self.num_keys = num_keys
        self.interval = interval
        self.iters = iters
        self.seed = seed
        self.register_buffer("prototypes", torch.zeros(num_prototypes, dim))
        self.register_buffer("last_refresh", torch.full((), -1, dtype=torch.long))

    @property
    def ready(self) -> bool:
        """True once prototypes have been computed at least once."""
        return int(self.last_refresh) >= 0

    @torch.no_grad()
    def maybe_refresh(self, queue: KeyQueue, step: int) -> bool:
        """Recompute the prototypes from ``queue.newest(num_keys)`` if due at ``step`` (e.g. global_step).

        Due when the queue is full and either no refresh happened yet or ``interval`` steps have passed since the
        last one. Returns whether a refresh happened.
        """
        if queue.size < self.num_keys:
            raise ValueError(f"prototypes use the newest {self.num_keys} keys but the queue holds only {queue.size}")
        if not queue.is_full or (self.ready and step - int(self.last_refresh) < self.interval):
            return False
        device = queue.keys.device
        generator = torch.Generator(device=device).manual_seed(self.seed + step)
        keys = queue.newest(self.num_keys).to(self.prototypes.dtype)
        self.prototypes.copy_(spherical_kmeans(keys, self.prototypes.shape[0], self.iters, generator))
        self.last_refresh.fill_(step)
        return True
