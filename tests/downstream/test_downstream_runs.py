"""The downstream commands end to end on a tiny store: outputs, W&B offline, cached == end-to-end probe, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from downstream_configs import tiny_config

from ssl_skel.cli import main
from ssl_skel.downstream import run_linear

PNG = b"\x89PNG\r\n\x1a\n"


def _outputs(run: Path) -> dict[str, float]:
    """The run's metrics; checks the files every run leaves."""
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["num_frames"] == 16
    for name in ("confusion_matrix", "embedding_pca"):
        assert (run / "media" / f"{name}.png").read_bytes().startswith(PNG), name
    return json.loads((run / "metrics.json").read_text())


def test_linear_cli_with_offline_wandb(offline_wandb, tiny_store, pretrained_ckpt, tmp_path, monkeypatch, capsys):
    config = tiny_config(tmp_path, "linear", tiny_store, wandb=True)
    assert main(["linear", "-c", str(config), "--model.pretrained", str(pretrained_ckpt)]) == 0
    run = tmp_path / "run"
    metrics = _outputs(run)
    assert {"test/top1", "test/top5", "test/mean_class_acc", "val/top1_best_epoch_extra"} <= metrics.keys()
    assert 0 <= metrics["test/top1"] <= 100 and metrics["test/top1"] <= metrics["test/top5"]
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["pretrained"] == str(pretrained_ckpt)
    printed = capsys.readouterr().out
    assert f"ssl-skel linear: {run}" in printed and str(pretrained_ckpt) in printed
    assert f"{metrics['test/top1']:.2f}" in printed.split(f"ssl-skel linear: {run}")[1]
    offline = list((run / "wandb").glob("offline-run-*"))
    assert offline, "W&B did not write an offline run"
    assert list(offline[0].glob("files/media/images/**/*.png")), "the media were not logged to W&B"
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_cached_and_end_to_end_probes_agree(tiny_store, tmp_path):
    """Same seed, same batches: training the head on cached features is training it through the frozen backbone."""
    results = {}
    for cached in (True, False):
        root = tmp_path / ("cached" if cached else "end_to_end")
        config = tiny_config(root, "linear", tiny_store, model={"bn_before_linear": True})
        metrics = run_linear(["-c", str(config), "--cache_features", str(cached).lower()])
        state = torch.load(root / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        results[cached] = metrics, state
        assert metrics == json.loads((root / "run" / "metrics.json").read_text())
    (cached_metrics, cached_state), (e2e_metrics, e2e_state) = results[True], results[False]
    for key in ("test/top1", "test/top5", "test/mean_class_acc", "val/top1_best_epoch_extra"):
        assert cached_metrics[key] == e2e_metrics[key], key
    assert cached_metrics["test/loss"] == pytest.approx(e2e_metrics["test/loss"], rel=1e-4)
    for key in ("head.1.weight", "head.1.bias", "head.0.running_mean", "head.0.running_var"):
        torch.testing.assert_close(cached_state[key], e2e_state[key], rtol=1e-4, atol=1e-5)
    assert not torch.equal(cached_state["head.1.weight"], torch.zeros_like(cached_state["head.1.weight"]))


def test_knn_cli(tiny_store, pretrained_ckpt, tmp_path):
    config = tiny_config(tmp_path, "knn", tiny_store)
    assert main(["knn", "-c", str(config), "--model.pretrained", str(pretrained_ckpt)]) == 0
    metrics = _outputs(tmp_path / "run")
    assert sorted(metrics) == ["knn/top1_k1", "knn/top1_k10", "knn/top1_k20"]
    assert all(0 <= v <= 100 for v in metrics.values())


def test_finetune_cli_trains_the_backbone(tiny_store, pretrained_ckpt, tmp_path):
    config = tiny_config(tmp_path, "finetune", tiny_store, trainer={"max_epochs": 1, "check_val_every_n_epoch": 1})
    assert main(["finetune", "-c", str(config), "--model.pretrained", str(pretrained_ckpt)]) == 0
    run = tmp_path / "run"
    metrics = _outputs(run)
    assert {"test/top1", "val/top1_best_epoch_extra", "val/best_epoch_extra"} <= metrics.keys()
    tuned = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    start = torch.load(pretrained_ckpt, weights_only=True)["state_dict"]
    assert not torch.equal(tuned["backbone.blocks.0.gcn.weight"], start["backbone.blocks.0.gcn.weight"])


def test_semi_cli_runs_every_seed_and_reports_mean_and_std(tiny_store, tmp_path):
    config = tiny_config(tmp_path, "semi", tiny_store, label_fractions=[0.5], seeds=[0, 1], trainer={"max_epochs": 1})
    assert main(["semi", "-c", str(config)]) == 0
    root = tmp_path / "run"
    summary = json.loads((root / "metrics.json").read_text())
    runs = [_outputs(root / f"50pct_seed{seed}") for seed in (0, 1)]
    top1 = [r["test/top1"] for r in runs]
    assert summary["50pct/test/top1_mean"] == pytest.approx(sum(top1) / 2)
    assert summary["50pct/test/top1_std"] == pytest.approx(abs(top1[0] - top1[1]) / 2**0.5)
    subsets = [json.loads((root / f"50pct_seed{seed}" / "label_subset.json").read_text()) for seed in (0, 1)]
    assert [s["label_seed"] for s in subsets] == [0, 1] and subsets[0]["indices"] != subsets[1]["indices"]
    assert all(s["label_fraction"] == 0.5 and len(s["indices"]) == 12 for s in subsets)  # one of two per class


def test_errors_are_reported_clearly(tiny_store, tmp_path, capsys):
    config = tiny_config(tmp_path, "linear", tiny_store)
    assert main(["linear", "-c", str(config), "--model.pretrained", str(tmp_path / "missing.ckpt")]) == 1
    assert "missing.ckpt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["linear", "-c", str(config), "--data.random_crop", "true"])
    assert "un-augmented" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["finetune", "-c", str(tiny_config(tmp_path, "finetune", tiny_store)), "--model.protocol", "linear"])
    assert "trains model.protocol finetune, not linear" in capsys.readouterr().err
