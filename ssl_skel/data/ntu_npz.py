"""NTU RGB+D preprocessed ``.npz`` (CTR-GCN release) with row access in bounded memory.

The file holds ``x_train (N, 300, 150)`` float32 (150 = 2 persons x 25 joints x 3, zero-padded in time),
``y_train (N, K)`` one-hot with K = 60 or 120, and ``x_test`` / ``y_test``. ``np.load`` reads a whole member into
memory (10+ GB for NTU-120), so :func:`open_npz_member` memory-maps members stored uncompressed in the zip and
loads only compressed ones. Either way the member's CRC-32 is checked first (in bounded memory for a stored one),
so that a corrupted file is an error rather than different numbers.
"""

from __future__ import annotations

import struct
import tokenize
import zipfile
import zlib
from os import PathLike
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .sample import SkeletonFileError, SkeletonSample

__all__ = ["NTUNpzSource", "npz_row_to_sample_data", "open_npz_member"]

_LOCAL_HEADER = 30  # fixed part of a zip local file header
_CRC_CHUNK = 1 << 24  # bytes read at a time to check a stored member
NUM_JOINTS, NUM_PERSONS = 25, 2
_PARTS = ("train", "test")


def _check_crc(f: BinaryIO, start: int, info: zipfile.ZipInfo) -> bool:
    """Whether the ``info.compress_size`` bytes of ``f`` from ``start`` have the CRC-32 ``info.CRC``."""
    f.seek(start)
    crc, remaining = 0, info.compress_size
    while remaining:
        chunk = f.read(min(remaining, _CRC_CHUNK))
        if not chunk:
            return False
        crc, remaining = zlib.crc32(chunk, crc), remaining - len(chunk)
    return crc == info.CRC


def open_npz_member(path: str | PathLike, key: str) -> np.ndarray:
    """Array ``key`` of the ``.npz`` at ``path``: a read-only memmap when stored uncompressed, else loaded.

    Raises:
        SkeletonFileError: not a zip, no such member, a member whose CRC-32 does not match, or a malformed /
            truncated ``.npy`` member.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(f"{key}.npy")
            except KeyError:
                names = sorted(n.removesuffix(".npy") for n in archive.namelist())
                raise SkeletonFileError(path, f"missing array {key!r} (the file has {names})") from None
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    return np.lib.format.read_array(member, allow_pickle=False)
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            header = f.read(_LOCAL_HEADER)
            if len(header) != _LOCAL_HEADER or header[:4] != b"PK\x03\x04":
                raise SkeletonFileError(path, f"member {key}.npy: bad zip local header")
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            data_start = info.header_offset + _LOCAL_HEADER + name_len + extra_len
            if not _check_crc(f, data_start, info):
                raise SkeletonFileError(path, f"member {key}.npy is corrupt or truncated (CRC-32 mismatch)")
            f.seek(data_start)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise SkeletonFileError(path, f"member {key}.npy: unsupported .npy version {version}")
            offset = f.tell()
        if dtype.hasobject:
            raise SkeletonFileError(path, f"member {key}.npy holds Python objects, not numbers")
        if offset + int(np.prod(shape)) * dtype.itemsize > data_start + info.file_size:
            raise SkeletonFileError(path, f"member {key}.npy is truncated")
        if int(np.prod(shape)) == 0:
            return np.zeros(shape, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    except SkeletonFileError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error, zlib.error, NotImplementedError,
            RuntimeError, MemoryError, SyntaxError, tokenize.TokenError) as err:
        # also: unsupported compression, encryption, corrupt deflate data, a garbled .npy header dictionary
        raise SkeletonFileError(path, f"cannot read array {key!r} ({type(err).__name__}: {err})") from err


def npz_row_to_sample_data(row: np.ndarray) -> np.ndarray:
    """``(T_pad, 150)`` row -> ``(3, T, 25, 2)`` float32 with the trailing all-zero frames removed.

    Raises:
        ValueError: the row has no non-zero frame, or non-finite values.
    """
    frames = np.flatnonzero(np.any(row != 0, axis=1))
    if len(frames) == 0:
        raise ValueError("every frame is zero")
    row = np.asarray(row[: frames[-1] + 1], dtype=np.float32)
    if not np.isfinite(row).all():
        raise ValueError("non-finite (NaN/inf) coordinates")
    return np.ascontiguousarray(row.reshape(-1, NUM_PERSONS, NUM_JOINTS, 3).transpose(3, 0, 2, 1))


class _NpzArrays:
    """The four arrays of one file, checked: ``x[part]`` (memmap or array) and 0-based ``labels[part]``."""

    def __init__(self, path: Path, num_classes: int) -> None:
        self.x: dict[str, np.ndarray] = {}
        self.labels: dict[str, np.ndarray] = {}
        for part in _PARTS:
            x = open_npz_member(path, f"x_{part}")
            y = np.asarray(open_npz_member(path, f"y_{part}"))
            for name, array in ((f"x_{part}", x), (f"y_{part}", y)):
                if array.dtype.kind not in "biuf":
                    raise SkeletonFileError(path, f"{name} has dtype {array.dtype}, expected real numbers")
            if x.ndim != 3 or x.shape[2] != NUM_PERSONS * NUM_JOINTS * 3:
                raise SkeletonFileError(
                    path, f"x_{part} has shape {x.shape}, expected (N, T, {NUM_PERSONS * NUM_JOINTS * 3}) for "
                    f"{NUM_PERSONS} persons x {NUM_JOINTS} joints x 3")
            if x.shape[1] == 0:
                raise SkeletonFileError(path, f"x_{part} has zero frames")
            if y.shape != (len(x), num_classes):
                expected = f"({len(x)}, {num_classes}) one-hot"
                raise SkeletonFileError(path, f"y_{part} has shape {y.shape}, expected {expected}")
            if not (np.count_nonzero(y, axis=1) == 1).all() or not (y.max(axis=1) == 1).all():
                raise SkeletonFileError(path, f"y_{part} is not one-hot")
            self.x[part], self.labels[part] = x, np.argmax(y, axis=1)


class NTUNpzSource:
    """The CTR-GCN ``.npz`` release of one NTU benchmark (e.g. ``NTU60_CS.npz``).

    Items are ``train_000000``, ..., ``test_000000``, ...; meta ``{train: 1 | 0, index}``.

    Args:
        dataset: registry name.
        num_classes: 60 or 120 (checked against the one-hot width).
        split: name of the split the file encodes (``xsub``, ``xview``, ``xset``).
        filename: the ``.npz`` inside ``raw`` when ``raw`` is a directory (default: its only ``.npz``).
    """

    layout = "ntu25"

    def __init__(self, dataset: str = "ntu_npz", num_classes: int = 60, split: str = "xsub",
                 filename: str | None = None) -> None:
        self.name = dataset
        self.num_classes = num_classes
        self.split = split
        self.filename = filename
        self._cache: dict[Path, _NpzArrays] = {}

    def _file(self, raw: Path) -> Path:
        raw = Path(raw)
        if raw.is_dir():
            if self.filename is not None:
                raw = raw / self.filename
            else:
                found = sorted(raw.glob("*.npz"))
                if len(found) != 1:
                    raise FileNotFoundError(f"{self.name}: expected one .npz file in {raw}, found {len(found)}; "
                                            "set `filename`")
                raw = found[0]
        if not raw.is_file():
            raise FileNotFoundError(f"{self.name}: {raw} not found")
        return raw

    def _arrays(self, raw: Path) -> tuple[Path, _NpzArrays]:
        path = self._file(raw)
        if path not in self._cache:
            self._cache[path] = _NpzArrays(path, self.num_classes)
        return path, self._cache[path]

    def items(self, raw: Path) -> list[str]:
        _, arrays = self._arrays(raw)
        return [f"{part}_{i:06d}" for part in _PARTS for i in range(len(arrays.x[part]))]

    def load(self, raw: Path, item: str) -> SkeletonSample:
        path, arrays = self._arrays(raw)
        part, _, index = item.partition("_")
        if part not in _PARTS or not index.isdigit() or int(index) >= len(arrays.x[part]):
            raise KeyError(f"{self.name}: no item {item!r} in {path}")
        i = int(index)
        try:
            data = npz_row_to_sample_data(arrays.x[part][i])
        except ValueError as err:
            raise SkeletonFileError(path, f"x_{part}[{i}]: {err}") from None
        meta = {"train": int(part == "train"), "index": i}
        return SkeletonSample(name=item, data=data, label=int(arrays.labels[part][i]), meta=meta)

    def splits(self, names: list[str], meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {self.split: np.asarray(meta["train"]).astype(np.int8)}
