"""Worker-side temporal sampling: training crop-resize and evaluation centre sampling."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_skel.data.temporal import center_sample, crop_resize, resize_frames, valid_length


def _ramp(valid: int, padded: int = 0) -> np.ndarray:
    """``(2, valid + padded, 3, 2)``: frame t holds the value t + 1; ``padded`` zero frames at the end."""
    x = np.zeros((2, valid + padded, 3, 2), np.float32)
    x[:, :valid] = (np.arange(valid, dtype=np.float32) + 1)[None, :, None, None]
    return x


def test_valid_length():
    assert valid_length(_ramp(7, padded=5)) == 7
    assert valid_length(np.zeros((3, 4, 2, 1))) == 1


@pytest.mark.parametrize("seed", range(5))
def test_crop_resize_stays_in_valid_frames(seed):
    x = _ramp(40, padded=20)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        y = crop_resize(x, 64, rng, ratio=(0.3, 0.8))
        assert y.shape == (2, 64, 3, 2) and y.dtype == np.float32
        t = y[0, :, 0, 0]
        assert t.min() >= 1 and t.max() <= 40  # never the zero padding
        assert (np.diff(t) >= 0).all()
        span = t[-1] - t[0] + 1  # the crop length
        assert round(0.3 * 40) - 1e-4 <= span <= round(0.8 * 40) + 1e-4


def test_crop_resize_min_frames_and_determinism():
    x = _ramp(100)
    y = crop_resize(x, 30, np.random.default_rng(0), ratio=(0.1, 0.1), min_frames=64)
    assert y[0, -1, 0, 0] - y[0, 0, 0, 0] + 1 == pytest.approx(64)
    a = crop_resize(x, 30, np.random.default_rng(1), ratio=(0.1, 1.0))
    b = crop_resize(x, 30, np.random.default_rng(1), ratio=(0.1, 1.0))
    c = crop_resize(x, 30, np.random.default_rng(2), ratio=(0.1, 1.0))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="0 < low <= high <= 1"):
        crop_resize(x, 30, np.random.default_rng(0), ratio=(0.0, 1.0))


def test_center_sample_is_the_centred_95_percent():
    x = _ramp(100, padded=50)
    y = center_sample(x, 95)
    # 95 frames starting at frame 2 (values 3 .. 97), resized to the same length: exact copies
    np.testing.assert_allclose(y[0, :, 0, 0], np.arange(3, 98))
    np.testing.assert_array_equal(center_sample(x, 50), center_sample(x, 50))
    z = center_sample(x, 50)
    assert z[0, 0, 0, 0] == 3 and z[0, -1, 0, 0] == 97


def test_single_frame_clip_is_repeated():
    x = np.random.default_rng(0).normal(size=(3, 1, 5, 2)).astype(np.float32)
    for y in (center_sample(x, 16), crop_resize(x, 16, np.random.default_rng(0))):
        assert y.shape == (3, 16, 5, 2)
        np.testing.assert_array_equal(y, np.repeat(x, 16, axis=1))


def test_resize_interpolates_linearly():
    x = _ramp(3)
    y = resize_frames(x, 0, 3, 5)
    np.testing.assert_allclose(y[0, :, 0, 0], [1, 1.5, 2, 2.5, 3])
    np.testing.assert_allclose(resize_frames(x, 1, 2, 1)[0, :, 0, 0], [2.5])
    with pytest.raises(ValueError, match="outside the 3 frames"):
        resize_frames(x, 2, 2, 4)
