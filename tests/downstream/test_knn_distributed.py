"""``ssl-skel knn`` on two processes (Lightning's DDP strategy starting them, CPU, gloo) reports the
single-process accuracy.

Both runs use one thread and batches of one clip, so that every clip's features come from the same arithmetic
(bitwise equal): a random encoder's similarities are so close that a last-bit difference could flip a neighbour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from downstream_configs import tiny_config

from ssl_skel.cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_knn_cli_on_two_processes_equals_one_process(tiny_store, pretrained_ckpt, tmp_path):
    data = {"eval_batch_size": 1}
    single = tiny_config(tmp_path / "single", "knn", tiny_store, data=data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["knn", "-c", str(single), "--model.pretrained", str(pretrained_ckpt)]) == 0
    finally:
        torch.set_num_threads(threads)
    expected = json.loads((tmp_path / "single" / "run" / "metrics.json").read_text())

    ddp = {"strategy": "ddp", "devices": 2, "accelerator": "cpu"}
    two = tiny_config(tmp_path / "two", "knn", tiny_store, trainer=ddp, data=data)
    command = [sys.executable, "-m", "ssl_skel.cli", "knn", "-c", str(two), "--model.pretrained", str(pretrained_ckpt)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "run" / "metrics.json").read_text()) == expected
    assert run.stdout.count("ssl-skel knn:") == 1, "only the first process reports"
