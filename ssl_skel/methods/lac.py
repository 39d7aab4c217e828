"""LAC stage 2: contrastive pretraining on real and composed sequences (Yang et al., ICCV 2023; spec/methods.md).

The frozen stage-1 generator (:class:`~ssl_skel.methods.lac_generator.CompositionGenerator`, loaded from its
checkpoint) composes a new sequence from every clip of the batch and the next one (static part of the first,
average of both motions); real and composed clips together form the training batch of ``2N`` sequences. Two
views of it are encoded by the query and the momentum key encoder, and the loss has two parts:

- sequence level: MoCo InfoNCE of the pooled features' projections against the sequence-key queue;
- frame level: InfoNCE of every frame's projection (the backbone's per-frame features, time axis kept), whose
  positive is the key of the same frame index in the other view and whose negatives are the frame-key queue.

The views are spatial only (shear, mirror, rotation, noise), so frame ``t`` of one view is frame ``t`` of the
other; the data module must therefore give one crop per sample (``num_views: 1``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import Compose, GaussianNoise, Mirror, MultiView, RandomApply, Rotate, Shear
from ..backbones import frame_feature_dim, frame_features
from ..checkpoint_io import load_checkpoint_file
from ..skeleton.layouts import get_layout
from .base import PretrainOutput
from .contrastive import MomentumContrast
from .lac_generator import CompositionGenerator
from .losses import info_nce
from .moco import KeyQueue, ProjectionHead, gather_keys, momentum_update

__all__ = ["LAC", "frame_info_nce", "load_generator"]


def frame_info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of every frame: ``q``, ``k`` ``(N, T, E)`` L2-normalised, the positive of ``q[n, t]`` is
    ``k[n, t]``, the negatives are ``queue (K, E)``; mean over all ``N * T`` frames."""
    return info_nce(q.flatten(0, 1), k.flatten(0, 1), queue, temperature)


def load_generator(path: str | Path) -> CompositionGenerator:
    """The generator of a stage-1 (:class:`~ssl_skel.methods.lac_generator.LACGenerator`) checkpoint, frozen.

    Loaded with ``weights_only=True`` (:func:`~ssl_skel.checkpoint_io.load_checkpoint_file`); the generator's keys
    must match exactly.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: a file that is not a readable checkpoint or holds objects other than weights.
        ValueError: not a LAC generator checkpoint, or missing / unexpected / mis-shaped keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"LAC generator checkpoint {path} not found; train one first with "
            "ssl-skel pretrain -c configs/pretrain/lac_generator/<dataset>.yaml"
        )
    checkpoint = load_checkpoint_file(path)
    if not isinstance(checkpoint, dict) or "lac_generator" not in checkpoint or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a LAC generator checkpoint (written by ssl_skel.methods.LACGenerator)")
    generator = CompositionGenerator(**checkpoint["lac_generator"])
    prefix = "backbone."
    state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    expected = generator.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    mismatched = sorted(k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{path}: the generator weights do not match its architecture; missing keys {missing}, unexpected "
            f"keys {unexpected}, mismatched shapes {mismatched}"
        )
    generator.load_state_dict(state)
    return generator.requires_grad_(False).eval()


class LAC(MomentumContrast):
    """Stage 2 of LAC (see the module docstring): loss = sequence InfoNCE + ``frame_weight`` x frame InfoNCE.

    Args:
        backbone: encoder ``(N, C, T, V, M) -> (N, D)`` with per-frame ``forward_features`` (see
            :func:`~ssl_skel.backbones.frame_features`) whose mean over frames is its pooled
            output (ST-GCN, transformer, GIN encoder).
        generator: path of the stage-1 checkpoint (``.../checkpoints/last.ckpt`` of an ``LACGenerator`` run).
        layout: skeleton layout of the data (mirroring pairs, coordinate count).
        frame_weight: weight of the frame-level loss.
        frame_queue_size: number of negative frame keys.
        shear: shear amplitude of the views.
        mirror_p: probability of mirroring.
        rotate: largest rotation angle per axis in radians.
        noise_sigma: gaussian noise standard deviation.
        noise_p: probability of noise.
        kwargs: optimizer, scheduler, queue (``queue_size``: K sequence keys, ``2N`` enqueued per step) and
            encoder settings of :class:`~ssl_skel.methods.contrastive.MomentumContrast`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        generator: str,
        layout: str = "ntu25",
        frame_weight: float = 1.0,
        frame_queue_size: int = 65536,
        shear: float = 0.5,
        mirror_p: float = 0.5,
        rotate: float = 0.3,
        noise_sigma: float = 0.01,
        noise_p: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        if self.key_batch_norm != "batch":
            raise ValueError(f"LAC normalises its key batch with batch statistics only (key_batch_norm 'batch'), got "
                             f"{self.key_batch_norm!r}")
        if frame_feature_dim(backbone) != self.feature_dim:
            raise TypeError(f"LAC pools its per-frame features into the sequence feature; {type(backbone).__name__}'s "
                            f"per-frame features ({frame_feature_dim(backbone)}-d) are not its pooled ones "
                            f"({self.feature_dim}-d)")
        self.generator = load_generator(generator)
        if self.generator.layout != get_layout(layout).name:
            raise ValueError(f"the generator in {generator} is built for layout {self.generator.layout}, "
                             f"not {layout}")
        self.frame_weight = frame_weight
        self.frame_head = ProjectionHead(self.feature_dim, self.head[0].out_features, self.head.out_dim)
        self.key_frame_head = copy.deepcopy(self.frame_head).requires_grad_(False)
        self.frame_queue = KeyQueue(self.head.out_dim, frame_queue_size)
        c = get_layout(layout).dims
        view = Compose([
            Shear(shear, coords=c),
            RandomApply(Mirror(layout, coords=c), mirror_p),
            Rotate(rotate, coords=c),
            RandomApply(GaussianNoise(noise_sigma, coords=c), noise_p),
        ])
        self.views = MultiView([view, view])

    def train(self, mode: bool = True) -> LAC:
        """Switch to ``mode``; the frozen generator always stays in eval mode (no decoder dropout)."""
        super().train(mode)
        self.generator.eval()
        return self

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        expected = (self.generator.layout, self.generator.config["in_channels"])
        if (datamodule.layout, datamodule.in_channels) != expected:
            raise ValueError(f"the generator is built for layout {expected[0]} with {expected[1]} channels but the "
                             f"data has layout {datamodule.layout} with {datamodule.in_channels} channels")

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        batch_size = getattr(datamodule, "batch_size", None)
        if batch_size is not None:  # real + composed keys enter the queue
            self.queue.check_divisible(2 * batch_size * self.trainer.world_size)

    @torch.no_grad()
    def compose(self, x: torch.Tensor) -> torch.Tensor:
        """Composed sequences ``(N, C, T, V, M)``: clip ``i``'s static part with the motion of clips ``i`` and
        ``i - 1`` averaged, from the frozen generator."""
        return self.generator.compose(x, x.roll(1, dims=0))

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Training: ``batch["x"]`` becomes the real clips followed by their compositions, then the views."""
        if self._trainer is not None and self.trainer.training:
            x = batch["x"]
            if isinstance(x, list):
                raise ValueError("LAC needs one crop per sample (data.num_views: 1): its frame-level positives are "
                                 "the same frame under two augmentations")
            batch["x"] = torch.cat([x, self.compose(x)])
        return super().on_after_batch_transfer(batch, dataloader_idx)

    def embed(self, x: torch.Tensor, key: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """L2-normalised sequence ``(N, E)`` and frame ``(N, T', E)`` embeddings and pooled features ``(N, D)`` of
        ``x``, from the query encoder or (``key``, no gradient) the momentum encoder."""
        if key:
            self.key_backbone.train(self.training)
            backbone, head, frame_head = self.key_backbone, self.key_head, self.key_frame_head
        else:
            backbone, head, frame_head = self.backbone, self.head, self.frame_head
        with torch.set_grad_enabled(torch.is_grad_enabled() and not key):
            frames = frame_features(backbone, x)
            pooled = frames.mean(dim=1)
            return F.normalize(head(pooled), dim=1), F.normalize(frame_head(frames), dim=2), pooled

    def pretrain_step(self, batch: dict[str, Any]) -> PretrainOutput:
        v1, v2 = batch["views"]
        q, q_frames, features = self.embed(v1)
        m = self.update_key_encoder()
        momentum_update(self.frame_head, self.key_frame_head, m)
        k, k_frames, _ = self.embed(v2, key=True)
        sequence = info_nce(q, k, self.queue.keys.clone(), self.temperature)
        frame = frame_info_nce(q_frames, k_frames, self.frame_queue.keys.clone(), self.temperature)
        loss = sequence + self.frame_weight * frame
        self.enqueue(k)
        self.frame_queue.enqueue(gather_keys(k_frames.flatten(0, 1)))
        metrics = {"sequence": sequence.detach(), "frame": frame.detach(), "momentum": torch.tensor(m)}
        return loss, metrics, features[: batch["label"].shape[0]]
