"""Action segmentation: windows and their merging, frame features of every backbone, the frozen encoder, the
``ssl-skel segment`` command on a tiny untrimmed store and on recorded PKU-MMD videos."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from ssl_skel.backbones import (
    STGCN,
    STRL,
    BiGRU,
    GINEncoder,
    SkeletonTransformer,
    frame_feature_dim,
    frame_features,
    upsample_frames,
)
from ssl_skel.cli import main
from ssl_skel.data.prepare import prepare
from ssl_skel.data.sample import SkeletonSample
from ssl_skel.data.source import get_source
from ssl_skel.data.store import SkeletonStore, StoreWriter
from ssl_skel.data.windows import IGNORE, SegmentationDataModule, WindowDataset, window_starts
from ssl_skel.downstream import ScoreMerger, SegmentationModule, run_segment
from ssl_skel.methods import MAMP, HaLP, HiCLR, SkeletonMAE

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "eval" / "segment" / "pku_mmd1_xsub.yaml"
CSV_LOGGER = "lightning.pytorch.loggers.CSVLogger"
PNG = b"\x89PNG\r\n\x1a\n"
NUM_CLASSES = 4
#: (name, subject, frame labels as (label, frames) runs); odd subjects train (xsub), the 12-frame video is shorter
#: than a 16-frame window
VIDEOS = [
    ("v0", 1, [(0, 10), (1, 14), (0, 6), (2, 20)]),
    ("v1", 2, [(3, 12), (0, 9), (1, 16), (0, 20)]),
    ("v2", 3, [(0, 5), (2, 30), (3, 22)]),
    ("v3", 4, [(2, 12)]),
    ("v4", 5, [(1, 25), (0, 8), (3, 14)]),
    ("v5", 6, [(0, 7), (3, 18), (2, 11), (0, 9)]),
]


@pytest.fixture(scope="module")
def untrimmed_store(tmp_path_factory) -> Path:
    """Six short untrimmed videos (ntu25, two persons, 4 frame classes with background 0), split by subject."""
    out = tmp_path_factory.mktemp("untrimmed") / "store"
    rng = np.random.default_rng(0)
    with StoreWriter(out, dataset="tiny_untrimmed", layout="ntu25", num_classes=NUM_CLASSES) as writer:
        for name, subject, runs in VIDEOS:
            labels = np.concatenate([np.full(n, label) for label, n in runs])
            t = np.arange(len(labels))
            pose = rng.normal(0.0, 0.3, (3, 1, 25, 1))
            motion = np.sin(t[None, :, None, None] * (0.2 + 0.3 * labels[None, :, None, None]))
            data = np.concatenate([pose + 0.1 * motion, np.zeros((3, len(t), 25, 1))], axis=3).astype(np.float32)
            writer.append(SkeletonSample(name, data, -1, {"subject": subject}, frame_labels=labels))
        writer.finish({"xsub": np.array([s % 2 for _, s, _ in VIDEOS], dtype=np.int8)})
    return out


def _tiny_config(tmp_path: Path, store: Path, wandb: bool = False, **model) -> Path:
    """The PKU-MMD config on ``store``: ST-GCN of width 4, windows of 16 frames every 8, two epochs of batches of 8,
    a CSV logger unless ``wandb``; the run directory is ``tmp_path / "run"``."""
    config = yaml.safe_load(CONFIG.read_text())
    run = tmp_path / "run"
    config["trainer"].update(
        default_root_dir=str(run), max_epochs=2, log_every_n_steps=1, check_val_every_n_epoch=1,
        enable_progress_bar=False, enable_model_summary=False,
    )
    if not wandb:
        config["trainer"]["logger"] = {"class_path": CSV_LOGGER, "init_args": {"save_dir": str(run)}}
    config["model"]["backbone"]["init_args"]["width"] = 4
    config["model"].update(model)
    config["data"].update(root=str(store), window=16, stride=8, batch_size=8, eval_batch_size=8, num_workers=0)
    path = tmp_path / "segment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# --- windows and merging ------------------------------------------------------------------------------------------
def test_window_starts_cover_the_video():
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 7]  # the last window ends at the last frame
    assert window_starts(4, 4, 2) == [0]
    assert window_starts(3, 4, 2) == [0]  # shorter than one window: one padded window
    with pytest.raises(ValueError, match="stride"):
        window_starts(10, 4, 5)  # frames 4 and 9 would be in no window


def test_merging_averages_overlapping_windows():
    """Video of 7 frames, windows of 4 frames at 0, 2, 3 (stride 2, the last moved back to end at frame 6)."""
    merger = ScoreMerger()
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    starts = window_starts(7, 4, 2)
    assert starts == [0, 2, 3]
    scores = {  # (4, 2) per window: class-0 score 1, 0.5, 0 for the three windows
        0: torch.tensor([[1.0, 0.0]] * 4), 2: torch.tensor([[0.5, 0.5]] * 4), 3: torch.tensor([[0.0, 1.0]] * 4),
    }
    assert merger.add(9, 3, 7, 3, scores[3], labels[3:7]) is None  # any order
    assert merger.add(9, 0, 7, 3, scores[0], labels[0:4]) is None
    assert merger.pending == [9]
    merged, merged_labels = merger.add(9, 2, 7, 3, scores[2], labels[2:6])
    # frames 0-1: window 0 only; 2: windows 0, 2; 3: windows 0, 2, 3; 4-5: windows 2, 3; 6: window 3
    expected = torch.tensor([1.0, 1.0, 0.75, 0.5, 0.25, 0.25, 0.0])
    torch.testing.assert_close(merged[:, 0], expected)
    torch.testing.assert_close(merged[:, 1], 1 - expected)
    assert torch.equal(merged_labels, labels) and merger.pending == []
    # a video shorter than its one window: the padding frames are dropped
    padded = torch.tensor([[0.2, 0.8]] * 4)
    short, short_labels = merger.add(1, 0, 3, 1, padded, torch.tensor([1, 1, 0, IGNORE]))
    assert short.shape == (3, 2) and torch.equal(short_labels, torch.tensor([1, 1, 0]))


def test_windows_reassemble_every_video(untrimmed_store):
    store = SkeletonStore(untrimmed_store)
    dataset = WindowDataset(store, np.arange(len(store)), window=16, stride=8)
    merger = ScoreMerger()
    videos = {}
    for i in range(len(dataset)):
        item = dataset[i]
        assert item["x"].shape == (3, 16, 25, 2) and item["frame_labels"].shape == (16,)
        frames = item["x"].permute(1, 0, 2, 3).flatten(1)  # the frames themselves as "scores"
        merged = merger.add(item["index"], item["start"], item["length"], item["windows"], frames,
                            item["frame_labels"])
        if merged is not None:
            videos[item["index"]] = merged
    assert sorted(videos) == list(range(len(VIDEOS)))
    for index, (frames, labels) in videos.items():
        data, _ = store[index]
        torch.testing.assert_close(frames, torch.from_numpy(np.array(data)).permute(1, 0, 2, 3).flatten(1))
        assert torch.equal(labels, torch.from_numpy(np.array(store.frame_labels(index))))
    short = next(dataset[i] for i in range(len(dataset)) if dataset[i]["length"] == 12)
    assert (short["frame_labels"][12:] == IGNORE).all() and not short["x"][:, 12:].any()


def test_split_by_video_and_empty_halves(untrimmed_store):
    data = SegmentationDataModule(root=str(untrimmed_store), split="xsub", window=16, stride=8, num_workers=0)
    data.setup()
    assert set(data.train_indices) == {0, 2, 4} and set(data.test_indices) == {1, 3, 5}
    assert data.num_classes == NUM_CLASSES
    with pytest.raises(ValueError, match="no frame labels"):
        SegmentationDataModule(root=str(_clip_store(untrimmed_store.parent)), num_workers=0).setup()


def _clip_store(directory: Path) -> Path:
    """A one-split store of trimmed clips (no frame labels)."""
    out = directory / "clips"
    if not out.exists():
        with StoreWriter(out, dataset="clips", layout="ntu25", num_classes=2) as writer:
            for i in range(2):
                writer.append(SkeletonSample(f"c{i}", np.ones((3, 8, 25, 1), np.float32), i, {}))
            writer.finish({"only": np.array([1, 0], dtype=np.int8)})
    return out


# --- the model ----------------------------------------------------------------------------------------------------
def test_upsampling_restores_the_frame_count():
    x = torch.randn(2, 16, 5)
    assert upsample_frames(x, 64).shape == (2, 64, 5)
    assert upsample_frames(x, 16) is x
    ramp = torch.arange(4.0).view(1, 4, 1)  # frame centres 0.5, 1.5, 2.5, 3.5 of 4 -> a ramp of slope 1/2 in 8
    torch.testing.assert_close(upsample_frames(ramp, 8)[0, 1:7, 0], torch.tensor([0.25, 0.75, 1.25, 1.75, 2.25, 2.75]))
    model = SegmentationModule(STGCN("ntu25", 3, width=4), num_classes=5)
    for t in (64, 30):  # ST-GCN keeps ceil(ceil(T / 2) / 2) frames
        assert model(torch.randn(2, 3, t, 25, 2)).shape == (2, t, 5)


@pytest.mark.parametrize(
    ("backbone", "frames", "dim"),
    [
        (STGCN("ntu25", 3, width=4), 4, 64),
        (SkeletonTransformer("ntu25", 3, dim=16, depth=1, heads=2, max_frames=16), 4, 16),
        (GINEncoder("ntu25", 3, dim=8, num_layers=1), 16, 8),
        (STRL("ntu25", 3, dim=8, num_layers=1), 16, 8),
        (BiGRU("ntu25", 3, hidden=8, num_layers=1), 16, 16),
    ],
    ids=["stgcn", "transformer", "gin", "strl", "bigru"],
)
def test_frame_features_of_every_backbone(backbone, frames, dim):
    x = torch.randn(2, 3, 16, 25, 2)
    x[1, :, 10:] = 0  # a padded tail
    assert frame_feature_dim(backbone) == dim
    assert frame_features(backbone.eval(), x).shape == (2, frames, dim)
    assert SegmentationModule(backbone, num_classes=3)(x).shape == (2, 16, 3)


def test_frozen_backbone_is_unchanged(untrimmed_store):
    L.seed_everything(0)
    model = SegmentationModule(STGCN("ntu25", 3, width=4), NUM_CLASSES, freeze_backbone=True,
                               optimizer=lambda params: torch.optim.SGD(params, lr=0.5))
    before = copy.deepcopy(model.backbone.state_dict())  # parameters and buffers (BatchNorm statistics)
    head = model.head.weight.detach().clone()
    data = SegmentationDataModule(root=str(untrimmed_store), split="xsub", window=16, stride=8, batch_size=4,
                                  num_workers=0)
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, datamodule=data)
    assert trainer.global_step > 2
    model.train()
    assert not model.backbone.training and not any(m.training for m in model.backbone.modules())
    after = model.backbone.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert not torch.equal(head, model.head.weight)


# --- the command --------------------------------------------------------------------------------------------------
def test_segment_cli_with_offline_wandb(offline_wandb, untrimmed_store, pretrained_ckpt, tmp_path, monkeypatch, capsys):
    config = _tiny_config(tmp_path, untrimmed_store, wandb=True)
    assert main(["segment", "-c", str(config), "--model.pretrained", str(pretrained_ckpt)]) == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    overall = ["test/acc", "test/edit", "test/f1@10", "test/f1@25", "test/f1@50", "test/map"]
    assert set(overall) | {"test/loss"} <= metrics.keys()
    for name in ("v1", "v3", "v5"):  # the test videos, each with its own metrics
        assert all(0 <= metrics[f"video/{name}/{k.split('/')[1]}"] <= 100 for k in overall)
    assert not any(k.startswith(f"video/{name}/") for name in ("v0", "v2", "v4") for k in metrics)
    frames = {"v1": 57, "v3": 12, "v5": 45}  # overall accuracy = frame-weighted mean of the videos'
    weighted = sum(metrics[f"video/{n}/acc"] * f for n, f in frames.items()) / sum(frames.values())
    assert metrics["test/acc"] == pytest.approx(weighted)
    assert (run / "media" / "segments.png").read_bytes().startswith(PNG)
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["pretrained"] == str(pretrained_ckpt)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    offline = list((run / "wandb").glob("offline-run-*"))
    assert offline and list(offline[0].glob("files/media/images/**/*.png")), "the segment plot was not logged"
    printed = capsys.readouterr().out.split(f"ssl-skel segment: {run}")[1]
    assert str(pretrained_ckpt) in printed and f"{metrics['test/edit']:.2f}" in printed and "v5" in printed


def test_segment_from_scratch_with_a_frozen_encoder(untrimmed_store, tmp_path):
    config = _tiny_config(tmp_path, untrimmed_store, freeze_backbone=True)
    metrics = run_segment(["-c", str(config), "--trainer.max_epochs", "1"])
    assert metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= metrics["test/acc"] <= 100
    used = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]
    assert used["pretrained"] is None and used["freeze_backbone"] is True


PRETRAINED = {  # method -> (pretraining model, the same backbone built anew)
    "hiclr": lambda: (HiCLR(STGCN("ntu25", 3, width=4), queue_size=16, embedding_dim=16), STGCN("ntu25", 3, width=4)),
    "halp": lambda: (
        HaLP(BiGRU("ntu25", 3, hidden=8, num_layers=1), queue_size=16, embedding_dim=16),
        BiGRU("ntu25", 3, hidden=8, num_layers=1),
    ),
    "skeleton_mae": lambda: (SkeletonMAE(STRL("ntu25", 3, dim=8, num_layers=1)), STRL("ntu25", 3, dim=8, num_layers=1)),
    "mamp": lambda: (
        MAMP(SkeletonTransformer("ntu25", 3, dim=16, depth=1, heads=2, max_frames=32), decoder_dim=16,
             decoder_depth=1, decoder_heads=2, view_frames=32, crop_min_frames=16),
        SkeletonTransformer("ntu25", 3, dim=16, depth=1, heads=2, max_frames=32),
    ),
}


@pytest.mark.parametrize("method", sorted(PRETRAINED))
def test_segment_loads_the_checkpoint_of_any_method(method, tmp_path):
    model, backbone = PRETRAINED[method]()
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.strategy.connect(model)
    path = tmp_path / f"{method}.ckpt"
    trainer.save_checkpoint(path)
    loaded = SegmentationModule(backbone, NUM_CLASSES, pretrained=str(path))
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, loaded.backbone.state_dict()[key]), key
    assert loaded.eval()(torch.randn(2, 3, 32, 25, 2)).shape == (2, 32, NUM_CLASSES)


def test_a_mismatched_checkpoint_is_refused(untrimmed_store, pretrained_ckpt, tmp_path, capsys):
    config = _tiny_config(tmp_path, untrimmed_store)
    argv = ["segment", "-c", str(config), "--model.pretrained", str(pretrained_ckpt)]
    assert main([*argv, "--model.backbone.init_args.width", "8"]) == 1  # the checkpoint's ST-GCN has width 4
    error = capsys.readouterr().err
    assert "ssl-skel segment: error:" in error and "shapes" in error and str(pretrained_ckpt) in error


def test_config_reads_the_data_as_lac_pretraining_on_the_same_store(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["segment", "-c", str(CONFIG), "--print_config"])
    assert exit_info.value.code == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    pretrain = yaml.safe_load((CONFIG.parents[2] / "pretrain" / "lac" / "pku_mmd1_untrimmed_xsub.yaml").read_text())
    data, model = resolved["data"], resolved["model"]
    assert (data["split"], data["normalization"], data["window"]) == (
        pretrain["data"]["split"], pretrain["data"]["normalization"], pretrain["data"]["num_frames"]
    )
    assert data["stride"] < data["window"] and model["freeze_backbone"] is False and model["pretrained"] is None
    backbone = pretrain["model"]["init_args"]["backbone"]
    assert model["backbone"]["class_path"] == backbone["class_path"]
    assert {k: model["backbone"]["init_args"][k] for k in backbone["init_args"]} == backbone["init_args"]


# --- recorded data ------------------------------------------------------------------------------------------------
def test_segment_on_recorded_pku_mmd_videos(real_data, tmp_path):
    """One training video and one cross-subject test video of the recorded PKU-MMD sequences, one short epoch."""
    raw = real_data / "pku_mmd_v1"
    videos = {"0005-L": 1, "0300-R": 0}  # official xsub: training, test
    if not all((raw / "skeleton" / f"{v}.txt").is_file() for v in videos):
        pytest.skip(f"PKU-MMD videos {sorted(videos)} not found under {raw}")
    subset = tmp_path / "raw"
    for folder in ("skeleton", "label"):
        (subset / folder).mkdir(parents=True)
        for video in videos:
            (subset / folder / f"{video}.txt").symlink_to(raw / folder / f"{video}.txt")
    (subset / "split").symlink_to(raw / "split")
    store = tmp_path / "store"
    prepare(get_source("pku_mmd1_untrimmed"), subset, store, progress=False)
    split = SkeletonStore(store).split("xsub")
    assert [int(s) for s in split] == list(videos.values())
    config = _tiny_config(tmp_path, store)
    metrics = run_segment([
        "-c", str(config), "--data.window", "64", "--data.stride", "32", "--data.batch_size", "16",
        "--data.eval_batch_size", "64", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
    ])
    assert {"video/0300-R/acc", "video/0300-R/edit", "video/0300-R/f1@50", "video/0300-R/map"} <= metrics.keys()
    assert not any(k.startswith("video/0005-L/") for k in metrics)
    assert metrics["test/acc"] == pytest.approx(metrics["video/0300-R/acc"])
    assert (tmp_path / "run" / "media" / "segments.png").is_file()
