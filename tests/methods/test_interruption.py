"""A pretraining run killed with SIGKILL in the middle of an epoch and resumed with ``--ckpt_path last`` ends
exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ssl_skel.cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EPOCHS, STEPS_PER_EPOCH = 2, 2
KILL_AT_STEP = 3  # epoch 1, its second batch: last.ckpt holds the end of epoch 0


@pytest.fixture()
def one_thread():
    """One intra-op thread, as in the killed child (OMP_NUM_THREADS=1), so that every run sums alike."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _options(run: Path) -> dict:
    """Trainer settings of a run in ``run``: a CSV logger whose log directory (``knn.jsonl``) is the same when
    the run resumes."""
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger",
              "init_args": {"save_dir": str(run), "name": "csv", "version": 0}}
    return {"default_root_dir": str(run), "max_epochs": EPOCHS, "limit_train_batches": STEPS_PER_EPOCH,
            "logger": logger, "deterministic": True}


def _knn_history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "csv" / "version_0" / "knn.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(tiny_pretrain_config, tmp_path, one_thread):
    straight_run, killed_run = tmp_path / "straight", tmp_path / "killed"
    straight = tiny_pretrain_config("straight.yaml", **_options(straight_run))
    assert main(["pretrain", "-c", str(straight)]) == 0

    killed = tiny_pretrain_config("killed.yaml", **_options(killed_run))
    config = yaml.safe_load(killed.read_text())
    config["trainer"]["callbacks"].append({"class_path": "sigkill.SigkillAt", "init_args": {"step": KILL_AT_STEP}})
    dying = tmp_path / "dying.yaml"
    dying.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    child = subprocess.run([sys.executable, "-m", "ssl_skel.cli", "pretrain", "-c", str(dying)], cwd=PROJECT_ROOT,
                           env=env, capture_output=True, text=True, timeout=1200)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert [h["epoch"] for h in _knn_history(killed_run)] == [-1, 0], "killed during epoch 1"
    interrupted = torch.load(killed_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert interrupted["global_step"] == STEPS_PER_EPOCH, "last.ckpt is the end of epoch 0"

    assert main(["pretrain", "-c", str(killed), "--ckpt_path", "last"]) == 0
    assert _knn_history(killed_run) == _knn_history(straight_run)
    a = torch.load(straight_run / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(killed_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), f"{name} differs after the kill and resume"
    for state_a, state_b in zip(a["optimizer_states"][0]["state"].values(),
                                b["optimizer_states"][0]["state"].values(), strict=True):
        assert torch.equal(state_a["momentum_buffer"], state_b["momentum_buffer"])
