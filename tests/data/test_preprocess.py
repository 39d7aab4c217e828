"""Normalisation variants: first-frame view normalisation, per-frame shoulder alignment, zeros kept."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_skel.data.preprocess import body_frame_joints, normalize
from ssl_skel.skeleton.layouts import get_layout


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q * np.linalg.det(q)  # proper rotation


def _posed_clip(layout: str, t: int = 6, m: int = 2, seed: int = 0) -> np.ndarray:
    """A clip ``(3, T, V, M)``: random bodies whose first frame has hips along x and spine along y, then a random
    rigid transform (so the normalisation has something to undo)."""
    lay = get_layout(layout)
    body = body_frame_joints(lay)
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.3, size=(3, t, lay.num_joints, m))
    ref = x[:, 0, :, 0]
    ref[:, list(body.spine_low)] = 0.0
    ref[:, list(body.spine_high)] = [[0.0], [0.5], [0.0]]
    ref[:, body.left_hip], ref[:, body.right_hip] = [-0.15, 0.0, 0.0], [0.15, 0.0, 0.0]
    rot, shift = _rotation(rng), rng.normal(size=(3, 1, 1, 1)) + np.array([0.0, 0.0, 3.0]).reshape(3, 1, 1, 1)
    return (np.einsum("ij,jtvm->itvm", rot, x) + shift).astype(np.float32)


def _bone_lengths(x: np.ndarray, layout: str) -> np.ndarray:
    parents = list(get_layout(layout).parents)
    return np.linalg.norm(x - x[:, :, parents], axis=0)


@pytest.mark.parametrize("layout", ["ntu25", "nw_ucla20"])
def test_first_frame_aligns_hips_with_x_and_spine_with_y(layout):
    x = _posed_clip(layout)
    y = normalize(x, layout, "first_frame")
    body = body_frame_joints(layout)
    ref = y[:, 0, :, 0]
    hip = ref[:, body.right_hip] - ref[:, body.left_hip]
    spine = ref[:, list(body.spine_high)].mean(1) - ref[:, list(body.spine_low)].mean(1)
    np.testing.assert_allclose(hip / np.linalg.norm(hip), [1, 0, 0], atol=1e-5)
    np.testing.assert_allclose(spine / np.linalg.norm(spine), [0, 1, 0], atol=1e-5)
    np.testing.assert_allclose(ref[:, list(body.centre)].mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(_bone_lengths(y, layout), _bone_lengths(x, layout), rtol=1e-4, atol=1e-5)
    assert y.dtype == np.float32 and y.shape == x.shape


def test_first_frame_oblique_spine_lies_in_xy_plane():
    x = np.random.default_rng(3).normal(size=(3, 4, 25, 1)).astype(np.float32)
    y = normalize(x, "ntu25", "first_frame")
    hip = y[:, 0, 16, 0] - y[:, 0, 12, 0]
    spine = y[:, 0, 20, 0] - y[:, 0, 0, 0]
    assert hip[0] > 0 and abs(hip[1]) < 1e-5 and abs(hip[2]) < 1e-5
    assert spine[1] > 0 and abs(spine[2]) < 1e-5
    np.testing.assert_allclose(y[:, 0, 1, 0], 0, atol=1e-5)  # ntu25 centre: spine mid


def test_zeros_stay_zero_and_reference_is_first_present_frame():
    x = _posed_clip("ntu25", t=8, seed=1)
    x = np.concatenate([np.zeros_like(x[:, :2]), x], axis=1)  # two leading empty frames
    x[:, -2:] = 0  # trailing padding
    x[:, 3:5, :, 1] = 0  # person 1 absent for two frames
    for method in ("first_frame", "per_frame_shoulder"):
        y = normalize(x, "ntu25", method)
        assert not y[:, :2].any() and not y[:, -2:].any() and not y[:, 3:5, :, 1].any()
    y = normalize(x, "ntu25", "first_frame")
    hip = y[:, 2, 16, 0] - y[:, 2, 12, 0]
    np.testing.assert_allclose(hip / np.linalg.norm(hip), [1, 0, 0], atol=1e-5)


def test_per_frame_shoulder_alignment():
    x = np.random.default_rng(5).normal(size=(3, 7, 25, 2)).astype(np.float32)
    x[:, 4, :, 1] = 0
    y = normalize(x, "ntu25", "per_frame_shoulder")
    present = np.ones((7, 2), bool)
    present[4, 1] = False
    frames = y.transpose(0, 1, 3, 2)[:, present]  # (3, present person-frames, V)
    np.testing.assert_allclose(frames[:, :, 20], 0, atol=1e-5)  # spine shoulder at the origin
    shoulder = frames[:, :, 8] - frames[:, :, 4]
    assert (shoulder[0] > 0).all()
    np.testing.assert_allclose(shoulder[2], 0, atol=1e-5)
    # a rotation about y keeps heights relative to the spine shoulder and all bone lengths
    np.testing.assert_allclose(y[1][:, :, 0], (x[1] - x[1][:, 20:21])[:, :, 0], atol=1e-5)
    np.testing.assert_allclose(_bone_lengths(y, "ntu25"), _bone_lengths(x, "ntu25"), rtol=1e-4, atol=1e-5)


def test_two_d_layout_rotates_in_plane_and_keeps_scores():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 5, 17, 1)).astype(np.float32)  # x, y, score
    y = normalize(x, "coco17", "first_frame")
    hip = y[:2, 0, 12, 0] - y[:2, 0, 11, 0]
    np.testing.assert_allclose(hip / np.linalg.norm(hip), [1, 0], atol=1e-5)
    mid = (y[:2, 0, [11, 12, 5, 6], 0]).mean(1)
    np.testing.assert_allclose(mid, 0, atol=1e-5)  # coco17 centre: mean of hip and shoulder midpoints
    np.testing.assert_array_equal(y[2], x[2])
    z = normalize(x, "coco17", "per_frame_shoulder")
    np.testing.assert_allclose(z[:2], x[:2] - x[:2, :, [5, 6]].mean(2, keepdims=True), atol=1e-5)


def test_none_and_errors():
    x = np.ones((3, 2, 25, 1), np.float32)
    assert normalize(x, "ntu25", "none") is x
    with pytest.raises(ValueError, match="unknown normalization 'spine'"):
        normalize(x, "ntu25", "spine")
    with pytest.raises(ValueError, match=r"\(C >= 3, T, 20, M\)"):
        normalize(x, "nw_ucla20", "first_frame")
    assert not normalize(np.zeros_like(x), "ntu25", "first_frame").any()
