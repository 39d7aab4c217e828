"""SkeletonMAE: part / joint masking, the masked-only scaled cosine error, the STRL checkpoint contract, a tiny
overfit, exact resume and an offline command-line run with rendered reconstructions."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import wandb
import yaml

from ssl_skel.backbones import STRL
from ssl_skel.cli import main
from ssl_skel.data.datamodule import SkeletonDataModule
from ssl_skel.methods import SkeletonMAE
from ssl_skel.methods.skeleton_mae import scaled_cosine_error
from ssl_skel.skeleton.layouts import get_layout


def _model(layout: str = "ntu25", **kwargs) -> SkeletonMAE:
    return SkeletonMAE(
        STRL(layout, 3, dim=16, max_frames=16), layout=layout,
        optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3), **kwargs,
    )


def _datamodule(store: Path) -> SkeletonDataModule:
    return SkeletonDataModule(
        root=str(store), split="xsub", num_frames=8, normalization="first_frame", batch_size=8, num_workers=0
    )


def _trainer(root: Path, epochs: int, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs, default_root_dir=root, logger=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, deterministic=True, **kwargs,
    )


@pytest.mark.parametrize("layout", ["ntu25", "coco17"])
def test_part_masking_hides_exactly_the_chosen_whole_parts(layout):
    lay = get_layout(layout)
    model = _model(layout, num_parts=2)
    hidden = model.sample_mask(2000, torch.device("cpu"), torch.Generator().manual_seed(0))
    parts = [torch.zeros(lay.num_joints, dtype=torch.bool).index_fill_(0, torch.tensor(j), True)
             for j in lay.parts.values()]
    chosen = torch.stack([(hidden & p).any(dim=1) for p in parts], dim=1)  # (graphs, parts)
    assert (chosen.sum(dim=1) == 2).all(), "two parts per graph"
    rebuilt = torch.stack([torch.stack(parts)[row].any(dim=0) for row in chosen])
    assert torch.equal(rebuilt, hidden), "every joint of a chosen part is hidden, no other joint"
    frequency = chosen.float().mean(dim=0)
    assert torch.allclose(frequency, torch.full_like(frequency, 2 / len(parts)), atol=0.05)


def test_joint_masking_hides_the_same_expected_number_of_joints():
    parts_model, joints_model = _model(num_parts=2), _model(num_parts=2, masking="joints")
    g = torch.Generator().manual_seed(1)
    by_parts = parts_model.sample_mask(4000, torch.device("cpu"), g).sum(dim=1).float()
    by_joints = joints_model.sample_mask(4000, torch.device("cpu"), g).sum(dim=1)
    assert (by_joints == round(2 * 25 / 6)).all()
    assert abs(by_parts.mean().item() - 2 * 25 / 6) < 0.1
    # random joints are not whole parts: some graph hides a joint of a part without the whole part
    hidden = joints_model.sample_mask(50, torch.device("cpu"), g)
    left_arm = list(get_layout("ntu25").parts["left_arm"])
    partial = hidden[:, left_arm].any(dim=1) & ~hidden[:, left_arm].all(dim=1)
    assert partial.any()


def test_scaled_cosine_error_counts_masked_joints_only():
    torch.manual_seed(0)
    pred, target = torch.randn(6, 25, 3, requires_grad=True), torch.randn(6, 25, 3)
    mask = torch.rand(6, 25) < 0.3
    loss = scaled_cosine_error(pred, target, mask, beta=2.0)
    reference = ((1 - F.cosine_similarity(pred[mask], target[mask], dim=-1)) ** 2).mean()
    torch.testing.assert_close(loss, reference)
    # unmasked predictions and targets can be anything
    other_pred = torch.where(mask[..., None], pred, torch.randn(6, 25, 3) * 50)
    other_target = torch.where(mask[..., None], target, torch.randn(6, 25, 3) * 50)
    torch.testing.assert_close(scaled_cosine_error(other_pred, other_target, mask), loss)
    loss.backward()
    assert (pred.grad[~mask] == 0).all() and (pred.grad[mask].abs().sum(dim=-1) > 0).all()


def test_hidden_joints_are_replaced_by_the_mask_token_and_absent_frames_skipped():
    torch.manual_seed(0)
    model = _model()
    x = torch.randn(2, 3, 6, 25, 2)
    x[1, :, :, :, 1] = 0  # an absent second person
    x[0, :, 4:] = 0  # padded frames
    graphs, _ = model.graphs(x)
    assert graphs.shape == (4 + 4 + 6, 25, 3)  # sample 0: two persons x 4 frames; sample 1: one person x 6
    hidden = model.sample_mask(len(graphs), x.device, torch.Generator().manual_seed(0))
    pred = model.predict(graphs, hidden)
    scrambled = torch.where(hidden[..., None], torch.randn_like(graphs) * 10, graphs)
    torch.testing.assert_close(model.predict(scrambled, hidden), pred)
    # the loss of the hidden joints needs their true coordinates only as targets
    origin = graphs.clone()
    origin[hidden] = 0
    assert not model.loss_mask(origin, hidden).any(), "joints at the origin have no direction and are not scored"


def test_pretrained_encoder_is_what_the_downstream_strl_loads(tmp_path):
    torch.manual_seed(0)
    model = _model()
    with torch.no_grad():
        for p in model.backbone.encoder.parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path / "mae.ckpt"
    torch.save({"state_dict": model.state_dict()}, path)
    state = torch.load(path, weights_only=True)["state_dict"]
    backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    downstream = STRL("ntu25", 3, dim=16, max_frames=16)
    downstream.load_state_dict(backbone, strict=True)
    x = torch.randn(2, 3, 8, 25, 2)
    torch.testing.assert_close(downstream.eval()(x), model.backbone.eval()(x))
    assert not any(k.startswith("backbone.") and "decoder" in k for k in state)


def test_reconstruction_loss_falls_on_a_tiny_overfit(tiny_store):
    L.seed_everything(0)
    dm = _datamodule(tiny_store)
    dm.setup("fit")
    x = next(iter(dm.train_dataloader()))["x"]
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss, _, _ = model.pretrain_step({"views": [x]})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)


def test_resume_ends_with_the_same_weights(tiny_store, tmp_path):
    def run(root: Path, epochs: int, ckpt: str | None = None) -> SkeletonMAE:
        L.seed_everything(1)
        model = _model()
        _trainer(root, epochs).fit(model, _datamodule(tiny_store), ckpt_path=ckpt)
        return model

    straight = run(tmp_path / "a", 3)
    run(tmp_path / "b", 2)
    ckpt = next((tmp_path / "b" / "checkpoints").glob("*.ckpt"))
    resumed = run(tmp_path / "c", 3, str(ckpt))
    a, c = straight.state_dict(), resumed.state_dict()
    assert a.keys() == c.keys()
    for name in a:
        assert torch.equal(a[name], c[name]), f"{name} differs after resuming"


def test_cli_pretrain_offline_with_reconstructions(offline_wandb, tiny_store, tmp_path, monkeypatch):
    config = yaml.safe_load(Path("configs/pretrain/skeleton_mae/synthetic.yaml").read_text())
    config["trainer"].update(max_epochs=1, limit_train_batches=2, default_root_dir=str(tmp_path / "run"))
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"] if "Reconstruction" in c["class_path"]]
    config["model"]["init_args"]["backbone"]["init_args"].update(dim=8)
    config["data"] = {"root": str(tiny_store), "split": "xsub", "num_frames": 8, "batch_size": 8, "num_workers": 0}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    try:
        assert main(["pretrain", "-c", str(path)]) == 0
    finally:
        wandb.finish()  # the next run in this process starts its own W&B run
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "wandb").glob("offline-run-*")), "W&B did not write an offline run"
    assert (run / "media" / "reconstruction_epoch0.png").is_file()
