"""The ``ssl-skel segment`` command: action segmentation of untrimmed videos by a (pretrained) encoder.

``ssl-skel segment -c configs/eval/segment/<dataset>.yaml --data.root STORE [--model.pretrained CKPT]`` builds a
:class:`~ssl_skel.downstream.segmentation.SegmentationModule` (backbone from the config, weights from the
checkpoint of any pretraining method or random) and a :class:`~ssl_skel.data.windows.SegmentationDataModule`
(windows of the store's videos, split by video) with a LightningCLI, trains for ``max_epochs`` and tests the LAST
epoch's model on the whole test videos. Its run directory ``trainer.default_root_dir`` (``runs/segment`` when
unset) gets:

- ``config.yaml`` (the resolved config, also logged to the experiment trackers);
- ``metrics.json``: the overall ``test/acc``, ``test/edit``, ``test/f1@{10,25,50}``, ``test/map`` (percent) and
  ``test/loss``, and every test video's own ``video/<name>/<metric>``; the same as a table on stdout;
- ``media/segments.png``: true and predicted segments of the first ``num_plots`` test videos (also logged to W&B);
- ``checkpoints/last.ckpt``, ``wandb/``.
"""

from __future__ import annotations

import warnings

from jsonargparse import ArgumentParser
from lightning.pytorch.callbacks import LearningRateMonitor

from ..callbacks.media import render_segments, save_figure
from ..data.windows import SegmentationDataModule
from ..lightning_cli import WANDB_LOGGER, RunDirCLI, explicit_arguments
from ..tracking import finish_wandb
from .report import format_table, write_metrics
from .run import Metrics, Outcome, _pretrained, _start
from .segmentation import SegmentationModule

__all__ = ["SegmentCLI", "run_segment"]

DESCRIPTION = (
    "Action segmentation of untrimmed videos: a (pretrained or random) encoder with a frame-wise linear head on "
    "overlapping windows, fine-tuned or frozen; reports the last epoch's frame accuracy, edit, F1@{10,25,50}, mAP."
)
VIDEO_COLUMNS = ("acc", "edit", "f1@10", "f1@25", "f1@50", "map")


class SegmentCLI(RunDirCLI):
    """LightningCLI of ``ssl-skel segment`` (classes instantiated, nothing run: see :func:`run_segment`)."""

    default_root = "runs/segment"

    def __init__(self, args: list[str]) -> None:
        super().__init__(
            SegmentationModule,
            SegmentationDataModule,
            save_config_callback=None,  # written by the run itself
            trainer_defaults={
                "logger": {"class_path": WANDB_LOGGER},
                "callbacks": [LearningRateMonitor(logging_interval="epoch")],
            },
            args=args,
            run=False,
            parser_kwargs={"prog": "ssl-skel segment", "description": DESCRIPTION},
            auto_configure_optimizers=False,
        )

    def add_arguments_to_parser(self, parser: ArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.add_argument("--num_plots", type=int, default=4, help="test videos drawn in media/segments.png")


def _segment(cli: SegmentCLI) -> Outcome:
    """Train, test the last epoch's model on the whole test videos, write the metrics and the segment plot."""
    module, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    run_dir = _start(cli)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*module\(s\) in eval mode.*")  # a frozen backbone, on purpose
        trainer.fit(module, datamodule=datamodule)
        results = trainer.test(module, datamodule=datamodule)
    metrics = {k: float(v) for k, v in results[0].items()}
    rows = [_pretrained(cli), *((k, f"{v:.2f}") for k, v in metrics.items())]
    rows.append(("per test video", " ".join(f"{k:>6}" for k in VIDEO_COLUMNS)))
    names = [str(name) for name in datamodule.store.names]
    videos = {names[index]: video for index, video in module.test_result.videos.items()}
    for name, video in videos.items():
        metrics.update({f"video/{name}/{k}": v for k, v in video.metrics.items()})
        rows.append((name, " ".join(f"{video.metrics[k]:6.2f}" for k in VIDEO_COLUMNS)))
    shown = list(videos.items())[: cli.config.num_plots]
    plotted = [(name, video.labels.numpy(), video.predictions.numpy()) for name, video in shown]
    if plotted:
        title = f"segment {run_dir.name}: test videos"
        save_figure(trainer, render_segments(plotted, title, module.background), "segments",
                    "media/segments", run_dir / "media")
    write_metrics(run_dir, metrics)
    return metrics, format_table(f"ssl-skel segment: {run_dir}", rows)


def run_segment(argv: list[str]) -> Metrics:
    """``ssl-skel segment ARGS``: train and test; returns ``metrics.json``'s content (percent)."""
    with explicit_arguments():
        cli = SegmentCLI(argv)
    try:
        metrics, table = _segment(cli)
    finally:
        finish_wandb(cli.trainer.loggers)
    print(table)
    return metrics
