"""Weights & Biases tracking that never blocks or breaks a run.

:class:`WandbLogger` is Lightning's logger that switches to offline mode by itself when there is no way to reach
the service: no ``WANDB_API_KEY`` and no stored login (``~/.netrc`` entry for the W&B host), or ``WANDB_MODE``
set to ``offline``/``disabled``. An offline run keeps everything in its local run directory; ``wandb sync DIR``
uploads it later. :func:`finish_wandb` closes a finished run's W&B run, so that the next run in the same process
(a quickstart, a seed loop) gets its own instead of reusing it.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Iterable
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger

__all__ = ["WandbLogger", "finish_wandb", "wandb_credentials_available"]


def wandb_credentials_available() -> bool:
    """True when an API key is set in the environment or stored by ``wandb login``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger``, offline unless W&B credentials are available (see the module docstring).

    Args:
        project: W&B project.
        name: run name.
        save_dir: local directory of the run files (default: the trainer's ``default_root_dir``).
        offline: force offline mode; ``None`` decides from the credentials.
        log_model: upload checkpoints as W&B artifacts (off by default).
        kwargs: further ``wandb.init`` arguments (``entity``, ``tags``, ``group``...).
    """

    def __init__(
        self,
        project: str = "ssl-skel",
        name: str | None = None,
        save_dir: str = ".",
        offline: bool | None = None,
        log_model: bool = False,
        **kwargs: Any,
    ) -> None:
        if offline is None:
            mode = os.environ.get("WANDB_MODE", "")
            offline = mode in ("offline", "disabled", "dryrun") or not wandb_credentials_available()
        os.makedirs(save_dir, exist_ok=True)
        kwargs.setdefault("settings", {"silent": True, "init_timeout": 60})
        super().__init__(project=project, name=name, save_dir=save_dir, offline=offline, log_model=log_model, **kwargs)


def finish_wandb(loggers: Iterable[Logger]) -> None:
    """Finish the W&B runs that ``loggers`` started (no-op for other loggers and runs never started)."""
    for logger in loggers:
        if isinstance(logger, _LightningWandbLogger) and logger._experiment is not None:
            logger._experiment.finish()
