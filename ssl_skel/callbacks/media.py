"""Skeleton images for a person to look at: augmented views of a pretraining run, rendered with matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from matplotlib.figure import Figure

from ..skeleton.layouts import Layout, get_layout

__all__ = ["SkeletonViewLogger", "render_skeletons"]

PERSON_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:orange")


def render_skeletons(
    clips: list[list[np.ndarray]], layout: str | Layout, row_titles: list[str], col_titles: list[str], frames: int = 3
) -> Figure:
    """A grid of skeleton drawings: one row per sample, ``frames`` evenly spaced frames of every view per row.

    Args:
        clips: ``clips[row][view]`` is a ``(C, T, V, M)`` array; the x-y projection of every present person is
            drawn (x right, y up).
        layout: the clips' layout (bones).
        row_titles: one title per row.
        col_titles: one title per view.
        frames: frames drawn per view.
    """
    layout = get_layout(layout)
    rows, views = len(clips), len(clips[0])
    fig = Figure(figsize=(1.6 * views * frames, 1.8 * rows))
    axes = fig.subplots(rows, views * frames, squeeze=False)
    edges = np.array(layout.edges)
    for r, row in enumerate(clips):
        for v, clip in enumerate(row):
            present = np.abs(clip).sum(axis=(0, 2)) > 0  # (T, M)
            valid = np.flatnonzero(present.any(axis=1))
            span = valid if len(valid) else np.arange(clip.shape[1])
            for f, t in enumerate(np.linspace(span[0], span[-1], frames).round().astype(int)):
                ax = axes[r, v * frames + f]
                for m in np.flatnonzero(present[t]):
                    xy = clip[:2, t, :, m]
                    colour = PERSON_COLOURS[m % len(PERSON_COLOURS)]
                    ax.plot(xy[0, edges.T], xy[1, edges.T], color=colour, linewidth=1)
                    ax.scatter(xy[0], xy[1], s=3, color=colour)
                ax.set_aspect("equal", adjustable="datalim")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{col_titles[v]} t={t}", fontsize=7)
                if v == 0 and f == 0:
                    ax.set_ylabel(row_titles[r], fontsize=7)
    fig.tight_layout()
    return fig


class SkeletonViewLogger(L.Callback):
    """Save (and log to W&B when it is the logger) the augmented views of a few training samples.

    At the first training batch of epoch 0 and every ``every_n_epochs`` epochs after, the first ``num_samples``
    samples of ``batch["views"]`` are rendered to ``<log dir>/media/views_epoch{E}.png``.

    Args:
        num_samples: samples (rows) drawn.
        frames: frames drawn per view.
        every_n_epochs: epochs between renderings.
    """

    def __init__(self, num_samples: int = 3, frames: int = 3, every_n_epochs: int = 50) -> None:
        self.num_samples = num_samples
        self.frames = frames
        self.every_n_epochs = every_n_epochs

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx != 0 or trainer.current_epoch % self.every_n_epochs or not trainer.is_global_zero:
            return
        views = batch.get("views") if isinstance(batch, dict) else None
        datamodule = trainer.datamodule
        if not views or datamodule is None:
            return
        n = min(self.num_samples, views[0].shape[0])
        clips = [[v[i].detach().float().cpu().numpy() for v in views] for i in range(n)]
        labels = batch["label"][:n].tolist()
        fig = render_skeletons(
            clips, datamodule.layout, [f"label {y}" for y in labels], [f"view {j + 1}" for j in range(len(views))],
            self.frames,
        )
        path = Path(trainer.log_dir or trainer.default_root_dir) / "media" / f"views_epoch{trainer.current_epoch}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image("media/augmented_views", images=[str(path)], step=trainer.global_step)


