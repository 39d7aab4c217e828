"""The augmentation policies of the pretraining methods, as configurable modules and by name.

Each policy is a :class:`Compose` whose constructor takes typed arguments, so it can be given in YAML as
``class_path: ssl_skel.augment.HiCLRPolicy`` with ``init_args``, or built in code with :func:`build_policy`.
``coords`` defaults to the layout's coordinate dimensionality (3 for Kinect layouts, 2 for image keypoints, whose
third channel, if any, is a score).
"""

from __future__ import annotations

from typing import Literal

import torch

from ..skeleton.layouts import Layout, get_layout
from .base import Augmentation
from .compose import Compose, RandomApply, RandomChoice
from .masking import GaussianNoise, JointCorruption, JointMask
from .spatial import AxisMask, MainAxisRotate, Mirror, Rotate, Shear
from .temporal import GaussianBlur, TemporalCropResize, TemporalShiftCrop

__all__ = ["POLICIES", "HaLPPolicy", "HiCLRPolicy", "MAMPPolicy", "build_policy"]


class HiCLRPolicy(Compose):
    """HiCLR / AimCLR views. ``basic``: temporal shift crop + shear. ``strong``: basic, then mirror (p), main-axis
    rotation, gaussian noise (p), temporal blur (p) and axis mask (p). ``strong_mask``: strong, then joint mask.

    Args:
        layout: skeleton layout name.
        strength: ``basic``, ``strong`` or ``strong_mask``.
        padding_ratio: temporal crop mirror padding ``L // padding_ratio``.
        shear: shear amplitude.
        mirror_p: probability of mirroring.
        noise_sigma: gaussian noise standard deviation.
        noise_p: probability of noise.
        blur_p: probability of the temporal blur.
        blur_normalize: normalised blur kernel; ``False`` reproduces the reference's scaling (see GaussianBlur).
        axis_mask_p: probability of the axis mask.
        mask_ratio: fraction of joints hidden per frame by the joint mask.
        mask_value: value of hidden joints; a learnable ``nn.Parameter`` can be passed from code.
        coords: coordinate channels (default: the layout's ``dims``).
    """

    def __init__(
        self,
        layout: str | Layout = "ntu25",
        strength: Literal["basic", "strong", "strong_mask"] = "basic",
        padding_ratio: int = 6,
        shear: float = 0.5,
        mirror_p: float = 0.5,
        noise_sigma: float = 0.01,
        noise_p: float = 0.5,
        blur_p: float = 0.5,
        blur_normalize: bool = True,
        axis_mask_p: float = 0.5,
        mask_ratio: float = 0.1,
        mask_value: float | torch.Tensor = 0.0,
        coords: int | None = None,
    ) -> None:
        if strength not in ("basic", "strong", "strong_mask"):
            raise ValueError(f"strength must be basic, strong or strong_mask, got {strength!r}")
        layout = get_layout(layout)
        c = layout.dims if coords is None else coords
        transforms: list[Augmentation] = [TemporalShiftCrop(padding_ratio), Shear(shear, coords=c)]
        if strength != "basic":
            transforms += [
                RandomApply(Mirror(layout, coords=c), mirror_p),
                MainAxisRotate(coords=c),
                RandomApply(GaussianNoise(noise_sigma, coords=c), noise_p),
                RandomApply(GaussianBlur(normalize=blur_normalize, coords=c), blur_p),
                RandomApply(AxisMask(coords=c), axis_mask_p),
            ]
        if strength == "strong_mask":
            transforms.append(JointMask(mask_ratio, mask_value, coords=c))
        super().__init__(transforms)
        self.strength = strength


class HaLPPolicy(Compose):
    """HaLP: temporal crop-resize of the valid frames, then per sample either joint corruption (probability
    ``corrupt_p``) or shear.

    Args:
        layout: skeleton layout name (for the default ``coords``).
        size: output frames.
        ratio: range of the cropped fraction of the valid frames.
        min_frames: minimum crop length.
        corrupt_ratio: fraction of joints corrupted (15 of 25).
        corrupt_p: probability of joint corruption instead of shear.
        shear: shear amplitude.
        coords: coordinate channels (default: the layout's ``dims``).
    """

    def __init__(
        self,
        layout: str | Layout = "ntu25",
        size: int = 64,
        ratio: tuple[float, float] = (0.1, 1.0),
        min_frames: int = 64,
        corrupt_ratio: float = 0.6,
        corrupt_p: float = 0.5,
        shear: float = 1.0,
        coords: int | None = None,
    ) -> None:
        c = get_layout(layout).dims if coords is None else coords
        corrupt_or_shear = RandomChoice(
            [JointCorruption(corrupt_ratio, coords=c), Shear(shear, coords=c)], [corrupt_p, 1 - corrupt_p]
        )
        super().__init__([TemporalCropResize(size, ratio, min_frames), corrupt_or_shear])


class MAMPPolicy(Compose):
    """MAMP-style masked pretraining input: temporal crop-resize, then a rotation ``U(-max_angle, max_angle)`` rad
    about every axis.

    Args:
        layout: skeleton layout name (for the default ``coords``).
        size: output frames (120 in MAMP).
        ratio: range of the cropped fraction of the valid frames.
        min_frames: minimum crop length.
        max_angle: rotation range per axis in radians.
        coords: coordinate channels (default: the layout's ``dims``).
    """

    def __init__(
        self,
        layout: str | Layout = "ntu25",
        size: int = 120,
        ratio: tuple[float, float] = (0.5, 1.0),
        min_frames: int = 64,
        max_angle: float = 0.3,
        coords: int | None = None,
    ) -> None:
        c = get_layout(layout).dims if coords is None else coords
        super().__init__([TemporalCropResize(size, ratio, min_frames), Rotate(max_angle, coords=c)])


POLICIES: dict[str, tuple[type[Compose], dict[str, str]]] = {
    "hiclr_basic": (HiCLRPolicy, {"strength": "basic"}),
    "hiclr_strong": (HiCLRPolicy, {"strength": "strong"}),
    "hiclr_strong_mask": (HiCLRPolicy, {"strength": "strong_mask"}),
    "halp": (HaLPPolicy, {}),
    "mamp": (MAMPPolicy, {}),
}


def build_policy(name: str, layout: str | Layout = "ntu25", **kwargs: object) -> Compose:
    """The named policy (one of :data:`POLICIES`) for ``layout``; ``kwargs`` override the policy's arguments."""
    if name not in POLICIES:
        raise KeyError(f"unknown augmentation policy {name!r}; known policies: {sorted(POLICIES)}")
    cls, defaults = POLICIES[name]
    return cls(layout=layout, **{**defaults, **kwargs})
