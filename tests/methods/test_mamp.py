"""MAMP: motion-aware masking (exact ratio, preference for moving tokens), an encoder that never sees masked
tokens, the masked-only motion target, reconstructions, a tiny overfit, exact resume, an offline command-line
run, and the warm-up cosine schedule of its recipe."""

from __future__ import annotations

import itertools
from pathlib import Path

import lightning as L
import pytest
import torch
import wandb
import yaml

from ssl_skel.backbones import SkeletonTransformer
from ssl_skel.cli import main
from ssl_skel.data.datamodule import SkeletonDataModule
from ssl_skel.methods import MAMP, WarmupCosineLR
from ssl_skel.methods.mamp import frame_motion, masked_mse, motion_aware_mask, patchify, token_motion


def _model(**kwargs) -> MAMP:
    torch.manual_seed(0)
    return MAMP(
        SkeletonTransformer("ntu25", 3, dim=32, depth=2, heads=2, max_frames=16),
        decoder_dim=16, decoder_depth=1, decoder_heads=2, view_frames=16, crop_min_frames=8,
        optimizer=lambda p: torch.optim.AdamW(p, lr=1e-3), **kwargs,
    )


def _datamodule(store: Path) -> SkeletonDataModule:
    return SkeletonDataModule(
        root=str(store), split="xsub", num_frames=16, normalization="first_frame", train_crop=(1.0, 1.0),
        batch_size=8, num_workers=0,
    )


def _trainer(root: Path, epochs: int, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs, default_root_dir=root, logger=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, deterministic=True, **kwargs,
    )


def _moving_clip(n: int = 1) -> torch.Tensor:
    """``(n, 3, 16, 25, 1)``: joints 0-4 move in frames 8-15, everything else is still."""
    x = torch.zeros(n, 3, 16, 25, 1) + torch.linspace(0.1, 1.0, 25).view(1, 1, 1, 25, 1)
    x[:, :, 8:, :5] += torch.linspace(0, 2, 8).view(1, 1, 8, 1, 1)
    return x


@pytest.mark.parametrize("ratio", [0.9, 0.5, 0.75])
def test_mask_ratio_is_exact_and_keep_index_is_the_complement(ratio):
    x = torch.randn(3, 3, 16, 25, 2)
    keep, masked = motion_aware_mask(x, 4, ratio, 0.8, torch.Generator().manual_seed(0))
    length = 4 * 25
    assert masked.shape == (6, length)
    assert (masked.sum(dim=1) == round(ratio * length)).all()
    assert keep.shape == (6, length - round(ratio * length))
    assert (keep.diff(dim=1) > 0).all(), "visible tokens in increasing order"
    assert not masked.gather(1, keep).any(), "a kept token is never masked"


def test_token_motion_is_the_difference_to_the_previous_token_of_the_joint():
    x = _moving_clip()
    motion = token_motion(x, 4).view(4, 25)  # tokens t' = 0..3
    assert (motion[:2] == 0).all() and (motion[:, 5:] == 0).all()
    assert (motion[2:, :5] > 0).all()
    tokens = patchify(x, 4).view(4, 25, 12)
    torch.testing.assert_close(motion[3, 2], (tokens[3, 2] - tokens[2, 2]).abs().mean())


def test_sampler_prefers_moving_tokens():
    x = _moving_clip(400)
    moving = token_motion(x, 4) > 0  # 10 of 100 tokens per sequence
    g = torch.Generator().manual_seed(0)
    _, masked = motion_aware_mask(x, 4, 0.5, 0.8, g)
    rate_moving, rate_still = masked[moving].float().mean().item(), masked[~moving].float().mean().item()
    # softmax weights e^(m / 0.8 max): a moving token weighs between e^0.6 and e^1.25 times a still one
    assert rate_moving > rate_still + 0.2, (rate_moving, rate_still)
    _, uniform = motion_aware_mask(x, 4, 0.5, 0.0, g)
    assert abs(uniform[moving].float().mean().item() - 0.5) < 0.03, "tau = 0 masks uniformly"


def test_encoder_never_sees_masked_tokens():
    model = _model().eval()
    x = torch.randn(2, 3, 16, 25, 2)
    keep, masked = model.sample_mask(x, torch.Generator().manual_seed(0))
    lengths = []
    hook = model.backbone.blocks[0].register_forward_hook(lambda m, i, o: lengths.append(i[0].shape[1]))
    latent = model.encode(x, keep)
    hook.remove()
    assert lengths == [keep.shape[1]] == [10]
    # overwrite every masked token's frames: the encoding does not change
    frame_masked = masked.view(2, 2, 4, 1, 25).expand(2, 2, 4, 4, 25).reshape(2, 2, 16, 25)
    noisy = torch.where(frame_masked.permute(0, 2, 3, 1).unsqueeze(1), torch.randn_like(x) * 100, x)
    torch.testing.assert_close(model.encode(noisy, keep), latent)


def test_target_is_per_token_normalised_motion_and_loss_counts_masked_tokens_only():
    model = _model()
    x = torch.randn(2, 3, 16, 25, 1)
    target, _, _ = model.motion_target(x)
    token = torch.stack([x[0, :, t + 1, 3, 0] - x[0, :, t, 3, 0] for t in range(4)]).flatten()  # token (t'=0, v=3)
    torch.testing.assert_close(target[0, 3], (token - token.mean()) / (token.var() + 1e-6).sqrt())
    assert (frame_motion(x)[:, :, -1] == 0).all()
    pred = torch.randn_like(target, requires_grad=True)
    mask = torch.rand(target.shape[:2]) < 0.9
    loss = masked_mse(pred, target, mask)
    torch.testing.assert_close(loss, (pred - target)[mask].square().mean(dim=-1).mean())
    changed = torch.where(mask[..., None], pred, torch.randn_like(pred) * 100)
    torch.testing.assert_close(masked_mse(changed, target, mask), loss)
    loss.backward()
    assert (pred.grad[~mask] == 0).all()


def test_absent_persons_are_not_scored_and_perfect_motion_reconstructs_the_clip():
    model = _model().eval()
    x = torch.randn(2, 3, 16, 25, 2).cumsum(dim=2) * 0.1
    x[1, ..., 1] = 0
    assert model.present_persons(x).tolist() == [True, True, True, False]
    model.decode = lambda latent, keep, frames: model.motion_target(x)[0]  # an oracle decoder
    clips = model.reconstruct(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(clips["reconstruction"], x, atol=1e-4, rtol=1e-4)


def test_reconstruction_loss_falls_on_a_tiny_overfit():
    # every person moves rigidly at its own constant velocity: a masked token's motion is readable from any visible
    # one, so a working encoder-decoder learns it within a few dozen steps (masks redrawn every step)
    g = torch.Generator().manual_seed(0)
    velocity = torch.randn(8, 3, 1, 1, 2, generator=g) * 0.05
    x = torch.randn(8, 3, 1, 25, 2, generator=g) + velocity * torch.arange(16.0).view(1, 1, 16, 1, 1)
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss, _, features = model.pretrain_step({"views": [x]})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert features.shape == (8, 32)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)


def test_resume_ends_with_the_same_weights(tiny_store, tmp_path):
    def run(root: Path, epochs: int, ckpt: str | None = None) -> MAMP:
        L.seed_everything(1)
        model = _model()
        _trainer(root, epochs).fit(model, _datamodule(tiny_store), ckpt_path=ckpt)
        return model

    straight = run(tmp_path / "a", 3)
    run(tmp_path / "b", 2)
    ckpt = next((tmp_path / "b" / "checkpoints").glob("*.ckpt"))
    resumed = run(tmp_path / "c", 3, str(ckpt))
    a, c = straight.state_dict(), resumed.state_dict()
    assert a.keys() == c.keys()
    for name in a:
        assert torch.equal(a[name], c[name]), f"{name} differs after resuming"


def test_cli_pretrain_offline_with_reconstructions(offline_wandb, tiny_store, tmp_path, monkeypatch):
    config = yaml.safe_load(Path("configs/pretrain/mamp/synthetic.yaml").read_text())
    config["trainer"].update(max_epochs=1, limit_train_batches=2, default_root_dir=str(tmp_path / "run"))
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"] if "Reconstruction" in c["class_path"]]
    init = config["model"]["init_args"]
    init["backbone"]["init_args"].update(dim=16, depth=1, heads=2, max_frames=16)
    init.update(decoder_dim=16, decoder_depth=1, decoder_heads=2, view_frames=16, crop_min_frames=8)
    config["data"] = {"root": str(tiny_store), "split": "xsub", "num_frames": 16, "batch_size": 8, "num_workers": 0}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    try:
        assert main(["pretrain", "-c", str(path)]) == 0
    finally:
        wandb.finish()  # the next run in this process starts its own W&B run
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "wandb").glob("offline-run-*")), "W&B did not write an offline run"
    assert (run / "media" / "reconstruction_epoch0.png").is_file()


def test_warmup_cosine_schedule():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    scheduler = WarmupCosineLR(optimizer, max_epochs=10, warmup_epochs=2, eta_min=5e-4)
    rates = []
    for _ in range(12):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:3] == pytest.approx([5e-4, 1e-3, 1e-3])
    assert rates[6] == pytest.approx(5e-4 + 5e-4 * 0.5)  # half-way through the cosine
    assert rates[10:] == pytest.approx([5e-4, 5e-4])
    assert all(a >= b for a, b in itertools.pairwise(rates[1:]))
