"""Two processes on the CPU (gloo) give what one process gives: global-batch BatchNorm (values, gradients,
running statistics), the key queue, the kNN monitor's and the kNN evaluation's accuracy; and a Lightning DDP
pretraining run shards its data, gathers its keys and seeds every process differently.

The unit-level checks run in ONE pair of spawned processes (a module fixture), to pay the start-up once.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ssl_skel.backbones import STGCN
from ssl_skel.backbones.stgcn import BatchNormDropout
from ssl_skel.callbacks import KNNMonitor, SkeletonViewLogger
from ssl_skel.data.datamodule import SkeletonDataModule
from ssl_skel.distributed import AllReduceBatchNorm, GlobalBatchNorm
from ssl_skel.downstream import split_features
from ssl_skel.methods import HiCLR
from ssl_skel.methods.base import step_seed
from ssl_skel.methods.contrastive import MomentumContrast
from ssl_skel.metrics.knn import knn_predict

pytestmark = pytest.mark.slow

WORLD = 2
LOCAL_BATCH = 4
STEPS = 5  # 5 x 8 keys wrap around the queue of 24
KS = (1, 5)


def _key_model() -> MomentumContrast:
    torch.manual_seed(0)
    return MomentumContrast(STGCN("ntu25", 3, width=4, dropout=0.0), queue_size=24, embedding_dim=8)


def _global_batch(step: int) -> torch.Tensor:
    """Global batch of ``step``: (WORLD x LOCAL_BATCH, C, T, V, M)."""
    return torch.randn(WORLD * LOCAL_BATCH, 3, 16, 25, 2, generator=torch.Generator().manual_seed(step))


def fill_queue(rank: int, world: int) -> dict[str, torch.Tensor]:
    """Key encoder in training mode (BatchNorm on batch statistics) over STEPS global batches, this process's
    ``rank``-th share of each; keys gathered and enqueued. Returns the queue's buffers."""
    model = _key_model()
    if world > 1:  # what the Lightning plugin does to the model
        model = GlobalBatchNorm().apply(model)
    model.train()
    for step in range(STEPS):
        x = _global_batch(step).chunk(world)[rank]
        model.enqueue(model.key(x))
    return {name: buffer.clone() for name, buffer in model.queue.named_buffers()}


def batch_norm(rank: int, world: int) -> dict[str, torch.Tensor]:
    """A BatchNorm layer (all-reduce version with several processes) on this process's share of a global batch
    (8, 3, 5, 4): output, input gradient of sum(y^2 * c), parameter gradients and running statistics."""
    torch.manual_seed(2)
    layer = nn.BatchNorm2d(3, momentum=None)
    nn.init.normal_(layer.weight)
    nn.init.normal_(layer.bias)
    if world > 1:
        layer = GlobalBatchNorm().apply(layer)
    x, c = torch.randn(8, 3, 5, 4), torch.randn(8, 3, 5, 4)
    x_local, c_local = x.chunk(world)[rank].requires_grad_(), c.chunk(world)[rank]
    for _ in range(2):  # running statistics after two batches
        y = layer(x_local)
    (y.pow(2) * c_local).sum().backward()
    return {"y": y.detach(), "x_grad": x_local.grad, "weight_grad": layer.weight.grad, "bias_grad": layer.bias.grad,
            "running_mean": layer.running_mean, "running_var": layer.running_var}


def _knn_datamodule(store: str) -> SkeletonDataModule:
    # batches of one clip: every clip goes through the same arithmetic in one and in two processes, so that the
    # features are bitwise equal (a random encoder's similarities are close: a last-bit difference can flip a rank)
    dm = SkeletonDataModule(root=store, split="xsub", num_frames=16, batch_size=4, eval_batch_size=1, num_workers=0)
    dm.setup()
    dm.test_indices = dm.test_indices[:-1]  # 23 queries: the processes' shares differ in size
    return dm


def knn_results(store: str) -> dict[str, Any]:
    """The kNN monitor's accuracy, the kNN evaluation's features and accuracy, in this process."""
    dm = _knn_datamodule(store)
    torch.manual_seed(1)
    model = HiCLR(STGCN("ntu25", 3, width=4), queue_size=16, embedding_dim=8)
    monitor = KNNMonitor(ks=KS)
    monitor_accuracy = monitor.evaluate(SimpleNamespace(datamodule=dm), model)
    (train_f, train_y), (test_f, test_y) = split_features(model, dm)
    predictions = knn_predict(train_f, train_y, test_f, KS, dm.num_classes)
    evaluation = {k: float((predictions[k] == test_y).float().mean()) for k in KS}
    return {"monitor": monitor_accuracy, "evaluation": evaluation, "train": (train_f, train_y),
            "test": (test_f, test_y)}


def _worker(rank: int, init_file: str, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        results = {"batch_norm": batch_norm(rank, WORLD), "queue": fill_queue(rank, WORLD), "knn": knn_results(store)}
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tiny_store: Path, tmp_path_factory) -> list[dict[str, Any]]:
    """What each of two gloo processes computed (see :func:`_worker`)."""
    out = tmp_path_factory.mktemp("distributed")
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(os.path.join(tmp, "init"), str(tiny_store), str(out)), nprocs=WORLD)
    return [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]


def test_global_batch_norm_on_two_processes_equals_batch_norm_on_the_whole_batch(two_processes):
    single = batch_norm(0, 1)
    close = {"atol": 1e-5, "rtol": 1e-4}
    for rank, result in enumerate(two_processes):
        for name in ("y", "x_grad"):
            torch.testing.assert_close(result["batch_norm"][name], single[name].chunk(WORLD)[rank], **close)
        for name in ("running_mean", "running_var"):
            torch.testing.assert_close(result["batch_norm"][name], single[name], **close)
    for name in ("weight_grad", "bias_grad"):  # the processes' gradients add up to the whole batch's
        total = sum(result["batch_norm"][name] for result in two_processes)
        torch.testing.assert_close(total, single[name], **close)


def test_queue_after_steps_on_two_processes_equals_one_process(two_processes):
    single = fill_queue(0, 1)
    assert int(single["count"]) == 24 and int(single["ptr"]) == STEPS * WORLD * LOCAL_BATCH % 24
    for result in two_processes:
        queue = result["queue"]
        assert torch.equal(queue["ptr"], single["ptr"]) and torch.equal(queue["count"], single["count"])
        # same keys in the same slots: gathered in rank order = the global batch's order; the global-batch
        # BatchNorm normalises each share with the statistics of the whole batch
        torch.testing.assert_close(queue["keys"], single["keys"], atol=1e-5, rtol=1e-4)


def test_knn_monitor_and_evaluation_on_two_processes_equal_one_process(two_processes, tiny_store):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers
    try:
        single = knn_results(str(tiny_store))
    finally:
        torch.set_num_threads(threads)
    assert len(single["test"][1]) == 23
    for result in (r["knn"] for r in two_processes):
        assert result["monitor"] == single["monitor"]
        assert result["evaluation"] == single["evaluation"]
        for part in ("train", "test"):
            features, labels = result[part]
            assert torch.equal(labels, single[part][1]), "every sample once, in the loader's order"
            assert torch.equal(features, single[part][0])


def test_global_batch_norm_swaps_every_batch_norm_keeping_dropout_and_reverts():
    torch.manual_seed(3)
    model = STGCN("ntu25", 3, width=4, dropout=0.25).eval()
    frozen = model.data_bn.weight.requires_grad_(False)
    x = torch.randn(2, 3, 8, 25, 2)
    expected, classes = model(x), [type(m) for m in model.modules()]
    synced = GlobalBatchNorm().apply(model)
    layers = [m for m in synced.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert layers and all(isinstance(m, AllReduceBatchNorm) for m in layers)
    assert sorted(m.p for m in layers if m.p) == [0.25] * sum(c is BatchNormDropout for c in classes)
    torch.testing.assert_close(synced(x), expected)  # evaluation: the same running statistics
    assert synced.data_bn.weight is frozen and not frozen.requires_grad, "the same parameters, still frozen"
    reverted = GlobalBatchNorm().revert(synced)
    assert [type(m) for m in reverted.modules()] == classes
    torch.testing.assert_close(reverted(x), expected)


def test_step_seeds_differ_by_process_and_step_and_rank_zero_keeps_the_single_process_seed():
    seeds = {step_seed(123, step, rank) for step in range(100) for rank in range(8)}
    assert len(seeds) == 800
    assert step_seed(123, 7, 0) == step_seed(123, 7)
    assert all(0 <= s < 2**63 for s in seeds)


class RecordSteps(L.Callback):
    """Writes, per process and step, the step's seed and the store indices of the process's batch."""

    def __init__(self, out: str) -> None:
        self.out = out

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        entry = {"step": trainer.global_step, "seed": torch.initial_seed(), "index": batch["index"].tolist(),
                 "rng_seed": int(pl_module.rng_seed)}
        with open(Path(self.out) / f"rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")


def test_ddp_pretraining_shards_data_gathers_keys_and_seeds_processes_apart(tiny_store, tmp_path):
    L.seed_everything(4)
    model = HiCLR(STGCN("ntu25", 3, width=4), queue_size=24, embedding_dim=8)
    dm = SkeletonDataModule(root=str(tiny_store), split="xsub", num_frames=16, batch_size=LOCAL_BATCH,
                            num_workers=0)
    expected_start = KNNMonitor(ks=KS).evaluate(SimpleNamespace(datamodule=dm), model)
    trainer = L.Trainer(
        strategy="ddp_spawn", accelerator="cpu", devices=WORLD, plugins=[GlobalBatchNorm()], max_epochs=1,
        default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0, deterministic=True,
        callbacks=[KNNMonitor(every_n_epochs=1, ks=KS), SkeletonViewLogger(), RecordSteps(str(tmp_path))],
    )
    trainer.fit(model, dm)

    steps = 24 // (WORLD * LOCAL_BATCH)  # 24 training clips, global batch 8
    assert model.queue.filled == 24, "every step enqueues the keys of both processes"
    history = [json.loads(line) for line in (tmp_path / "knn.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [-1, 0]
    assert (tmp_path / "media" / "views_epoch0.png").is_file(), "the first process renders the views"
    assert {k: v for k, v in history[0].items() if k.startswith("top1")} == expected_start
    records = [[json.loads(line) for line in (tmp_path / f"rank{r}.jsonl").read_text().splitlines()]
               for r in range(WORLD)]
    assert all(len(r) == steps for r in records)
    seen = [i for r in records for entry in r for i in entry["index"]]
    assert len(seen) == len(set(seen)) == 24, "the processes share one epoch order without repeats"
    run_seed = records[0][0]["rng_seed"]
    assert records[1][0]["rng_seed"] == run_seed
    for rank, entries in enumerate(records):
        assert [e["seed"] for e in entries] == [step_seed(run_seed, step, rank) for step in range(steps)]
