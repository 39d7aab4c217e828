"""LAC stage 1: representation, re-rendering, the linear latent space, training, the command line and resuming."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from ssl_skel.cli import main
from ssl_skel.data.datamodule import SkeletonDataModule
from ssl_skel.data.preprocess import normalize
from ssl_skel.data.store import SkeletonStore
from ssl_skel.data.temporal import center_sample
from ssl_skel.methods import LACGenerator
from ssl_skel.methods.lac_generator import CompositionGenerator, retarget


def clips(store: Path, n: int = 4, frames: int = 16) -> torch.Tensor:
    """The first ``n`` clips of the store, view-normalised and resampled to ``frames``: ``(n, 3, T, 25, 2)``."""
    data = SkeletonStore(store)
    samples = [center_sample(normalize(data[i][0], "ntu25", "first_frame"), frames) for i in range(n)]
    return torch.from_numpy(np.stack(samples))


def random_batch(layout_joints: int, channels: int, persons: int = 2, frames: int = 16) -> torch.Tensor:
    """Random clips; sample 1 has no second person, sample 2's second person appears at frame 5."""
    x = torch.randn(3, channels, frames, layout_joints, persons, generator=torch.Generator().manual_seed(0))
    if persons > 1:
        x[1, ..., 1] = 0
        x[2, :, :5, :, 1] = 0
    return x


@pytest.mark.parametrize(("layout", "joints", "channels"), [("ntu25", 25, 3), ("coco17", 17, 3), ("coco17", 17, 2)])
def test_representation_round_trip(layout, joints, channels):
    net = CompositionGenerator(layout, channels)
    x = random_batch(joints, channels)
    rep = net.to_representation(x)
    assert rep.shape == (6, joints * channels, 16)
    assert torch.allclose(net.from_representation(rep, x), x, atol=1e-5)
    with pytest.raises(ValueError, match="multiple of 8"):
        net.to_representation(x[:, :, :12])


def test_retarget_sets_bone_lengths_and_turns_about_the_vertical_axis():
    net = CompositionGenerator("ntu25", 3)
    x = random_batch(25, 3, persons=1)
    bones = x - x.index_select(3, net.parents)
    lengths = bones.norm(dim=1)
    same = retarget(x, lengths[:, 0, :, 0], torch.zeros(3), net.parents, net.ancestors, 3)
    assert torch.allclose(same[:, :, :1], x[:, :, :1], atol=1e-5)  # frame 0's own lengths: unchanged
    target = torch.rand(3, 25) + 0.5
    turned = retarget(x, target, torch.full((3,), math.pi / 2), net.parents, net.ancestors, 3)
    new_bones = turned - turned.index_select(3, net.parents)
    expected = target.expand(16, -1, -1).transpose(0, 1).clone()
    expected[:, :, net.root] = 0
    assert torch.allclose(new_bones.norm(dim=1)[..., 0], expected, atol=1e-5)
    root = x[:, :, :, net.root]
    assert torch.allclose(turned[:, 1, :, net.root], root[:, 1], atol=1e-5), "the vertical coordinate is kept"
    assert torch.allclose(turned[:, 0, :, net.root], -root[:, 2], atol=1e-5)  # 90 degrees about y: x' = -z
    flat = retarget(x[:, :2], target, torch.full((3,), math.pi / 3), net.parents, net.ancestors, 2)
    assert torch.allclose(flat[:, 0, :, net.root], 0.5 * root[:, 0], atol=1e-5), "2D: foreshortened by cos(a)"
    zero = torch.zeros(1, 3, 16, 25, 1)
    assert torch.equal(retarget(zero, target[:1], torch.ones(1), net.parents, net.ancestors, 3), zero)


@pytest.mark.parametrize(("layout", "joints", "channels"), [("ntu25", 25, 3), ("coco17", 17, 3)])
def test_decomposition_stays_orthonormal_while_training(layout, joints, channels):
    model = LACGenerator(layout, channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = model.backbone.decomposition.detach().clone()
    x = random_batch(joints, channels)
    for _ in range(3):
        loss = model.pretrain_step({"views": [x]})[0]
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    q = model.backbone.directions()
    assert not torch.allclose(model.backbone.decomposition, before), "the decomposition is learnt"
    assert torch.allclose(q.t() @ q, torch.eye(160), atol=1e-5)


def test_composition_codes_and_self_composition():
    torch.manual_seed(0)
    net = CompositionGenerator("ntu25", 3).eval()
    x = random_batch(25, 3)
    other = x.roll(1, dims=0)
    q = net.directions()
    motion, static = net.encode(net.to_representation(x), q)
    other_motion, _ = net.encode(net.to_representation(other), q)
    composed_motion, composed_static = net.composed_codes(x, other, q)
    assert torch.allclose(composed_static, static, atol=1e-6), "a composed clip keeps the static code of its source"
    # the partner of sample 2 is sample 1, which has no second person: that person keeps its own motion
    present = torch.tensor([True, True, True, True, True, False])
    assert torch.allclose(composed_motion[present], (motion[present] + other_motion[present]) / 2)
    assert torch.allclose(composed_motion[~present], motion[~present], atol=1e-6)
    # composed with itself, a clip decodes to its own reconstruction
    own = net.from_representation(net.decode(motion, static, q), x)
    assert torch.allclose(net.compose(x, x), own, atol=1e-5)
    # the composed clip has its source's presence and starts at its source's root
    composed = net.compose(x, other)
    assert not composed[1, ..., 1].any() and not composed[2, :, :5, :, 1].any() and composed[2, :, 5:, :, 1].all()
    assert torch.allclose(composed[:, :, 0, net.root, 0], x[:, :, 0, net.root, 0])
    assert torch.allclose(composed[2, :, 5, net.root, 1], x[2, :, 5, net.root, 1])


def test_reconstruction_loss_falls_on_a_tiny_overfit_run(tiny_store):
    torch.manual_seed(0)
    model = LACGenerator("ntu25", 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = clips(tiny_store)
    history = []
    for _ in range(30):
        loss, metrics, _ = model.pretrain_step({"views": [x]})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(metrics["self_rec"]))
    assert sum(history[-5:]) / 5 < 0.5 * history[0], history  # (each step draws new characters: noisy)


def _trainer(root: Path, epochs: int, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs, default_root_dir=root, logger=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, deterministic=True, limit_train_batches=2, **kwargs,
    )


def _datamodule(store: Path, **kwargs) -> SkeletonDataModule:
    options = {"split": "xsub", "num_frames": 16, "batch_size": 8, "num_workers": 0, "normalization": "first_frame"}
    return SkeletonDataModule(root=str(store), **{**options, **kwargs})


def _model() -> LACGenerator:
    return LACGenerator("ntu25", 3, optimizer=lambda p: torch.optim.Adam(p, lr=1e-3),
                        scheduler=lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.99))


def test_resume_ends_with_the_same_weights(tiny_store, tmp_path):
    def run(root: Path, epochs: int, ckpt: str | None = None) -> LACGenerator:
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


def test_data_must_match_the_generator(tiny_store, tmp_path):
    trainer = _trainer(tmp_path, 1, enable_checkpointing=False)
    with pytest.raises(ValueError, match="joint coordinates"):
        trainer.fit(_model(), _datamodule(tiny_store, stream="bone"))
    with pytest.raises(ValueError, match="layout nw_ucla20"):
        _trainer(tmp_path, 1, enable_checkpointing=False).fit(LACGenerator("nw_ucla20", 3), _datamodule(tiny_store))


def test_cli_pretrain_offline_and_resume(offline_wandb, tiny_store, tmp_path, monkeypatch):
    config = yaml.safe_load(Path("configs/pretrain/lac_generator/synthetic.yaml").read_text())
    config["trainer"].update(max_epochs=1, limit_train_batches=2, default_root_dir=str(tmp_path / "run"))
    config["data"] = {"root": str(tiny_store), "split": "xsub", "num_frames": 16, "batch_size": 8, "num_workers": 0,
                      "normalization": "first_frame"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["pretrain", "-c", str(path)]) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["lac_generator"]["layout"] == "ntu25"
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert main(["pretrain", "-c", str(path), "--trainer.max_epochs", "2", "--ckpt_path", "last"]) == 0
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 1
