"""What each augmentation does: geometry, temporal resampling, blur, masks."""

from __future__ import annotations

import math

import pytest
import torch
from augment_batches import assert_fused_equals_steps, make_batch

from ssl_skel.augment import (
    AxisMask,
    BodyPartMask,
    Frames,
    GaussianBlur,
    GaussianNoise,
    JointCorruption,
    JointMask,
    MainAxisRotate,
    Mirror,
    RandomApply,
    Rotate,
    Scale,
    Shear,
    TemporalCropResize,
    TemporalShiftCrop,
    TimeFlip,
    presence,
    rotation_matrices,
    valid_lengths,
)
from ssl_skel.skeleton import bone, get_layout, layout_names


def _bone_lengths(x: torch.Tensor, layout: str, coords: int) -> torch.Tensor:
    return bone(x[:, :coords], layout).norm(dim=1)


def test_mirror_twice_is_identity_and_maps_left_arm_to_right_arm() -> None:
    x = make_batch("ntu25", dtype=torch.float64)
    mirror = Mirror("ntu25")
    once = mirror(x)
    torch.testing.assert_close(mirror(once), x, rtol=0, atol=0)
    lay = get_layout("ntu25")
    left = [lay.joints.index(f"left_{j}") for j in ("shoulder", "elbow", "wrist", "hand", "hand_tip", "thumb")]
    right = [lay.joints.index(f"right_{j}") for j in ("shoulder", "elbow", "wrist", "hand", "hand_tip", "thumb")]
    torch.testing.assert_close(once[:, 0, :, right], -x[:, 0, :, left])
    torch.testing.assert_close(once[:, 1:, :, right], x[:, 1:, :, left])
    torch.testing.assert_close(once[:, 0, :, left], -x[:, 0, :, right])
    head = lay.joints.index("head")
    flip_x = torch.tensor([-1.0, 1, 1], dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close(once[:, :, :, head], x[:, :, :, head] * flip_x)


@pytest.mark.parametrize("layout", layout_names())
@pytest.mark.parametrize("kind", ["rotate", "main_axis_rotate", "mirror"])
def test_rotations_and_mirror_keep_every_bone_length(layout: str, kind: str) -> None:
    lay = get_layout(layout)
    x = make_batch(layout, dtype=torch.float64)
    module = {
        "rotate": Rotate(0.3, coords=lay.dims),
        "main_axis_rotate": MainAxisRotate(coords=lay.dims),
        "mirror": Mirror(layout, coords=lay.dims),
    }[kind]
    out = module(x, torch.Generator().manual_seed(1))
    expected = _bone_lengths(x, layout, lay.dims)
    if kind == "mirror":
        expected = expected[:, :, list(lay.mirror_permutation)]
    torch.testing.assert_close(_bone_lengths(out, layout, lay.dims), expected)
    assert not torch.allclose(out, x)


def test_rotation_matrix_axes_follow_reference_convention() -> None:
    a = 0.4
    r = rotation_matrices(torch.tensor([[a, 0.0, 0.0], [0.0, 0.0, a]], dtype=torch.float64))
    torch.testing.assert_close(r[0] @ torch.tensor([0.0, 1, 0], dtype=torch.float64),
                               torch.tensor([0.0, math.cos(a), -math.sin(a)], dtype=torch.float64))
    torch.testing.assert_close(r[1] @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                               torch.tensor([math.cos(a), -math.sin(a), 0.0], dtype=torch.float64))


def test_shear_with_zero_amplitude_is_identity_and_nonzero_is_not() -> None:
    x = make_batch()
    torch.testing.assert_close(Shear(0.0)(x), x)
    assert not torch.allclose(Shear(0.5)(x), x)


def test_scale_and_axis_mask() -> None:
    x = make_batch(dtype=torch.float64)
    out = Scale(2.0, 2.0)(x)
    torch.testing.assert_close(out, 2 * x)
    per_axis = Scale(0.9, 1.1, per_axis=True)(x)
    ratio = per_axis[0, :, 0, 0, 0] / x[0, :, 0, 0, 0]
    assert ((ratio > 0.9 - 1e-9) & (ratio < 1.1 + 1e-9)).all() and ratio.unique().numel() == 3
    masked = AxisMask()(x)
    zero_axes = (masked.flatten(2) == 0).all(dim=2)
    assert (zero_axes.sum(dim=1) == 1).all()
    keep = (~zero_axes)[:, :, None, None, None].expand_as(x)
    torch.testing.assert_close(masked[keep], x[keep])


def test_two_dimensional_layout_with_score_channel_keeps_scores() -> None:
    x = make_batch("coco17", channels=3)
    x[:, 2] = x[:, 2].abs() * (x[:, :2].abs().sum(1) > 0)
    for module in (Shear(0.5, coords=2), MainAxisRotate(coords=2), Mirror("coco17", coords=2), Scale(coords=2)):
        out = module(x)
        assert out.shape == x.shape
        if not isinstance(module, Mirror):
            torch.testing.assert_close(out[:, 2], x[:, 2])
    out = Mirror("coco17", coords=2)(x)
    perm = list(get_layout("coco17").mirror_permutation)
    torch.testing.assert_close(out[:, 2], x[:, 2][:, :, perm])


def test_blur_keeps_constant_normalised_and_scales_by_kernel_sum_unnormalised() -> None:
    x = torch.zeros(4, 3, 50, 25, 2, dtype=torch.float64)
    x[:, :, :40] = 2.5
    frames_valid = slice(0, 40)
    blur = GaussianBlur(sigma=(0.5, 2.0))
    out = blur(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[:, :, frames_valid], x[:, :, frames_valid])
    assert (out[:, :, 40:] == 0).all()

    raw = GaussianBlur(sigma=(0.5, 2.0), normalize=False)
    sigma = raw.sample_sigma(4, x, torch.Generator().manual_seed(3))
    out = raw(x, torch.Generator().manual_seed(3))
    d = torch.arange(-7, 8, dtype=torch.float64)
    kernel_sum = torch.exp(-d.square()[None] / (2 * sigma.square()[:, None])).sum(1)
    interior = out[:, :, 7:33]
    torch.testing.assert_close(interior, 2.5 * kernel_sum.view(4, 1, 1, 1, 1).expand_as(interior))
    assert (kernel_sum > 1.1).any()
    assert out[:, :, 0].abs().max() < interior.abs().max()


def test_blur_smooths_a_spike_with_the_sampled_sigma() -> None:
    x = torch.zeros(3, 3, 30, 25, 1, dtype=torch.float64)
    x[:, :, 15] = 1.0
    x[:, :, 0] = 1e-3
    x[:, :, 29] = 1e-3
    blur = GaussianBlur(sigma=(1.0, 2.0))
    sigma = blur.sample_sigma(3, x, torch.Generator().manual_seed(5))
    out = blur(x, torch.Generator().manual_seed(5))
    profile = out[:, 0, 13:18, 0, 0]
    expected = torch.exp(-torch.arange(-2, 3, dtype=torch.float64).square() / (2 * sigma[:, None].square()))
    torch.testing.assert_close(profile / profile[:, 2:3], expected, atol=1e-6, rtol=1e-4)


def test_crop_resize_has_target_length_and_stays_inside_valid_frames() -> None:
    n, t = 64, 80
    lengths = torch.randint(5, t + 1, (n,), generator=torch.Generator().manual_seed(0))
    lengths[0] = t
    steps = torch.arange(t, dtype=torch.float64)
    x = torch.zeros(n, 3, t, 25, 2, dtype=torch.float64)
    valid = steps[None] < lengths[:, None]
    x[:, 0] = (steps[None] * valid)[:, :, None, None]
    x[:, 1:] = valid[:, None, :, None, None].double()
    assert torch.equal(valid_lengths(x), lengths)
    for module in (TemporalCropResize(32, (0.1, 1.0), 64), TemporalCropResize(100, (0.5, 1.0), 1),
                   TemporalCropResize(32, center_ratio=0.95)):
        out = module(x, torch.Generator().manual_seed(1))
        assert out.shape == (n, 3, module.size, 25, 2)
        index = out[:, 0, :, 0, 0]
        assert (index >= 0).all() and (index <= (lengths[:, None] - 1)).all()
        assert (out[:, 1] == 1).all()
        assert (index[:, 1:] >= index[:, :-1] - 1e-9).all()


def test_crop_resize_window_and_centre_mode() -> None:
    lengths = torch.tensor([300, 100, 40, 64])
    module = TemporalCropResize(64, (0.1, 1.0), 64)
    start, crop = module.sample_window(lengths, torch.Generator().manual_seed(0))
    assert (crop >= torch.minimum(lengths, torch.tensor(64))).all() and (start + crop <= lengths).all()
    for ratio, length in ((0.5, 100), (0.95, 100), (0.95, 57), (0.8, 300)):
        start, crop = TemporalCropResize(64, center_ratio=ratio).sample_window(torch.tensor([length]), None)
        bias = int((1 - ratio) * length / 2)
        assert start.item() == bias and crop.item() == length - 2 * bias
    x = torch.arange(10, dtype=torch.float64).view(1, 1, 10, 1, 1).expand(1, 3, 10, 1, 1) + 1
    out = TemporalCropResize(20, center_ratio=1.0)(x)
    ref = torch.nn.functional.interpolate(x[:, :1, :, 0, 0], size=20, mode="linear", align_corners=False)
    torch.testing.assert_close(out[:, :1, :, 0, 0], ref)


def test_shift_crop_and_time_flip_reorder_valid_frames_only() -> None:
    t = 36
    lengths = torch.tensor([36, 30, 12, 6])
    steps = torch.arange(t, dtype=torch.float64)
    x = (steps + 1).view(1, 1, t, 1, 1).repeat(4, 3, 1, 5, 2) * (steps[None] < lengths[:, None]).view(4, 1, t, 1, 1)
    out = TemporalShiftCrop(6)(x, torch.Generator().manual_seed(2))[:, 0, :, 0, 0]
    for i, length in enumerate(lengths.tolist()):
        pad = length // 6
        values = out[i, :length]
        diffs = values[1:] - values[:-1]
        assert (values >= 1).all() and (values <= length).all() and (out[i, length:] == 0).all()
        assert ((diffs.abs() == 1) | (diffs == 0)).all()
        assert (diffs == 0).sum() <= 1 and (diffs == -1).sum() <= pad
    flipped = TimeFlip()(x)[:, 0, :, 0, 0]
    for i, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(flipped[i, :length], steps[:length].flip(0) + 1)
        assert (flipped[i, length:] == 0).all()


def test_noise_touches_present_persons_only_with_the_given_sigma() -> None:
    x = make_batch(n=8, t=60, dtype=torch.float64)
    for exact in (False, True):
        out = GaussianNoise(0.05, exact=exact)(x, torch.Generator().manual_seed(0))
        diff = (out - x)[0]
        assert abs(diff.std().item() - 0.05) < 0.002 and abs(diff.mean().item()) < 0.002
        assert (out[1, :, :, :, 1] == 0).all() and (out[2, :, 25:] == 0).all()


def test_joint_mask_hides_int_ratio_v_joints_per_frame_and_person() -> None:
    x = make_batch(n=8, dtype=torch.float64)
    module = JointMask(0.1, value=7.0)
    out = module(x, torch.Generator().manual_seed(0))
    hidden = (out == 7.0).all(dim=1)
    per_frame = hidden.sum(dim=2)
    assert (per_frame[0] == int(0.1 * 25)).all()
    assert (per_frame[1, :, 1] == 0).all() and (per_frame[2, 25:] == 0).all()
    torch.testing.assert_close(out[~hidden[:, None].expand_as(x)], x[~hidden[:, None].expand_as(x)])


def test_joint_mask_learnable_value_gets_gradient() -> None:
    token = torch.nn.Parameter(torch.zeros(()))
    module = JointMask(0.2, value=token)
    assert any(p is token for p in module.parameters())
    module(make_batch()).sum().backward()
    assert token.grad is not None and token.grad.item() > 0


def test_joint_corruption_changes_exactly_ratio_v_joints() -> None:
    x = make_batch(n=16, dtype=torch.float64)
    out = JointCorruption(0.6)(x, torch.Generator().manual_seed(0))
    changed = (out != x).any(dim=1).any(dim=1).any(dim=2)
    assert (changed[[0, 5, 6, 7]].sum(dim=1) == 15).all()
    zeroed = (out[:, :, :, changed[0]] == 0).all()
    assert zeroed or not torch.allclose(out[0], x[0])


def test_body_part_mask_hides_whole_parts() -> None:
    lay = get_layout("ntu25")
    x = make_batch(n=10, dtype=torch.float64)
    out = BodyPartMask("ntu25", num_parts=2, value=-3.0)(x, torch.Generator().manual_seed(0))
    hidden = (out[0] == -3.0).all(dim=0).all(dim=0).all(dim=1)
    parts = [name for name, joints in lay.parts.items() if hidden[list(joints)].all()]
    assert len(parts) == 2 and hidden.sum() == sum(len(lay.parts[p]) for p in parts)


def test_random_apply_probability_zero_and_one() -> None:
    x = make_batch()
    torch.testing.assert_close(RandomApply(GaussianNoise(0.1), 0.0)(x), x)
    torch.testing.assert_close(RandomApply(Shear(0.0), 1.0)(x), x)
    assert not torch.allclose(RandomApply(GaussianNoise(0.1), 1.0)(x), x)


def test_fused_linear_chain_equals_step_by_step_application() -> None:
    x = make_batch(n=12, dtype=torch.float64)
    chain = [Shear(0.5), RandomApply(Mirror("ntu25"), 0.5), MainAxisRotate(), RandomApply(AxisMask(), 0.5), Scale()]
    assert_fused_equals_steps(chain, x)


def _reference_presence(x: torch.Tensor) -> torch.Tensor:
    return (x != 0).any(dim=3).any(dim=1)


def test_presence_of_full_batches_and_of_batches_with_gaps() -> None:
    x = torch.randn(6, 3, 20, 25, 2, generator=torch.Generator().manual_seed(0))
    full = Frames(source=x)
    assert full.present.all() and full.full and torch.equal(full.lengths, torch.full((6,), 20))
    gaps = x.clone()
    gaps[0, :, 15:] = 0  # padding
    gaps[1, :, :, :, 1] = 0  # an absent second person
    gaps[2, 0, 4, 0, 0] = 0  # x of the first joint zero, the person still present
    gaps[3, :, 7, :, 0] = 0
    gaps[3, 1, 7, 9, 0] = -2.0  # one non-zero value keeps the person present
    gaps[4, :, 3:5] = 0  # a gap inside the clip
    for batch in (gaps, gaps.to(torch.float16)):
        present = presence(batch)
        assert torch.equal(present, _reference_presence(batch))
        frames = Frames(source=batch)
        assert not frames.full
        assert torch.equal(frames.lengths, torch.tensor([15, 20, 20, 20, 20, 20]))
        repeated = Frames(source=batch).repeat(3)
        assert not repeated.full and torch.equal(repeated.lengths, frames.lengths.repeat(3))
        assert torch.equal(repeated.present, present.repeat(3, 1, 1))
    assert Frames(source=x).repeat(2).full
