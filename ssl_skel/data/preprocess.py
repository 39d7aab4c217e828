"""Spatial normalisation of one sequence ``(C, T, V, M)`` (numpy, vectorised over frames and persons).

Variants (:data:`NORMALIZATIONS`; spec "Normalisation"):

- ``"none"``: coordinates as stored.
- ``"first_frame"`` (HaLP / MAMP style, view normalisation): one rigid transform for the whole clip, computed from
  person 0's first present frame. Translate so that the body centre is the origin, then (3D) rotate so that the
  hip line (left hip -> right hip) lies along +x and the spine (lower -> upper spine) lies in the x-y plane
  pointing to +y: the hip direction is kept exactly, the spine is made orthogonal to it (Gram-Schmidt). For 2D
  layouts (``Layout.dims == 2``) the rotation is in the image plane and only aligns the hip line with +x.
- ``"per_frame_shoulder"`` (HiCLR / AimCLR / CrosSCLR): per frame and person, subtract the upper spine joint
  and (3D) rotate about the vertical y axis so that the shoulder line (left -> right shoulder) projected on the
  x-z plane points along +x. For 2D layouts only the translation is applied.

Joints are found by name, so any layout with hips and shoulders works (:func:`body_frame_joints`):

- lower spine: ``spine_base`` / ``hip_center``, else the midpoint of the hips;
- upper spine: ``spine_shoulder`` / ``shoulder_center`` / ``neck``, else the midpoint of the shoulders;
- centre: ``spine_mid`` / ``spine``, else the midpoint of the lower and upper spine.

For ``ntu25`` that is hips 12/16, spine 0 -> 20, centre 1; for ``nw_ucla20`` hips 12/16, spine 0 -> 2, centre 1.
The coordinate channels are the first ``Layout.dims`` channels; further channels (e.g. a 2D keypoint score) are
left as they are. Absent persons and padded frames (all-zero) stay exactly zero. A degenerate reference
(zero-length hip line, spine parallel to it) skips the rotation but keeps the translation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..skeleton.layouts import Layout, get_layout

__all__ = ["NORMALIZATIONS", "BodyJoints", "body_frame_joints", "normalize"]

NORMALIZATIONS = ("none", "first_frame", "per_frame_shoulder")
_EPS = 1e-6


@dataclass(frozen=True)
class BodyJoints:
    """Joint index groups whose mean gives each body landmark (one index, or two for a midpoint)."""

    left_hip: int
    right_hip: int
    left_shoulder: int
    right_shoulder: int
    spine_low: tuple[int, ...]
    spine_high: tuple[int, ...]
    centre: tuple[int, ...]


def body_frame_joints(layout: str | Layout) -> BodyJoints:
    """Landmarks of ``layout`` used by the normalisations, looked up by joint name."""
    lay = get_layout(layout)
    index = {name: i for i, name in enumerate(lay.joints)}
    missing = [n for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder") if n not in index]
    if missing:
        raise ValueError(f"layout {lay.name} has no joint(s) {missing}; normalisation needs hips and shoulders")

    def first(names: tuple[str, ...], fallback: tuple[int, ...]) -> tuple[int, ...]:
        return next(((index[n],) for n in names if n in index), fallback)

    low = first(("spine_base", "hip_center"), (index["left_hip"], index["right_hip"]))
    high = first(("spine_shoulder", "shoulder_center", "neck"), (index["left_shoulder"], index["right_shoulder"]))
    return BodyJoints(
        left_hip=index["left_hip"],
        right_hip=index["right_hip"],
        left_shoulder=index["left_shoulder"],
        right_shoulder=index["right_shoulder"],
        spine_low=low,
        spine_high=high,
        centre=first(("spine_mid", "spine"), low + high),
    )


def _landmark(x: np.ndarray, joints: tuple[int, ...]) -> np.ndarray:
    """Mean over ``joints`` of ``x (D, T, V, M)`` -> ``(D, T, M)``."""
    return x[:, :, list(joints)].mean(axis=2)


def _present(x: np.ndarray) -> np.ndarray:
    """``(T, M)`` bool: the person has a non-zero coordinate in the frame."""
    return np.any(x != 0, axis=(0, 2))


def normalize(x: np.ndarray, layout: str | Layout, method: str) -> np.ndarray:
    """Normalise one sequence ``x (C, T, V, M)`` with ``method`` (one of :data:`NORMALIZATIONS`).

    Returns a new float32 array of the same shape (``x`` itself for ``"none"``).
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {method!r}; choose one of {NORMALIZATIONS}")
    if method == "none":
        return x
    lay = get_layout(layout)
    dims = lay.dims
    if x.ndim != 4 or x.shape[0] < dims or x.shape[2] != lay.num_joints:
        raise ValueError(f"expected (C >= {dims}, T, {lay.num_joints}, M) for layout {lay.name}, got {x.shape}")
    body = body_frame_joints(lay)
    out = np.array(x, dtype=np.float32, copy=True)
    coords = out[:dims].astype(np.float64)
    present = _present(coords)
    if not present.any():
        return out
    if method == "first_frame":
        coords = _first_frame(coords, present, body, dims)
    else:
        coords = _per_frame_shoulder(coords, body, dims)
    out[:dims] = np.where(present[None, :, None, :], coords, 0.0)
    return out


def _first_frame(coords: np.ndarray, present: np.ndarray, body: BodyJoints, dims: int) -> np.ndarray:
    """One rigid transform from person 0's first present frame (or the first present person's)."""
    person = 0 if present[:, 0].any() else int(np.flatnonzero(present.any(axis=0))[0])
    t0 = int(np.flatnonzero(present[:, person])[0])
    ref = coords[:, t0, :, person]  # (D, V)
    origin = ref[:, list(body.centre)].mean(axis=1)
    hip = ref[:, body.right_hip] - ref[:, body.left_hip]
    rotation = np.eye(dims)
    if np.linalg.norm(hip) > _EPS:
        ex = hip / np.linalg.norm(hip)
        if dims == 2:
            rotation = np.array([[ex[0], ex[1]], [-ex[1], ex[0]]])
        else:
            spine = ref[:, list(body.spine_high)].mean(axis=1) - ref[:, list(body.spine_low)].mean(axis=1)
            spine = spine - spine.dot(ex) * ex
            if np.linalg.norm(spine) > _EPS:
                ey = spine / np.linalg.norm(spine)
                rotation = np.stack([ex, ey, np.cross(ex, ey)])
    centred = coords - origin[:, None, None, None]
    return np.einsum("ij,jtvm->itvm", rotation, centred)


def _per_frame_shoulder(coords: np.ndarray, body: BodyJoints, dims: int) -> np.ndarray:
    """Per frame and person: subtract the upper spine, rotate about y to align the shoulders with +x (3D)."""
    coords = coords - _landmark(coords, body.spine_high)[:, :, None, :]
    if dims == 2:
        return coords
    shoulder = coords[:, :, body.right_shoulder] - coords[:, :, body.left_shoulder]  # (3, T, M)
    sx, sz = shoulder[0], shoulder[2]
    norm = np.hypot(sx, sz)
    ok = norm > _EPS
    cos = np.where(ok, sx / np.where(ok, norm, 1.0), 1.0)[:, None, :]  # (T, 1, M)
    sin = np.where(ok, sz / np.where(ok, norm, 1.0), 0.0)[:, None, :]
    x, y, z = coords
    return np.stack([cos * x + sin * z, y, cos * z - sin * x])
