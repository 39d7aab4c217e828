from __future__ import annotations

import torch

from ssl_skel.backbones.bigru import BiGRU, valid_lengths


def _model() -> BiGRU:
    torch.manual_seed(0)
    return BiGRU("ntu25", 3, num_persons=2, hidden=8, num_layers=2)


def test_valid_lengths_use_the_last_nonzero_frame() -> None:
    x = torch.zeros(3, 3, 6, 25, 2)
    x[0, :, :4] = 1.0
    x[1, 0, 4, 7, 1] = 1.0  # frames 0-3 zero, frame 4 has one nonzero coordinate of the second person
    assert valid_lengths(x).tolist() == [4, 5, 1]


def test_feature_comes_from_the_last_valid_frame() -> None:
    model = _model().eval()
    clip = torch.randn(1, 3, 5, 25, 2)
    padded = torch.cat([clip, torch.zeros(1, 3, 4, 25, 2)], dim=2)
    torch.testing.assert_close(model(padded), model(clip))
    seq, lengths = model.forward_features(padded)
    assert lengths.tolist() == [5]
    torch.testing.assert_close(model(padded), seq[:, 4])
    # a batch of different lengths gives every clip the same feature as on its own
    other = torch.randn(1, 3, 9, 25, 2)
    batch = model(torch.cat([padded, other]))
    torch.testing.assert_close(batch, torch.cat([model(clip), model(other)]), rtol=1e-4, atol=1e-5)
    # making a trailing frame nonzero makes it valid and changes the feature
    extended = padded.clone()
    extended[:, :, 7] = 0.5
    assert not torch.allclose(model(extended), model(padded))


def test_padded_outputs_are_zero() -> None:
    model = _model().eval()
    x = torch.randn(2, 3, 7, 25, 2)
    x[0, :, 3:] = 0
    seq, lengths = model.forward_features(x)
    assert seq.shape == (2, 7, 16)
    assert lengths.tolist() == [3, 7]
    assert (seq[0, 3:] == 0).all()
    assert (seq[0, :3] != 0).any()


def test_input_batchnorm_statistics_ignore_padding() -> None:
    model = _model().train()
    x = torch.randn(2, 3, 6, 25, 2)
    x[1, :, 2:] = 0
    model(x)
    frames = x.permute(0, 2, 3, 1, 4).reshape(2, 6, -1)  # (N, T, V*C*M) in the model's (v c m) order
    valid = torch.cat([frames[0], frames[1, :2]])
    torch.testing.assert_close(model.input_bn.running_mean, 0.1 * valid.mean(dim=0), rtol=1e-4, atol=1e-6)
