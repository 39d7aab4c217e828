"""The ``ssl-skel`` command: ``ssl-skel <subcommand> [args...]``.

Subcommands are registered in :data:`SUBCOMMANDS` (name -> help line and a function taking the remaining
arguments and returning an exit code): ``prepare``, ``pretrain`` (:mod:`ssl_skel.lightning_cli`) and the downstream
evaluations ``linear``, ``knn``, ``finetune``, ``semi``, ``oneshot`` (:mod:`ssl_skel.downstream.run`), ``ensemble``
(:mod:`ssl_skel.downstream.ensemble`) and ``segment`` (:mod:`ssl_skel.downstream.segment`). A downstream run that
cannot go ahead (a missing file, an unusable checkpoint, data or runs that do not fit the protocol) prints
``ssl-skel <subcommand>: error: ...`` and exits with 1.

``ssl-skel prepare DATASET --raw DIR --out DIR [--workers N] [--max-bad-fraction F] [--overwrite] [--quiet]
[--<source option> VALUE ...]`` prepares a raw data set into a store. Further ``--name value`` pairs are passed
to the data set's source constructor (``--num-samples 500`` -> ``num_samples=500``; ``--layout coco17`` for
pyskl), checked against its signature.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .data.sample import SkeletonFileError
from .data.source import SOURCES

__all__ = ["SUBCOMMANDS", "Subcommand", "main", "parse_source_options"]

#: data sets that generate their data and need no ``--raw``.
GENERATED = ("synthetic",)


@dataclass(frozen=True)
class Subcommand:
    help: str
    run: Callable[[list[str]], int]


def _source_parameters(dataset: str) -> dict[str, inspect.Parameter] | None:
    """Constructor parameters of ``dataset``'s source other than ``dataset``; ``None`` if it takes ``**kwargs``."""
    module, cls = SOURCES[dataset].split(":")
    params = inspect.signature(getattr(importlib.import_module(module), cls)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {name: p for name, p in params.items() if name not in ("self", "dataset")}


def _convert(text: str | None, annotation: object) -> object:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if text is None:
        return True
    if "bool" in kind and text.lower() in ("true", "false", "yes", "no", "1", "0"):
        return text.lower() in ("true", "yes", "1")
    if kind.replace(" ", "") in ("str", "str|None", "Path", "Path|None"):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_source_options(dataset: str, args: list[str]) -> dict[str, object]:
    """``["--num-samples", "500", "--flag"]`` -> ``{"num_samples": 500, "flag": True}``, validated against the
    source constructor of ``dataset``; values are converted by annotation (literals otherwise)."""
    params = _source_parameters(dataset)
    options: dict[str, object] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ValueError(f"unexpected argument {arg!r}; source options are given as --name value")
        name, _, inline = arg[2:].partition("=")
        key = name.replace("-", "_")
        if params is not None and key not in params:
            accepted = ", ".join("--" + p.replace("_", "-") for p in params) or "none"
            raise ValueError(f"{dataset}: unknown option {arg}; its source accepts: {accepted}")
        if inline:
            value, i = inline, i + 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value, i = args[i + 1], i + 2
        else:
            value, i = None, i + 1
        annotation = params[key].annotation if params is not None else ""
        options[key] = _convert(value, annotation)
    return options


def _prepare(argv: list[str]) -> int:
    from .data.prepare import PrepareError, prepare
    from .data.source import get_source

    parser = argparse.ArgumentParser(
        prog="ssl-skel prepare",
        description="Prepare a raw skeleton data set into a memory-mappable store. Extra --name value pairs are "
        "passed to the data set's source (e.g. --layout coco17 for pyskl, --num-samples 500 for synthetic).",
    )
    parser.add_argument("dataset", choices=sorted(SOURCES), help="data set to prepare")
    parser.add_argument("--raw", help="raw data directory or file (not needed for generated data sets)")
    parser.add_argument("--out", required=True, help="store directory to write")
    parser.add_argument("--workers", type=int, default=0, help="loader processes (0: load in this process)")
    parser.add_argument("--max-bad-fraction", type=float, default=0.05, help="abort above this fraction of bad items")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store once the new one is done")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args, extra = parser.parse_known_args(argv)
    if args.raw is None and args.dataset not in GENERATED:
        parser.error(f"--raw is required for {args.dataset}")
    try:
        options = parse_source_options(args.dataset, extra)
    except ValueError as err:
        parser.error(str(err))
    try:
        source = get_source(args.dataset, **options)
        summary = prepare(
            source,
            args.raw,
            args.out,
            workers=args.workers,
            max_bad_fraction=args.max_bad_fraction,
            overwrite=args.overwrite,
            source_options=options,
            progress=not args.quiet,
        )
    except (PrepareError, FileExistsError, FileNotFoundError, SkeletonFileError) as err:
        print(f"ssl-skel prepare: error: {err}", file=sys.stderr)
        return 1
    print(summary.format())
    return 0


def _pretrain(argv: list[str]) -> int:
    from .lightning_cli import run_pretrain

    return run_pretrain(argv)


def _quickstart(argv: list[str]) -> int:
    from .quickstart import main as quickstart

    return quickstart(argv)


def _downstream(command: str) -> Callable[[list[str]], int]:
    """The exit-code wrapper of downstream ``command`` (``ssl_skel.downstream.run_<command>``)."""

    def run(argv: list[str]) -> int:
        from . import downstream
        from .downstream.checkpoint import CheckpointError
        from .downstream.errors import EvaluationError

        try:
            getattr(downstream, f"run_{command}")(argv)
        except (CheckpointError, EvaluationError, FileNotFoundError) as err:
            print(f"ssl-skel {command}: error: {err}", file=sys.stderr)
            return 1
        return 0

    return run


#: subcommand name -> what it does and how to run it.
SUBCOMMANDS: dict[str, Subcommand] = {
    "prepare": Subcommand("prepare a raw data set into a store", _prepare),
    "pretrain": Subcommand("self-supervised pretraining (LightningCLI: -c CONFIG, --print_config)", _pretrain),
    "linear": Subcommand("linear probe of a frozen backbone (--model.pretrained CKPT)", _downstream("linear")),
    "knn": Subcommand("kNN accuracy of a backbone's features (k = 1, 10, 20)", _downstream("knn")),
    "finetune": Subcommand("fine-tune a backbone with a linear head", _downstream("finetune")),
    "semi": Subcommand("fine-tune on 1% / 10% of the labels, several seeds", _downstream("semi")),
    "oneshot": Subcommand("NTU-120 one-shot accuracy: nearest of 20 exemplars", _downstream("oneshot")),
    "ensemble": Subcommand("multi-stream ensemble of linear / finetune runs' logits", _downstream("ensemble")),
    "segment": Subcommand("action segmentation of untrimmed videos (frame-wise head)", _downstream("segment")),
    "quickstart": Subcommand("pretrain on the synthetic data set, compare with a random encoder", _quickstart),
}


def _usage() -> str:
    lines = ["usage: ssl-skel <subcommand> [args...]", "", "subcommands:"]
    lines += [f"  {name:<12} {cmd.help}" for name, cmd in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ssl-skel``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command = SUBCOMMANDS.get(argv[0])
    if command is None:
        print(f"ssl-skel: unknown subcommand {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return command.run(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
