"""Loading a pretrained backbone from a checkpoint, safely and strictly.

Any pretraining checkpoint works: a Lightning checkpoint of a :class:`~ssl_skel.methods.PretrainMethod` subclass
(or of the downstream module) holds the encoder under ``backbone.*`` in its ``state_dict``. The file is read with
``torch.load(..., weights_only=True)`` (:func:`~ssl_skel.checkpoint_io.load_checkpoint_file`), which rebuilds
tensors and plain containers only: a file holding other objects (a pickle that would run code when loaded) is
refused before anything in it runs. Keys must match the configured backbone exactly; a mismatch names the file
and lists the missing, unexpected and mis-shaped keys.

A pretraining checkpoint also records the skeleton layout it was pretrained on (the method's ``layout``
hyper-parameter, :func:`pretraining_layout`): evaluating it on data of another layout (transfer needs the same
layout) is refused by :func:`check_transfer_layout`, also for a backbone whose weight shapes do not depend on the
number of joints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..checkpoint_io import CheckpointError, load_checkpoint_file

__all__ = [
    "CheckpointError",
    "check_transfer_layout",
    "load_pretrained_backbone",
    "pretraining_layout",
    "read_backbone_state",
]

PREFIX = "backbone."
MAX_LISTED = 20


def _listing(title: str, items: list[str]) -> str:
    shown = "\n".join(f"    {item}" for item in items[:MAX_LISTED])
    more = f"\n    ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return f"  {title} ({len(items)}):\n{shown}{more}"


def _read_state(path: Path) -> tuple[Mapping, Mapping]:
    """``(checkpoint, state_dict)`` of the checkpoint file ``path`` (see :func:`read_backbone_state`)."""
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint not found: {path}")
    checkpoint = load_checkpoint_file(path)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: not a checkpoint with a state_dict (found {type(checkpoint).__name__})")
    return checkpoint, state


def read_backbone_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The backbone's tensors of checkpoint ``path``, keys without the ``backbone.`` prefix, on the CPU.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CheckpointError: the file is not a readable checkpoint, holds objects other than weights, or has no
            ``backbone.*`` keys.
    """
    path = Path(path)
    _, state = _read_state(path)
    backbone = {k[len(PREFIX) :]: v for k, v in state.items() if isinstance(k, str) and k.startswith(PREFIX)}
    if not backbone:
        prefixes = sorted({str(k).split(".")[0] for k in state})
        raise CheckpointError(f"{path}: no backbone weights ('backbone.*' keys); its state_dict has {prefixes}")
    return backbone


def load_pretrained_backbone(backbone: nn.Module, path: str | Path) -> None:
    """Load the weights of checkpoint ``path`` into ``backbone`` with strict key and shape matching.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CheckpointError: see :func:`read_backbone_state`; or the keys or shapes differ from ``backbone``'s (the
            message lists them).
    """
    state = read_backbone_state(path)
    expected = backbone.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    mismatched = [
        f"{key}: checkpoint {tuple(state[key].shape)}, model {tuple(expected[key].shape)}"
        for key in sorted(expected.keys() & state.keys())
        if state[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        parts = [
            _listing(title, items)
            for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shapes", mismatched))
            if items
        ]
        raise CheckpointError(
            f"{path}: the backbone weights do not match the configured {type(backbone).__name__} (is it the "
            "backbone, width and layout the checkpoint was pretrained with?)\n" + "\n".join(parts)
        )
    backbone.load_state_dict(state, strict=True)


def pretraining_layout(path: str | Path) -> str | None:
    """The skeleton layout checkpoint ``path`` was pretrained on (its ``layout`` hyper-parameter, which every
    pretraining method records); ``None`` when it records none (e.g. a downstream module's checkpoint).

    Raises:
        FileNotFoundError, CheckpointError: as :func:`read_backbone_state`.
    """
    checkpoint, _ = _read_state(Path(path))
    layout = (checkpoint.get("hyper_parameters") or {}).get("layout")
    return str(layout) if layout is not None else None


def check_transfer_layout(path: str | Path, layout: str, data: str) -> None:
    """Refuse to evaluate checkpoint ``path`` on ``data`` (a description, e.g. the store) of skeleton ``layout``
    when it was pretrained on another layout (:func:`pretraining_layout`; nothing is checked when none is recorded).

    Raises:
        CheckpointError: the layouts differ (the message names both and the checkpoint).
    """
    pretrained = pretraining_layout(path)
    if pretrained is not None and pretrained != layout:
        raise CheckpointError(
            f"{path}: pretrained on skeleton layout {pretrained}, but {data} has layout {layout}; transfer to "
            "another data set needs the same layout (e.g. NTU-120 -> PKU-MMD, both ntu25)"
        )
