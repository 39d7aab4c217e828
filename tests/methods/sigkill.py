"""A callback that kills its own process with SIGKILL: no clean-up, no last checkpoint, as ``kill -9`` would."""

from __future__ import annotations

import os
import signal

import lightning as L


class SigkillAt(L.Callback):
    """SIGKILL this process at the start of training step ``step`` (after its batch reached the device).

    Args:
        step: ``trainer.global_step`` at which to die.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object,
                             batch_idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
