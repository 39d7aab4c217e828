"""LAC stage 1: the composition generator with a linear latent space (Yang et al., ICCV 2023; spec/methods.md).

Each person's sequence is encoded as ``V * C`` channels over time: the coordinates of every joint relative to the
root (the layout's centre joint), with the root's own slot holding the root velocity (zero at the first frame and
wherever the person is absent in either frame); channels beyond the layout's coordinates (a 2D keypoint score)
are kept as they are. A 1-d convolutional encoder maps it to a 160-channel latent at ``T / 8`` steps; the Linear
Action Decomposition orthonormalises a learnable ``160 x 160`` matrix by QR at every forward: its first 128
columns are motion directions (magnitudes per time step), the last 32 static directions (magnitudes of the
time-averaged latent). The decoder maps ``motion + static`` back to the input channels.

Training pairs come from re-rendering the clips of a batch (we have no character rig, see the spec): a
*character* is a set of bone lengths (the batch's mean bone lengths, each scaled by a random factor, equal for
left and right) plus a view (a rotation about the vertical axis; in 2D the horizontal foreshortening ``cos a``
of that rotation). With clip ``i``, its partner ``j`` (the next clip of the batch) and two characters ``A`` and
``B`` per pair, the four renders ``x1 = (i, A)``, ``x2 = (j, B)``, ``x12 = (i, B)``, ``x21 = (j, A)`` are all
known exactly. Loss = self reconstruction of ``x1`` and ``x2`` + ``cross_weight`` x cross reconstruction
(``motion(x1) + static(x2) -> x12``, ``motion(x2) + static(x1) -> x21``) + ``triplet_weight`` x four triplet
terms (margin 1): motion codes of the same clip under two characters against the partner's, static codes of
the same character under two clips against the other character's.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..augment import Identity, MultiView, presence, rotation_matrices
from ..skeleton.layouts import get_layout
from .base import PretrainMethod, PretrainOutput

__all__ = ["CompositionGenerator", "LACGenerator", "bone_ancestors", "retarget"]

_EPS = 1e-6


def bone_ancestors(parents: tuple[int, ...]) -> torch.Tensor:
    """``(V, V)`` matrix ``A`` with ``A[j, k] = 1`` when the bone of joint ``k`` (joint minus parent) lies on the
    path from the root to joint ``j`` (``k = j`` included, the root's own bone excluded), so that joints relative
    to the root are ``A @ bones``."""
    v = len(parents)
    ancestors = torch.zeros(v, v)
    for j in range(v):
        k = j
        while parents[k] != k:
            ancestors[j, k] = 1.0
            k = parents[k]
    return ancestors


def retarget(
    x: torch.Tensor,
    bone_lengths: torch.Tensor,
    angles: torch.Tensor,
    parents: torch.Tensor,
    ancestors: torch.Tensor,
    coords: int,
    up_axis: int = 1,
) -> torch.Tensor:
    """Re-render ``x (N, C, T, V, M)`` with new bone lengths and view; all-zero frames stay zero.

    Every bone keeps its direction and takes the length ``bone_lengths (N, V)`` of its joint; the root keeps its
    trajectory. The result is rotated about the ``up_axis`` coordinate by ``angles (N,)`` radians (3D) or, with
    two coordinates, scaled along the other axis by ``cos(angles)`` (the projection of that rotation).
    ``parents (V,)`` and ``ancestors (V, V)`` describe the layout's bone tree (:func:`bone_ancestors`). Channels
    past ``coords`` are copied.
    """
    joints = x[:, :coords]
    root = joints[:, :, :, parents == torch.arange(len(parents), device=x.device)]  # (N, c, T, 1, M)
    bones = joints - joints.index_select(3, parents)
    direction = bones / bones.norm(dim=1, keepdim=True).clamp_min(_EPS)
    bones = direction * bone_lengths[:, None, None, :, None]
    joints = root + torch.einsum("nctkm,jk->nctjm", bones, ancestors)
    if coords == 3:
        axis_angles = torch.zeros(len(angles), 3, dtype=x.dtype, device=x.device)
        axis_angles[:, up_axis] = angles
        view = rotation_matrices(axis_angles, 3)
    else:
        scale = torch.ones(len(angles), coords, dtype=x.dtype, device=x.device)
        scale[:, 1 - up_axis] = angles.cos()
        view = torch.diag_embed(scale)
    joints = torch.einsum("ncd,ndtvm->nctvm", view, joints)
    return torch.cat([joints, x[:, coords:]], dim=1)


class CompositionGenerator(nn.Module):
    """Encoder, Linear Action Decomposition and decoder of the LAC generator, for any layout.

    As a backbone it maps ``(N, C, T, V, M)`` to ``(N, channels[-1])`` features: the time-averaged motion
    magnitudes and the static magnitudes, averaged over present persons. ``T`` must be a multiple of
    ``2 ** len(channels)`` and at least twice that.

    Args:
        layout: skeleton layout name (root joint = its centre, bone tree, coordinate dimensionality).
        in_channels: channels C per joint (coordinates first, then e.g. a keypoint score).
        channels: encoder widths (reversed for the decoder); the last is the latent size.
        motion_dim: motion directions among the latent directions; the rest are static.
        dropout: dropout after the first two decoder convolutions.
    """

    parents: torch.Tensor
    ancestors: torch.Tensor

    def __init__(
        self,
        layout: str = "ntu25",
        in_channels: int = 3,
        channels: tuple[int, ...] = (64, 96, 160),
        motion_dim: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        lay = get_layout(layout)
        if not 0 < motion_dim < channels[-1]:
            raise ValueError(f"motion_dim must lie in (0, {channels[-1]}), got {motion_dim}")
        if in_channels < lay.dims:
            raise ValueError(f"layout {lay.name} has {lay.dims} coordinates but in_channels is {in_channels}")
        self.config = {"layout": lay.name, "in_channels": in_channels, "channels": tuple(channels),
                       "motion_dim": motion_dim, "dropout": dropout}  # fmt: skip
        self.layout = lay.name
        self.coords = lay.dims
        self.root = lay.center
        self.motion_dim = motion_dim
        self.feature_dim: int = channels[-1]
        self.register_buffer("parents", torch.tensor(lay.parents), persistent=False)
        self.register_buffer("ancestors", bone_ancestors(lay.parents), persistent=False)
        widths = [lay.num_joints * in_channels, *channels]
        encoder: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(widths):
            encoder += [nn.ReflectionPad1d(3), nn.Conv1d(c_in, c_out, 8, stride=2), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*encoder)
        self.decomposition = nn.Parameter(nn.init.orthogonal_(torch.empty(channels[-1], channels[-1])))
        decoder: list[nn.Module] = []
        reverse = widths[::-1]
        for i, (c_in, c_out) in enumerate(itertools.pairwise(reverse)):
            decoder += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad1d(3), nn.Conv1d(c_in, c_out, 7)]
            if i < len(reverse) - 2:
                decoder += [nn.Dropout(dropout), nn.LeakyReLU(0.2)]
        self.decoder = nn.Sequential(*decoder)
        self.stride = 2 ** len(channels)

    # --- representation -------------------------------------------------------------------------------------------
    def to_representation(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> ``(N * M, V * C, T)``: root-relative joints, root velocity in the root's slot."""
        t = x.shape[2]
        if t % self.stride or t < 2 * self.stride:
            raise ValueError(f"the LAC generator needs T a multiple of {self.stride} and at least {2 * self.stride} "
                             f"frames, got T = {t}")
        c = self.coords
        present = presence(x)[:, None, :, None, :].to(x.dtype)  # (N, 1, T, 1, M)
        root = x[:, :c, :, self.root : self.root + 1]
        velocity = torch.zeros_like(root)
        velocity[:, :, 1:] = (root[:, :, 1:] - root[:, :, :-1]) * present[:, :, 1:] * present[:, :, :-1]
        relative = x[:, :c] - root
        relative = torch.cat([relative[:, :, :, : self.root], velocity, relative[:, :, :, self.root + 1 :]], dim=3)
        return rearrange(torch.cat([relative, x[:, c:]], dim=1), "n c t v m -> (n m) (v c) t")

    def from_representation(self, rep: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_representation`: ``(N * M, V * C, T)`` -> ``(N, C, T, V, M)``, with the root
        trajectory integrated from the root of ``like``'s first present frame and ``like``'s absent frames zero."""
        v, m = like.shape[3], like.shape[4]
        c = self.coords
        y = rearrange(rep, "(n m) (v c) t -> n c t v m", m=m, v=v)
        present = presence(like)[:, None, :, None, :].to(like.dtype)  # (N, 1, T, 1, M)
        first = present.argmax(dim=2, keepdim=True).expand(-1, c, -1, -1, -1)
        start = like[:, :c, :, self.root : self.root + 1].gather(2, first)  # (N, c, 1, 1, M)
        velocity = y[:, :c, :, self.root : self.root + 1].clone()
        velocity[:, :, 1:] *= present[:, :, 1:] * present[:, :, :-1]
        velocity[:, :, :1] = 0
        root = start + velocity.cumsum(dim=2)
        joints = y[:, :c] + root
        joints = torch.cat([joints[:, :, :, : self.root], root, joints[:, :, :, self.root + 1 :]], dim=3)
        return torch.cat([joints, y[:, c:]], dim=1) * present

    # --- latent space -----------------------------------------------------------------------------------------------
    def directions(self) -> torch.Tensor:
        """``(L, L)`` orthonormal latent directions (columns): the first ``motion_dim`` motion, the rest static."""
        return torch.linalg.qr(self.decomposition).Q

    def encode(self, rep: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, V * C, T)`` -> motion magnitudes ``(B, motion_dim, T / 8)`` and static magnitudes
        ``(B, L - motion_dim)`` along ``directions`` (:meth:`directions`, computed once per forward)."""
        latent = self.encoder(rep)
        motion = torch.einsum("blt,lk->bkt", latent, directions[:, : self.motion_dim])
        return motion, latent.mean(dim=2) @ directions[:, self.motion_dim :]

    def decode(self, motion: torch.Tensor, static: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """Magnitudes ``(B, motion_dim, T / 8)`` and ``(B, L - motion_dim)`` -> representation ``(B, V * C, T)``."""
        latent = torch.einsum("lk,bkt->blt", directions[:, : self.motion_dim], motion)
        return self.decoder(latent + (static @ directions[:, self.motion_dim :].t())[:, :, None])

    def composed_codes(
        self, x: torch.Tensor, other: torch.Tensor, directions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes of the composition of ``x`` and ``other`` (both ``(N, C, T, V, M)``): the average of their motion
        magnitudes (``x``'s own for persons absent from ``other``) and the static magnitudes of ``x``."""
        motion, static = self.encode(self.to_representation(torch.cat([x, other])), directions)
        motion, other_motion = motion.chunk(2)
        other_present = rearrange(presence(other).any(dim=1), "n m -> (n m)")[:, None, None]
        return torch.where(other_present, (motion + other_motion) / 2, motion), static.chunk(2)[0]

    def compose(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """A new sequence ``(N, C, T, V, M)`` decoded from :meth:`composed_codes`, with the root start and the
        presence of ``x``."""
        directions = self.directions()
        return self.from_representation(self.decode(*self.composed_codes(x, other, directions), directions), x)

    def pool(self, motion: torch.Tensor, static: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Codes of ``N * M`` person sequences and ``present (N, M)`` -> features ``(N, L)`` averaged over present
        persons (over all when none is present)."""
        codes = rearrange(torch.cat([motion.mean(dim=2), static], dim=1), "(n m) l -> n m l", m=present.shape[1])
        weight = present.to(codes.dtype)
        weight = torch.where(weight.sum(dim=1, keepdim=True) > 0, weight, torch.ones_like(weight))
        return (codes * weight[:, :, None]).sum(dim=1) / weight.sum(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M) -> (N, L)`` pooled codes (see the class docstring)."""
        motion, static = self.encode(self.to_representation(x), self.directions())
        return self.pool(motion, static, presence(x).any(dim=1))


class LACGenerator(PretrainMethod):
    """Stage 1 of LAC: trains a :class:`CompositionGenerator` (``self.backbone``) by re-rendering (see the module
    docstring). The batch must hold joint coordinates (``stream: joint``) of the generator's layout.

    Args:
        layout: skeleton layout of the data.
        in_channels: channels C of the data.
        channels: encoder widths (64, 96, 160).
        motion_dim: motion directions of the latent (128 of 160).
        dropout: decoder dropout (0.2).
        cross_weight: weight of the cross reconstruction terms.
        triplet_weight: weight of the triplet terms.
        triplet_margin: triplet margin (1).
        max_view_angle: views are rotations about the vertical axis drawn from ``U(-a, a)`` degrees (90).
        bone_scale: range of the per-bone scale of a character's bone lengths.
        up_axis: index of the vertical coordinate (1: y).
        kwargs: ``optimizer``, ``scheduler`` and ``online_probe`` of :class:`~ssl_skel.methods.base.PretrainMethod`.
    """

    backbone: CompositionGenerator

    def __init__(
        self,
        layout: str = "ntu25",
        in_channels: int = 3,
        channels: tuple[int, ...] = (64, 96, 160),
        motion_dim: int = 128,
        dropout: float = 0.2,
        cross_weight: float = 1.0,
        triplet_weight: float = 1.0,
        triplet_margin: float = 1.0,
        max_view_angle: float = 90.0,
        bone_scale: tuple[float, float] = (0.8, 1.2),
        up_axis: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(CompositionGenerator(layout, in_channels, channels, motion_dim, dropout), **kwargs)
        coords = get_layout(layout).dims
        if not 0 <= up_axis < coords:
            raise ValueError(f"up_axis must be a coordinate index below {coords}, got {up_axis}")
        self.cross_weight = cross_weight
        self.triplet_weight = triplet_weight
        self.triplet = nn.TripletMarginLoss(margin=triplet_margin)
        self.max_view_angle = max_view_angle
        self.bone_scale = tuple(bone_scale)
        self.up_axis = up_axis
        self.register_buffer("mirror", torch.tensor(get_layout(layout).mirror_permutation), persistent=False)
        self.views = MultiView([Identity()])

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        net = self.backbone
        if getattr(datamodule, "stream", "joint") != "joint":
            raise ValueError(f"the LAC generator works on joint coordinates; the data module gives the "
                             f"{datamodule.stream!r} stream (set data.stream: joint)")
        found = (datamodule.layout, datamodule.in_channels)
        if found != (net.layout, net.config["in_channels"]):
            raise ValueError(f"the generator is built for layout {net.layout} with {net.config['in_channels']} "
                             f"channels but the data has layout {found[0]} with {found[1]} channels")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the generator's architecture so that stage 2 can rebuild it from the checkpoint alone."""
        checkpoint["lac_generator"] = dict(self.backbone.config)

    def characters(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Random characters for the ``N`` clips of ``x``: bone lengths ``(N, V)`` (the batch's mean length of
        every bone times a scale from ``bone_scale``, symmetric left/right) and view angles ``(N,)`` in radians, from
        torch's global RNG (seeded per step)."""
        joints = x[:, : self.backbone.coords]
        lengths = (joints - joints.index_select(3, self.backbone.parents)).norm(dim=1)  # (N, T, V, M)
        present = presence(x)[:, :, None, :].to(x.dtype)
        mean = (lengths * present).sum(dim=(0, 1, 3)) / present.sum().clamp_min(1)  # (V,)
        n, v = x.shape[0], x.shape[3]
        low, high = self.bone_scale
        scale = low + (high - low) * torch.rand(n, v, device=x.device, dtype=x.dtype)
        scale = (scale + scale[:, self.mirror]) / 2
        angles = (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * math.radians(self.max_view_angle)
        return mean * scale, angles

    def render(self, x: torch.Tensor, character: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """``x`` re-rendered with ``character = (bone lengths (N, V), view angles (N,))``."""
        net = self.backbone
        return retarget(x, *character, net.parents, net.ancestors, net.coords, self.up_axis)

    def pretrain_step(self, batch: dict[str, Any]) -> PretrainOutput:
        x = batch["views"][0]
        partner = x.roll(1, dims=0)
        a, b = self.characters(x), self.characters(x)
        renders = [self.render(x, a), self.render(partner, b), self.render(x, b), self.render(partner, a)]
        net = self.backbone
        targets = net.to_representation(torch.cat(renders))
        directions = net.directions()
        motion, static = net.encode(targets, directions)
        m1, m2, m12, m21 = motion.chunk(4)
        s1, s2, s12, s21 = static.chunk(4)
        outputs = net.decode(torch.cat([m1, m2, m1, m2]), torch.cat([s1, s2, s2, s1]), directions)
        # person sequences present in both clips of a pair (the second person of one-person clips is left out)
        keep = rearrange(presence(x).any(dim=1) & presence(partner).any(dim=1), "n m -> (n m)")
        rec = [F.mse_loss(out[keep], target[keep]) for out, target in zip(outputs.chunk(4), targets.chunk(4),
                                                                          strict=True)]

        def code(c: torch.Tensor) -> torch.Tensor:
            return c[keep].flatten(1)

        motion_triplet = self.triplet(code(m12), code(m1), code(m2)) + self.triplet(code(m21), code(m2), code(m1))
        static_triplet = self.triplet(code(s21), code(s1), code(s2)) + self.triplet(code(s12), code(s2), code(s1))
        self_rec, cross_rec = rec[0] + rec[1], rec[2] + rec[3]
        loss = self_rec + self.cross_weight * cross_rec + self.triplet_weight * (motion_triplet + static_triplet)
        metrics = {
            "self_rec": self_rec.detach(),
            "cross_rec": cross_rec.detach(),
            "motion_triplet": motion_triplet.detach(),
            "static_triplet": static_triplet.detach(),
        }
        return loss, metrics, net.pool(m1, s1, presence(renders[0]).any(dim=1))
