"""The long-tailed, multi-stream ensemble and one-shot protocols from the command line, on tiny stores, against
results computed by hand from the library functions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from downstream_configs import resolve_config, tiny_config

from ssl_skel.backbones import STGCN
from ssl_skel.cli import main
from ssl_skel.data.datamodule import SkeletonDataModule, SkeletonDataset
from ssl_skel.data.sample import SkeletonSample
from ssl_skel.data.store import SkeletonStore, StoreWriter
from ssl_skel.downstream import DownstreamModule, load_pretrained_backbone
from ssl_skel.downstream.ensemble import choose_ensemble_weights
from ssl_skel.downstream.longtail import long_tail_split
from ssl_skel.downstream.oneshot import ONE_SHOT_CLASSES, exemplar_name, one_shot_accuracy, one_shot_split
from ssl_skel.metrics.longtail import long_tail_accuracies

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * float((logits.argmax(1) == labels).double().mean())


# --- long-tailed ---------------------------------------------------------------------------------------------------
LONG_TAIL = {"long_tail_imbalance": 2.0, "long_tail_seed": 3, "long_tail_max_per_class": 2}


def _expected_long_tail(store_path: Path):
    store = SkeletonStore(store_path)
    return store, long_tail_split(store.labels, store.split_indices("xsub", "train"), store.num_classes, 2.0, 3, 2)


@pytest.mark.parametrize("dataset", ["ntu60_xsub", "ntu120_xsub"])
@pytest.mark.parametrize("command", ["linear", "finetune"])
def test_long_tail_configs_compose_with_the_protocol_configs(command, dataset, capsys):
    configs = [CONFIGS / "eval" / command / f"{dataset}.yaml", CONFIGS / "eval" / "longtail" / f"{dataset}.yaml"]
    resolved = resolve_config(command, configs, capsys)
    data = resolved["data"]
    assert (data["long_tail_imbalance"], data["long_tail_seed"], data["long_tail_max_per_class"]) == (10, 0, 600)
    assert (data["split"], data["label_fraction"], resolved["model"]["protocol"]) == ("xsub", 1.0, command)
    assert resolved["trainer"]["default_root_dir"] == f"runs/longtail/{dataset}"


def test_long_tail_linear_trains_on_the_subset_and_reports_shot_accuracies(tiny_store, tmp_path, capsys):
    store, expected = _expected_long_tail(tiny_store)
    assert 0 < len(expected.indices) < len(store.split_indices("xsub", "train"))
    data = {**LONG_TAIL, "batch_size": 1, "drop_last": False}
    config = tiny_config(tmp_path, "linear", tiny_store, data=data)
    assert main(["linear", "-c", str(config)]) == 0
    run = tmp_path / "run"
    saved = json.loads((run / "long_tail_subset.json").read_text())
    assert saved["indices"] == expected.indices.tolist()
    assert saved["class_counts"] == expected.counts.tolist() and saved["long_tail_imbalance"] == 2.0
    # batches of one sample: the optimizer steps of two epochs count the training samples
    steps = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert steps == 2 * len(expected.indices)
    train = torch.load(run / "train_logits.pt", weights_only=True)
    assert train["indices"].tolist() == expected.indices.tolist()
    test = torch.load(run / "test_logits.pt", weights_only=True)
    assert test["indices"].tolist() == store.split_indices("xsub", "test").tolist()  # the test set is unchanged
    assert test["labels"].tolist() == store.labels[test["indices"].numpy()].tolist()
    # the reported metrics are those of the saved logits with the kept training counts
    logits, labels = test["logits"], test["labels"]
    correct = torch.bincount(labels[logits.argmax(1) == labels], minlength=12)
    by_hand = long_tail_accuracies(correct, torch.bincount(labels, minlength=12), expected.counts)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/top1"] == pytest.approx(_top1(logits, labels))
    assert metrics["test/mean_class_acc"] == pytest.approx(100 * float(by_hand["mean_class"]))
    assert metrics["test/few_shot_acc"] == pytest.approx(100 * float(by_hand["few_shot"]))
    # every class kept fewer than 20 samples: the many- and medium-shot buckets are empty and left out
    assert "test/many_shot_acc" not in metrics and "test/medium_shot_acc" not in metrics
    assert "test/few_shot_acc" in capsys.readouterr().out


def test_long_tail_finetune_saves_the_final_models_training_logits(tiny_store, tmp_path):
    _, expected = _expected_long_tail(tiny_store)
    config = tiny_config(tmp_path, "finetune", tiny_store, data=LONG_TAIL, trainer={"max_epochs": 1})
    assert main(["finetune", "-c", str(config)]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "long_tail_subset.json").read_text())["indices"] == expected.indices.tolist()
    assert "test/few_shot_acc" in json.loads((run / "metrics.json").read_text())
    # train_logits.pt: the last checkpoint's model, in eval mode, on the un-augmented long-tailed training set
    module = DownstreamModule(STGCN("ntu25", 3, width=4), 12, protocol="finetune")
    module.load_state_dict(torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])
    module.eval()
    data = SkeletonDataModule(
        root=str(tiny_store),
        split="xsub",
        num_frames=16,
        normalization="per_frame_shoulder",
        num_workers=0,
        eval_batch_size=8,
        **LONG_TAIL,
    )
    with torch.no_grad():
        logits = torch.cat([module(batch["x"]) for batch in data.train_eval_dataloader()])
    saved = torch.load(run / "train_logits.pt", weights_only=True)
    assert saved["indices"].tolist() == expected.indices.tolist()
    torch.testing.assert_close(saved["logits"], logits, rtol=1e-4, atol=1e-5)


def test_long_tail_refuses_other_protocols_and_label_fractions(tiny_store, tmp_path, capsys):
    knn = tiny_config(tmp_path / "knn", "knn", tiny_store, data=LONG_TAIL)
    with pytest.raises(SystemExit):
        main(["knn", "-c", str(knn)])
    assert "long-tailed protocol of ssl-skel linear and finetune, not of ssl-skel knn" in capsys.readouterr().err
    linear = tiny_config(tmp_path / "linear", "linear", tiny_store, data=LONG_TAIL)
    with pytest.raises(SystemExit):
        main(["linear", "-c", str(linear), "--data.label_fraction", "0.5"])
    assert "replaces the training set" in capsys.readouterr().err


# --- multi-stream ensemble -----------------------------------------------------------------------------------------
def _logits(run: Path, part: str) -> dict[str, torch.Tensor]:
    return torch.load(run / f"{part}_logits.pt", weights_only=True)


def test_linear_runs_of_two_streams_feed_the_ensemble(tiny_store, tmp_path, capsys):
    runs = {}
    for stream in ("joint", "bone"):
        config = tiny_config(tmp_path / stream, "linear", tiny_store, data={"stream": stream})
        assert main(["linear", "-c", str(config)]) == 0
        runs[stream] = tmp_path / stream / "run"
    out = tmp_path / "ensemble"
    args = ["--runs", *(f"{s}={run}" for s, run in runs.items()), "--weights", "joint=1,bone=0.5", "--out", str(out)]
    assert main(["ensemble", *args]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    joint, bone = _logits(runs["joint"], "test"), _logits(runs["bone"], "test")
    assert metrics["ensemble/test/top1"] == pytest.approx(
        _top1(joint["logits"] + 0.5 * bone["logits"], joint["labels"])
    )
    for stream, run in runs.items():
        assert metrics[f"{stream}/test/top1"] == pytest.approx(
            json.loads((run / "metrics.json").read_text())["test/top1"]
        )
    printed = capsys.readouterr().out
    assert f"ssl-skel ensemble: {out}" in printed and f"{metrics['ensemble/test/top1']:.2f}" in printed


@pytest.fixture(scope="module")
def crafted_runs(tmp_path_factory) -> dict[str, Path]:
    """Run directories with logits of 5 classes: the joint stream is the better one on the training set, the bone
    stream on the test set (so that weights chosen on the test set would differ from those chosen on training)."""
    generator = torch.Generator().manual_seed(0)
    labels = {
        "train": torch.randint(0, 5, (300,), generator=generator),
        "test": torch.randint(0, 5, (200,), generator=generator),
    }
    signal = {"joint": {"train": 2.0, "test": 0.5}, "bone": {"train": 0.5, "test": 2.0}}
    runs = {}
    for stream, strengths in signal.items():
        runs[stream] = tmp_path_factory.mktemp(stream)
        for part, y in labels.items():
            logits = strengths[part] * torch.nn.functional.one_hot(y, 5) + torch.randn(len(y), 5, generator=generator)
            record = {"logits": logits, "labels": y, "indices": torch.arange(len(y)) * 3}
            torch.save(record, runs[stream] / f"{part}_logits.pt")
    return runs


def test_ensemble_with_given_weights_is_the_weighted_sum(crafted_runs, tmp_path):
    out = tmp_path / "ensemble"
    runs = [f"{stream}={run}" for stream, run in crafted_runs.items()]
    assert main(["ensemble", "--runs", *runs, "--weights", "joint=1", "bone=0.5", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    joint, bone = _logits(crafted_runs["joint"], "test"), _logits(crafted_runs["bone"], "test")
    expected = _top1(joint["logits"] + 0.5 * bone["logits"], joint["labels"])
    assert metrics["ensemble/test/top1"] == pytest.approx(expected)
    single = [_top1(joint["logits"], joint["labels"]), _top1(bone["logits"], bone["labels"])]
    assert [metrics["joint/test/top1"], metrics["bone/test/top1"]] == pytest.approx(single)
    assert expected not in single  # the sum decides other samples than either stream
    assert (metrics["ensemble/weight/joint"], metrics["ensemble/weight/bone"]) == (1.0, 0.5)
    assert "ensemble/train/top1" not in metrics


def test_ensemble_chooses_the_weights_on_the_training_logits(crafted_runs, tmp_path):
    out = tmp_path / "ensemble"
    runs = [f"{stream}={run}" for stream, run in crafted_runs.items()]
    assert main(["ensemble", "--runs", *runs, "--grid", "0,0.5,1", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    train = {stream: _logits(run, "train") for stream, run in crafted_runs.items()}
    test = {stream: _logits(run, "test") for stream, run in crafted_runs.items()}
    weights, accuracy = choose_ensemble_weights(
        {s: t["logits"] for s, t in train.items()}, train["joint"]["labels"], (0, 0.5, 1)
    )
    on_test, _ = choose_ensemble_weights(
        {s: t["logits"] for s, t in test.items()}, test["joint"]["labels"], (0, 0.5, 1)
    )
    assert weights["joint"] > weights["bone"] and on_test["bone"] > on_test["joint"]
    assert {s: metrics[f"ensemble/weight/{s}"] for s in weights} == pytest.approx(weights)
    assert metrics["ensemble/train/top1"] == pytest.approx(100 * accuracy)
    combined = sum(weights[s] * test[s]["logits"].double() for s in weights)
    assert metrics["ensemble/test/top1"] == pytest.approx(_top1(combined, test["joint"]["labels"]))


def test_ensemble_refuses_runs_of_other_samples(crafted_runs, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    record = _logits(crafted_runs["bone"], "test")
    order = torch.arange(len(record["labels"])).roll(1)
    torch.save({k: v[order] for k, v in record.items()}, other / "test_logits.pt")
    runs = [f"joint={crafted_runs['joint']}", f"bone={other}"]
    assert main(["ensemble", "--runs", *runs, "--weights", "joint=1,bone=1", "--out", str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err
    assert (
        "ssl-skel ensemble: error: streams joint" in err
        and f"bone ({other})" in err
        and "other samples or order" in err
    )
    assert main(["ensemble", "--runs", f"joint={tmp_path / 'nowhere'}", "--out", str(tmp_path / "e")]) == 1
    assert "test_logits.pt not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ensemble", "--runs", *runs, "--weights", "joint=1"])
    assert "give a weight for every run" in capsys.readouterr().err


# --- one-shot ------------------------------------------------------------------------------------------------------
def _ntu120_store(path: Path, drop: tuple[str, ...] = ()) -> Path:
    """A fake NTU-120-named store: for each of the 20 evaluation classes its exemplar and three more samples, and one
    sample of each of 10 auxiliary classes; clips of a class-specific pose plus noise. Its only split marks
    every sample as training data (the protocol must not use it)."""
    rng = np.random.default_rng(0)
    names = [exemplar_name(c) for c in ONE_SHOT_CLASSES]
    names += [
        f"S{s:03d}C00{cam}P0{p}R002A{c + 1:03d}"
        for c in ONE_SHOT_CLASSES
        for s, cam, p in ((2, 1, 11), (5, 2, 23), (9, 3, 30))
    ]
    names += [f"S003C001P007R001A{c + 2:03d}" for c in ONE_SHOT_CLASSES[:10]]
    with StoreWriter(path, dataset="ntu120", layout="ntu25", num_classes=120) as writer:
        for name in names:
            if name in drop:
                continue
            label = int(name[-3:]) - 1
            pose = np.random.default_rng(label).normal(size=(3, 1, 25, 2))  # a class's own pose, plus noise
            data = (pose + 0.5 * rng.normal(size=(3, 24, 25, 2))).astype(np.float32)
            writer.append(SkeletonSample(name, data, label=label, meta={"subject": int(name[9:12])}))
        return writer.finish({"xsub": np.ones(len(names) - len(drop), np.int8)})


def test_oneshot_config_reads_the_data_as_its_pretraining(capsys):
    resolved = resolve_config("oneshot", [CONFIGS / "eval" / "oneshot" / "ntu120.yaml"], capsys)
    pretrain = yaml.safe_load((CONFIGS / "pretrain" / "hiclr" / "ntu120_xsub.yaml").read_text())
    for key in ("num_frames", "normalization"):
        assert resolved["data"][key] == pretrain["data"][key], key
    assert resolved["data"]["split"] is None  # the protocol uses the whole store
    backbone = pretrain["model"]["init_args"]["backbone"]
    assert resolved["model"]["backbone"]["class_path"] == backbone["class_path"]
    assert resolved["model"]["backbone"]["init_args"].items() >= backbone["init_args"].items()
    assert resolved["trainer"]["default_root_dir"] == "runs/oneshot/ntu120"


def test_oneshot_cli_gives_the_accuracy_by_hand(tmp_path, pretrained_ckpt, capsys):
    store_path = _ntu120_store(tmp_path / "ntu120")
    config = tiny_config(tmp_path, "oneshot", store_path, dataset="ntu120")
    assert main(["oneshot", "-c", str(config), "--model.pretrained", str(pretrained_ckpt)]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # by hand: the split of the names, the pretrained backbone on the centre-sampled clips
    store = SkeletonStore(store_path)
    split = one_shot_split(store.names, store.labels)
    assert len(split.evaluation) == 60
    backbone = STGCN("ntu25", 3, width=4)
    load_pretrained_backbone(backbone, pretrained_ckpt)
    backbone.eval()

    def features(indices: np.ndarray) -> torch.Tensor:
        dataset = SkeletonDataset(store, indices, 16, train=False, normalization="per_frame_shoulder")
        with torch.no_grad():
            return backbone(torch.stack([torch.as_tensor(dataset[i]["x"]) for i in range(len(dataset))]))

    accuracy = one_shot_accuracy(
        features(split.exemplars),
        torch.as_tensor(split.classes),
        features(split.evaluation),
        torch.as_tensor(store.labels[split.evaluation]),
    )
    assert metrics == {"oneshot/top1": pytest.approx(100 * accuracy)}
    assert f"ssl-skel oneshot: {tmp_path / 'run'}" in capsys.readouterr().out
    assert (tmp_path / "run" / "media" / "confusion_matrix.png").is_file()


def test_oneshot_cli_refuses_a_store_without_every_exemplar(tmp_path, capsys):
    store_path = _ntu120_store(tmp_path / "partial", drop=("S018C003P008R001A115",))
    config = tiny_config(tmp_path, "oneshot", store_path, dataset="ntu120")
    assert main(["oneshot", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"ssl-skel oneshot: error: {store_path}" in err and "S018C003P008R001A115 (missing)" in err
