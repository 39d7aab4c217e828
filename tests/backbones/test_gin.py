from __future__ import annotations

import torch

from ssl_skel.backbones.gin import GINEncoder
from ssl_skel.skeleton.layouts import get_layout


def test_unpooled_shape() -> None:
    model = GINEncoder("openpose18", 2, dim=8, num_layers=2)
    assert model.forward_features(torch.randn(2, 2, 5, 18, 3)).shape == (2, 3, 5, 18, 8)


def test_layer_aggregates_bone_neighbours_with_learnable_eps() -> None:
    torch.manual_seed(0)
    layout = get_layout("coco17")
    model = GINEncoder(layout.name, 2, dim=6, num_layers=1).eval()
    layer = model.layers[0]
    with torch.no_grad():
        layer.eps.fill_(0.3)
    h = torch.randn(4, 17, 6)
    neighbour_sum = torch.zeros_like(h)
    for a, b in layout.edges:
        neighbour_sum[:, a] += h[:, b]
        neighbour_sum[:, b] += h[:, a]
    z = 1.3 * h + neighbour_sum
    z = torch.relu(layer.mlp_bn(layer.mlp_in(z.view(-1, 6))))
    expected = torch.relu(layer.out_bn(layer.mlp_out(z))).view(4, 17, 6)
    torch.testing.assert_close(layer(h, model.adjacency), expected, rtol=1e-4, atol=1e-5)


def test_each_frame_is_its_own_graph() -> None:
    torch.manual_seed(0)
    model = GINEncoder("ntu25", 3, dim=8, num_layers=2).eval()
    x = torch.randn(1, 3, 4, 25, 1)
    before = model.forward_features(x)
    x[:, :, 2] += 1.0
    changed = (model.forward_features(x) - before).abs().amax(dim=(0, 1, 3, 4)) > 0
    assert changed.tolist() == [False, False, True, False]
