"""Learning-rate schedule of the fine-tuning protocols: linear warm-up, then step decay."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["WarmupMultiStepLR"]


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
