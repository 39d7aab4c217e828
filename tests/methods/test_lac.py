"""LAC stage 2: generator loading, composition, frame-level positives, training with a frozen generator, the
command line and resuming."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml

from ssl_skel.backbones import STGCN, frame_features
from ssl_skel.cli import main
from ssl_skel.data.datamodule import SkeletonDataModule
from ssl_skel.methods import LAC, LACGenerator
from ssl_skel.methods.lac import frame_info_nce, load_generator


def _datamodule(store: Path, **kwargs) -> SkeletonDataModule:
    options = {"split": "xsub", "num_frames": 16, "batch_size": 8, "num_workers": 0, "normalization": "first_frame"}
    return SkeletonDataModule(root=str(store), **{**options, **kwargs})


def _trainer(root: Path, epochs: int, **kwargs) -> L.Trainer:
    options = {"limit_train_batches": 2, **kwargs}
    return L.Trainer(
        max_epochs=epochs, default_root_dir=root, logger=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, deterministic=True, **options,
    )


@pytest.fixture(scope="module")
def generator_ckpt(tiny_store, tmp_path_factory) -> Path:
    """A stage-1 checkpoint after one step on the tiny store."""
    root = tmp_path_factory.mktemp("lac_generator")
    L.seed_everything(0)
    model = LACGenerator("ntu25", 3, optimizer=lambda p: torch.optim.Adam(p, lr=1e-3))
    _trainer(root, 1, limit_train_batches=1).fit(model, _datamodule(tiny_store))
    return next((root / "checkpoints").glob("*.ckpt"))


def _lac(generator: Path, **kwargs) -> LAC:
    return LAC(
        STGCN("ntu25", 3, width=4, dropout=0.0), str(generator),
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4),
        queue_size=32, frame_queue_size=128, embedding_dim=16, **kwargs,
    )


def test_load_generator_checks_the_checkpoint(generator_ckpt, tmp_path):
    generator = load_generator(generator_ckpt)
    assert not generator.training and not any(p.requires_grad for p in generator.parameters())
    with pytest.raises(FileNotFoundError, match="lac_generator"):
        load_generator(tmp_path / "missing.ckpt")
    checkpoint = torch.load(generator_ckpt, map_location="cpu", weights_only=True)
    torch.save({"state_dict": checkpoint["state_dict"]}, tmp_path / "plain.ckpt")
    with pytest.raises(ValueError, match="not a LAC generator checkpoint"):
        load_generator(tmp_path / "plain.ckpt")
    checkpoint["state_dict"]["backbone.extra"] = torch.zeros(1)
    del checkpoint["state_dict"]["backbone.decomposition"]
    torch.save(checkpoint, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match=r"missing keys \['decomposition'\], unexpected keys \['extra'\]"):
        load_generator(tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match="layout ntu25, not nw_ucla20"):
        _lac(generator_ckpt, layout="nw_ucla20")
    with pytest.raises(ValueError, match="key_batch_norm 'batch'"):
        _lac(generator_ckpt, key_batch_norm="shuffled")


def test_frame_positives_are_the_same_frame(generator_ckpt):
    torch.manual_seed(0)
    model = _lac(generator_ckpt).eval()
    x = torch.randn(2, 3, 16, 25, 2).cumsum(dim=2) * 0.1  # moving clips: frames differ
    _, q_frames, _ = model.embed(x)
    _, k_frames, _ = model.embed(x, key=True)  # the key encoder starts as a copy of the query encoder
    similarity = torch.einsum("nte,nse->nts", q_frames, k_frames)  # (N, T', T')
    diagonal = similarity.diagonal(dim1=1, dim2=2)
    assert torch.allclose(diagonal, torch.ones_like(diagonal), atol=1e-5)
    assert (similarity.amax(dim=2) <= diagonal + 1e-6).all()
    # the frame loss takes the same frame index as the positive: aligned keys beat shifted ones
    queue = F.normalize(torch.randn(64, 16), dim=1)
    aligned = frame_info_nce(q_frames, k_frames, queue, 0.07)
    shifted = frame_info_nce(q_frames, k_frames.roll(1, dims=1), queue, 0.07)
    assert aligned < shifted
    # the views keep frames aligned: a padded tail stays padding in both views
    x[:, :, 12:] = 0
    v1, v2 = model.views(x)
    assert not v1[:, :, 12:].any() and not v2[:, :, 12:].any() and v1[:, :, :12].ne(0).any(dim=(0, 1, 3, 4)).all()
    assert frame_features(model.backbone, x).shape == (2, 4, 64)


def test_composition_keeps_the_static_clip(generator_ckpt):
    model = _lac(generator_ckpt)
    x = torch.randn(3, 3, 16, 25, 2) * 0.3
    x[1, ..., 1] = 0
    composed = model.compose(x)
    assert composed.shape == x.shape and not composed[1, ..., 1].any()
    assert not torch.allclose(composed, x)


def test_training_keeps_the_generator_frozen(tiny_store, generator_ckpt, tmp_path):
    L.seed_everything(2)
    model = _lac(generator_ckpt)
    frozen = {k: v.clone() for k, v in model.generator.state_dict().items()}
    logged: list[dict[str, float]] = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            assert batch["views"][0].shape[0] == 2 * batch["label"].shape[0], "real + composed clips"
            assert not pl_module.generator.training
            logged.append({k: float(v) for k, v in trainer.callback_metrics.items()})

    _trainer(tmp_path, 2, enable_checkpointing=False, callbacks=[Spy()]).fit(model, _datamodule(tiny_store))
    assert logged and all(torch.isfinite(torch.tensor([e["train/sequence"], e["train/frame"]])).all() for e in logged)
    assert all(p.grad is None and not p.requires_grad for p in model.generator.parameters())
    for name, value in model.generator.state_dict().items():
        assert torch.equal(value, frozen[name]), f"generator {name} changed"
    assert model.queue.filled == 32 and model.frame_queue.filled == 128


def test_one_crop_per_sample(tiny_store, generator_ckpt, tmp_path):
    with pytest.raises(ValueError, match="num_views: 1"):
        _trainer(tmp_path, 1, enable_checkpointing=False).fit(
            _lac(generator_ckpt), _datamodule(tiny_store, num_views=2)
        )


def test_resume_ends_with_the_same_weights(tiny_store, generator_ckpt, tmp_path):
    def run(root: Path, epochs: int, ckpt: str | None = None) -> LAC:
        L.seed_everything(1)
        model = _lac(generator_ckpt)
        _trainer(root, epochs).fit(model, _datamodule(tiny_store), ckpt_path=ckpt)
        return model

    straight = run(tmp_path / "a", 3)
    run(tmp_path / "b", 2)
    resumed = run(tmp_path / "c", 3, str(next((tmp_path / "b" / "checkpoints").glob("*.ckpt"))))
    a, c = straight.state_dict(), resumed.state_dict()
    assert a.keys() == c.keys()
    for name in a:
        assert torch.equal(a[name], c[name]), f"{name} differs after resuming"


def test_cli_pretrain_offline_and_resume(offline_wandb, tiny_store, generator_ckpt, tmp_path, monkeypatch):
    config = yaml.safe_load(Path("configs/pretrain/lac/synthetic.yaml").read_text())
    config["trainer"].update(max_epochs=1, limit_train_batches=2, default_root_dir=str(tmp_path / "run"))
    config["trainer"]["callbacks"][0]["init_args"]["every_n_epochs"] = 1
    init = config["model"]["init_args"]
    init.update(generator=str(generator_ckpt), queue_size=32, frame_queue_size=128)
    init["backbone"]["init_args"]["width"] = 4
    config["data"] = {"root": str(tiny_store), "split": "xsub", "num_frames": 16, "batch_size": 8, "num_workers": 0,
                      "normalization": "first_frame"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["pretrain", "-c", str(path)]) == 0
    run = tmp_path / "run"
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["class_path"] == "ssl_skel.methods.LAC"
    assert list((run / "wandb").glob("offline-run-*"))
    assert main(["pretrain", "-c", str(path), "--trainer.max_epochs", "2", "--ckpt_path", "last"]) == 0
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1 and any(k.startswith("generator.") for k in last["state_dict"])
