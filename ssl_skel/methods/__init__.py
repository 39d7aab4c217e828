"""Pretraining methods (LightningModules) and their building blocks (MoCo queue and momentum encoder,
contrastive losses, HaLP positives, learning-rate schedules)."""

from .base import PretrainMethod
from .contrastive import MomentumContrast
from .halp import HaLP
from .hiclr import HiCLR
from .lac import LAC
from .lac_generator import LACGenerator
from .mamp import MAMP
from .schedulers import WarmupCosineLR, WarmupMultiStepLR
from .skeleton_mae import SkeletonMAE

__all__ = [
    "LAC", "MAMP", "HaLP", "HiCLR", "LACGenerator", "MomentumContrast", "PretrainMethod", "SkeletonMAE",
    "WarmupCosineLR", "WarmupMultiStepLR",
]
