"""A non-finite loss stops the run naming the step and the last good checkpoint, or, with
``nonfinite_loss="skip"``, drops that step's update and counts it."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from ssl_skel.backbones import STGCN
from ssl_skel.checkpoint_io import AtomicCheckpointIO
from ssl_skel.data.datamodule import SkeletonDataModule
from ssl_skel.methods import HiCLR
from ssl_skel.methods.base import PretrainOutput


class NaNInput(L.Callback):
    """Puts a NaN into the first augmented view of the batch of training step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            batch["views"][0][0, 0, 0, 0, 0] = float("nan")


class DivergingHiCLR(HiCLR):
    """HiCLR whose loss is NaN at the steps ``nan_steps`` (a diverged step)."""

    def __init__(self, nan_steps: tuple[int, ...], **kwargs) -> None:
        super().__init__(**kwargs)
        self.nan_steps = nan_steps

    def pretrain_step(self, batch) -> PretrainOutput:
        loss, metrics, features = super().pretrain_step(batch)
        return (loss * float("nan") if self.global_step in self.nan_steps else loss), metrics, features


class Parameters(L.Callback):
    """Whether each step changed the backbone's parameters."""

    def __init__(self) -> None:
        self.changed: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before = [p.detach().clone() for p in pl_module.backbone.parameters()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        after = list(pl_module.backbone.parameters())
        self.changed.append(any(not torch.equal(a, b) for a, b in zip(after, self.before, strict=True)))


def _fit(model: HiCLR, root: Path, callbacks: list[L.Callback], store: Path) -> None:
    L.Trainer(
        max_epochs=2, limit_train_batches=3, default_root_dir=root, logger=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
        callbacks=callbacks,
    ).fit(model, SkeletonDataModule(root=str(store), split="xsub", num_frames=16, batch_size=8, num_workers=0))


def _options() -> dict:
    return {"backbone": STGCN("ntu25", 3, width=4), "queue_size": 16, "embedding_dim": 16,
            "optimizer": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)}


def test_a_nan_in_the_data_stops_the_run_naming_the_step_and_the_last_checkpoint(tiny_store, tmp_path):
    L.seed_everything(0)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
    with pytest.raises(FloatingPointError) as info:
        _fit(HiCLR(**_options()), tmp_path, [checkpoints, NaNInput(step=4)], tiny_store)
    message = str(info.value)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert "non-finite pretraining loss (nan on this process) at step 4 (epoch 1, batch 1)" in message
    assert f"The last good checkpoint is {last}" in message
    assert torch.load(last, weights_only=True)["global_step"] == 3, "the end of epoch 0 is kept"


def test_skip_mode_drops_the_updates_of_diverged_steps_counts_them_and_stops_past_the_limit(tiny_store, tmp_path):
    L.seed_everything(0)
    model = DivergingHiCLR(nan_steps=(1, 2, 4), nonfinite_loss="skip", max_skipped_steps=2, **_options())
    params = Parameters()
    with pytest.warns(RuntimeWarning, match=re.escape("at step 1 (epoch 0, batch 1): step skipped, 1 so far")):
        with pytest.raises(FloatingPointError, match=re.escape("at step 4 (epoch 1, batch 1) after 2 skipped steps")):
            _fit(model, tmp_path, [params], tiny_store)
    # step 0 trains; 1 and 2 are skipped (momentum would move the weights even with zero gradients); 3 trains
    assert params.changed == [True, False, False, True]
    assert int(model.skipped_steps) == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nonfinite_loss_mode_is_checked():
    with pytest.raises(ValueError, match="nonfinite_loss must be 'stop' or 'skip'"):
        HiCLR(**_options(), nonfinite_loss="ignore")


def test_a_checkpoint_from_before_the_skip_count_loads_with_none_skipped():
    model = HiCLR(**_options())
    checkpoint = {"state_dict": {k: v for k, v in model.state_dict().items() if k != "skipped_steps"}}
    model.skipped_steps += 3
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    assert int(model.skipped_steps) == 0
