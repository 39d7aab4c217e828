"""Every shipped evaluation config resolves, states its protocol's recipe, and reads the data exactly as the
pretraining config of the same data set (split, T, normalisation, layout, backbone)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from downstream_configs import resolve_config

ROOT = Path(__file__).resolve().parents[2] / "configs"
COMMANDS = ("linear", "knn", "finetune", "semi")
DATASETS = ("ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset", "pku_mmd1_xsub", "nw_ucla", "synthetic")
DATA_KEYS = ("dataset", "split", "num_frames", "normalization")


def test_every_protocol_has_every_dataset():
    for command in COMMANDS:
        assert {p.stem for p in (ROOT / "eval" / command).glob("*.yaml")} == set(DATASETS), command
    assert {p.stem for p in (ROOT / "eval" / "halp").glob("*.yaml")} == {*DATASETS, "stgcn16_ntu25"}
    assert {p.stem for p in (ROOT / "eval" / "mamp").glob("*.yaml")} == {*DATASETS, "linear", "finetune"}
    assert {p.stem for p in (ROOT / "eval" / "skeleton_mae").glob("*.yaml")} == {*DATASETS, "finetune"}


def _check_recipe(command: str, resolved: dict) -> None:
    model, data, trainer = resolved["model"], resolved["data"], resolved["trainer"]
    optimizer = model.get("optimizer", {}).get("init_args", {})
    if command == "linear":
        assert model["protocol"] == "linear" and resolved["cache_features"] is True
        assert (optimizer["lr"], optimizer["weight_decay"], trainer["max_epochs"]) == (3.0, 0.0, 100)
        assert model["scheduler"]["init_args"]["milestones"] == [80] and data["batch_size"] == 128
        assert data["random_crop"] is False and model["augment"] is None
    elif command == "knn":
        assert resolved["ks"] == [1, 10, 20] and resolved["temperature"] == 0.07
    else:
        assert model["protocol"] == "finetune"
        assert (optimizer["lr"], optimizer["nesterov"], optimizer["weight_decay"]) == (0.1, True, 0.0001)
        schedule = model["scheduler"]["init_args"]
        assert (schedule["warmup_epochs"], schedule["milestones"], schedule["gamma"]) == (5, [30, 55], 0.1)
        assert (trainer["max_epochs"], data["batch_size"]) == (70, 64)
        if command == "semi":
            assert resolved["label_fractions"] == [0.01, 0.1] and len(resolved["seeds"]) >= 3


def _check_masked_recipe(command: str, method: str, resolved: dict) -> None:
    """The masked families' probe (standardised features, lr 0.1) and their own fine-tuning recipes."""
    model, trainer = resolved["model"], resolved["trainer"]
    optimizer = model["optimizer"]
    if command == "linear":
        assert model["protocol"] == "linear" and model["bn_before_linear"] is True
        assert optimizer["class_path"] == "torch.optim.SGD" and optimizer["init_args"]["lr"] == 0.1
        assert trainer["max_epochs"] == 100 and resolved["data"]["random_crop"] is False
        return
    assert model["protocol"] == "finetune" and model["label_smoothing"] == 0.1
    if method == "mamp":
        assert optimizer["class_path"] == "torch.optim.AdamW" and optimizer["init_args"]["lr"] == 0.0005
        assert model["scheduler"]["init_args"]["max_epochs"] == trainer["max_epochs"] == 100
    else:
        assert optimizer["class_path"] == "torch.optim.SGD" and optimizer["init_args"]["lr"] == 0.1
        assert model["scheduler"]["init_args"]["max_epochs"] == trainer["max_epochs"] == 110
        assert resolved["data"]["batch_size"] == 128


# every protocol with HiCLR's pretraining configs; the HaLP overlays (the same for every protocol) with linear; the
# masked families' overlays with their probe and fine-tuning recipes
MASKED = ("skeleton_mae", "mamp")
CASES = (
    [(c, d, "hiclr") for c in COMMANDS for d in DATASETS]
    + [("linear", d, "halp") for d in DATASETS]
    + [(c, d, m) for c in ("linear", "finetune") for d in DATASETS for m in MASKED]
)


@pytest.mark.parametrize(("command", "dataset", "method"), CASES, ids=["-".join(case) for case in CASES])
def test_eval_config_matches_its_pretraining(command, dataset, method, capsys):
    configs = [ROOT / "eval" / command / f"{dataset}.yaml"]
    if method != "hiclr":
        configs.append(ROOT / "eval" / method / f"{dataset}.yaml")
    if method in MASKED:
        recipe = "mamp/linear" if command == "linear" else f"{method}/finetune"
        configs.append(ROOT / "eval" / f"{recipe}.yaml")
    resolved = resolve_config(command, configs, capsys)
    if method in MASKED:
        _check_masked_recipe(command, method, resolved)
    else:
        _check_recipe(command, resolved)
    pretrain = yaml.safe_load((ROOT / "pretrain" / method / f"{dataset}.yaml").read_text())
    for key in DATA_KEYS:
        assert resolved["data"].get(key) == pretrain["data"].get(key), key
    assert resolved["data"]["stream"] == pretrain["data"].get("stream", "joint")
    backbone = pretrain["model"]["init_args"]["backbone"]
    assert resolved["model"]["backbone"]["class_path"] == backbone["class_path"]
    for key, value in backbone["init_args"].items():
        if key == "dropout":  # a training regulariser, not the architecture: each protocol keeps its recipe's
            continue
        assert resolved["model"]["backbone"]["init_args"][key] == value, key
    assert resolved["trainer"]["default_root_dir"] == f"runs/{command}/{dataset}"


def test_halp_stgcn_overlay_matches_its_pretraining(capsys):
    overlays = [ROOT / "eval/halp/ntu60_xsub.yaml", ROOT / "eval/halp/stgcn16_ntu25.yaml"]
    resolved = resolve_config("linear", [ROOT / "eval/linear/ntu60_xsub.yaml", *overlays], capsys)
    pretrain = yaml.safe_load((ROOT / "pretrain/halp/stgcn16_ntu25.yaml").read_text())["model"]["init_args"]
    assert resolved["model"]["backbone"]["class_path"] == pretrain["backbone"]["class_path"]
    assert resolved["model"]["backbone"]["init_args"]["width"] == 16
    assert resolved["data"]["num_frames"] == 64
