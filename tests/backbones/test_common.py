"""Contract shared by every backbone: any layout, any channel count, pooled (N, feature_dim), gradients."""

from __future__ import annotations

import pytest
import torch

from ssl_skel.backbones import BACKBONES, build_backbone
from ssl_skel.skeleton.layouts import get_layout

SMALL: dict[str, dict[str, object]] = {  # small configurations that keep the tests fast on a CPU
    "stgcn": {"width": 4},
    "bigru": {"hidden": 8, "num_layers": 2},
    "transformer": {"dim": 16, "depth": 2, "heads": 2, "max_frames": 16},
    "gin": {"dim": 16, "num_layers": 2},
    "strl": {"dim": 8, "num_layers": 2, "max_frames": 16},
}
LAYOUTS = ["ntu25", "nw_ucla20", "coco17", "openpose18"]


@pytest.mark.parametrize("name", sorted(BACKBONES))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("channels", [2, 3])
def test_pooled_shape_matches_feature_dim(name: str, layout: str, channels: int) -> None:
    torch.manual_seed(0)
    model = build_backbone(name, layout, channels, **SMALL[name])
    v = get_layout(layout).num_joints
    out = model(torch.randn(3, channels, 8, v, 2))
    assert out.shape == (3, model.feature_dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_gradients_reach_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = build_backbone(name, "ntu25", 3, **SMALL[name])
    model(torch.randn(4, 3, 8, 25, 2)).square().sum().backward()
    # The BiGRU feature is the output at the last valid frame, where the top layer's reverse direction has seen
    # one frame from a zero state: its recurrent weights get an exactly zero gradient by construction.
    inert = {"gru.weight_hh_l1_reverse"} if name == "bigru" else set()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert (param.grad.abs().sum() > 0) != (param_name in inert), param_name


def test_unknown_backbone_is_reported() -> None:
    with pytest.raises(KeyError, match="known backbones"):
        build_backbone("resnet", "ntu25", 3)
