"""Rendered clips are joint positions, whatever feature stream the model consumes."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from ssl_skel.callbacks.media import drawable
from ssl_skel.skeleton import bone, get_layout, motion


def test_bone_stream_clips_are_drawn_as_joints():
    layout = get_layout("ntu25")
    x = torch.randn(2, 3, 5, layout.num_joints, 2)
    bones = SimpleNamespace(stream="bone", layout="ntu25")
    drawn = drawable(bone(x, "ntu25"), bones)
    assert torch.allclose(drawn, x - x[:, :, :, layout.center : layout.center + 1], atol=1e-5)


def test_other_streams_are_drawn_as_they_are():
    x = torch.randn(2, 3, 5, 25, 2)
    assert drawable(x, SimpleNamespace(stream="joint", layout="ntu25")) is x
    m = motion(x)
    assert drawable(m, SimpleNamespace(stream="motion", layout="ntu25")) is m
