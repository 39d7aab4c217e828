"""Images for a person to look at, rendered with matplotlib's Figure API: augmented views and masked
reconstructions of a pretraining run; the confusion matrix and a 2-D embedding of an evaluation's test set;
predicted and true action segments of untrimmed videos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..skeleton.features import joints_from_bones
from ..skeleton.layouts import Layout, get_layout

__all__ = [
    "ReconstructionLogger", "SkeletonViewLogger", "media_dir", "pca_2d", "render_confusion_matrix",
    "render_embedding", "render_segments", "render_skeletons", "save_figure",
]

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


def drawable(x: torch.Tensor, datamodule: Any) -> torch.Tensor:
    """Batch ``(N, C, T, V, M)`` of the data module's feature stream -> joint positions to draw: bone-stream clips
    are summed back to joints (the centre joint at the origin); other streams are drawn as they are."""
    if getattr(datamodule, "stream", "joint") == "bone":
        return joints_from_bones(x, datamodule.layout)
    return x


def media_dir(trainer: L.Trainer) -> Path:
    """``<log dir>/media``. ``trainer.log_dir`` is a collective under DDP: every process must ask at the same point
    (e.g. in ``setup``), never the first process alone."""
    return Path(trainer.log_dir or trainer.default_root_dir) / "media"


def save_figure(trainer: L.Trainer, fig: Figure, name: str, key: str, directory: str | Path | None = None) -> Path:
    """Save ``fig`` to ``<directory>/<name>.png`` (default directory: :func:`media_dir`) and log it as image
    ``key`` to every logger of ``trainer`` that takes images (W&B); returns the path."""
    media = media_dir(trainer) if directory is None else Path(directory)
    path = media / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):
            logger.log_image(key, images=[str(path)], step=trainer.global_step)
    return path


def render_confusion_matrix(matrix: np.ndarray, title: str) -> Figure:
    """The row-normalised confusion matrix ``(C, C)`` (rows: true class, columns: predicted class) as an image.

    Rows without samples stay zero; the colour bar is the fraction of the row's samples.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    classes = matrix.shape[0]
    size = min(14.0, 3.0 + 0.18 * classes)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.subplots()
    image = ax.imshow(normalised, vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    step = max(1, classes // 30)
    ticks = np.arange(0, classes, step)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.tick_params(labelsize=6)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def pca_2d(features: np.ndarray) -> np.ndarray:
    """The first two principal components ``(N, 2)`` of ``features (N, D)`` (zeros where D or N is too small)."""
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    out = np.zeros((x.shape[0], 2))
    k = min(2, vt.shape[0])
    out[:, :k] = x @ vt[:k].T
    return out


def render_embedding(features: np.ndarray, labels: np.ndarray, title: str, max_points: int = 5000) -> Figure:
    """Scatter plot of the PCA projection of ``features (N, D)`` coloured by ``labels (N,)``.

    Up to 20 classes get one distinct colour each and a legend, more a continuous colour map. At most
    ``max_points`` samples are drawn (a fixed random subset, the same for the same N).
    """
    features, labels = np.asarray(features), np.asarray(labels)
    if len(features) > max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(features), max_points, replace=False))
        features, labels = features[keep], labels[keep]
    xy = pca_2d(features)
    fig = Figure(figsize=(6.5, 6.0))
    ax = fig.subplots()
    classes = np.unique(labels)
    if len(classes) <= 20:
        colours = matplotlib.colormaps["tab20"]
        for i, c in enumerate(classes):
            chosen = labels == c
            ax.scatter(xy[chosen, 0], xy[chosen, 1], s=6, color=colours(i), label=str(c))
        ax.legend(title="class", fontsize=6, title_fontsize=7, markerscale=2, loc="best", ncols=2)
    else:
        points = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="turbo", s=6)
        fig.colorbar(points, ax=ax, fraction=0.046, pad=0.04, label="class")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def render_segments(videos: list[tuple[str, np.ndarray, np.ndarray]], title: str, background: int | None = 0) -> Figure:
    """Colour bars over time of the true and the predicted frame labels of every video, one pair per video.

    Every class occurring in the drawn labels gets its own colour (named in the legend), the background light grey.

    Args:
        videos: ``(name, true (T,), predicted (T,))`` per video.
        title: figure title.
        background: the background label.
    """
    labels = np.unique(np.concatenate([np.concatenate([true, predicted]) for _, true, predicted in videos]))
    classes = [int(c) for c in labels if c != background]
    palette = matplotlib.colormaps["tab20"] if len(classes) <= 20 else matplotlib.colormaps["turbo"]
    positions = np.arange(len(classes)) if len(classes) <= 20 else np.linspace(0.0, 1.0, len(classes))
    colours = {c: palette(p)[:3] for c, p in zip(classes, positions, strict=True)}
    if background is not None:
        colours[background] = (0.9, 0.9, 0.9)
    lookup = np.zeros((int(labels.max()) + 1, 3))
    for c, colour in colours.items():
        lookup[c] = colour
    fig = Figure(figsize=(10.0, 0.8 + 1.0 * len(videos)))
    axes = fig.subplots(len(videos), 1, squeeze=False)[:, 0]
    for ax, (name, true, predicted) in zip(axes, videos, strict=True):
        bars = lookup[np.stack([np.asarray(true), np.asarray(predicted)])]  # (2, T, 3)
        ax.imshow(bars, aspect="auto", interpolation="nearest")
        ax.set_yticks([0, 1], ["true", "predicted"], fontsize=7)
        ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
        ax.tick_params(axis="x", labelsize=6)
    axes[-1].set_xlabel("frame")
    names = {c: f"{c} (background)" if c == background else str(c) for c in colours}
    handles = [Patch(color=colours[c], label=names[c]) for c in sorted(colours)]
    fig.legend(handles=handles, title="class", loc="upper right", fontsize=6, title_fontsize=7, ncols=10)
    fig.suptitle(title, fontsize=9, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
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
        self.media: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.media = media_dir(trainer)

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
        views = [drawable(v[:n].detach().float(), datamodule) for v in views]
        clips = [[v[i].cpu().numpy() for v in views] for i in range(n)]
        labels = batch["label"][:n].tolist()
        fig = render_skeletons(
            clips, datamodule.layout, [f"label {y}" for y in labels], [f"view {j + 1}" for j in range(len(views))],
            self.frames,
        )
        save_figure(trainer, fig, f"views_epoch{trainer.current_epoch}", "media/augmented_views", self.media)


class ReconstructionLogger(L.Callback):
    """Save (and log to W&B when it is the logger) a masked method's reconstructions of a few training samples.

    The first ``num_samples`` samples of the first training batch's view are kept; at the end of epoch 0, of every
    ``every_n_epochs``-th epoch and of the last one, the module's ``reconstruct(x, generator)`` (eval mode, no
    gradient, masks drawn from a generator seeded with ``seed``, so every rendering uses the same masks and the
    training randomness is untouched) gives named clips, drawn side by side (bone-stream clips summed back to joints,
    :func:`drawable`) to ``<log dir>/media/reconstruction_epoch{E}.png`` and logged as ``media/reconstruction``.

    Args:
        num_samples: samples (rows) drawn.
        frames: frames drawn per clip.
        every_n_epochs: epochs between renderings.
        seed: seed of the masks.
    """

    def __init__(self, num_samples: int = 3, frames: int = 4, every_n_epochs: int = 10, seed: int = 0) -> None:
        self.num_samples = num_samples
        self.frames = frames
        self.every_n_epochs = every_n_epochs
        self.seed = seed
        self.samples: tuple[torch.Tensor, list[int]] | None = None
        self.media: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not callable(getattr(pl_module, "reconstruct", None)):
            raise TypeError(
                f"ReconstructionLogger needs a masked method with reconstruct(); got {type(pl_module).__name__}"
            )
        self.media = media_dir(trainer)

    def _due(self, trainer: L.Trainer) -> bool:
        epoch = trainer.current_epoch
        return epoch % self.every_n_epochs == 0 or epoch == (trainer.max_epochs or 0) - 1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == 0 and trainer.is_global_zero and self._due(trainer):
            n = self.num_samples
            self.samples = (batch["views"][0][:n].detach().clone(), batch["label"][:n].tolist())

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.samples is None or trainer.datamodule is None:
            return
        x, labels = self.samples
        self.samples = None
        was_training = pl_module.training
        pl_module.eval()
        try:
            clips = pl_module.reconstruct(x, torch.Generator(device=x.device).manual_seed(self.seed))
        finally:
            pl_module.train(was_training)
        names = list(clips)
        drawn = {k: drawable(clips[k].float(), trainer.datamodule) for k in names}
        rows = [[drawn[k][i].cpu().numpy() for k in names] for i in range(x.shape[0])]
        fig = render_skeletons(rows, trainer.datamodule.layout, [f"label {y}" for y in labels], names, self.frames)
        save_figure(trainer, fig, f"reconstruction_epoch{trainer.current_epoch}", "media/reconstruction", self.media)
