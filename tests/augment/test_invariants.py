"""Contract of every augmentation and policy: padding and absent persons stay exactly zero, seeds reproduce,
dtypes are preserved, every layout works."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from augment_batches import make_batch, zero_regions

from ssl_skel.augment import (
    POLICIES,
    AxisMask,
    BodyPartMask,
    GaussianBlur,
    GaussianNoise,
    Identity,
    JointCorruption,
    JointMask,
    MainAxisRotate,
    Mirror,
    MultiView,
    RandomApply,
    RandomChoice,
    Rotate,
    Scale,
    Shear,
    TemporalCropResize,
    TemporalShiftCrop,
    TimeFlip,
    build_policy,
)
from ssl_skel.skeleton import get_layout, layout_names


def _augmentations(layout: str) -> dict[str, Callable[[], torch.nn.Module]]:
    c = get_layout(layout).dims
    return {
        "shift_crop": lambda: TemporalShiftCrop(),
        "crop_resize": lambda: TemporalCropResize(32, (0.1, 1.0), 8),
        "shear": lambda: Shear(0.5, coords=c),
        "rotate": lambda: Rotate(coords=c),
        "main_axis_rotate": lambda: MainAxisRotate(coords=c),
        "mirror": lambda: Mirror(layout, coords=c),
        "noise": lambda: GaussianNoise(0.1, coords=c),
        "exact_noise": lambda: GaussianNoise(0.1, exact=True, coords=c),
        "blur": lambda: GaussianBlur(coords=c),
        "raw_blur": lambda: GaussianBlur(normalize=False, coords=c),
        "axis_mask": lambda: AxisMask(coords=c),
        "time_flip": lambda: TimeFlip(),
        "joint_mask": lambda: JointMask(0.2, value=1.5, coords=c),
        "joint_corruption": lambda: JointCorruption(coords=c),
        "body_part_mask": lambda: BodyPartMask(layout, 2, value=-1.0, coords=c),
        "scale": lambda: Scale(per_axis=True, coords=c),
        "random_noise": lambda: RandomApply(GaussianNoise(0.1, coords=c), 0.5),
        "random_flip": lambda: RandomApply(TimeFlip(), 0.5),
        "choice": lambda: RandomChoice([TimeFlip(), GaussianNoise(coords=c), Identity()]),
        **{f"policy_{name}": (lambda name=name: build_policy(name, layout)) for name in POLICIES},
    }


NAMES = list(_augmentations("ntu25"))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layout", layout_names())
def test_absent_persons_and_padding_stay_exactly_zero(name: str, layout: str) -> None:
    x = make_batch(layout, t=40)
    module = _augmentations(layout)[name]()
    out = module(x, torch.Generator().manual_seed(0))
    assert out.dtype == x.dtype and out.shape[:2] == x.shape[:2] and out.shape[3:] == x.shape[3:]
    assert (out[1, :, :, :, 1] == 0).all() and (out[4, :, :, :, 1] == 0).all()
    if out.shape[2] == x.shape[2]:
        assert all((region == 0).all() for region in zero_regions(out))
    assert torch.isfinite(out).all() and out[0].abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output_and_different_seeds_differ(name: str) -> None:
    x = make_batch(n=8)
    module = _augmentations("ntu25")[name]()
    a = module(x, torch.Generator().manual_seed(11))
    b = module(x, torch.Generator().manual_seed(11))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    if name not in ("mirror", "time_flip"):
        c = module(x, torch.Generator().manual_seed(12))
        assert not torch.equal(a, c)
    torch.manual_seed(3)
    d = module(x)
    torch.manual_seed(3)
    torch.testing.assert_close(module(x), d, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_is_preserved(name: str, dtype: torch.dtype) -> None:
    x = make_batch(dtype=dtype)
    out = _augmentations("ntu25")[name]()(x, torch.Generator().manual_seed(0))
    assert out.dtype == dtype


@pytest.mark.parametrize("layout", ["coco17", "openpose18"])
def test_policies_on_2d_layouts_with_a_score_channel(layout: str) -> None:
    x = make_batch(layout, channels=3)
    for name in POLICIES:
        out = build_policy(name, layout)(x, torch.Generator().manual_seed(0))
        assert out.shape[1] == 3 and (out[1, :, :, :, 1] == 0).all()


def test_multiview_gives_independent_views_and_a_batch_input_is_not_modified() -> None:
    x = make_batch(n=8)
    original = x.clone()
    views = MultiView([build_policy("hiclr_strong")] * 3)(x, torch.Generator().manual_seed(0))
    assert len(views) == 3 and not torch.equal(views[0], views[1]) and not torch.equal(views[1], views[2])
    torch.testing.assert_close(x, original, rtol=0, atol=0)


def test_build_policy_rejects_unknown_names_and_accepts_overrides() -> None:
    with pytest.raises(KeyError, match="known policies"):
        build_policy("simclr")
    policy = build_policy("mamp", "ntu25", size=30)
    assert policy(make_batch()).shape[2] == 30
    assert isinstance(build_policy("hiclr_strong_mask").transforms[-1], JointMask)


def test_policies_are_constructible_from_a_config() -> None:
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--aug", type=torch.nn.Module)
    cfg = parser.parse_object({"aug": {"class_path": "ssl_skel.augment.HiCLRPolicy",
                                       "init_args": {"layout": "ntu25", "strength": "strong"}}})
    policy = parser.instantiate(cfg).aug
    assert policy.strength == "strong" and policy(make_batch()).shape == make_batch().shape


def test_stacked_hiclr_views_keep_zeros_are_deterministic_and_pass_gradients_to_the_mask_value() -> None:
    x = make_batch(n=8)
    original = x.clone()
    value = torch.nn.Parameter(torch.tensor(0.25))
    views = MultiView([
        build_policy("hiclr_basic"), build_policy("hiclr_basic"), build_policy("hiclr_strong"),
        build_policy("hiclr_strong_mask", mask_value=value),
    ])
    first = views(x, torch.Generator().manual_seed(0))
    again = views(x, torch.Generator().manual_seed(0))
    assert len(first) == 4 and all(v.shape == x.shape and v.dtype == x.dtype for v in first)
    for view, repeat in zip(first, again, strict=True):
        torch.testing.assert_close(view, repeat, rtol=0, atol=0)
        assert all((region == 0).all() for region in zero_regions(view))
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[2], first[3])
    torch.testing.assert_close(x, original, rtol=0, atol=0)
    first[3].sum().backward()
    assert value.grad is not None and value.grad.item() > 0
