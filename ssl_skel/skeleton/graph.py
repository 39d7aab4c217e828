"""Graph adjacency matrices built from a :class:`~ssl_skel.skeleton.layouts.Layout`."""

from __future__ import annotations

import numpy as np
import torch

from .layouts import Layout, get_layout

__all__ = ["binary_adjacency", "spatial_adjacency"]


def binary_adjacency(layout: str | Layout, self_loops: bool = True) -> torch.Tensor:
    """``(V, V)`` float 0/1 adjacency of the bone graph, symmetric, with the identity if ``self_loops``."""
    layout = get_layout(layout)
    v = layout.num_joints
    a = torch.zeros(v, v)
    for i, j in layout.edges:
        a[i, j] = a[j, i] = 1.0
    if self_loops:
        a += torch.eye(v)
    return a


def spatial_adjacency(layout: str | Layout) -> torch.Tensor:
    """``(3, V, V)`` ST-GCN "spatial" partition: self, centripetal and centrifugal subsets.

    The 1-hop adjacency with self loops is column-normalised (``A D^-1``, so every column of the sum of the
    subsets adds up to 1) and split by each neighbour's hop distance to the centre joint: subset 0 holds
    ``(j, i)`` with equal distance (the self loops on a tree), subset 1 neighbours ``j`` nearer the centre than
    ``i`` and subset 2 neighbours farther away. ``A[k, j, i]`` weighs joint ``j``'s input into joint ``i``.
    """
    layout = get_layout(layout)
    a = binary_adjacency(layout).numpy()
    normalised = a / a.sum(axis=0, keepdims=True)
    dist = layout.hop_distance[:, layout.center]
    nearer = dist[:, None] < dist[None, :]
    farther = dist[:, None] > dist[None, :]
    same = ~(nearer | farther)
    subsets = np.stack([normalised * same, normalised * nearer, normalised * farther])
    return torch.from_numpy(subsets.astype(np.float32))
