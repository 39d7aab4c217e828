"""The training subcommands of ``ssl-skel`` (``pretrain``), built on Lightning's ``LightningCLI``.

``ssl-skel pretrain -c configs/pretrain/<method>/<dataset>.yaml [--key value ...]`` runs ``Trainer.fit`` of a
:class:`~ssl_skel.methods.PretrainMethod` subclass (``model.class_path``) on a
:class:`~ssl_skel.data.SkeletonDataModule`. Every run writes into ``trainer.default_root_dir``:

- ``config.yaml``: the resolved configuration (also logged to W&B);
- ``checkpoints/``: ``last.ckpt`` after every epoch (``--ckpt_path last`` resumes from it exactly), written
  atomically and read back weights-only (:class:`~ssl_skel.checkpoint_io.AtomicCheckpointIO`), so that a run
  killed at any moment, even while writing, resumes from its last complete checkpoint;
- ``knn.jsonl`` and ``media/`` from the kNN monitor and the skeleton-view logger;
- ``wandb/``: the W&B run (offline without credentials; ``wandb sync`` uploads it).

``--trainer.logger lightning.pytorch.loggers.CSVLogger`` (or ``TensorBoardLogger``) switches the tracker.

:class:`RunDirCLI` holds these run-directory conventions for every training subcommand (the downstream commands
in :mod:`ssl_skel.downstream.run` build on it too).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .callbacks import SkeletonViewLogger
from .checkpoint_io import AtomicCheckpointIO, load_checkpoint_file
from .data.datamodule import SkeletonDataModule
from .distributed import GlobalBatchNorm
from .methods import PretrainMethod
from .tracking import finish_wandb

__all__ = ["PretrainCLI", "RunDirCLI", "explicit_arguments", "log_config", "run_pretrain"]

WANDB_LOGGER = "ssl_skel.tracking.WandbLogger"


def log_config(loggers: Iterable[Logger], config: Namespace) -> None:
    """Log the resolved ``config`` to every experiment tracker in ``loggers``."""
    for logger in loggers:
        logger.log_hyperparams({"config": config.as_dict()})


class ConfigToRunDir(SaveConfigCallback):
    """Save the resolved config next to the checkpoints and log it to the experiment trackers."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        log_config(trainer.loggers, self.config)


@contextmanager
def explicit_arguments() -> Iterator[None]:
    """Empty ``sys.argv`` (but the program name) while a CLI parses arguments given explicitly.

    LightningCLI warns when ``sys.argv`` holds arguments it was not given.
    """
    program, sys.argv = sys.argv, sys.argv[:1]
    try:
        yield
    finally:
        sys.argv = program


class RunDirCLI(LightningCLI):
    """LightningCLI with the run directory conventions of the module docstring.

    The run directory is ``trainer.default_root_dir`` (``default_root`` when unset); the W&B logger writes into
    it and is named after its last two parts (``runs/hiclr/ntu60_xsub`` -> ``hiclr-ntu60_xsub``). Checkpoints are
    written and read by :class:`~ssl_skel.checkpoint_io.AtomicCheckpointIO` unless another ``CheckpointIO`` plugin
    is configured; a ``--ckpt_path`` file that holds anything but weights is refused before it is read.
    ``--trainer.sync_batchnorm true`` installs :class:`~ssl_skel.distributed.GlobalBatchNorm` (CPU and GPU).
    """

    default_root = "runs"

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = (self.config[subcommand] if subcommand else self.config).get("ckpt_path")
        if ckpt_path and Path(ckpt_path).is_file():
            # LightningCLI reads the checkpoint's hyper-parameters next: refuse an unsafe file first, naming it
            load_checkpoint_file(ckpt_path)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        root = config.trainer.default_root_dir or self.default_root
        config.trainer.default_root_dir = root
        logger = config.trainer.logger
        if isinstance(logger, Namespace) and logger.get("class_path") == WANDB_LOGGER:
            init = logger.get("init_args") or Namespace()
            if init.get("save_dir") in (None, "."):
                init.save_dir = root
            if init.get("name") is None:
                init.name = "-".join(Path(root).parts[-2:])
            logger.init_args = init

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        init = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer_config = {**init.get("trainer", {}), **kwargs}
        if trainer_config.get("sync_batchnorm"):
            # the project's global-batch BatchNorm: any device, and it keeps ST-GCN's BatchNorm + dropout layers
            plugins = trainer_config.get("plugins") or []
            plugins = plugins if isinstance(plugins, list) else [plugins]
            kwargs.update(sync_batchnorm=False, plugins=[*plugins, GlobalBatchNorm()])
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default, not a configured plugin
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        for callback in trainer.checkpoint_callbacks:
            # Lightning's default checkpoint (and any configured without a place) goes to <root>/checkpoints, so
            # that ``--ckpt_path last`` finds ``last.ckpt`` of this run directory
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")
                callback.save_last = True if callback.save_last is None else callback.save_last
        return trainer


class PretrainCLI(RunDirCLI):
    """The ``ssl-skel pretrain`` CLI: ``Trainer.fit`` of a pretraining method, runs in ``runs/pretrain`` by default."""

    default_root = "runs/pretrain"


def run_pretrain(argv: list[str]) -> int:
    """``ssl-skel pretrain ...``: ``Trainer.fit`` with ``argv`` as the fit arguments; returns the exit code.

    The run's W&B run is closed at the end, so that a following run in the same process starts its own.
    """
    with explicit_arguments():
        cli = _pretrain_cli(argv)
    finish_wandb(cli.trainer.loggers)
    return 0


def _pretrain_cli(argv: list[str]) -> PretrainCLI:
    return PretrainCLI(
        PretrainMethod,
        SkeletonDataModule,
        subclass_mode_model=True,
        save_config_callback=ConfigToRunDir,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "logger": {"class_path": WANDB_LOGGER},
            "callbacks": [LearningRateMonitor(logging_interval="epoch"), SkeletonViewLogger()],
        },
        args=["fit", *argv] if not (argv and argv[0] in ("-h", "--help")) else ["fit", "--help"],
        parser_kwargs={"fit": {"prog": "ssl-skel pretrain"}},
        auto_configure_optimizers=False,
    )
