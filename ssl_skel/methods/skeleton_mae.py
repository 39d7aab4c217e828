"""SkeletonMAE: graph-based masked autoencoder over every frame's skeleton graph (Yan et al., ICCV 2023)."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..augment import BodyPartMask, Identity, MultiView
from ..augment.base import random_subset
from ..backbones.gin import GINLayer
from ..backbones.strl import STRL
from ..skeleton.layouts import get_layout
from .base import PretrainMethod, PretrainOutput

__all__ = ["SkeletonMAE", "scaled_cosine_error"]


def scaled_cosine_error(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, beta: float = 2.0
) -> torch.Tensor:
    """Mean of ``(1 - cos(pred, target)) ** beta`` over the ``True`` entries of ``mask``.

    ``pred`` and ``target`` are ``(..., C)``, ``mask`` is ``(...)`` bool; entries outside the mask do not enter the
    value or the gradient (0 when the mask is empty).
    """
    error = (1 - F.cosine_similarity(pred, target, dim=-1)).clamp(min=0).pow(beta)
    return torch.where(mask, error, 0.0).sum() / mask.sum().clamp(min=1)


class SkeletonMAE(PretrainMethod):
    """Masked reconstruction of joint coordinates with a GIN encoder-decoder, one graph per frame and person.

    Every frame of every present person is a graph over the layout's bones (absent persons and padded frames are
    skipped). The encoder (``backbone.encoder``) embeds the coordinates to ``dim``; the hidden joints' embeddings
    are replaced by a learnable ``[MASK]`` token and the GIN layers run. The encoder output at hidden joints is set
    to zero again (GraphMAE's re-mask) and the decoder, one GIN layer and an MLP, predicts every joint's
    coordinates. The loss is the scaled cosine error (:func:`scaled_cosine_error`, ``beta``) between predicted and
    original coordinates over the hidden joints only; joints exactly at the origin have no direction and are left
    out.

    Masking (per graph): ``"parts"`` hides ``num_parts`` whole body parts of the layout; ``"joints"`` (the paper's
    ablation) hides the same expected number of joints, ``round(num_parts * V / number of parts)``, drawn
    uniformly.

    The backbone is the downstream :class:`~ssl_skel.backbones.STRL`; only its ``encoder`` is trained here. A
    downstream config that builds the same STRL (same ``init_args``) and loads this checkpoint gets every
    ``backbone.*`` key.

    Args:
        backbone: the STRL whose GIN encoder is pretrained.
        layout: skeleton layout of the data (body parts).
        masking: ``"parts"`` or ``"joints"``.
        num_parts: body parts hidden per graph (sets the ratio of ``"joints"`` masking too).
        beta: exponent of the scaled cosine error (2).
        kwargs: ``optimizer``, ``scheduler`` and ``online_probe`` of :class:`~ssl_skel.methods.base.PretrainMethod`.
    """

    def __init__(
        self,
        backbone: STRL,
        layout: str = "ntu25",
        masking: Literal["parts", "joints"] = "parts",
        num_parts: int = 2,
        beta: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        if masking not in ("parts", "joints"):
            raise ValueError(f"masking must be 'parts' or 'joints', got {masking!r}")
        layout_ = get_layout(layout)
        encoder = backbone.encoder
        if encoder.adjacency.shape[0] != layout_.num_joints:
            raise ValueError(
                f"the backbone has {encoder.adjacency.shape[0]} joints, layout {layout} has {layout_.num_joints}"
            )
        self.masking = masking
        self.beta = beta
        self.part_mask = BodyPartMask(layout_, num_parts)
        self.num_masked_joints = round(num_parts * layout_.num_joints / len(layout_.parts))
        dim, channels = encoder.feature_dim, encoder.embed.in_features
        self.mask_token = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder_gin = GINLayer(dim, dim)
        self.decoder_mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, channels))
        self.views = MultiView([Identity()])

    # --- pieces -------------------------------------------------------------------------------------------------
    @staticmethod
    def graphs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames of present persons of ``(N, C, T, V, M)`` as graphs ``(B, V, C)``, with their ``(B,)`` flat index
        into ``(N * M * T)`` (order ``n, m, t``)."""
        flat = rearrange(x, "n c t v m -> (n m t) v c")
        index = (flat.abs().sum(dim=(1, 2)) > 0).nonzero().squeeze(1)
        return flat[index], index

    def sample_mask(self, graphs: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(graphs, V)`` bool: the hidden joints of each graph."""
        if self.masking == "parts":
            return self.part_mask.sample_mask(graphs, device, generator)
        return random_subset(graphs, self.part_mask.layout.num_joints, self.num_masked_joints, device, generator)

    def predict(self, graphs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Predicted coordinates ``(B, V, C)`` of graphs ``(B, V, C)`` whose ``hidden`` ``(B, V)`` joints are masked."""
        encoder = self.backbone.encoder
        h = torch.where(hidden[..., None], self.mask_token, encoder.embed(graphs))
        h = encoder.encode(h).masked_fill(hidden[..., None], 0.0)
        return self.decoder_mlp(self.decoder_gin(h, encoder.adjacency))

    @staticmethod
    def loss_mask(graphs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """``(B, V)`` bool: hidden joints with a direction (not at the origin), the joints the loss is taken over."""
        return hidden & (graphs.norm(dim=-1) > 1e-6)

    def probe_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(N, D)`` of the un-masked batch for the online probe (eval mode, no gradient); an empty
        ``(N, 0)`` tensor when there is no probe."""
        if self.probe is None:
            return x.new_zeros(x.shape[0], 0)
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad():
                return self.backbone(x)
        finally:
            self.backbone.train(was_training)

    # --- training -----------------------------------------------------------------------------------------------
    def pretrain_step(self, batch: dict[str, Any]) -> PretrainOutput:
        x = batch["views"][0]
        graphs, _ = self.graphs(x)
        hidden = self.sample_mask(graphs.shape[0], graphs.device)
        pred = self.predict(graphs, hidden)
        scored = self.loss_mask(graphs, hidden)
        loss = scaled_cosine_error(pred, graphs, scored, self.beta)
        with torch.no_grad():
            cosine = torch.where(scored, F.cosine_similarity(pred, graphs, dim=-1), 0.0).sum() / scored.sum().clamp(
                min=1
            )
        metrics = {"cosine": cosine, "masked_fraction": hidden.float().mean()}
        return loss, metrics, self.probe_features(x)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Clips ``(N, C, T, V, M)`` to look at: ``original`` and ``reconstruction`` (hidden joints replaced by the
        prediction). The cosine loss leaves the predicted length free, so a hidden joint is drawn along the
        predicted direction at the original joint's distance from the origin."""
        n, c, t, v, m = x.shape
        graphs, index = self.graphs(x)
        hidden = self.sample_mask(graphs.shape[0], x.device, generator)
        pred = F.normalize(self.predict(graphs, hidden), dim=-1) * graphs.norm(dim=-1, keepdim=True)
        flat = x.new_zeros(n * m * t, v, c)
        flat[index] = torch.where(hidden[..., None], pred, graphs)
        return {"original": x, "reconstruction": rearrange(flat, "(n m t) v c -> n c t v m", n=n, m=m)}
