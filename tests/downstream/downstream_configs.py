"""Tiny evaluation configs for end-to-end runs: the shipped synthetic ones, shrunk."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ssl_skel.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "eval"
CSV_LOGGER = "lightning.pytorch.loggers.CSVLogger"


def tiny_config(
    tmp_path: Path, command: str, store: Path, wandb: bool = False, dataset: str = "synthetic", **top_level
) -> Path:
    """``configs/eval/<command>/<dataset>.yaml`` on ``store`` with an ST-GCN of width 4, T = 16, batches of 8 only,
    two epochs, a CSV logger unless ``wandb``; ``top_level`` replaces top-level keys (``trainer``... are updated).
    Returns the path of the written config; the run directory is ``tmp_path / "run"``."""
    config = yaml.safe_load((CONFIGS / command / f"{dataset}.yaml").read_text())
    run = tmp_path / "run"
    trainer = config["trainer"]
    trainer.update(default_root_dir=str(run), enable_progress_bar=False, enable_model_summary=False)
    if "max_epochs" in trainer:
        trainer.update(max_epochs=2, log_every_n_steps=1)
    if not wandb:
        trainer["logger"] = {"class_path": CSV_LOGGER, "init_args": {"save_dir": str(run)}}
    config["model"]["backbone"]["init_args"]["width"] = 4
    data = config["data"]
    data.pop("dataset", None)
    data.update(root=str(store), num_frames=16, batch_size=8, eval_batch_size=8, drop_last=True, num_workers=0)
    for key, value in top_level.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{command}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def resolve_config(command: str, configs: list[Path], capsys) -> dict:
    """``ssl-skel <command> -c CONFIG ... --print_config``, checked to exit with 0; returns the resolved config."""
    args = [command]
    for config in configs:
        args += ["-c", str(config)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)
