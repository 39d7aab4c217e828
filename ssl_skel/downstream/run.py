"""The downstream commands ``ssl-skel linear | knn | finetune | semi | oneshot`` and their Python entry points.

Each builds a :class:`~ssl_skel.downstream.DownstreamModule` (backbone from the config, weights from
``--model.pretrained CKPT`` or random) and a :class:`~ssl_skel.data.SkeletonDataModule` with a LightningCLI
(``-c configs/eval/<command>/<dataset>.yaml``, ``--print_config``, repeated ``-c`` compose), runs its protocol, and
leaves in its run directory ``trainer.default_root_dir`` (``runs/<command>`` when unset):

- ``config.yaml`` (the resolved config, also logged to the experiment trackers) and ``metrics.json`` (the final
  metrics, what the entry point returns), and prints them as a table;
- ``media/confusion_matrix.png`` and ``media/embedding_pca.png`` of the test split (also logged to W&B);
- ``checkpoints/last.ckpt``, ``test_logits.pt`` and ``train_logits.pt`` (linear, finetune, semi: the inputs of
  ``ssl-skel ensemble``, :func:`save_logits`), ``label_subset.json`` (semi) or ``long_tail_subset.json``
  (long-tailed), ``wandb/``.

Protocols:

- ``linear``: frozen backbone in eval mode, linear head, LAST epoch's ``test/top1`` as the result. With
  ``cache_features`` (the default) the pooled features of the un-augmented training set and of the test split are
  computed once and the head is trained on them with the data module's own shuffled batches: the same result as
  training through the frozen backbone (``--cache_features false``), much faster.
- ``knn``: cosine kNN of the test split against the un-augmented training set, ``knn/top1_k{k}`` for every k of
  ``ks`` in one pass (k = 1: nearest neighbour; k > 1: votes weighted by ``exp(sim / temperature)``).
- ``finetune``: the whole network trained, LAST epoch's ``test/top1``.
- ``semi``: ``finetune`` on a class-balanced labelled subset for every fraction of ``label_fractions`` and every
  seed of ``seeds`` (the seed draws the subset and seeds the run); each run gets its own directory
  ``<root>/<fraction>pct_seed<seed>``, and the root gets the mean and standard deviation over the seeds.
- long-tailed (``linear`` or ``finetune`` with ``data.long_tail_imbalance``, :mod:`.longtail`): trained on the BRL
  long-tailed subset of the training split; the test metrics add ``test/{many,medium,few}_shot_acc`` (the classes
  with > 100, 20..100, < 20 kept training samples; a bucket without a tested class is left out) to ``test/top1``
  and ``test/mean_class_acc``.
- ``oneshot``: the NTU-120 one-shot protocol (:mod:`.oneshot`) over the whole store (its split columns play no
  part): every evaluation sample gets the class of the exemplar with the most cosine-similar pooled features;
  ``oneshot/top1``. A store that is not the full NTU RGB+D 120 set is an :class:`~.errors.EvaluationError`.

Transfer: ``--model.pretrained`` takes a checkpoint pretrained on any data set of the same skeleton layout; a
configured backbone of another layout than the store's is an :class:`~.errors.EvaluationError`, a checkpoint
pretrained on another layout a :class:`~.checkpoint.CheckpointError` (:func:`~.checkpoint.check_transfer_layout`).
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from jsonargparse import ArgumentParser
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from torchmetrics.functional.classification import multiclass_confusion_matrix

from ..callbacks.knn_monitor import extract_features
from ..data.datamodule import SkeletonDataModule
from ..lightning_cli import WANDB_LOGGER, RunDirCLI, explicit_arguments, log_config
from ..metrics.knn import knn_predict
from ..metrics.longtail import SHOT_BUCKETS, LongTailAccuracy
from ..tracking import finish_wandb
from .checkpoint import check_transfer_layout
from .errors import EvaluationError
from .features import Split, feature_loaders, split_features
from .module import DownstreamModule, TestResult
from .oneshot import one_shot_predict, one_shot_split
from .report import format_table, save_media, write_metrics

__all__ = [
    "COMMANDS",
    "EvalCLI",
    "run_finetune",
    "run_knn",
    "run_linear",
    "run_oneshot",
    "run_semi",
    "save_logits",
]

Metrics = dict[str, float]
Outcome = tuple[Metrics, str]
"""The final metrics of a run and its results table."""

DESCRIPTIONS = {
    "linear": "Linear probe of a frozen (pretrained or random) backbone; reports the last epoch's test accuracy.",
    "knn": "Cosine kNN accuracy of a (pretrained or random) backbone's pooled features (k = 1, 10, 20).",
    "finetune": "Fine-tune a (pretrained or random) backbone with a linear head; reports the last epoch's test "
    "accuracy.",
    "semi": "Fine-tune on class-balanced labelled subsets (label_fractions) for several seeds; reports the mean "
    "and standard deviation over the seeds.",
    "oneshot": "NTU-120 one-shot accuracy of a (pretrained or random) backbone: each evaluation sample gets the class "
    "of the most cosine-similar of the 20 exemplars (the whole store; its split columns play no part).",
}
COMMANDS = tuple(DESCRIPTIONS)
PROTOCOL_OF = {"linear": "linear", "knn": "linear", "finetune": "finetune", "semi": "finetune", "oneshot": "linear"}
#: the commands that train a head, with the ``model.protocol`` of :data:`PROTOCOL_OF`.
TRAINING = ("linear", "finetune", "semi")


class EvalCLI(RunDirCLI):
    """LightningCLI of one downstream ``command`` (classes instantiated, nothing run: see :func:`run_linear` ...).

    Args:
        command: one of :data:`COMMANDS`.
        args: the command-line arguments.
    """

    def __init__(self, command: str, args: list[str]) -> None:
        if command not in COMMANDS:
            raise ValueError(f"unknown downstream command {command!r}; choose one of {COMMANDS}")
        self.command = command
        self.default_root = f"runs/{command}"
        super().__init__(
            DownstreamModule,
            SkeletonDataModule,
            save_config_callback=None,  # written by the run itself, also for kNN, which does not fit
            trainer_defaults={
                "logger": {"class_path": WANDB_LOGGER},
                "callbacks": [LearningRateMonitor(logging_interval="epoch")],
            },
            args=args,
            run=False,
            parser_kwargs={"prog": f"ssl-skel {command}", "description": DESCRIPTIONS[command]},
            auto_configure_optimizers=False,
        )

    def add_arguments_to_parser(self, parser: ArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.set_defaults({"model.protocol": PROTOCOL_OF[self.command]})
        if self.command == "linear":
            parser.add_argument(
                "--cache_features",
                type=bool,
                default=True,
                help="train the head on pooled features computed once (same result as end to end, much faster)",
            )
        elif self.command == "knn":
            parser.add_argument("--ks", type=list[int], default=[1, 10, 20], help="neighbour counts")
            parser.add_argument("--temperature", type=float, default=0.07, help="vote weight exp(sim / temperature)")
            parser.add_argument("--chunk_size", type=int, default=1024, help="test samples per similarity block")
        elif self.command == "oneshot":
            parser.add_argument("--chunk_size", type=int, default=1024, help="evaluation samples per similarity block")
        elif self.command == "semi":
            parser.add_argument(
                "--label_fractions", type=list[float], default=[0.01, 0.1], help="labelled fractions of the train set"
            )
            parser.add_argument("--seeds", type=list[int], default=[0, 1, 2], help="one run per seed and fraction")

    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        config = self.config
        protocol = PROTOCOL_OF[self.command]
        if self.command in TRAINING and config.model.protocol != protocol:
            self.parser.error(f"ssl-skel {self.command} trains model.protocol {protocol}, not {config.model.protocol}")
        if self.command == "linear" and config.data.random_crop:
            self.parser.error("the linear probe trains on un-augmented clips: set data.random_crop to false")
        long_tail = config.data.long_tail_imbalance is not None
        if long_tail and self.command not in ("linear", "finetune"):
            self.parser.error(
                "data.long_tail_imbalance is the long-tailed protocol of ssl-skel linear and finetune, not of "
                f"ssl-skel {self.command}"
            )
        if long_tail and config.data.label_fraction < 1:
            self.parser.error("data.long_tail_imbalance replaces the training set: leave data.label_fraction at 1")
        if (long_tail or config.data.label_fraction < 1) and config.data.label_indices_path is None:
            name = "long_tail_subset.json" if long_tail else "label_subset.json"
            config.data.label_indices_path = str(Path(config.trainer.default_root_dir) / name)

    def instantiate_classes(self) -> None:
        """Instantiate the classes, then refuse a backbone or checkpoint of another layout than the store's."""
        super().instantiate_classes()
        layout, store = self.datamodule.layout, f"the store {self.datamodule.store_path}"
        configured = self.config.model.backbone.init_args.get("layout")
        if configured is not None and configured != layout:
            raise EvaluationError(
                f"model.backbone is configured for skeleton layout {configured}, but {store} has layout {layout}: "
                "set model.backbone.init_args.layout (a pretrained checkpoint must be of that layout too)"
            )
        if self.config.model.pretrained is not None:
            check_transfer_layout(self.config.model.pretrained, layout, store)


def _percent(fraction: float) -> str:
    return f"{100 * fraction:g}pct"


def _start(cli: EvalCLI) -> Path:
    """Create the run directory, write the resolved config into it and log it; returns the directory."""
    run_dir = Path(cli.trainer.default_root_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(cli.parser.dump(cli.config, skip_none=False))
    log_config(cli.trainer.loggers, cli.config)
    return run_dir


def _pretrained(cli: EvalCLI) -> tuple[str, str]:
    return "pretrained", str(cli.config.model.pretrained or "none (random initialisation)")


def _log_metrics(trainer: L.Trainer, metrics: Metrics) -> None:
    """Log the metrics of a run without training to the trainer's loggers."""
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=0)
        logger.save()


def _finish(cli: EvalCLI, run_dir: Path, metrics: Metrics) -> Outcome:
    """Write ``metrics.json``; returns the metrics and their table."""
    write_metrics(run_dir, metrics)
    rows = [(k, f"{v:.0f}" if k == "val/best_epoch_extra" else f"{v:.2f}") for k, v in metrics.items()]
    return metrics, format_table(f"ssl-skel {cli.command}: {run_dir}", [_pretrained(cli), *rows])


def _classify(cli: EvalCLI) -> Outcome:
    """Train the head (and the backbone when fine-tuning), then test the last epoch's model."""
    module, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    run_dir = _start(cli)
    # the data module draws its shuffling seed from the (seeded) global RNG with its first training loader: make it
    # before anything else draws, so that the cached and the end-to-end probe see the same batches
    train_loader = datamodule.train_dataloader()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*module\(s\) in eval mode.*")  # the probe's backbone, on purpose
        if cli.config.get("cache_features"):
            warnings.filterwarnings("ignore", ".*does not have many workers.*")  # the features are in memory
            module.to(trainer.strategy.root_device)
            train, test = split_features(module, datamodule)
            train_features, test_features = feature_loaders(train, test, train_loader, datamodule.eval_batch_size)
            trainer.fit(module, train_dataloaders=train_features, val_dataloaders=test_features)
            results = trainer.test(module, dataloaders=test_features)
        else:
            train = None
            trainer.fit(module, datamodule=datamodule)
            results = trainer.test(module, datamodule=datamodule)
    metrics = {k: float(v) for k, v in results[0].items()}
    result = module.test_result
    if datamodule.long_tail is not None:
        metrics.update(_shot_accuracies(result, datamodule.long_tail.counts))
    if module.best_val_top1 is not None:
        metrics["val/top1_best_epoch_extra"] = module.best_val_top1
        metrics["val/best_epoch_extra"] = float(module.best_val_epoch)
    title = f"{cli.command} {run_dir.name}"
    save_media(run_dir, title, result.confusion, result.features, result.labels, trainer)
    save_logits(module, datamodule, run_dir, train)
    return _finish(cli, run_dir, metrics)


def _shot_accuracies(result: TestResult, train_counts: np.ndarray) -> Metrics:
    """``test/{many,medium,few}_shot_acc`` (percent) of the test predictions by the classes' ``(C,)`` training
    counts; a bucket without a class that has test samples is left out."""
    metric = LongTailAccuracy(train_counts)
    metric.update(result.predictions, result.labels)
    values = metric.compute()
    shots = {f"test/{name}_shot_acc": 100.0 * float(values[f"{name}_shot"]) for name in SHOT_BUCKETS}
    return {key: value for key, value in shots.items() if not math.isnan(value)}


@torch.no_grad()
def save_logits(
    module: DownstreamModule, datamodule: SkeletonDataModule, run_dir: Path, train: Split | None = None
) -> None:
    """Write ``test_logits.pt`` (the last test pass's logits) and ``train_logits.pt`` (the final model in eval mode on
    the un-augmented training set), each ``{"logits": (N, C) float32, "labels": (N,), "indices": (N,)}`` (store
    indices, in the split's order) on the CPU, to ``run_dir``: what ``ssl-skel ensemble`` combines.

    ``train``: the training set's pooled features and labels when already computed (the cached linear probe's);
    computed here otherwise. Not written by a run of several processes, each of which tested a share of the test
    set (a warning says so).
    """
    if module.trainer.world_size > 1:
        warnings.warn("test_logits.pt and train_logits.pt are written by single-process runs only", stacklevel=2)
        return
    if train is None:
        train = extract_features(module, datamodule.train_eval_dataloader(), transform=datamodule.apply_stream)
    was_training = module.head.training
    module.head.eval()
    train_logits = module.head(train[0].to(module.device)).float().cpu()
    module.head.train(was_training)
    result = module.test_result
    parts = {
        "test": (result.logits, result.labels, datamodule.test_indices),
        "train": (train_logits, train[1].cpu(), datamodule.train_indices),
    }
    for part, (logits, labels, indices) in parts.items():
        record = {"logits": logits, "labels": labels, "indices": torch.as_tensor(indices, dtype=torch.long)}
        torch.save(record, run_dir / f"{part}_logits.pt")


def _knn(cli: EvalCLI) -> Outcome:
    """kNN accuracy of the test split against the un-augmented training set, for every k in one pass.

    With several processes (``--trainer.strategy ddp``, or processes started by torchrun / SLURM) each computes
    its share of the features and all of them are gathered (:func:`~ssl_skel.callbacks.extract_features`); the
    result is the single-process one.
    """
    launcher = cli.trainer.strategy.launcher
    if launcher is None:
        return _knn_processes(cli)
    if not isinstance(launcher, _SubprocessScriptLauncher):
        raise ValueError(
            f"ssl-skel knn runs several processes with --trainer.strategy ddp or under torchrun / SLURM, not with "
            f"{type(cli.trainer.strategy).__name__} ({type(launcher).__name__})"
        )
    return launcher.launch(_knn_processes, cli)


def _knn_processes(cli: EvalCLI) -> Outcome:
    """:func:`_knn` in every process of the run, with its process group set up; the first process writes the
    run directory (the others return the metrics and an empty table)."""
    module, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    trainer.strategy.setup_environment()
    module.to(trainer.strategy.root_device)
    (train_features, train_labels), (test_features, test_labels) = split_features(module, datamodule)
    ks = list(cli.config.ks)
    predictions = knn_predict(
        train_features,
        train_labels,
        test_features,
        ks,
        datamodule.num_classes,
        cli.config.temperature,
        cli.config.chunk_size,
    )
    metrics = {f"knn/top1_k{k}": 100.0 * float((predictions[k] == test_labels).float().mean()) for k in ks}
    if not trainer.is_global_zero:
        return metrics, ""
    run_dir = _start(cli)
    _log_metrics(trainer, metrics)
    confusion = multiclass_confusion_matrix(predictions[ks[0]], test_labels, datamodule.num_classes)
    title = f"knn {run_dir.name} (k={ks[0]})"
    save_media(run_dir, title, confusion, test_features, test_labels, trainer)
    return _finish(cli, run_dir, metrics)


def _oneshot(cli: EvalCLI) -> Outcome:
    """NTU-120 one-shot top-1 over the whole store (one process)."""
    module, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    store = datamodule.store
    try:
        split = one_shot_split(store.names, store.labels)
    except EvaluationError as err:
        raise EvaluationError(f"{datamodule.store_path}: {err}") from None
    module.to(trainer.strategy.root_device)
    exemplars, classes = extract_features(module, datamodule.eval_dataloader(split.exemplars), datamodule.apply_stream)
    queries, labels = extract_features(module, datamodule.eval_dataloader(split.evaluation), datamodule.apply_stream)
    queries, labels = queries.cpu(), labels.cpu()
    predictions = one_shot_predict(exemplars.cpu(), classes.cpu(), queries, cli.config.chunk_size)
    metrics = {"oneshot/top1": 100.0 * float((predictions == labels).float().mean())}
    run_dir = _start(cli)
    _log_metrics(trainer, metrics)
    order = torch.as_tensor(split.classes)  # confusion over the 20 evaluation classes, in class order
    confusion = multiclass_confusion_matrix(
        torch.searchsorted(order, predictions), torch.searchsorted(order, labels), len(order)
    )
    save_media(run_dir, f"oneshot {run_dir.name}", confusion, queries, labels, trainer)
    return _finish(cli, run_dir, metrics)


def _run(command: str, argv: list[str], body: Callable[[EvalCLI], Outcome]) -> Metrics:
    """Build the command's CLI, run ``body``, close the W&B run, then print the results table."""
    with explicit_arguments():
        cli = EvalCLI(command, argv)
    try:
        metrics, table = body(cli)
    finally:
        finish_wandb(cli.trainer.loggers)
    if table:
        print(table)
    return metrics


def run_linear(argv: list[str]) -> Metrics:
    """``ssl-skel linear ARGS``: linear probe; returns the final metrics (``test/top1`` ... in percent)."""
    return _run("linear", argv, _classify)


def run_finetune(argv: list[str]) -> Metrics:
    """``ssl-skel finetune ARGS``: fine-tuning; returns the final metrics (``test/top1`` ... in percent)."""
    return _run("finetune", argv, _classify)


def run_knn(argv: list[str]) -> Metrics:
    """``ssl-skel knn ARGS``: kNN evaluation; returns ``{"knn/top1_k{k}": percent}``."""
    return _run("knn", argv, _knn)


def run_oneshot(argv: list[str]) -> Metrics:
    """``ssl-skel oneshot ARGS``: NTU-120 one-shot evaluation; returns ``{"oneshot/top1": percent}``."""
    return _run("oneshot", argv, _oneshot)


def run_semi(argv: list[str]) -> Metrics:
    """``ssl-skel semi ARGS``: one fine-tuning run per labelled fraction and seed; returns
    ``{"<fraction>pct/test/<metric>_mean": ..., "..._std": ...}`` over the seeds (sample standard deviation)."""
    with explicit_arguments():
        cli = EvalCLI("semi", argv)
    root = Path(cli.trainer.default_root_dir)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(cli.parser.dump(cli.config, skip_none=False))
    fractions, seeds = list(cli.config.label_fractions), list(cli.config.seeds)
    summary: Metrics = {}
    rows = [_pretrained(cli)]
    for fraction in fractions:
        runs = []
        for seed in seeds:
            overrides = [
                "--seed_everything",
                str(seed),
                "--data.label_fraction",
                str(fraction),
                "--data.label_seed",
                str(seed),
                "--trainer.default_root_dir",
                str(root / f"{_percent(fraction)}_seed{seed}"),
            ]
            runs.append(_run("semi", [*argv, *overrides], _classify))
        for key in (k for k in runs[0] if k.startswith("test/")):
            values = [run[key] for run in runs]
            mean, std = statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
            summary[f"{_percent(fraction)}/{key}_mean"], summary[f"{_percent(fraction)}/{key}_std"] = mean, std
            rows.append((f"{_percent(fraction)} {key}", f"{mean:.2f} ± {std:.2f} ({len(values)} seeds)"))
    write_metrics(root, summary)
    print(format_table(f"ssl-skel semi: {root}", rows))
    return summary
