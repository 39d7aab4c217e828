"""Motion-aware masked pretraining of a skeleton transformer (MAMP, Mao et al., ICCV 2023): the transformer variant
of the masked-autoencoder family."""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from torch import nn

from ..augment import MAMPPolicy, MultiView
from ..backbones.transformer import SkeletonTransformer, TransformerBlock
from .base import PretrainMethod, PretrainOutput

__all__ = ["MAMP", "frame_motion", "masked_mse", "motion_aware_mask", "patchify", "token_motion"]


def patchify(x: torch.Tensor, patch_frames: int) -> torch.Tensor:
    """``(N, C, T, V, M) -> (N*M, T' * V, patch_frames * C)``: the values of every token (``patch_frames`` frames x
    1 joint), tokens in :class:`~ssl_skel.backbones.SkeletonTransformer` order (flat index ``t' * V + v``, persons
    folded n-major), values frame-major."""
    return rearrange(x, "n c (t u) v m -> (n m) (t v) (u c)", u=patch_frames)


def frame_motion(x: torch.Tensor) -> torch.Tensor:
    """Forward frame differences of ``(N, C, T, V, M)``: ``x[t + 1] - x[t]``, zero at the last frame."""
    motion = torch.zeros_like(x)
    motion[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    return motion


def token_motion(x: torch.Tensor, patch_frames: int) -> torch.Tensor:
    """``(N*M, L)`` motion magnitude of every token: the mean absolute difference between its values and those of
    the previous token of the same joint (the first token of a joint takes the second's)."""
    tokens = rearrange(x, "n c (t u) v m -> (n m) t v (u c)", u=patch_frames)
    motion = torch.zeros(tokens.shape[:3], dtype=x.dtype, device=x.device)
    motion[:, 1:] = (tokens[:, 1:] - tokens[:, :-1]).abs().mean(dim=-1)
    motion[:, 0] = motion[:, min(1, motion.shape[1] - 1)]
    return motion.flatten(1)


def motion_aware_mask(
    x: torch.Tensor, patch_frames: int, mask_ratio: float, tau: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the masked tokens of every person sequence of ``(N, C, T, V, M)``, preferring moving ones.

    With ``m`` the :func:`token_motion`, tokens are drawn without replacement with probabilities
    ``softmax(m / (max(m) * tau))`` (Gumbel top-k): ``round(mask_ratio * L)`` masked tokens per sequence, at least
    one kept. ``tau = 0`` draws uniformly (plain MAE masking).

    Returns:
        ``keep_index`` ``(N*M, L_keep)`` int64, the visible tokens in increasing order, and ``masked``
        ``(N*M, L)`` bool.
    """
    motion = token_motion(x, patch_frames)
    b, length = motion.shape
    num_masked = min(round(mask_ratio * length), length - 1)
    uniform = torch.rand(b, length, generator=generator, device=x.device, dtype=motion.dtype)
    scores = -torch.log(-torch.log(uniform.clamp(1e-10, 1 - 1e-7)))  # Gumbel noise
    if tau > 0:
        scores = scores + torch.log_softmax(motion / (motion.amax(dim=1, keepdim=True) * tau + 1e-10), dim=1)
    order = scores.argsort(dim=1, descending=True)
    masked = torch.zeros(b, length, dtype=torch.bool, device=x.device)
    masked.scatter_(1, order[:, :num_masked], True)
    return order[:, num_masked:].sort(dim=1).values, masked


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error of ``(B, L, P)`` tokens averaged over each token's ``P`` values, then over the ``True``
    tokens of ``mask`` ``(B, L)`` (0 when the mask is empty); other tokens do not enter value or gradient."""
    error = (pred - target).square().mean(dim=-1)
    return torch.where(mask, error, 0.0).sum() / mask.sum().clamp(min=1)


class MAMP(PretrainMethod):
    """Masked motion prediction with a transformer over tokens of ``patch_frames`` frames x 1 joint.

    Each person sequence of the augmented view (:class:`~ssl_skel.augment.MAMPPolicy`: crop-resize to
    ``view_frames``, random rotation) is cut into tokens; ``mask_ratio`` of them are masked with the motion-aware
    sampler (:func:`motion_aware_mask`) and the backbone encodes only the visible ones (they never meet a masked
    token). The decoder embeds the encoded tokens to ``decoder_dim``, puts a learnable mask token at every masked
    position, adds its own temporal and spatial position embeddings and runs ``decoder_depth`` transformer blocks;
    a linear head predicts every token's ``patch_frames x C`` values. Target: the token's forward frame
    differences (:func:`frame_motion`), normalised per token (zero mean, unit variance). Loss: MSE over masked
    tokens of present persons (absent, all-zero persons are left out).

    The backbone is what downstream runs load (``backbone.*`` keys); the family's linear probe puts a
    BatchNorm without affine parameters before the classifier.

    Args:
        backbone: the transformer encoder.
        layout: skeleton layout of the data (augmentation coordinates).
        mask_ratio: fraction of masked tokens (0.9).
        tau: temperature of the motion-aware sampler (0.8; 0.75 in the reference's NTU-120 recipe; 0 = uniform).
        decoder_dim: decoder token size.
        decoder_depth: decoder blocks (3 for NTU-60, 5 otherwise).
        decoder_heads: decoder attention heads.
        view_frames: frames of the augmented view (a multiple of the backbone's ``patch_frames``).
        crop_ratio: range of the cropped fraction of the valid frames.
        crop_min_frames: minimum crop length.
        max_angle: rotation range per axis in radians.
        kwargs: ``optimizer``, ``scheduler`` and ``online_probe`` of :class:`~ssl_skel.methods.base.PretrainMethod`.
    """

    def __init__(
        self,
        backbone: SkeletonTransformer,
        layout: str = "ntu25",
        mask_ratio: float = 0.9,
        tau: float = 0.8,
        decoder_dim: int = 256,
        decoder_depth: int = 3,
        decoder_heads: int = 8,
        view_frames: int = 120,
        crop_ratio: tuple[float, float] = (0.5, 1.0),
        crop_min_frames: int = 64,
        max_angle: float = 0.3,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if view_frames % backbone.patch_frames:
            raise ValueError(f"view_frames {view_frames} is not a multiple of patch_frames {backbone.patch_frames}")
        self.mask_ratio = mask_ratio
        self.tau = tau
        self.patch_frames = backbone.patch_frames
        channels = backbone.patch_embed.in_channels
        self.views = MultiView([MAMPPolicy(layout, view_frames, crop_ratio, crop_min_frames, max_angle)])
        self.decoder_embed = nn.Linear(backbone.feature_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(decoder_dim))
        self.decoder_temporal_pos = nn.Parameter(torch.zeros(backbone.temporal_pos.shape[0], 1, decoder_dim))
        self.decoder_spatial_pos = nn.Parameter(torch.zeros(1, backbone.num_joints, decoder_dim))
        for p in (self.mask_token, self.decoder_temporal_pos, self.decoder_spatial_pos):
            nn.init.trunc_normal_(p, std=0.02)
        self.decoder_blocks = nn.ModuleList(TransformerBlock(decoder_dim, decoder_heads) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_head = nn.Linear(decoder_dim, self.patch_frames * channels)

    # --- pieces -------------------------------------------------------------------------------------------------
    def sample_mask(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``keep_index`` ``(N*M, L_keep)`` and ``masked`` ``(N*M, L)`` of ``(N, C, T, V, M)``
        (:func:`motion_aware_mask` with this method's ratio and temperature)."""
        return motion_aware_mask(x, self.patch_frames, self.mask_ratio, self.tau, generator)

    def encode(self, x: torch.Tensor, keep_index: torch.Tensor) -> torch.Tensor:
        """The backbone's encoding ``(N*M, L_keep, dim)`` of the visible tokens of ``(N, C, T, V, M)``."""
        return rearrange(self.backbone.forward_features(x, keep_index), "n m l d -> (n m) l d")

    def decode(self, latent: torch.Tensor, keep_index: torch.Tensor, frames: int) -> torch.Tensor:
        """Predicted token values ``(N*M, T' * V, patch_frames * C)`` from the visible tokens' encoding."""
        b, v = latent.shape[0], self.decoder_spatial_pos.shape[1]
        t = frames // self.patch_frames
        visible = self.decoder_embed(latent)
        tokens = self.mask_token.expand(b, t * v, -1)
        tokens = tokens.scatter(1, keep_index[..., None].expand(-1, -1, tokens.shape[-1]), visible)
        tokens = tokens.view(b, t, v, -1) + self.decoder_temporal_pos[:t] + self.decoder_spatial_pos
        tokens = tokens.flatten(1, 2)
        for block in self.decoder_blocks:
            tokens = block(tokens)
        return self.decoder_head(self.decoder_norm(tokens))

    def motion_target(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-token normalised motion ``(N*M, L, P)`` of ``(N, C, T, V, M)``, with each token's mean and standard
        deviation ``(N*M, L, 1)``."""
        tokens = patchify(frame_motion(x), self.patch_frames)
        mean = tokens.mean(dim=-1, keepdim=True)
        std = (tokens.var(dim=-1, keepdim=True) + 1e-6).sqrt()
        return (tokens - mean) / std, mean, std

    @staticmethod
    def present_persons(x: torch.Tensor) -> torch.Tensor:
        """``(N*M,)`` bool: the person holds a non-zero value somewhere in ``(N, C, T, V, M)``."""
        return rearrange(x.abs().sum(dim=(1, 2, 3)) > 0, "n m -> (n m)")

    # --- training -----------------------------------------------------------------------------------------------
    def pretrain_step(self, batch: dict[str, Any]) -> PretrainOutput:
        x = batch["views"][0]
        n, m = x.shape[0], x.shape[4]
        keep_index, masked = self.sample_mask(x)
        latent = self.encode(x, keep_index)
        pred = self.decode(latent, keep_index, x.shape[2])
        target, _, _ = self.motion_target(x)
        loss = masked_mse(pred, target, masked & self.present_persons(x)[:, None])
        features = latent.view(n, m, -1, latent.shape[-1]).mean(dim=(1, 2))
        return loss, {"masked_fraction": masked.float().mean()}, features

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Clips ``(N, C, T, V, M)`` to look at: ``original`` and ``reconstruction``, the first frame plus the running
        sum of the motion, predicted at masked tokens (de-normalised with the true token's mean and deviation) and
        true at visible ones."""
        n, c, t, v, m = x.shape
        keep_index, masked = self.sample_mask(x, generator)
        pred = self.decode(self.encode(x, keep_index), keep_index, t)
        target, mean, std = self.motion_target(x)
        motion = torch.where(masked[..., None], pred, target) * std + mean
        motion = rearrange(motion, "(n m) (t v) (u c) -> n c (t u) v m", n=n, v=v, c=c)
        steps = torch.cat([x[:, :, :1], motion[:, :, :-1]], dim=2).cumsum(dim=2)
        present = self.present_persons(x).view(n, 1, 1, 1, m)
        return {"original": x, "reconstruction": steps * present}
