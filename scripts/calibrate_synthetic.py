"""Calibrate the difficulty of the synthetic data set: supervised ST-GCN versus a probe on a random ST-GCN.

Trains (a) an ST-GCN encoder with a linear classifier end to end on the xsub training split and (b) a linear probe
on the same architecture frozen at its random initialisation (eval mode, features computed once), evaluates both
on the xsub test split after the last epoch and prints the two accuracies and their gap.

Both arms see the same preprocessing, that of the project's data pipeline: spatial normalisation
(``ssl_skel.data.preprocess.normalize``, ``--normalization``) of every whole clip, then the deterministic evaluation
sampling (``center_sample``: the centred 95% of the valid frames resized to ``--frames``). The only difference is
that the supervised model may be trained with augmentation (``--augment crop``: a random temporal crop-resize of
each training clip, ``crop_resize`` with ``--crop-ratio``, redrawn every epoch); its test clips are sampled
deterministically like the probe's.

    python scripts/calibrate_synthetic.py            # the reported settings (about 30 min on one core)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssl_skel.backbones.stgcn import STGCN
from ssl_skel.data.preprocess import NORMALIZATIONS, normalize
from ssl_skel.data.synthetic import SyntheticSource
from ssl_skel.data.temporal import center_sample, crop_resize


def load_split(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list]:
    """Generate and normalise the data set.

    Returns ``(x_train, y_train, x_test, y_test, clips_train)``: x ``(N, 3, frames, 25, 2)`` deterministically
    sampled, and the whole normalised training clips (variable length) for training-time temporal augmentation.
    """
    source = SyntheticSource(num_samples=args.num_samples, seed=args.data_seed, num_subjects=args.num_subjects)
    samples = [source.sample(i) for i in range(source.num_samples)]
    clips = [normalize(s.data, source.layout, args.normalization) for s in samples]
    x = np.stack([center_sample(c, args.frames) for c in clips])
    y = np.array([s.label for s in samples])
    meta = {key: np.array([s.meta[key] for s in samples]) for key in samples[0].meta}
    train = source.splits([s.name for s in samples], meta)["xsub"] == 1
    as_t = torch.from_numpy
    clips_train = [c for c, keep in zip(clips, train, strict=True) if keep]
    return as_t(x[train]), as_t(y[train]), as_t(x[~train]), as_t(y[~train]), clips_train


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 128) -> float:
    model.eval()
    pred = torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return (pred == y).float().mean().item()


def random_probe(args: argparse.Namespace, data: tuple[torch.Tensor, ...], num_classes: int) -> float:
    """Linear probe on standardised features of a randomly initialised, frozen encoder (eval mode)."""
    x_train, y_train, x_test, y_test, _ = data
    torch.manual_seed(args.model_seed)
    encoder = STGCN(layout="ntu25", in_channels=3, width=args.width).eval()
    with torch.no_grad():
        f_train, f_test = (
            torch.cat([encoder(x[i : i + 128]) for i in range(0, len(x), 128)]) for x in (x_train, x_test)
        )
    mean, std = f_train.mean(0), f_train.std(0) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
    probe = nn.Linear(encoder.feature_dim, num_classes)
    optimizer = torch.optim.Adam(probe.parameters(), lr=args.probe_lr, weight_decay=args.probe_wd)
    for _ in range(args.probe_steps):  # full batch
        optimizer.zero_grad()
        F.cross_entropy(probe(f_train), y_train).backward()
        optimizer.step()
    return accuracy(probe, f_test, y_test)


def supervised(args: argparse.Namespace, data: tuple[torch.Tensor, ...], num_classes: int) -> float:
    """Train encoder + linear classifier end to end; returns the test accuracy after the last epoch."""
    x_train, y_train, x_test, y_test, clips = data
    torch.manual_seed(args.model_seed)
    rng = np.random.default_rng(args.model_seed)
    encoder = STGCN(layout="ntu25", in_channels=3, width=args.width, dropout=args.dropout)
    model = nn.Sequential(encoder, nn.Linear(encoder.feature_dim, num_classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.wd)
    steps = args.epochs * -(-len(x_train) // args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=steps, pct_start=0.1)
    for epoch in range(args.epochs):
        model.train()
        start, total = time.perf_counter(), 0.0
        if args.augment == "crop":  # a new random temporal crop of every training clip
            crops = [crop_resize(c, args.frames, rng, tuple(args.crop_ratio)) for c in clips]
            x_train = torch.from_numpy(np.stack(crops))
        order = torch.randperm(len(x_train))
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        line = f"epoch {epoch + 1:3d}  loss {total / len(x_train):.3f}  {time.perf_counter() - start:.1f}s"
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs:
            line += f"  test {accuracy(model, x_test, y_test):.3f}"
        print(line, flush=True)
    return accuracy(model, x_test, y_test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-samples", type=int, default=1440)
    parser.add_argument("--num-subjects", type=int, default=40)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--model-seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--wd", type=float, default=5e-4)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default="per_frame_shoulder",
        help="spatial normalisation of every clip, both arms",
    )
    parser.add_argument(
        "--augment",
        choices=("none", "crop"),
        default="crop",
        help="training-time augmentation of the supervised model (crop: random temporal crop-resize)",
    )
    parser.add_argument(
        "--crop-ratio",
        type=float,
        nargs=2,
        default=(0.7, 1.0),
        metavar=("LOW", "HIGH"),
        help="range of the random crop length as a fraction of the valid frames",
    )
    parser.add_argument("--eval-every", type=int, default=1)
    parser.add_argument("--probe-lr", type=float, default=0.01)
    parser.add_argument("--probe-wd", type=float, default=1e-4)
    parser.add_argument("--probe-steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-supervised", action="store_true", help="only run the random-encoder probe")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    wall = start = time.perf_counter()
    data = load_split(args)
    num_classes = SyntheticSource.num_classes
    print(
        f"train {len(data[0])}  test {len(data[2])}  classes {num_classes}  "
        f"generated in {time.perf_counter() - start:.1f}s",
        flush=True,
    )
    start = time.perf_counter()
    probe = random_probe(args, data, num_classes)
    print(f"random-encoder linear probe: test accuracy {probe:.3f}  ({time.perf_counter() - start:.1f}s)", flush=True)
    if args.skip_supervised:
        return
    start = time.perf_counter()
    sup = supervised(args, data, num_classes)
    print(f"supervised ST-GCN-{args.width}: test accuracy {sup:.3f}  ({time.perf_counter() - start:.1f}s)")
    print(f"gap: {100 * (sup - probe):.1f} points")
    print(
        f"SUMMARY normalization={args.normalization} augment={args.augment} crop_ratio={tuple(args.crop_ratio)} "
        f"frames={args.frames} width={args.width} epochs={args.epochs} batch={args.batch} lr={args.lr} wd={args.wd} "
        f"dropout={args.dropout} threads={args.threads} data_seed={args.data_seed} model_seed={args.model_seed} | "
        f"random-probe {100 * probe:.1f}%  supervised {100 * sup:.1f}%  gap {100 * (sup - probe):.1f} points  "
        f"wall {time.perf_counter() - wall:.0f}s",
        flush=True,
    )


if __name__ == "__main__":
    main()
