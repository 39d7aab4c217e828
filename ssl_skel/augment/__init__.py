"""Batched skeleton augmentations on ``(N, C, T, V, M)`` tensors, their composition and the methods' policies.

See :mod:`ssl_skel.augment.base` for the conventions (coordinate channels, present persons, valid frames,
randomness).
"""

from .base import Augmentation, CoordMap, Frames, LinearAugmentation, presence, remap, valid_lengths
from .compose import Compose, Identity, RandomApply, RandomChoice
from .masking import BodyPartMask, GaussianNoise, JointCorruption, JointMask
from .policies import POLICIES, HaLPPolicy, HiCLRPolicy, MAMPPolicy, build_policy
from .spatial import AxisMask, MainAxisRotate, Mirror, Rotate, Scale, Shear, rotation_matrices
from .temporal import FrameAugmentation, GaussianBlur, TemporalCropResize, TemporalShiftCrop, TimeFlip, gather_frames
from .views import MultiView

__all__ = [
    "POLICIES", "Augmentation", "AxisMask", "BodyPartMask", "Compose", "CoordMap", "FrameAugmentation", "Frames",
    "GaussianBlur", "GaussianNoise", "HaLPPolicy", "HiCLRPolicy", "Identity", "JointCorruption", "JointMask",
    "LinearAugmentation", "MAMPPolicy", "MainAxisRotate", "Mirror", "MultiView", "RandomApply", "RandomChoice",
    "Rotate", "Scale", "Shear", "TemporalCropResize", "TemporalShiftCrop", "TimeFlip", "build_policy",
    "gather_frames", "presence", "remap", "rotation_matrices", "valid_lengths",
]
