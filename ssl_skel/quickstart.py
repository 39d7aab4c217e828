"""``ssl-skel quickstart``: pretrain, then compare the pretrained encoder with a random one, in one table.

The main job of a fresh clone (``bash scripts/quickstart.sh``) on the embedded synthetic data set:

1. HiCLR pretraining with ``configs/quickstart/pretrain.yaml`` (``<out>/pretrain``, ``last.ckpt``);
2. linear probe (``configs/eval/linear/synthetic.yaml`` with the standardising probe of
   ``configs/quickstart/probe.yaml``) and kNN (``configs/eval/knn/synthetic.yaml``) of the pretrained encoder and
   of the same encoder at random initialisation (``<out>/{linear,knn}_{pretrained,random}``);
3. one table comparing them, printed and written to ``<out>/summary.json``.

Every step is an ordinary ``ssl-skel pretrain | linear | knn`` run (its own config, metrics and media in its run
directory); extra ``--name value`` arguments after ``--`` go to every step (e.g. ``-- --trainer.logger
lightning.pytorch.loggers.CSVLogger``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

__all__ = ["compare_encoders", "run_quickstart"]

#: the configs directory of a clone of the repository, next to the package
DEFAULT_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
#: step -> its config files under the configs directory, composed in order
STEP_CONFIGS = {
    "pretrain": ("quickstart/pretrain.yaml",),
    "linear": ("eval/linear/synthetic.yaml", "quickstart/probe.yaml"),
    "knn": ("eval/knn/synthetic.yaml",),
}

Metrics = dict[str, float]


def compare_encoders(results: dict[str, Metrics]) -> str:
    """The comparison table of ``{"pretrained": metrics, "random": metrics}`` (percent values)."""
    keys = [("linear top-1", "linear/test/top1"), ("kNN k=1", "knn/knn/top1_k1"), ("kNN k=20", "knn/knn/top1_k20")]
    lines = [
        "quickstart: pretrained vs randomly initialised encoder (test split, top-1 %)",
        f"{'metric':<12}  {'pretrained':>10}  {'random':>8}  {'gain':>7}",
        f"{'-' * 12}  {'-' * 10}  {'-' * 8}  {'-' * 7}",
    ]
    for label, key in keys:
        pretrained, random = results["pretrained"].get(key), results["random"].get(key)
        if pretrained is not None and random is not None:
            lines.append(f"{label:<12}  {pretrained:>10.1f}  {random:>8.1f}  {pretrained - random:>+7.1f}")
    return "\n".join(lines)


def run_quickstart(out: Path, configs: Path = DEFAULT_CONFIGS, extra: list[str] | None = None) -> dict[str, Metrics]:
    """Run the three steps of the module docstring into ``out``; returns ``{"pretrained" | "random": metrics}``
    with the linear-probe metrics under ``linear/...`` and the kNN metrics under ``knn/...``."""
    from .downstream.run import run_knn, run_linear
    from .lightning_cli import run_pretrain

    extra = list(extra or [])
    config_args: dict[str, list[str]] = {}
    for step, names in STEP_CONFIGS.items():
        for path in (configs / name for name in names):
            if not path.is_file():
                raise FileNotFoundError(
                    f"quickstart config {path} not found; run from a clone of the repository or pass --configs"
                )
            config_args.setdefault(step, []).extend(["-c", str(path)])
    start = time.perf_counter()
    pretrain_dir = out / "pretrain"
    print(f"quickstart [1/3]: HiCLR pretraining into {pretrain_dir}", flush=True)
    run_pretrain([*config_args["pretrain"], "--trainer.default_root_dir", str(pretrain_dir), *extra])
    checkpoint = pretrain_dir / "checkpoints" / "last.ckpt"
    results: dict[str, Metrics] = {}
    for step, (encoder, weights) in enumerate((("pretrained", str(checkpoint)), ("random", "null")), start=2):
        print(f"quickstart [{step}/3]: linear probe and kNN of the {encoder} encoder", flush=True)
        metrics: Metrics = {}
        for command, run in (("linear", run_linear), ("knn", run_knn)):
            run_dir = str(out / f"{command}_{encoder}")
            argv = [*config_args[command], "--model.pretrained", weights, "--trainer.default_root_dir", run_dir, *extra]
            metrics.update({f"{command}/{key}": value for key, value in run(argv).items()})
        results[encoder] = metrics
    minutes = (time.perf_counter() - start) / 60
    table = compare_encoders(results)
    summary = {"minutes": minutes, "checkpoint": str(checkpoint), **results}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"\n{table}\n\nquickstart: done in {minutes:.1f} min; summary in {out / 'summary.json'}", flush=True)
    return results


def main(argv: list[str]) -> int:
    """``ssl-skel quickstart [--out DIR] [--configs DIR] [-- extra arguments for every step]``."""
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(
        prog="ssl-skel quickstart",
        description="HiCLR pretraining on the synthetic data set, then linear probe and kNN of the pretrained and of "
        "a randomly initialised encoder, compared in one table.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="directory of the four runs")
    parser.add_argument("--configs", type=Path, default=DEFAULT_CONFIGS, help="the repository's configs directory")
    args = parser.parse_args(own)
    try:
        run_quickstart(args.out, args.configs, extra)
    except FileNotFoundError as err:
        print(f"ssl-skel quickstart: error: {err}")
        return 1
    return 0
