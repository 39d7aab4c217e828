"""Reading and writing checkpoint files safely.

- :func:`load_checkpoint_file` reads a checkpoint with ``torch.load(..., weights_only=True)``, which rebuilds
  tensors and plain containers only: a file holding other objects (a pickle that would run code when loaded) is
  refused before anything in it runs, with a :class:`CheckpointError` naming the file.
- :class:`AtomicCheckpointIO` is the Lightning ``CheckpointIO`` of every ``ssl-skel`` run: it writes a checkpoint
  to a temporary file in the target's directory, flushes it to disk and renames it over the target, so that a
  crash or a kill during the write leaves the previous file intact (never a truncated ``last.ckpt``); and it loads
  checkpoints (``--ckpt_path`` resumes) with :func:`load_checkpoint_file`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO", "CheckpointError", "atomic_torch_save", "load_checkpoint_file"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, unsafe, or not matching the model."""


def _load_failure(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one line."""
    detail = str(err).split("WeightsUnpickler error:")[-1].strip().splitlines()[0] if str(err).strip() else ""
    if "Unsupported global" in detail:
        detail = detail.split(" was not an allowed global")[0]
        return (
            "refused: the file holds objects other than tensors and plain containers, which could run code when "
            f"loaded; it is read with torch.load(weights_only=True) only ({detail})"
        )
    return f"not a readable PyTorch checkpoint ({type(err).__name__}: {detail or err!r})"


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CheckpointError: the file is not a readable checkpoint or holds other objects (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # whatever torch.load raises, the file is of no use
        raise CheckpointError(f"{path}: {_load_failure(err)}") from None


def atomic_torch_save(obj: object, path: str | Path) -> None:
    """``torch.save(obj, path)`` that replaces ``path`` only once the new file is complete and on disk.

    The data go to a temporary file in the same directory (left-overs of an earlier killed write are removed
    first), which is fsynced and renamed over ``path`` with ``os.replace``; the directory is fsynced after.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    for stale in path.parent.glob(f"{prefix}*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO with atomic local writes and weights-only loading (see the module docstring).

    Remote paths (``s3://...``) are written and read by Lightning's own ``TorchCheckpointIO`` (still weights-only).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(
        self, path: _PATH, map_location: Callable | str | None = "cpu", weights_only: bool | None = None
    ) -> dict[str, Any]:
        """The checkpoint at ``path``, always read with ``weights_only=True`` (the argument is ignored)."""
        if "://" in str(path):
            return super().load_checkpoint(path, map_location, weights_only=True)
        checkpoint = load_checkpoint_file(path, map_location)
        if not isinstance(checkpoint, dict):
            raise CheckpointError(f"{path}: not a Lightning checkpoint (found {type(checkpoint).__name__})")
        return checkpoint
