"""The downstream module: a linear probe leaves the backbone exactly as it was; metrics; the fine-tuning schedule."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from ssl_skel.backbones import STGCN
from ssl_skel.data.datamodule import SkeletonDataModule
from ssl_skel.downstream import DownstreamModule, classification_metrics
from ssl_skel.methods import WarmupMultiStepLR


def _fit(module: DownstreamModule, store, root, spy: L.Callback | None = None) -> None:
    datamodule = SkeletonDataModule(
        root=str(store), split="xsub", num_frames=16, random_crop=False, batch_size=8, num_workers=0
    )
    L.Trainer(
        max_epochs=1, default_root_dir=root, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[spy] if spy else [],
    ).fit(module, datamodule)


def _module(protocol: str, bn_before_linear: bool = False) -> DownstreamModule:
    return DownstreamModule(
        STGCN("ntu25", 3, width=4), 12, protocol=protocol, bn_before_linear=bn_before_linear,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9),
    )


class BackboneModes(L.Callback):
    """Records whether any backbone submodule was in training mode at every training step."""

    def __init__(self) -> None:
        self.any_training: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.any_training.append(any(m.training for m in pl_module.backbone.modules()))


@pytest.mark.parametrize("bn_before_linear", [False, True])
def test_a_linear_probe_epoch_leaves_every_backbone_tensor_unchanged(tiny_store, tmp_path, bn_before_linear):
    L.seed_everything(0)
    module = _module("linear", bn_before_linear)
    before = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    head_before = module.head.state_dict()["weight" if not bn_before_linear else "1.weight"].clone()
    assert any(k.endswith("num_batches_tracked") for k in before) and any(k.endswith("running_var") for k in before)
    modes = BackboneModes()
    _fit(module, tiny_store, tmp_path, modes)
    after = module.backbone.state_dict()
    assert after.keys() == before.keys()
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), f"the linear probe changed backbone.{name}"
    assert modes.any_training and not any(modes.any_training), "the frozen backbone was in training mode"
    assert all(not p.requires_grad for p in module.backbone.parameters())
    head_after = module.head.state_dict()["weight" if not bn_before_linear else "1.weight"]
    assert not torch.equal(head_after, head_before), "the head did not learn"


def test_fine_tuning_trains_the_backbone_and_its_statistics(tiny_store, tmp_path):
    """The control of the test above: the same epoch with the backbone in training mode changes it."""
    L.seed_everything(0)
    module = _module("finetune")
    before = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    _fit(module, tiny_store, tmp_path)
    after = module.backbone.state_dict()
    assert not torch.equal(after["data_bn.running_mean"], before["data_bn.running_mean"])
    assert not torch.equal(after["blocks.0.gcn.weight"], before["blocks.0.gcn.weight"])


def test_train_mode_keeps_the_probe_backbone_in_eval_mode():
    module = _module("linear").train()
    assert module.training and module.head.training
    assert not any(m.training for m in module.backbone.modules())
    finetune = _module("finetune").train()
    assert all(m.training for m in finetune.backbone.modules())


def test_the_probe_refuses_augmentation_and_unknown_protocols():
    with pytest.raises(ValueError, match="un-augmented"):
        DownstreamModule(STGCN("ntu25", 3, width=4), 12, protocol="linear", augment=torch.nn.Identity())
    with pytest.raises(ValueError, match="protocol"):
        DownstreamModule(STGCN("ntu25", 3, width=4), 12, protocol="transfer")


def test_classification_metrics():
    logits = torch.tensor([[3.0, 1, 0, 0, 0], [0, 3, 1, 0, 0], [1, 0, 0, 0, 3], [0, 0, 3, 1, 0]])
    labels = torch.tensor([0, 0, 4, 3])
    values = classification_metrics(5, "test/")(logits, labels)
    assert float(values["test/top1"]) == pytest.approx(0.5)
    assert float(values["test/mean_class_acc"]) == pytest.approx((0.5 + 1 + 0) / 3)  # classes 0, 4, 3 present
    assert float(values["test/top5"]) == 1.0
    assert "test/top5" not in classification_metrics(4, "test/")


def test_warmup_multistep_schedule():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = WarmupMultiStepLR(optimizer, milestones=[30, 55], warmup_epochs=5)
    rates = []
    for _ in range(70):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert rates[5] == rates[29] == pytest.approx(0.1)
    assert rates[30] == rates[54] == pytest.approx(0.01)
    assert rates[55] == rates[69] == pytest.approx(0.001)
