"""The quickstart end to end on a tiny store: four runs, one comparison table, a summary."""

from __future__ import annotations

import json

import pytest

from ssl_skel.cli import main
from ssl_skel.quickstart import compare_encoders, run_quickstart

FAST = ["--data.num_frames", "16", "--data.batch_size", "8", "--data.num_workers", "0", "--trainer.max_epochs", "1"]
CSV = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.enable_progress_bar", "false"]


def test_quickstart_runs_every_step_and_compares(tiny_store, tmp_path, capsys):
    csv = [*CSV, "--trainer.logger.save_dir", str(tmp_path / "csv")]
    extra = ["--data.dataset", "null", "--data.root", str(tiny_store), *FAST, *csv]
    results = run_quickstart(tmp_path / "qs", extra=extra)
    assert set(results) == {"pretrained", "random"}
    for metrics in results.values():
        assert {"linear/test/top1", "knn/knn/top1_k1", "knn/knn/top1_k20"} <= metrics.keys()
    for run in ("pretrain/checkpoints/last.ckpt", "linear_pretrained/metrics.json", "knn_random/metrics.json"):
        assert (tmp_path / "qs" / run).is_file(), run
    summary = json.loads((tmp_path / "qs" / "summary.json").read_text())
    assert summary["pretrained"] == results["pretrained"] and summary["minutes"] > 0
    printed = capsys.readouterr().out
    assert "pretrained vs randomly initialised encoder" in printed and "linear top-1" in printed


def test_comparison_table_shows_the_gain():
    results = {
        "pretrained": {"linear/test/top1": 80.0, "knn/knn/top1_k1": 70.0, "knn/knn/top1_k20": 72.5},
        "random": {"linear/test/top1": 58.25, "knn/knn/top1_k1": 50.0, "knn/knn/top1_k20": 49.0},
    }
    table = compare_encoders(results)
    assert "+21.8" in table.splitlines()[3] and "+20.0" in table and "+23.5" in table


def test_missing_configs_are_named(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path / "qs"), "--configs", str(tmp_path)]) == 1
    assert "quickstart/pretrain.yaml not found" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["quickstart", *argv])
    assert exit_info.value.code == 0 and "--configs" in capsys.readouterr().out
