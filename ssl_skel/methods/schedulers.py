"""Learning-rate schedules that the optimizer callables of the configs can name (``class_path``)."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["WarmupCosineLR", "WarmupMultiStepLR"]


class WarmupCosineLR(LRScheduler):
    """Linear warm-up, then cosine decay to ``eta_min``, stepped once per epoch.

    At epoch ``e`` the rate is ``base * (e + 1) / warmup_epochs`` during the warm-up, then
    ``eta_min + (base - eta_min) * (1 + cos(pi * (e - warmup_epochs) / (max_epochs - warmup_epochs))) / 2``.

    Args:
        optimizer: the optimizer whose groups' initial ``lr`` is ``base``.
        max_epochs: length of the schedule (the rate stays at ``eta_min`` after it).
        warmup_epochs: epochs of linear warm-up.
        eta_min: final learning rate.
        last_epoch: index of the last epoch when resuming (-1 to start).
    """

    def __init__(
        self, optimizer: Optimizer, max_epochs: int, warmup_epochs: int = 0, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        if not 0 <= warmup_epochs < max_epochs:
            raise ValueError(f"need 0 <= warmup_epochs < max_epochs, got {warmup_epochs} and {max_epochs}")
        self.max_epochs = max_epochs
        self.warmup_epochs = warmup_epochs
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        e = self.last_epoch
        if e < self.warmup_epochs:
            return [base * (e + 1) / self.warmup_epochs for base in self.base_lrs]
        progress = min(1.0, (e - self.warmup_epochs) / (self.max_epochs - self.warmup_epochs))
        factor = (1 + math.cos(math.pi * progress)) / 2
        return [self.eta_min + (base - self.eta_min) * factor for base in self.base_lrs]


class WarmupMultiStepLR(LRScheduler):
    """``lr = base_lr * (e + 1) / warmup_epochs`` for epochs ``e < warmup_epochs``, then
    ``base_lr * gamma ** (number of milestones <= e)``; stepped once per epoch.

    Args:
        optimizer: the wrapped optimizer.
        milestones: epochs at which the learning rate is multiplied by ``gamma``.
        gamma: decay factor.
        warmup_epochs: epochs of linear warm-up (0: none).
        last_epoch: index of the last epoch (-1 to start).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Sequence[int],
        gamma: float = 0.1,
        warmup_epochs: int = 0,
        last_epoch: int = -1,
    ) -> None:
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        self.milestones = sorted(milestones)
        self.gamma = gamma
        self.warmup_epochs = warmup_epochs
        super().__init__(optimizer, last_epoch)

    def factor(self, epoch: int) -> float:
        """The multiplier of the base learning rates at ``epoch``."""
        if epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        return self.gamma ** bisect_right(self.milestones, epoch)

    def get_lr(self) -> list[float]:
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]
