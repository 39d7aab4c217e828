"""Shared fixtures: where the recorded data sets are (and a skip with the reason when they are absent), and a
tiny prepared store for end-to-end runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ssl_skel.data.prepare import prepare
from ssl_skel.data.source import get_source

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path | None:
    """``$SSL_SKEL_DATA_ROOT`` or ``../shared/data`` next to the project, if it exists."""
    env = os.environ.get("SSL_SKEL_DATA_ROOT")
    candidates = [Path(env)] if env else []
    candidates.append(PROJECT_ROOT.parent / "shared" / "data")
    return next((p for p in candidates if p.is_dir()), None)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Root of the recorded data sets; skips the test with the reason when they are not on this machine."""
    root = data_root()
    if root is None:
        pytest.skip("recorded data not found: set SSL_SKEL_DATA_ROOT or place it at ../shared/data")
    return root


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """48 synthetic clips (ntu25, two persons, 12 classes, 20 to 30 frames) split by subject (24 / 24)."""
    options = {"num_samples": 48, "num_subjects": 4, "min_frames": 20, "max_frames": 30}
    out = tmp_path_factory.mktemp("tiny") / "store"
    prepare(get_source("synthetic", **options), None, out, source_options=options, progress=False)
    return out


@pytest.fixture()
def tiny_pretrain_config(tiny_store: Path, tmp_path: Path) -> Callable[..., Path]:
    """Writer of a CPU-sized HiCLR pretraining config on ``tiny_store`` (ST-GCN width 4, 16 frames, batch 8,
    queue 16, kNN every epoch, 1 epoch of 2 steps), run directory ``tmp_path / "run"``: ``write(name, **trainer)``
    writes ``tmp_path / name`` with ``trainer`` overrides and returns its path."""
    config = yaml.safe_load((PROJECT_ROOT / "configs/pretrain/hiclr/synthetic.yaml").read_text())
    config["trainer"].update(max_epochs=1, limit_train_batches=2, default_root_dir=str(tmp_path / "run"))
    config["trainer"]["callbacks"][0]["init_args"]["every_n_epochs"] = 1
    config["model"]["init_args"].update(queue_size=16)
    config["model"]["init_args"]["backbone"]["init_args"]["width"] = 4
    config["data"] = {"root": str(tiny_store), "split": "xsub", "num_frames": 16, "batch_size": 8, "num_workers": 0}

    def write(name: str = "config.yaml", **trainer: object) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump({**config, "trainer": {**config["trainer"], **trainer}}))
        return path

    return write


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path) -> None:
    """No W&B credentials and no reachable server: the W&B logger must run offline by itself."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no stored W&B login
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
