"""Pretraining methods (LightningModules) and their building blocks (MoCo queue and momentum encoder,
contrastive losses, HaLP positives)."""

from .base import PretrainMethod
from .contrastive import MomentumContrast
from .halp import HaLP
from .hiclr import HiCLR

__all__ = ["HaLP", "HiCLR", "MomentumContrast", "PretrainMethod"]
