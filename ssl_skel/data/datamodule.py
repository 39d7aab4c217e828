"""The LightningDataModule over a prepared store, and the per-sample dataset it loads through.

Per sample, in the DataLoader workers, :class:`SkeletonDataset` reads the sequence from the memory-mapped store,
normalises it (:mod:`.preprocess`) and samples it to ``num_frames`` (:mod:`.temporal`: random crop-resize for
training, centre sampling for evaluation). Everything else runs on the batch:

- augmentations, in the method's ``on_after_batch_transfer`` (DESIGN "Contracts");
- the feature stream (``stream``: joint, bone, motion, bone_motion). It is computed on the batch after the
  augmentations (:meth:`SkeletonDataModule.apply_stream`), as the references do, because noise and masking do not
  commute with bone/motion differences; batches therefore always hold joint coordinates.

Batches are dicts: ``x`` ``(N, C, T, V, M)`` float32 (a list of ``num_views`` such tensors for training with
``num_views > 1``: independent crops of the same samples), ``label`` ``(N,)`` int64 and ``index`` ``(N,)`` int64
(the sample's index in the store).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from ..skeleton.features import STREAMS, to_stream
from .prepare import prepare
from .preprocess import NORMALIZATIONS, normalize
from .source import get_source
from .store import MANIFEST, SkeletonStore
from .temporal import center_sample, crop_resize

if TYPE_CHECKING:
    from ..downstream.longtail import LongTailSplit

__all__ = [
    "EpochSampler",
    "SkeletonDataModule",
    "SkeletonDataset",
    "default_cache_dir",
    "labelled_subset",
    "trainer_stream",
]

BAD_SAMPLE_POLICIES = ("skip", "raise")


def default_cache_dir() -> Path:
    """``$SSL_SKEL_CACHE``, else ``$XDG_CACHE_HOME/ssl_skel``, else ``~/.cache/ssl_skel``."""
    if os.environ.get("SSL_SKEL_CACHE"):
        return Path(os.environ["SSL_SKEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ssl_skel"


def labelled_subset(labels: np.ndarray, indices: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A class-balanced random subset of ``indices``: ``max(1, round(fraction * n_c))`` samples of every class c.

    Samples with an unknown label (-1) are never chosen when ``fraction < 1``. Returns sorted int64 indices.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"label_fraction must be in (0, 1], got {fraction}")
    indices = np.asarray(indices, dtype=np.int64)
    if fraction == 1:
        return indices
    rng = np.random.default_rng(seed)
    sub_labels = np.asarray(labels)[indices]
    chosen = []
    for c in np.unique(sub_labels[sub_labels >= 0]):
        members = indices[sub_labels == c]
        chosen.append(rng.permutation(members)[: max(1, round(fraction * len(members)))])
    return np.sort(np.concatenate(chosen)) if chosen else indices[:0]


class SkeletonDataset(Dataset):
    """Samples ``indices`` of a store, normalised and sampled to ``num_frames`` frames.

    Args:
        store: the prepared store.
        indices: store indices this dataset serves, in order.
        num_frames: output length T.
        train: random crop-resize (``True``) or deterministic centre sampling (``False``).
        normalization: one of :data:`~ssl_skel.data.preprocess.NORMALIZATIONS`, applied to the whole clip first.
        crop: training crop ratio range of the valid frames.
        min_crop_frames: training crops have at least this many frames (when the clip has them).
        center_ratio: evaluation centre-crop ratio.
        num_views: training: this many independent crops per sample (``x`` is then a list).
        on_bad_sample: a sample with non-finite values is replaced by the next good one and counted (``"skip"``)
            or raises ``ValueError`` (``"raise"``).
        seed: seed of the crop randomness when items are asked for by plain position; ``None`` draws it from
            torch's global RNG. DataLoader workers are reseeded from their torch worker seed by :func:`seed_worker`.
            Training loaders ask by ``(position, seed)`` pairs from :class:`EpochSampler` instead, so that a crop is
            a function of the run's seed, the epoch and the draw alone (a resumed run repeats it exactly).

    Items are dicts ``{"x": (C, T, V, M) float32 or a list of them, "label": int, "index": int}``.
    """

    def __init__(
        self,
        store: SkeletonStore,
        indices: np.ndarray,
        num_frames: int,
        train: bool,
        normalization: str = "none",
        crop: tuple[float, float] = (0.5, 1.0),
        min_crop_frames: int = 1,
        center_ratio: float = 0.95,
        num_views: int = 1,
        on_bad_sample: str = "skip",
        seed: int | None = None,
    ) -> None:
        if on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise ValueError(f"on_bad_sample must be one of {BAD_SAMPLE_POLICIES}, got {on_bad_sample!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}")
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        self.store = store
        self.indices = np.asarray(indices, dtype=np.int64)
        self.num_frames = num_frames
        self.train = train
        self.normalization = normalization
        self.crop = tuple(crop)
        self.min_crop_frames = min_crop_frames
        self.center_ratio = center_ratio
        self.num_views = num_views
        self.on_bad_sample = on_bad_sample
        self.bad_samples = 0
        self.reseed(int(torch.randint(0, 2**62, ()).item()) if seed is None else seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.indices)

    def _read(self, position: int) -> tuple[int, np.ndarray, int]:
        """Store index, normalised ``(C, T, V, M)`` clip and label at ``position``, replacing bad samples."""
        for step in range(len(self.indices)):
            index = int(self.indices[(position + step) % len(self.indices)])
            view, label = self.store[index]
            data = np.array(view, dtype=np.float32)
            if np.isfinite(data).all():
                return index, normalize(data, self.store.layout, self.normalization), label
            problem = f"{self.store.path}: sample {index} ({self.store.names[index]}) has non-finite values"
            if self.on_bad_sample == "raise":
                raise ValueError(problem)
            self.bad_samples += 1
            warnings.warn(f"{problem}; skipped ({self.bad_samples} bad so far in this process)", stacklevel=2)
        raise ValueError(f"{self.store.path}: every sample of this dataset has non-finite values")

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """Item at ``position``, or at ``(position, seed)`` with the crops drawn from ``seed``."""
        position, seed = item if isinstance(item, tuple) else (item, None)
        index, data, label = self._read(position)
        if not self.train:
            x: Any = center_sample(data, self.num_frames, self.center_ratio)
        else:
            rng = self.rng if seed is None else np.random.default_rng(seed)
            views = [
                crop_resize(data, self.num_frames, rng, self.crop, self.min_crop_frames) for _ in range(self.num_views)
            ]
            x = views[0] if self.num_views == 1 else views
        return {"x": x, "label": label, "index": index}


class EpochSampler(Sampler[tuple[int, int]]):
    """Training order as ``(position, seed)`` pairs, a pure function of ``seed`` and the epoch.

    Every epoch draws a permutation of ``range(length)`` (or keeps the order without ``shuffle``) and a crop seed
    per draw from a generator seeded by ``(seed, epoch)``. Lightning calls :meth:`set_epoch` before each epoch, so
    an interrupted run resumed at an epoch boundary sees the same order and the same crops, with or without
    (persistent) workers.
    """

    def __init__(self, length: int, seed: int, shuffle: bool = True) -> None:
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.length, generator=generator) if self.shuffle else torch.arange(self.length)
        seeds = torch.randint(0, 2**62, (self.length,), generator=generator)
        return iter(zip(order.tolist(), seeds.tolist(), strict=True))


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed the worker's crop RNG from its torch seed (reproducible per run)."""
    info = get_worker_info()
    if info is not None and isinstance(info.dataset, SkeletonDataset):
        info.dataset.reseed(info.seed)


class SkeletonDataModule(L.LightningDataModule):
    """Train / evaluation loaders over a prepared store (see the module docstring for what runs where).

    Give either ``root`` (a store written by ``ssl-skel prepare``) or ``dataset`` (a source name, prepared on
    first use into ``cache_dir``; with ``raw`` for real data sets, without for ``"synthetic"``).

    Args:
        root: prepared store directory.
        dataset: source name to prepare into the cache instead of ``root``.
        raw: raw data directory of ``dataset``.
        source_options: constructor options of the ``dataset`` source (e.g. ``num_samples``, ``seed``); they are
            part of the cache key.
        cache_dir: where prepared caches live (default :func:`default_cache_dir`).
        split: split name (``xsub``, ``view``, ...); ``None`` uses the store's only split.
        num_frames: frames T per sample after temporal sampling.
        normalization: one of ``none``, ``first_frame``, ``per_frame_shoulder``.
        stream: feature stream the model consumes (applied on the batch, see :meth:`apply_stream`).
        train_crop: training crop ratio range of the valid frames.
        min_crop_frames: minimum training crop length in frames.
        random_crop: random crop-resize of the training clips; ``False`` samples them like evaluation clips
            (centre crop, no randomness at all: the linear probe), still in a shuffled order.
        test_crop: evaluation centre-crop ratio.
        label_fraction: fraction of labelled training samples kept (class-balanced) for the train loaders.
        label_seed: seed of that subset.
        long_tail_imbalance: imbalance factor IF of the BRL long-tailed training set
            (:mod:`ssl_skel.downstream.longtail`: class c keeps ``floor(long_tail_max_per_class * (1/IF) ** (c /
            (C - 1)))`` of its training samples; the protocol uses 10, 50, 100); it replaces the training indices,
            the test split is unchanged. ``None``: the whole training split. Excludes ``label_fraction < 1``.
        long_tail_seed: seed of the within-class shuffle that picks the long-tailed samples.
        long_tail_max_per_class: ``n_0``, the training samples kept of class 0.
        label_indices_path: JSON file to save the chosen training subset to (its indices and sample names); by
            default ``label_subset.json`` (``label_fraction < 1``) or ``long_tail_subset.json``
            (``long_tail_imbalance``) in the trainer's log directory when there is one. Only written for a subset.
        num_views: independent training crops per sample.
        batch_size: training batch size.
        eval_batch_size: evaluation batch size (default ``batch_size``).
        num_workers: DataLoader worker processes.
        persistent_workers: keep workers alive between epochs (when ``num_workers > 0``).
        pin_memory: pin batches for GPU transfer.
        drop_last: drop the last incomplete training batch.
        on_bad_sample: ``"skip"`` (replace and count) or ``"raise"`` for stored samples with non-finite values.
    """

    def __init__(
        self,
        root: str | None = None,
        dataset: str | None = None,
        raw: str | None = None,
        source_options: dict[str, int | float | str | bool] | None = None,
        cache_dir: str | None = None,
        split: str | None = None,
        num_frames: int = 50,
        normalization: str = "none",
        stream: str = "joint",
        train_crop: tuple[float, float] = (0.5, 1.0),
        min_crop_frames: int = 1,
        random_crop: bool = True,
        test_crop: float = 0.95,
        label_fraction: float = 1.0,
        label_seed: int = 0,
        long_tail_imbalance: float | None = None,
        long_tail_seed: int = 0,
        long_tail_max_per_class: int = 600,
        label_indices_path: str | None = None,
        num_views: int = 1,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        persistent_workers: bool = True,
        pin_memory: bool = False,
        drop_last: bool = True,
        on_bad_sample: str = "skip",
    ) -> None:
        super().__init__()
        if (root is None) == (dataset is None):
            raise ValueError("give exactly one of root (a prepared store) or dataset (prepared into the cache)")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}")
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; choose one of {STREAMS}")
        if on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise ValueError(f"on_bad_sample must be one of {BAD_SAMPLE_POLICIES}, got {on_bad_sample!r}")
        if not 0 < label_fraction <= 1:
            raise ValueError(f"label_fraction must be in (0, 1], got {label_fraction}")
        if long_tail_imbalance is not None and label_fraction < 1:
            raise ValueError(
                f"long_tail_imbalance ({long_tail_imbalance}) replaces the training set: it cannot be combined with "
                f"label_fraction {label_fraction}"
            )
        self.save_hyperparameters()
        self.root, self.dataset, self.raw = root, dataset, raw
        self.source_options = dict(source_options or {})
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.split = split
        self.num_frames = num_frames
        self.normalization = normalization
        self.stream = stream
        self.train_crop = tuple(train_crop)
        self.min_crop_frames = min_crop_frames
        self.random_crop = random_crop
        self.test_crop = test_crop
        self.label_fraction = label_fraction
        self.label_seed = label_seed
        self.long_tail_imbalance = long_tail_imbalance
        self.long_tail_seed = long_tail_seed
        self.long_tail_max_per_class = long_tail_max_per_class
        self.label_indices_path = label_indices_path
        self.num_views = num_views
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers
        self.pin_memory = pin_memory
        self.drop_last = drop_last
        self.on_bad_sample = on_bad_sample
        self._store: SkeletonStore | None = None
        self.train_indices: np.ndarray | None = None
        self.test_indices: np.ndarray | None = None
        #: the long-tailed training set (its ``counts`` define the many / medium / few-shot classes) after
        #: :meth:`setup` with ``long_tail_imbalance``
        self.long_tail: LongTailSplit | None = None
        self.train_seed: int | None = None

    # --- where the store is -------------------------------------------------------------------------------------
    @property
    def store_path(self) -> Path:
        """The prepared store: ``root``, or the cache entry of ``dataset`` with its raw path and options."""
        if self.root is not None:
            return Path(self.root)
        key = json.dumps(
            {"raw": str(Path(self.raw).resolve()) if self.raw else None, "options": self.source_options},
            sort_keys=True,
        )
        return self.cache_dir / f"{self.dataset}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def prepare_data(self) -> None:
        """Prepare ``dataset`` into the cache unless it is there already (no-op with ``root``)."""
        path = self.store_path
        if self.dataset is None or (path / MANIFEST).is_file():
            return
        source = get_source(self.dataset, **self.source_options)
        try:
            summary = prepare(source, self.raw, path, source_options=self.source_options)
        except FileExistsError:
            if not (path / MANIFEST).is_file():
                raise
            return  # another process finished the same cache entry first
        print(summary.format())

    @property
    def store(self) -> SkeletonStore:
        if self._store is None:
            self.prepare_data()
            self._store = SkeletonStore(self.store_path)
        return self._store

    # --- what the model needs to know -------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.store.num_classes

    @property
    def layout(self) -> str:
        return self.store.layout

    @property
    def in_channels(self) -> int:
        """Channels C of ``x`` (the same for every stream)."""
        return self.store.shape[0]

    @property
    def num_joints(self) -> int:
        return self.store.shape[1]

    @property
    def num_persons(self) -> int:
        return self.store.shape[2]

    def apply_stream(self, x: torch.Tensor) -> torch.Tensor:
        """Convert a joint batch ``(N, C, T, V, M)`` to this data module's ``stream`` (after augmentation)."""
        return to_stream(x, self.stream, self.layout)

    # --- splits and subsets -----------------------------------------------------------------------------------
    def _split_name(self) -> str:
        if self.split is not None:
            return self.split
        names = self.store.split_names
        if len(names) != 1:
            raise ValueError(f"{self.store_path}: choose a split (split=...) among {names}")
        return names[0]

    def setup(self, stage: str | None = None) -> None:
        if self.train_indices is not None:
            return
        split = self._split_name()
        store = self.store
        labels = np.asarray(store.labels)
        train = store.split_indices(split, "train")
        self.test_indices = store.split_indices(split, "test")
        if self.long_tail_imbalance is None:
            self.train_indices = labelled_subset(labels, train, self.label_fraction, self.label_seed)
            if self.label_fraction < 1:
                settings = {"label_fraction": self.label_fraction, "label_seed": self.label_seed}
                self._save_subset(split, "label_subset.json", settings)
            return
        from ..downstream.longtail import long_tail_split  # here: ssl_skel.downstream imports this module

        self.long_tail = long_tail_split(
            labels, train, self.num_classes, self.long_tail_imbalance, self.long_tail_seed, self.long_tail_max_per_class
        )
        self.train_indices = self.long_tail.indices
        settings = {
            "long_tail_imbalance": self.long_tail_imbalance,
            "long_tail_seed": self.long_tail_seed,
            "long_tail_max_per_class": self.long_tail_max_per_class,
            "class_counts": self.long_tail.counts.tolist(),
        }
        self._save_subset(split, "long_tail_subset.json", settings)

    def _save_subset(self, split: str, default_name: str, settings: dict[str, Any]) -> None:
        """Write the training subset with ``settings`` (how it was chosen) to ``label_indices_path``, by default
        ``default_name`` in the trainer's log directory (nothing is written without either)."""
        path = self.label_indices_path
        if path is None:
            log_dir = getattr(self.trainer, "log_dir", None) if self.trainer is not None else None
            if log_dir is None:
                return
            path = str(Path(log_dir) / default_name)
        record = {
            "store": str(self.store_path),
            "split": split,
            **settings,
            "indices": self.train_indices.tolist(),
            "names": [str(n) for n in self.store.names[self.train_indices]],
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(record))

    # --- loaders ----------------------------------------------------------------------------------------------
    def _dataset(self, indices: np.ndarray, train: bool) -> SkeletonDataset:
        return SkeletonDataset(
            self.store,
            indices,
            self.num_frames,
            train=train,
            normalization=self.normalization,
            crop=self.train_crop,
            min_crop_frames=self.min_crop_frames,
            center_ratio=self.test_crop,
            num_views=self.num_views if train else 1,
            on_bad_sample=self.on_bad_sample,
        )

    def _loader(
        self, dataset: SkeletonDataset, batch_size: int, drop_last: bool, sampler: EpochSampler | None = None
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            pin_memory=self.pin_memory,
            worker_init_fn=seed_worker,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, random crop-resize (unless ``random_crop`` is off), ``num_views`` views, the labelled subset.

        In a distributed run Lightning gives every process its share of the :class:`EpochSampler` order.
        """
        self.setup()
        dataset = self._dataset(self.train_indices, self.random_crop)
        if self.train_seed is None:
            # drawn once per data module from torch's global RNG: ``seed_everything`` makes it reproducible
            seed = int(torch.randint(0, 2**31, ()).item())
            if self.trainer is not None and self.trainer.world_size > 1:
                # the processes of a distributed run take their shares of ONE order: the first process's
                seed = self.trainer.strategy.broadcast(seed, src=0)
            self.train_seed = seed
        sampler = EpochSampler(len(dataset), self.train_seed, shuffle=True)
        return self._loader(dataset, self.batch_size, self.drop_last, sampler)

    def state_dict(self) -> dict[str, Any]:
        """The training order's seed, checkpointed: a resumed run shuffles and crops as the uninterrupted one,
        whatever drew from the global RNG before its first training loader (e.g. a kNN evaluation at the start)."""
        return {"train_seed": self.train_seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_seed = state_dict.get("train_seed")

    def eval_dataloader(self, indices: np.ndarray) -> DataLoader:
        """The store samples ``indices`` in that order, centre sampling, no augmentation (any split, e.g. a
        protocol's own sample lists)."""
        return self._loader(self._dataset(indices, False), self.eval_batch_size, False)

    def val_dataloader(self) -> DataLoader:
        """The split's test part, centre sampling."""
        self.setup()
        return self.eval_dataloader(self.test_indices)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def train_eval_dataloader(self) -> DataLoader:
        """The (labelled) training set in order with centre sampling and no augmentation, e.g. for kNN banks."""
        self.setup()
        return self.eval_dataloader(self.train_indices)


def trainer_stream(trainer: L.Trainer | None, x: torch.Tensor) -> torch.Tensor:
    """Joint batch ``x (N, C, T, V, M)`` -> the feature stream of ``trainer``'s data module (identity without one)."""
    datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
    return datamodule.apply_stream(x) if hasattr(datamodule, "apply_stream") else x
