"""The fused and in-place execution paths give the same results as step-by-step application and never leak
their reused buffers."""

from __future__ import annotations

import pytest
import torch
from augment_batches import assert_fused_equals_steps, make_batch, zero_regions

from ssl_skel.augment import (
    POLICIES,
    AxisMask,
    Compose,
    Frames,
    GaussianBlur,
    GaussianNoise,
    MainAxisRotate,
    Mirror,
    MultiView,
    RandomApply,
    Scale,
    Shear,
    TemporalCropResize,
    TemporalShiftCrop,
    TimeFlip,
    build_policy,
)


@pytest.mark.parametrize("crop", [TemporalShiftCrop(), TimeFlip(), TemporalCropResize(24, (0.5, 1.0), 8)])
def test_resampling_fused_with_linear_maps_equals_step_by_step(crop: torch.nn.Module) -> None:
    x = make_batch(n=12, dtype=torch.float64)
    assert_fused_equals_steps([Shear(0.5), crop, RandomApply(Mirror("ntu25"), 0.5), MainAxisRotate()], x)


def test_banded_blur_equals_the_dense_filter_matrices() -> None:
    blur = GaussianBlur(sigma=(0.3, 2.0))
    sigma = blur.sample_sigma(5, torch.zeros(1, dtype=torch.float64), torch.Generator().manual_seed(0))
    length = torch.tensor([30, 17, 3, 0, 8])
    source, weight = blur.band(sigma, length, 30)
    dense = torch.zeros(5, 30, 30, dtype=torch.float64)
    dense.scatter_add_(2, source, weight)
    torch.testing.assert_close(dense, blur.kernels(sigma, length, 30))


@pytest.mark.parametrize("name", list(POLICIES))
def test_outputs_do_not_share_reused_buffers_and_the_input_is_untouched(name: str) -> None:
    x = make_batch(n=8)
    original = x.clone()
    views = MultiView([build_policy(name)] * 2)
    first = views(x, torch.Generator().manual_seed(0))
    kept = [v.clone() for v in first]
    views(x, torch.Generator().manual_seed(1))
    for view, copy in zip(first, kept, strict=True):
        torch.testing.assert_close(view, copy, rtol=0, atol=0)
    torch.testing.assert_close(x, original, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(POLICIES))
def test_gradients_reach_the_input(name: str) -> None:
    x = make_batch(n=8, dtype=torch.float64).requires_grad_()
    build_policy(name)(x, torch.Generator().manual_seed(0)).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_batches(dtype: torch.dtype) -> None:
    x = make_batch(dtype=dtype)
    for name in ("hiclr_strong_mask", "halp"):
        out = build_policy(name)(x, torch.Generator().manual_seed(0))
        assert out.dtype == dtype and torch.isfinite(out).all()
        if out.shape == x.shape:
            assert all((region == 0).all() for region in zero_regions(out))


def test_axis_mask_after_blur_is_applied_in_the_first_pass_with_the_same_result() -> None:
    x = make_batch(n=12, dtype=torch.float64)
    blur, axis = RandomApply(GaussianBlur(), 0.5), RandomApply(AxisMask(), 0.5)
    fused = Compose([Shear(0.5), TemporalShiftCrop(), blur, axis])(x, torch.Generator().manual_seed(2))
    # the hoisted axis mask draws its parameters before the blur
    g = torch.Generator().manual_seed(2)
    shear = Shear(0.5).coord_map(x, g)
    step = TemporalShiftCrop()(shear.apply(x), g)
    mask = axis.coord_map(x, g)
    torch.testing.assert_close(fused, mask.apply(blur(step, g)))


@pytest.mark.parametrize("p", [0.5, 1.0])
def test_noise_on_a_hoisted_axis_mask_stays_zero(p: float) -> None:
    x = make_batch(n=16)
    chain = Compose([
        Shear(0.5), RandomApply(GaussianNoise(0.1), p), RandomApply(GaussianBlur(), 0.5), AxisMask(),
    ])
    out = chain(x, torch.Generator().manual_seed(0))
    zeroed = (out[:, :3] == 0).flatten(2).all(dim=2)
    assert (zeroed.sum(dim=1) == 1).all()
    assert all((region == 0).all() for region in zero_regions(out))


def test_noise_before_a_hoisted_scale_is_scaled() -> None:
    x = torch.ones(64, 3, 20, 25, 1, dtype=torch.float64)
    chain = Compose([Shear(0.0), GaussianNoise(0.01), Scale(2.0, 2.0)])
    out = chain(x, torch.Generator().manual_seed(0))
    assert abs((out - 2).std().item() - 0.02) < 1e-3


def test_blurring_some_samples_in_place_equals_blurring_them_alone() -> None:
    x = make_batch(n=10, dtype=torch.float64)
    frames = Frames(source=x)
    index = torch.tensor([1, 2, 6])
    blur = GaussianBlur()
    out, _, _ = blur.augment_subset(x.clone(), frames, index, torch.Generator().manual_seed(3), owned=True)
    alone = blur(x[index], torch.Generator().manual_seed(3))
    torch.testing.assert_close(out[index], alone)
    keep = torch.tensor([i for i in range(10) if i not in index.tolist()])
    torch.testing.assert_close(out[keep], x[keep], rtol=0, atol=0)


def test_stacked_views_do_not_scale_noise_that_follows_the_hoisted_axis_mask() -> None:
    x = make_batch(n=8)
    policy = Compose([Shear(0.5), RandomApply(GaussianBlur(), 0.5), AxisMask(), GaussianNoise(0.1)])
    for view in MultiView([policy, policy])(x, torch.Generator().manual_seed(0)):
        assert (view[0, :3] != 0).flatten(1).any(dim=1).all()


@pytest.mark.parametrize("axis_p", [0.0, 0.5])
def test_blur_of_every_sample_before_a_hoisted_axis_mask(axis_p: float) -> None:
    x = make_batch(n=6, dtype=torch.float64)
    blur, axis = GaussianBlur(), RandomApply(AxisMask(), axis_p)
    fused = Compose([Shear(0.5), blur, axis])(x, torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    step = Shear(0.5)(x, g)
    mask = axis.coord_map(x, g)
    torch.testing.assert_close(fused, mask.apply(blur(step, g)))
