from __future__ import annotations

import pytest
import torch

from ssl_skel.backbones.transformer import SkeletonTransformer


def _model() -> SkeletonTransformer:
    torch.manual_seed(0)
    return SkeletonTransformer("coco17", 2, dim=16, depth=2, heads=2, patch_frames=4, max_frames=16).eval()


def test_unpooled_tokens_shape() -> None:
    model = _model()
    assert model.forward_features(torch.randn(3, 2, 12, 17, 2)).shape == (3, 2, 3, 17, 16)


def test_masked_token_values_do_not_matter() -> None:
    model = _model()
    x = torch.randn(2, 2, 8, 17, 2)  # T' = 2, so 34 tokens per person
    keep = torch.stack([torch.randperm(34)[:9] for _ in range(4)])
    out = model.forward_features(x, keep)
    assert out.shape == (2, 2, 9, 16)
    visible = torch.zeros(4, 34, dtype=torch.bool).scatter_(1, keep, True)
    # token (t', v) covers frames 4t'..4t'+3 of joint v: overwrite every masked token's frames
    frame_mask = visible.view(2, 2, 2, 1, 17).expand(2, 2, 2, 4, 17).reshape(2, 2, 8, 17)
    noisy = torch.where(frame_mask.permute(0, 2, 3, 1).unsqueeze(1), x, torch.randn_like(x) * 100)
    torch.testing.assert_close(model.forward_features(noisy, keep), out)
    # a visible token's value does matter
    changed = x.clone()
    t, v = divmod(keep[0, 0].item(), 17)
    changed[0, :, 4 * t, v, 0] += 10.0
    assert not torch.allclose(model.forward_features(changed, keep)[0, 0], out[0, 0])


def test_keeping_every_token_equals_the_full_encoding() -> None:
    model = _model()
    x = torch.randn(2, 2, 8, 17, 2)
    full = model.forward_features(x)
    everything = torch.arange(34).repeat(4, 1)
    torch.testing.assert_close(model.forward_features(x, everything), full.flatten(2, 3), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model(x), full.mean(dim=(1, 2, 3)))


def test_frame_count_is_checked() -> None:
    model = _model()
    with pytest.raises(ValueError, match="multiple of patch_frames"):
        model(torch.randn(1, 2, 10, 17, 1))
    with pytest.raises(ValueError, match="at most 16 frames"):
        model(torch.randn(1, 2, 20, 17, 1))
