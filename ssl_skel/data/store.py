"""The prepared-data store: variable-length skeleton sequences in memory-mappable ``.npy`` files.

A store is a directory::

    manifest.json          written last; its presence marks a complete store
    frames.npy             (F, C, V, M) float32: every sample's frames concatenated along time (F = total frames)
    offsets.npy            (N,) int64: first frame of each sample in ``frames.npy``
    lengths.npy            (N,) int64: number of frames of each sample (>= 1)
    labels.npy             (N,) int64: class index, -1 when unknown
    names.npy              (N,) unicode: sample names
    meta_<key>.npy         (N,) int64: one metadata column per key (-1 where a sample lacks the key)
    split_<name>.npy       (N,) int8: 1 train, 0 test, -1 unused
    frame_labels.npy       (F,) int64, optional: frame-wise labels of untrimmed data, aligned with ``frames.npy``

The on-disk frame order is time-major ``(F, C, V, M)``, so a sample is the contiguous slice
``frames[offset:offset + length]`` and its ``(C, T, V, M)`` array is that slice with the first two axes swapped
(a view, no copy). All arrays are opened read-only by memory map, so nothing is loaded into RAM up front.

:class:`StoreWriter` writes a store by streaming: frames are appended to ``frames.npy`` behind a header reserved
up front and rewritten with the final shape at the end, inside a temporary sibling directory that is renamed
into place only once the manifest is written. An interrupted write never leaves a directory at the output path.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .sample import SkeletonSample

__all__ = ["FORMAT_VERSION", "SkeletonStore", "StoreError", "StoreWriter"]

#: version of the on-disk layout written by :class:`StoreWriter` and understood by :class:`SkeletonStore`.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_HEADER_BYTES = 256  # reserved .npy header (v1.0) of streamed arrays; multiple of 64 as the format asks


class StoreError(RuntimeError):
    """A prepared store is missing, incomplete or of an unknown format; the message names the directory."""


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A version-1.0 ``.npy`` header of exactly :data:`_HEADER_BYTES` bytes for a C-ordered array."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    prefix = np.lib.format.MAGIC_PREFIX + bytes([1, 0])
    body_len = _HEADER_BYTES - len(prefix) - 2
    if len(text) + 1 > body_len:
        raise ValueError(f"npy header for shape {shape} does not fit in {_HEADER_BYTES} bytes")
    body = (text.ljust(body_len - 1) + "\n").encode("latin1")
    return prefix + body_len.to_bytes(2, "little") + body


class _StreamedArray:
    """An ``.npy`` file written row block by row block along axis 0; the header is finalised on close."""

    def __init__(self, path: Path, dtype: np.dtype, row_shape: tuple[int, ...]) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.row_shape = row_shape
        self.rows = 0
        self._file = open(path, "wb")  # closed in close()
        self._file.write(_npy_header(self.dtype, (0, *row_shape)))

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: block of rows {block.shape[1:]} for rows {self.row_shape}")
        self._file.write(block.data)
        self.rows += block.shape[0]

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.seek(0)
        self._file.write(_npy_header(self.dtype, (self.rows, *self.row_shape)))
        self._file.close()


class StoreWriter:
    """Stream samples into a new store at ``out`` (see the module docstring for the layout).

    Use as a context manager: leaving the block with an exception removes the temporary directory, so nothing
    appears at ``out``; :meth:`finish` writes the remaining arrays and the manifest and renames the directory into
    place. An existing store at ``out`` is replaced only with ``overwrite=True`` and only once the new one is
    complete; a non-empty directory that is not a store is never replaced.

    Args:
        out: the store directory to create.
        dataset: data-set name recorded in the manifest.
        layout: skeleton layout name of the samples.
        num_classes: number of action classes.
        overwrite: replace an existing store at ``out``.
        source_options: options the source was built with, recorded in the manifest.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        dataset: str,
        layout: str,
        num_classes: int,
        overwrite: bool = False,
        source_options: dict[str, Any] | None = None,
    ) -> None:
        self.out = Path(out)
        self.dataset = dataset
        self.layout = layout
        self.num_classes = num_classes
        self.overwrite = overwrite
        self.source_options = dict(source_options or {})
        self._check_target()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.parent / f".{self.out.name}.partial-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self._frames: _StreamedArray | None = None
        self._frame_labels: _StreamedArray | None = None
        self._shape: tuple[int, int, int] | None = None
        self.names: list[str] = []
        self._labels: list[int] = []
        self._lengths: list[int] = []
        self._meta: list[dict[str, int]] = []
        self.skipped: list[dict[str, str]] = []
        self._started = time.time()

    def _check_target(self) -> None:
        if not self.out.exists():
            return
        if not self.out.is_dir():
            raise FileExistsError(f"{self.out}: exists and is not a directory")
        if not self.overwrite:
            raise FileExistsError(f"{self.out}: already exists; pass overwrite (--overwrite) to replace it")
        if any(self.out.iterdir()) and not (self.out / MANIFEST).is_file():
            raise FileExistsError(f"{self.out}: a non-empty directory that is not a prepared store; not replacing it")

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()

    @property
    def num_samples(self) -> int:
        return len(self.names)

    @property
    def total_frames(self) -> int:
        return int(sum(self._lengths))

    @property
    def meta(self) -> dict[str, np.ndarray]:
        """Metadata columns ``{key: (N,) int64}`` of the samples appended so far; -1 where a sample lacks a key."""
        keys = sorted({k for m in self._meta for k in m})
        return {k: np.array([m.get(k, -1) for m in self._meta], dtype=np.int64) for k in keys}

    def append(self, sample: SkeletonSample) -> None:
        """Append one sample; all samples share ``C`` and ``V`` and have at most the first sample's ``M`` persons
        (fewer are zero-padded); either all or none carry frame labels."""
        data = np.asarray(sample.data, dtype=np.float32)
        c, t, v, m = data.shape
        if self._frames is None:
            self._shape = (c, v, m)
            self._frames = _StreamedArray(self.tmp / "frames.npy", np.dtype(np.float32), (c, v, m))
            if sample.frame_labels is not None:
                self._frame_labels = _StreamedArray(self.tmp / "frame_labels.npy", np.dtype(np.int64), ())
        sc, sv, sm = self._shape
        if (c, v) != (sc, sv) or m > sm:
            raise ValueError(
                f"sample {sample.name}: shape (C, T, V, M) = {data.shape} does not fit the store's (C, V, M) = "
                f"{self._shape} (the first sample's)"
            )
        if (sample.frame_labels is None) != (self._frame_labels is None):
            raise ValueError(f"sample {sample.name}: frame labels must be given for all samples or for none")
        if t < 1:
            raise ValueError(f"sample {sample.name}: no frames")
        if m < sm:
            data = np.concatenate([data, np.zeros((c, t, v, sm - m), np.float32)], axis=3)
        self._frames.append(data.transpose(1, 0, 2, 3))
        if self._frame_labels is not None:
            self._frame_labels.append(np.asarray(sample.frame_labels, dtype=np.int64))
        self.names.append(sample.name)
        self._labels.append(int(sample.label))
        self._lengths.append(t)
        self._meta.append({k: int(val) for k, val in sample.meta.items()})

    def skip(self, item: str, reason: str) -> None:
        """Record an item that could not be read, with the reason (listed in the manifest)."""
        self.skipped.append({"item": item, "reason": reason})

    def finish(self, splits: dict[str, np.ndarray]) -> Path:
        """Write the remaining arrays and the manifest, then move the store to ``out``; returns ``out``.

        Args:
            splits: ``{name: (N,) int8}`` with 1 train, 0 test, -1 unused, aligned with the appended samples.
        """
        if self._frames is None:
            raise ValueError(f"{self.out}: no samples to write ({len(self.skipped)} skipped)")
        n = self.num_samples
        self._frames.close()
        if self._frame_labels is not None:
            self._frame_labels.close()
        lengths = np.array(self._lengths, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        np.save(self.tmp / "offsets.npy", offsets)
        np.save(self.tmp / "lengths.npy", lengths)
        np.save(self.tmp / "labels.npy", np.array(self._labels, dtype=np.int64))
        np.save(self.tmp / "names.npy", np.array(self.names, dtype=str))
        meta = self.meta
        for key, column in meta.items():
            np.save(self.tmp / f"meta_{key}.npy", column)
        split_counts = {}
        for name, split in splits.items():
            split = np.asarray(split, dtype=np.int8)
            if split.shape != (n,):
                raise ValueError(f"split {name!r}: shape {split.shape} for {n} samples")
            np.save(self.tmp / f"split_{name}.npy", split)
            split_counts[name] = {"train": int((split == 1).sum()), "test": int((split == 0).sum())}
        manifest = {
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "layout": self.layout,
            "num_classes": self.num_classes,
            "num_samples": n,
            "num_skipped": len(self.skipped),
            "skipped": self.skipped,
            "splits": split_counts,
            "shapes": {"C": self._shape[0], "V": self._shape[1], "M": self._shape[2]},
            "total_frames": int(lengths.sum()),
            "frame_labels": self._frame_labels is not None,
            "meta_keys": sorted(meta),
            "source_options": self.source_options,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "prepare_seconds": round(time.time() - self._started, 3),
        }
        with open(self.tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=1)
        self._move_into_place()
        return self.out

    def _move_into_place(self) -> None:
        old = None
        if self.out.exists():
            self._check_target()
            old = self.out.parent / f".{self.out.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(self.out, old)
        os.rename(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old)

    def abort(self) -> None:
        """Close the files and remove the temporary directory; ``out`` is left as it was."""
        for arr in (self._frames, self._frame_labels):
            if arr is not None and not arr._file.closed:
                arr._file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class SkeletonStore:
    """Read-only access to a prepared store (see the module docstring for the layout).

    Arrays are memory-mapped. Pages of ``frames.npy`` touched by reads count towards the process's resident
    memory while mapped; after every ``release_every_mb`` megabytes served, the mapping's pages are dropped from
    this process (``madvise(MADV_DONTNEED)``; the data stay in the OS page cache), so a pass over a store larger
    than RAM keeps a bounded footprint. The store can be pickled (e.g. to DataLoader workers): it reopens its
    files lazily instead of copying them.

    Args:
        path: the store directory.
        release_every_mb: drop mapped frame pages after this many megabytes read; ``None`` never drops them.
    """

    def __init__(self, path: str | os.PathLike, release_every_mb: float | None = 128.0) -> None:
        self.path = Path(path)
        self.release_every_mb = release_every_mb
        self.manifest = self._read_manifest()
        self._arrays: dict[str, np.ndarray] = {}
        self._frames: np.ndarray | None = None
        self._frame_labels: np.ndarray | None = None
        self._maps: list[mmap.mmap] = []
        self._bytes_since_release = 0
        self._validate()

    def _read_manifest(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise StoreError(f"{self.path}: no prepared store here (not a directory); run `ssl-skel prepare`")
        file = self.path / MANIFEST
        if not file.is_file():
            raise StoreError(f"{self.path}: no {MANIFEST}; the store is incomplete or was not written by prepare")
        try:
            manifest = json.loads(file.read_text())
        except json.JSONDecodeError as err:
            raise StoreError(f"{file}: unreadable manifest ({err})") from None
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise StoreError(
                f"{file}: unknown store format_version {version!r} (this version reads {FORMAT_VERSION}); "
                "prepare the data set again"
            )
        return manifest

    def _validate(self) -> None:
        n, f = self.manifest["num_samples"], self.manifest["total_frames"]
        shape = self.manifest["shapes"]
        expected = {
            "offsets": (n,),
            "lengths": (n,),
            "labels": (n,),
            "names": (n,),
            **{f"meta_{k}": (n,) for k in self.manifest["meta_keys"]},
            **{f"split_{s}": (n,) for s in self.manifest["splits"]},
        }
        for key, want in expected.items():
            got = self._array(key).shape
            if got != want:
                raise StoreError(f"{self.path / key}.npy: shape {got}, the manifest implies {want}")
        if self.frames.shape != (f, shape["C"], shape["V"], shape["M"]):
            raise StoreError(f"{self.path}/frames.npy: shape {self.frames.shape} does not match the manifest")
        if self.manifest["frame_labels"] and self._frame_label_array().shape != (f,):
            raise StoreError(f"{self.path}/frame_labels.npy: does not have {f} frames")

    def _array(self, key: str) -> np.ndarray:
        if key not in self._arrays:
            file = self.path / f"{key}.npy"
            if not file.is_file():
                raise StoreError(f"{file}: missing; the store is incomplete")
            self._arrays[key] = np.load(file, mmap_mode="r")
        return self._arrays[key]

    def _map(self, name: str) -> np.ndarray:
        """Memory-map ``name`` ourselves (as ``np.load(mmap_mode="r")`` does) to keep the handle for madvise."""
        file = self.path / name
        if not file.is_file():
            raise StoreError(f"{file}: missing; the store is incomplete")
        with open(file, "rb") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                shape, fortran, dtype = read_header[version](fh)
            except (ValueError, KeyError) as err:
                raise StoreError(f"{file}: not a readable .npy file ({err})") from None
            offset = fh.tell()
            size = os.fstat(fh.fileno()).st_size
            need = offset + int(np.prod(shape)) * dtype.itemsize
            if fortran or size < need:
                raise StoreError(f"{file}: truncated or not a C-ordered array ({size} bytes, {need} expected)")
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._maps.append(mm)
        return np.ndarray(shape, dtype=dtype, buffer=mm, offset=offset)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_arrays={}, _frames=None, _frame_labels=None, _maps=[], _bytes_since_release=0)
        return state

    @property
    def frames(self) -> np.ndarray:
        """``(F, C, V, M)`` float32 memory map of all frames."""
        if self._frames is None:
            self._frames = self._map("frames.npy")
        return self._frames

    def _frame_label_array(self) -> np.ndarray:
        if self._frame_labels is None:
            self._frame_labels = self._map("frame_labels.npy")
        return self._frame_labels

    def __len__(self) -> int:
        return int(self.manifest["num_samples"])

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        """Sample ``i`` as ``(data (C, T, V, M) float32 read-only view, label)``."""
        start, length = int(self.offsets[i]), int(self.lengths[i])
        data = self.frames[start : start + length].transpose(1, 0, 2, 3)
        self._count_read(data.nbytes)
        return data, int(self.labels[i])

    def _count_read(self, nbytes: int) -> None:
        if self.release_every_mb is None:
            return
        self._bytes_since_release += nbytes
        if self._bytes_since_release > self.release_every_mb * 2**20:
            self.release_pages()

    def release_pages(self) -> None:
        """Drop this process's mapped frame pages (they are re-read from the page cache or disk on access)."""
        for mm in self._maps:
            mm.madvise(mmap.MADV_DONTNEED)
        self._bytes_since_release = 0

    @property
    def offsets(self) -> np.ndarray:
        return self._array("offsets")

    @property
    def lengths(self) -> np.ndarray:
        """``(N,)`` int64 frames per sample."""
        return self._array("lengths")

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` int64 class indices (-1 unknown)."""
        return self._array("labels")

    @property
    def names(self) -> np.ndarray:
        """``(N,)`` sample names."""
        return self._array("names")

    @property
    def meta(self) -> dict[str, np.ndarray]:
        """Metadata columns ``{key: (N,) int64}``."""
        return {k: self._array(f"meta_{k}") for k in self.manifest["meta_keys"]}

    @property
    def layout(self) -> str:
        return str(self.manifest["layout"])

    @property
    def num_classes(self) -> int:
        return int(self.manifest["num_classes"])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, V, M)`` of every sample."""
        s = self.manifest["shapes"]
        return int(s["C"]), int(s["V"]), int(s["M"])

    @property
    def split_names(self) -> list[str]:
        return sorted(self.manifest["splits"])

    def split(self, name: str) -> np.ndarray:
        """``(N,)`` int8 split column: 1 train, 0 test, -1 unused."""
        if name not in self.manifest["splits"]:
            raise KeyError(f"{self.path}: no split {name!r}; the store has {self.split_names}")
        return self._array(f"split_{name}")

    def split_indices(self, name: str, part: str) -> np.ndarray:
        """Sorted ``int64`` sample indices of ``part`` (``"train"`` or ``"test"``) of split ``name``."""
        codes = {"train": 1, "test": 0}
        if part not in codes:
            raise ValueError(f"split part must be 'train' or 'test', got {part!r}")
        return np.flatnonzero(np.asarray(self.split(name)) == codes[part]).astype(np.int64)

    def frame_labels(self, i: int) -> np.ndarray:
        """``(T,)`` int64 frame-wise labels of sample ``i`` (untrimmed data sets only)."""
        if not self.manifest["frame_labels"]:
            raise KeyError(f"{self.path}: this store has no frame labels")
        start, length = int(self.offsets[i]), int(self.lengths[i])
        return self._frame_label_array()[start : start + length]

    def nbytes_on_disk(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"SkeletonStore({str(self.path)!r}, dataset={m['dataset']!r}, layout={m['layout']!r}, "
            f"samples={m['num_samples']}, frames={m['total_frames']})"
        )
