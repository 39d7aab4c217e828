"""Pretraining methods (LightningModules) and their building blocks (MoCo queue and momentum encoder,
contrastive losses, HaLP positives)."""

from .base import PretrainMethod
from .contrastive import MomentumContrast
from .halp import HaLP
from .hiclr import HiCLR
from .lac import LAC
from .lac_generator import LACGenerator

__all__ = ["LAC", "HaLP", "HiCLR", "LACGenerator", "MomentumContrast", "PretrainMethod"]
