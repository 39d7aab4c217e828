"""Transfer: a checkpoint pretrained on one store evaluates on another store of the same layout; a layout mismatch
(configured backbone, checkpoint weights, or the checkpoint's recorded pretraining layout) is a clear error."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from downstream_configs import CSV_LOGGER, tiny_config

from ssl_skel.backbones import GINEncoder
from ssl_skel.cli import main
from ssl_skel.data.prepare import prepare
from ssl_skel.data.sample import SkeletonSample
from ssl_skel.data.source import get_source
from ssl_skel.data.store import StoreWriter
from ssl_skel.downstream import CheckpointError, check_transfer_layout, pretraining_layout, read_backbone_state
from ssl_skel.methods import HiCLR


def test_a_checkpoint_pretrained_on_one_store_evaluates_on_another(tiny_pretrain_config, tiny_store, tmp_path):
    logger = {"class_path": CSV_LOGGER, "init_args": {"save_dir": str(tmp_path / "run")}}
    assert main(["pretrain", "-c", str(tiny_pretrain_config(logger=logger))]) == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert pretraining_layout(checkpoint) == "ntu25"
    options = {"num_samples": 36, "seed": 1, "num_subjects": 4, "min_frames": 20, "max_frames": 30}
    other = tmp_path / "other_store"
    prepare(get_source("synthetic", **options), None, other, source_options=options, progress=False)
    config = tiny_config(tmp_path / "eval", "linear", other)
    assert main(["linear", "-c", str(config), "--model.pretrained", str(checkpoint)]) == 0
    run = tmp_path / "eval" / "run"
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["root"] == str(other) != str(tiny_store)
    # the probe's frozen backbone is the one pretrained on the first store
    probe = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    pretrained = read_backbone_state(checkpoint)
    for name, tensor in pretrained.items():
        assert torch.equal(probe[f"backbone.{name}"], tensor), name
    assert len(torch.load(run / "test_logits.pt", weights_only=True)["labels"]) > 0


@pytest.fixture(scope="module")
def ucla_store(tmp_path_factory) -> Path:
    """Eight clips of the NW-UCLA layout (20 joints, one person), 2 classes, split xsub 4 / 4."""
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("ucla") / "store"
    with StoreWriter(out, dataset="nw_ucla", layout="nw_ucla20", num_classes=2) as writer:
        for k in range(8):
            data = rng.normal(size=(3, 20, 20, 1)).astype(np.float32)
            writer.append(SkeletonSample(f"a{k % 2:02d}_s{k:02d}", data, label=k % 2, meta={"subject": k}))
        return writer.finish({"xsub": np.array([1, 1, 1, 1, 0, 0, 0, 0], np.int8)})


def test_a_backbone_configured_for_another_layout_is_refused(ucla_store, pretrained_ckpt, tmp_path, capsys):
    config = tiny_config(tmp_path, "linear", ucla_store)
    assert main(["linear", "-c", str(config), "--model.pretrained", str(pretrained_ckpt)]) == 1
    err = capsys.readouterr().err
    assert "ssl-skel linear: error: model.backbone is configured for skeleton layout ntu25" in err
    assert f"the store {ucla_store} has layout nw_ucla20" in err


def test_checkpoint_weights_of_another_layout_name_the_keys_and_shapes(ucla_store, pretrained_ckpt, tmp_path, capsys):
    config = tiny_config(tmp_path, "knn", ucla_store)
    args = ["-c", str(config), "--model.pretrained", str(pretrained_ckpt)]
    assert main(["knn", *args, "--model.backbone.init_args.layout", "nw_ucla20"]) == 1
    err = capsys.readouterr().err
    assert f"ssl-skel knn: error: {pretrained_ckpt}: the backbone weights do not match" in err
    assert "data_bn.weight: checkpoint (75,), model (60,)" in err  # V * C = 25 * 3 against 20 * 3


def test_the_recorded_pretraining_layout_is_checked_when_the_shapes_fit(ucla_store, tmp_path, capsys):
    """GIN's weights do not depend on the number of joints: only the recorded layout tells the data apart."""
    L.seed_everything(0)
    model = HiCLR(GINEncoder("ntu25", 3, dim=8), queue_size=16, embedding_dim=16)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.strategy.connect(model)
    checkpoint = tmp_path / "gin_ntu25.ckpt"
    trainer.save_checkpoint(checkpoint)
    with pytest.raises(CheckpointError, match=r"gin_ntu25\.ckpt: pretrained on skeleton layout ntu25, but X has"):
        check_transfer_layout(checkpoint, "nw_ucla20", "X")
    check_transfer_layout(checkpoint, "ntu25", "X")  # the same layout is fine
    gin = {"class_path": "ssl_skel.backbones.GINEncoder", "init_args": {"layout": "nw_ucla20", "dim": 8}}
    config = tiny_config(tmp_path, "knn", ucla_store, model={"backbone": gin})
    assert main(["knn", "-c", str(config), "--model.pretrained", str(checkpoint)]) == 1
    err = capsys.readouterr().err
    assert f"{checkpoint}: pretrained on skeleton layout ntu25, but the store {ucla_store} has layout nw_ucla20" in err
