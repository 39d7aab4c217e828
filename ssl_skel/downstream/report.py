"""What every evaluation run leaves behind: a results table, ``metrics.json`` and media in its run directory."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import lightning as L
import torch

from ..callbacks.media import render_confusion_matrix, render_embedding, save_figure

__all__ = ["format_table", "save_media", "write_metrics"]


def format_table(title: str, rows: Iterable[tuple[str, str]]) -> str:
    """A plain-text two-column table under ``title``."""
    rows = list(rows)
    width = max([len("metric"), *(len(name) for name, _ in rows)])
    lines = [title, f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def write_metrics(run_dir: str | Path, metrics: dict[str, float]) -> Path:
    """Write ``metrics`` to ``<run_dir>/metrics.json``; returns the path."""
    path = Path(run_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def save_media(
    run_dir: str | Path,
    title: str,
    confusion: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    trainer: L.Trainer,
) -> list[Path]:
    """Save the test set's confusion matrix ``(C, C)`` and a PCA plot of its pooled ``features (N, D)`` coloured by
    ``labels (N,)`` as ``<run_dir>/media/{confusion_matrix,embedding_pca}.png``, and log them to the trainer's
    loggers that take images (W&B). Returns the paths."""
    figures = {
        "confusion_matrix": render_confusion_matrix(confusion.cpu().numpy(), f"{title}: confusion matrix (test)"),
        "embedding_pca": render_embedding(
            features.cpu().numpy(), labels.cpu().numpy(), f"{title}: PCA of the pooled test features"
        ),
    }
    return [
        save_figure(trainer, figure, name, f"media/{name}", Path(run_dir) / "media") for name, figure in figures.items()
    ]
