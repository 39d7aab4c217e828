"""End-to-end pretraining on a tiny store: HiCLR and HaLP train, resume exactly, and run from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from ssl_skel.backbones import STGCN, BiGRU
from ssl_skel.callbacks import KNNMonitor
from ssl_skel.cli import main
from ssl_skel.data.datamodule import SkeletonDataModule
from ssl_skel.methods import HaLP, HiCLR


def _datamodule(store: Path, **kwargs) -> SkeletonDataModule:
    options = {"split": "xsub", "num_frames": 16, "batch_size": 8, "num_workers": 0, **kwargs}
    return SkeletonDataModule(root=str(store), **options)


def _hiclr(**kwargs) -> HiCLR:
    return HiCLR(
        STGCN("ntu25", 3, width=4),
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4),
        queue_size=16,
        embedding_dim=16,
        mining_epoch=1,
        **kwargs,
    )


def _trainer(root: Path, epochs: int, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs, default_root_dir=root, logger=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, deterministic=True, **kwargs,
    )


def test_hiclr_trains_and_its_key_encoder_follows_by_momentum(tiny_store, tmp_path):
    L.seed_everything(0)
    model = _hiclr()
    before = [p.detach().clone() for p in model.backbone.parameters()]
    key_before = [p.detach().clone() for p in model.key_backbone.parameters()]
    _trainer(tmp_path, 2, enable_checkpointing=False).fit(model, _datamodule(tiny_store))
    assert model.queue.filled == 16
    moved = [float((p - b).abs().max()) for p, b in zip(model.backbone.parameters(), before, strict=True)]
    assert max(moved) > 0
    assert all(not p.requires_grad for p in model.key_backbone.parameters())
    # every key parameter is an EMA of the query's: it moved, but far less than the query did
    for k, kb, q, qb in zip(model.key_backbone.parameters(), key_before, model.backbone.parameters(), before,
                            strict=True):
        assert float((k - kb).abs().max()) <= float((q - qb).abs().max()) + 1e-7
    assert model.mask_token.grad is not None, "the learnable joint-mask token is trained"


def test_hiclr_resume_ends_with_the_same_weights(tiny_store, tmp_path):
    def run(root: Path, epochs: int, ckpt: str | None = None) -> HiCLR:
        L.seed_everything(1)
        model = _hiclr()
        _trainer(root, epochs).fit(model, _datamodule(tiny_store), ckpt_path=ckpt)
        return model

    straight = run(tmp_path / "a", 3)
    run(tmp_path / "b", 2)
    last = tmp_path / "b" / "checkpoints"
    ckpt = next(last.glob("*.ckpt"))
    resumed = run(tmp_path / "c", 3, str(ckpt))
    a, c = straight.state_dict(), resumed.state_dict()
    assert a.keys() == c.keys()
    for name in a:
        assert torch.equal(a[name], c[name]), f"{name} differs after resuming"


@pytest.mark.parametrize("backbone", ["stgcn", "bigru"])
def test_halp_generates_positives_after_the_queue_fills(tiny_store, tmp_path, backbone):
    L.seed_everything(2)
    encoder = STGCN("ntu25", 3, width=4) if backbone == "stgcn" else BiGRU("ntu25", 3, num_persons=2, hidden=16)
    model = HaLP(
        encoder, optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), queue_size=16, embedding_dim=16,
        num_prototypes=4, prototype_keys=16, refresh_interval=2, num_candidates=10,
    )
    logged: list[dict] = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            logged.append({k: float(v) for k, v in trainer.callback_metrics.items()})

    dm = _datamodule(tiny_store, num_views=2, min_crop_frames=8, train_crop=(0.1, 1.0))
    _trainer(tmp_path, 3, enable_checkpointing=False, callbacks=[Spy()]).fit(model, dm)
    assert model.prototypes.ready
    assert torch.allclose(model.prototypes.prototypes.norm(dim=1), torch.ones(4), atol=1e-5)
    assert any("train/positive" in entry for entry in logged), "the hallucinated-positive term was never used"
    assert all(torch.isfinite(torch.tensor(e["train/loss"])) for e in logged)


def test_knn_monitor_logs_at_start_and_after_epochs(tiny_store, tmp_path):
    L.seed_everything(3)
    monitor = KNNMonitor(every_n_epochs=1, ks=(1, 5))
    _trainer(tmp_path, 1, enable_checkpointing=False, callbacks=[monitor]).fit(_hiclr(), _datamodule(tiny_store))
    assert [h["epoch"] for h in monitor.history] == [-1, 0]
    assert all(0 <= h["top1_k1"] <= 100 and "top1_k5" in h for h in monitor.history)
    lines = (tmp_path / "knn.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [-1, 0]


def test_cli_pretrain_offline_wandb_and_resume(offline_wandb, tiny_pretrain_config, tmp_path, monkeypatch, capsys):
    """No credentials, no network: W&B runs offline, the run saves its config and last.ckpt, and resumes."""
    config = tiny_pretrain_config()
    assert main(["pretrain", "-c", str(config)]) == 0
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["class_path"] == "ssl_skel.methods.HiCLR"
    offline_runs = list((run / "wandb").glob("offline-run-*"))
    assert offline_runs, "W&B did not write an offline run"
    assert list((run / "media").glob("views_epoch0.png"))
    assert main(["pretrain", "-c", str(config), "--trainer.max_epochs", "2", "--ckpt_path", "last"]) == 0
    epochs = [json.loads(x)["epoch"] for x in (run / "knn.jsonl").read_text().splitlines()]
    assert epochs == [-1, 0, 1], "the resumed run continues at epoch 1 without re-evaluating the start"


def test_cli_print_config(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "-c", "configs/pretrain/hiclr/synthetic.yaml", "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["temperature"] == 0.07
    assert printed["trainer"]["logger"]["class_path"] == "ssl_skel.tracking.WandbLogger"
