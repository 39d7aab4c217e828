from __future__ import annotations

import pytest
import torch
from torch import nn

from ssl_skel.backbones.stgcn import STGCN, BatchNormDropout, SpatialGraphConv
from ssl_skel.skeleton.graph import spatial_adjacency


def test_parameter_count_of_the_ssl_reference_configuration() -> None:
    model = STGCN("ntu25", 3, width=16)
    assert sum(p.numel() for p in model.parameters()) == 821_380
    assert sum(b.edge_importance.numel() for b in model.blocks) == 18_750
    assert model.feature_dim == 256
    without = STGCN("ntu25", 3, width=16, edge_importance=False)
    assert sum(p.numel() for p in without.parameters()) == 821_380 - 18_750


def test_edge_importance_is_registered_state() -> None:
    model = STGCN("coco17", 2, width=4)
    keys = [k for k in model.state_dict() if k.endswith("edge_importance")]
    assert len(keys) == 10
    assert model.state_dict()[keys[0]].shape == (3, 17, 17)


@pytest.mark.parametrize(("frames", "reduced"), [(12, 3), (13, 4), (9, 3)])
def test_unpooled_features_shape(frames: int, reduced: int) -> None:
    model = STGCN("nw_ucla20", 3, width=2)
    feats = model.forward_features(torch.randn(2, 3, frames, 20, 2))
    assert feats.shape == (2, 2, 32, reduced, 20)


def test_graph_conv_matches_the_mix_then_contract_formulation() -> None:
    torch.manual_seed(0)
    conv = SpatialGraphConv(5, 7, 3)
    adjacency = spatial_adjacency("ntu25") * torch.rand(3, 25, 25)
    x = torch.randn(2, 5, 4, 25)
    # Reference form: a 1x1 conv to K*C_out channels (bias per subset), then sum_k X_k A_k over the joints.
    weight = conv.weight.view(7, 3, 5).permute(1, 0, 2)  # (K, C_out, C_in)
    mixed = torch.einsum("koc,nctv->nkotv", weight, x) + conv.bias[None, :, :, None, None]
    expected = torch.einsum("nkotv,kvw->notw", mixed, adjacency)
    torch.testing.assert_close(conv(x, adjacency), expected, rtol=1e-4, atol=1e-5)


def test_graph_conv_only_mixes_graph_neighbours() -> None:
    torch.manual_seed(0)
    model = STGCN("ntu25", 3, width=2).eval()
    block = model.blocks[1]
    x = torch.randn(1, 2, 5, 25)
    y0 = block.gcn(x, model.adjacency * block.edge_importance)
    x[..., 3] += 1.0  # joint 3 (head) only touches itself and joint 2 (neck)
    changed = (block.gcn(x, model.adjacency * block.edge_importance) - y0).abs().amax(dim=(0, 1, 2)) > 0
    assert changed.nonzero().flatten().tolist() == [2, 3]


def test_batchnorm_dropout_drops_at_rate_and_rescales() -> None:
    torch.manual_seed(0)
    layer = BatchNormDropout(8, 0.5)
    x = torch.randn(16, 8, 10, 25).to(memory_format=torch.channels_last)
    y = layer(x)
    reference = nn.functional.batch_norm(x, None, None, training=True)
    dropped = y == 0
    assert 0.47 < dropped.float().mean() < 0.53
    torch.testing.assert_close(y[~dropped], 2 * reference[~dropped], rtol=1e-4, atol=1e-5)
    # every channel is dropped independently (the mask follows the channels-last storage correctly)
    assert (dropped.float().mean(dim=(0, 2, 3)) - 0.5).abs().max() < 0.05
    torch.testing.assert_close(layer.running_mean, 0.1 * x.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-6)
    layer.eval()
    assert (layer(x) != 0).all()


def test_zero_second_person_counts_in_the_person_mean() -> None:
    """Pooling is a plain mean over person slots: an all-zero second person is averaged in like any other."""
    torch.manual_seed(0)
    model = STGCN("ntu25", 3, width=2).eval()
    person = torch.randn(2, 3, 8, 25, 1)
    zero = torch.zeros_like(person)
    pooled = model(torch.cat([person, zero], dim=4))
    expected = (model(person) + model(zero)) / 2
    torch.testing.assert_close(pooled, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(pooled, model(person), atol=1e-4)


def test_strided_residual_matches_a_strided_convolution_and_trains_on_one_thread():
    """The subsample-then-1x1 form equals Conv2d(stride 2), and small widths train without memory corruption
    (the strided oneDNN kernel corrupts memory for 4 -> 8 channels, channels-last, on one thread)."""
    from ssl_skel.backbones.stgcn import StridedPointwiseConv

    conv = StridedPointwiseConv(4, 8, 2)
    reference = torch.nn.Conv2d(4, 8, 1, (2, 1))
    reference.load_state_dict(conv.state_dict())
    x = torch.randn(3, 4, 9, 25).contiguous(memory_format=torch.channels_last)
    assert torch.allclose(conv(x), reference(x), atol=1e-6)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = STGCN("ntu25", 3, width=4)
        grads = []
        for _ in range(2):
            torch.manual_seed(0)
            model.zero_grad()
            model(torch.randn(8, 3, 16, 25, 2)).sum().backward()
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        assert torch.equal(grads[0], grads[1]), "two identical steps must give identical gradients"
    finally:
        torch.set_num_threads(threads)
