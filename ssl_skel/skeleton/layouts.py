"""Skeleton layouts: the single source of truth for joint topology.

A :class:`Layout` holds, for one joint convention, the joint names, the tree of bones (edges), the centre joint
the graph and the bone tree are rooted at, the parent of every joint, left/right pairs and named body parts.
Everything topology-related in the package (graph adjacency, bone streams, mirroring, part masking) is derived
from a layout looked up by name with :func:`get_layout`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = ["Layout", "get_layout", "layout_names", "register_layout"]


@dataclass(frozen=True)
class Layout:
    """Joint topology of one skeleton convention (0-based joint indices).

    Args:
        name: registry name, e.g. ``"ntu25"``.
        joints: joint names; ``V = len(joints)``.
        edges: the ``V - 1`` undirected bones of a tree over the joints.
        center: the centre joint; the bone tree is rooted here (its bone is zero).
        pairs: ``(left, right)`` joint pairs swapped by mirroring.
        parts: named body parts; together they cover every joint exactly once.
        dims: coordinate dimensionality of the usual recordings (3 for Kinect, 2 for image keypoints).
    """

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    center: int
    pairs: tuple[tuple[int, int], ...]
    parts: dict[str, tuple[int, ...]] = field(hash=False)
    dims: int = 3

    def __post_init__(self) -> None:
        v = len(self.joints)
        if len(self.edges) != v - 1:
            raise ValueError(f"layout {self.name}: a tree over {v} joints needs {v - 1} edges, got {len(self.edges)}")
        for a, b in (*self.edges, *self.pairs):
            if not (0 <= a < v and 0 <= b < v) or a == b:
                raise ValueError(f"layout {self.name}: invalid joint pair ({a}, {b})")
        covered = sorted(j for part in self.parts.values() for j in part)
        if covered != list(range(v)):
            raise ValueError(f"layout {self.name}: body parts must cover every joint exactly once")
        if -1 in self.parents[: self.center] + self.parents[self.center + 1 :]:
            raise ValueError(f"layout {self.name}: the edges do not connect every joint to the centre")

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @cached_property
    def parents(self) -> tuple[int, ...]:
        """Parent of every joint in the tree rooted at ``center``; the centre is its own parent."""
        neighbours: list[list[int]] = [[] for _ in self.joints]
        for a, b in self.edges:
            neighbours[a].append(b)
            neighbours[b].append(a)
        parent = [-1] * self.num_joints
        parent[self.center] = self.center
        queue = deque([self.center])
        while queue:
            j = queue.popleft()
            for k in neighbours[j]:
                if parent[k] == -1:
                    parent[k] = j
                    queue.append(k)
        return tuple(parent)

    @cached_property
    def mirror_permutation(self) -> tuple[int, ...]:
        """Joint permutation that swaps every left joint with its right counterpart."""
        perm = list(range(self.num_joints))
        for left, right in self.pairs:
            perm[left], perm[right] = right, left
        return tuple(perm)

    @cached_property
    def hop_distance(self) -> np.ndarray:
        """``(V, V)`` int matrix of graph hop distances along the bones."""
        v = self.num_joints
        adjacency = np.zeros((v, v), dtype=bool)
        for a, b in self.edges:
            adjacency[a, b] = adjacency[b, a] = True
        dist = np.full((v, v), -1, dtype=np.int64)
        np.fill_diagonal(dist, 0)
        reach = np.eye(v, dtype=bool)
        for hop in range(1, v):
            reach = reach | (reach.astype(np.int64) @ adjacency.astype(np.int64) > 0)
            dist[(dist < 0) & reach] = hop
        return dist

    def part_index(self, names: tuple[str, ...] | list[str]) -> list[int]:
        """Joint indices of the named body parts, in part order."""
        unknown = [n for n in names if n not in self.parts]
        if unknown:
            raise KeyError(f"layout {self.name} has no body part(s) {unknown}; it has {sorted(self.parts)}")
        return [j for n in names for j in self.parts[n]]


def _one_based(pairs: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    return tuple((a - 1, b - 1) for a, b in pairs)


_LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    """Add a layout to the registry (e.g. for a custom data set) and return it."""
    _LAYOUTS[layout.name] = layout
    return layout


def get_layout(name: str | Layout) -> Layout:
    """Look a layout up by name; a :class:`Layout` is returned as is."""
    if isinstance(name, Layout):
        return name
    try:
        return _LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown skeleton layout {name!r}; known layouts: {sorted(_LAYOUTS)}") from None


def layout_names() -> list[str]:
    return sorted(_LAYOUTS)


register_layout(
    Layout(
        name="ntu25",
        joints=(
            "spine_base", "spine_mid", "neck", "head",
            "left_shoulder", "left_elbow", "left_wrist", "left_hand",
            "right_shoulder", "right_elbow", "right_wrist", "right_hand",
            "left_hip", "left_knee", "left_ankle", "left_foot",
            "right_hip", "right_knee", "right_ankle", "right_foot",
            "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
        ),
        edges=_one_based(
            (
                (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10),
                (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23),
                (23, 8), (24, 25), (25, 12),
            )
        ),
        center=20,
        pairs=((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19), (21, 23), (22, 24)),
        parts={
            "torso": (0, 1, 20),
            "head": (2, 3),
            "left_arm": (4, 5, 6, 7, 21, 22),
            "right_arm": (8, 9, 10, 11, 23, 24),
            "left_leg": (12, 13, 14, 15),
            "right_leg": (16, 17, 18, 19),
        },
    )
)

register_layout(
    Layout(
        name="nw_ucla20",
        joints=(
            "hip_center", "spine", "shoulder_center", "head",
            "left_shoulder", "left_elbow", "left_wrist", "left_hand",
            "right_shoulder", "right_elbow", "right_wrist", "right_hand",
            "left_hip", "left_knee", "left_ankle", "left_foot",
            "right_hip", "right_knee", "right_ankle", "right_foot",
        ),
        edges=_one_based(
            (
                (1, 2), (2, 3), (3, 4), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10), (12, 11),
                (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
            )
        ),
        center=1,
        pairs=((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19)),
        parts={
            "torso": (0, 1, 2),
            "head": (3,),
            "left_arm": (4, 5, 6, 7),
            "right_arm": (8, 9, 10, 11),
            "left_leg": (12, 13, 14, 15),
            "right_leg": (16, 17, 18, 19),
        },
    )
)

register_layout(
    Layout(
        name="coco17",
        joints=(
            "nose", "left_eye", "right_eye", "left_ear", "right_ear",
            "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
            "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
        ),
        edges=(
            (0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (0, 6), (5, 7), (7, 9), (6, 8), (8, 10),
            (5, 11), (6, 12), (11, 13), (13, 15), (12, 14), (14, 16),
        ),
        center=0,
        pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
        parts={
            "head": (0, 1, 2, 3, 4),
            "torso": (5, 6, 11, 12),
            "left_arm": (7, 9),
            "right_arm": (8, 10),
            "left_leg": (13, 15),
            "right_leg": (14, 16),
        },
        dims=2,
    )
)

register_layout(
    Layout(
        name="openpose18",
        joints=(
            "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
            "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
            "right_eye", "left_eye", "right_ear", "left_ear",
        ),
        edges=(
            (4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2), (5, 1),
            (2, 1), (0, 1), (15, 0), (14, 0), (17, 15), (16, 14),
        ),
        center=1,
        pairs=((5, 2), (6, 3), (7, 4), (11, 8), (12, 9), (13, 10), (15, 14), (17, 16)),
        parts={
            "head": (0, 14, 15, 16, 17),
            "torso": (1, 2, 5, 8, 11),
            "left_arm": (6, 7),
            "right_arm": (3, 4),
            "left_leg": (12, 13),
            "right_leg": (9, 10),
        },
        dims=2,
    )
)
