"""Property-based tests of every reader against hostile input: random truncations, random bytes, corrupted bytes,
NaN/inf values and wrong counts or shapes.

The outcome is always either a :class:`SkeletonFileError` naming the file, or samples with valid data
(float32 ``(C, T, V, M)``, ``T >= 1``, finite); never another exception or a hang. Where the format can tell,
a damaged file that still reads gives exactly the original data (a truncated PKU-MMD sequence: its complete
lines), never different numbers.
"""

from __future__ import annotations

import json
import pickle
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssl_skel.data.ntu_npz import NTUNpzSource
from ssl_skel.data.ntu_raw import RawBody, read_ntu_skeleton, write_ntu_skeleton
from ssl_skel.data.nw_ucla import read_nw_ucla
from ssl_skel.data.pku_mmd import PKUMMDSequenceSource
from ssl_skel.data.pyskl_pkl import PysklSource
from ssl_skel.data.sample import SkeletonFileError, SkeletonSample

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TIME_LIMIT = 120  # seconds for one read of a file of a few kilobytes: anything longer is a hang
NON_FINITE = st.sampled_from(["nan", "inf", "-inf", "1e999"])
SEEDS = st.integers(0, 2**32 - 1)


class Hang(BaseException):
    """Raised into a reader that runs past :data:`TIME_LIMIT` (a BaseException, so no reader can swallow it)."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def interrupt(signum: int, frame: object) -> None:
        raise Hang(f"the reader was still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(path: Path, read: Callable[[], list[SkeletonSample]]) -> list[SkeletonSample] | None:
    """The samples ``read`` gives (each checked valid), or ``None`` after a SkeletonFileError naming ``path``.

    Any other exception, or a read that does not end, fails the test.
    """
    with time_limit(TIME_LIMIT):
        try:
            samples = read()
        except SkeletonFileError as err:
            assert err.path == str(path) and path.name in str(err), f"the error does not name {path}: {err}"
            return None
    for sample in samples:
        assert sample.data.dtype == np.float32 and sample.data.ndim == 4 and sample.num_frames >= 1
        assert np.isfinite(sample.data).all(), f"{sample.name}: non-finite values were read"
    return samples


def assert_same(a: list[SkeletonSample], b: list[SkeletonSample]) -> None:
    assert [s.name for s in a] == [s.name for s in b] and [s.label for s in a] == [s.label for s in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.data, y.data)


def corrupt(data: bytes, draw: st.DrawFn) -> bytes:
    """``data`` with 1 to 4 bytes overwritten by random values."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory per example (readers may cache by path)."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


# NTU raw .skeleton -------------------------------------------------------------------------------------------------
NTU_NAME = "S001C001P001R001A001.skeleton"


def ntu_file(seed: int, frames: int, bodies: int) -> bytes:
    rng = np.random.default_rng(seed)
    with scratch() as tmp:
        raw = [RawBody(str(72057594037930000 + b), np.arange(frames), rng.uniform(-1, 2, (frames, 25, 3)))
               for b in range(bodies)]
        write_ntu_skeleton(tmp / NTU_NAME, raw, frames)
        return (tmp / NTU_NAME).read_bytes()


def ntu_outcome(data: bytes) -> list[SkeletonSample] | None:
    with scratch() as tmp:
        path = tmp / NTU_NAME
        path.write_bytes(data)
        return outcome(path, lambda: [read_ntu_skeleton(path)])


NTU_FILES = st.builds(ntu_file, SEEDS, st.integers(12, 16), st.integers(1, 2))


@SETTINGS
@given(NTU_FILES, st.data())
def test_ntu_raw_truncated_is_an_error_or_the_same_data(data: bytes, draw: st.DataObject) -> None:
    original = ntu_outcome(data)
    assert original is not None
    cut = ntu_outcome(data[: draw.draw(st.integers(0, len(data) - 1))])
    if cut is not None:  # only the final line break was cut
        assert_same(cut, original)


def expect_error(path: Path, problem: str, read: Callable[[], object]) -> None:
    """``read`` raises a SkeletonFileError naming ``path`` whose problem contains ``problem``."""
    with time_limit(TIME_LIMIT), pytest.raises(SkeletonFileError) as info:
        read()
    assert info.value.path == str(path) and problem in info.value.problem, info.value


@SETTINGS
@given(st.binary(max_size=4000))
def test_ntu_raw_random_bytes(data: bytes) -> None:
    ntu_outcome(data)


@SETTINGS
@given(NTU_FILES, st.data())
def test_ntu_raw_corrupted_bytes(data: bytes, draw: st.DataObject) -> None:
    ntu_outcome(corrupt(data, draw.draw))


@SETTINGS
@given(NTU_FILES, st.data(), NON_FINITE)
def test_ntu_raw_non_finite_coordinates_are_an_error(data: bytes, draw: st.DataObject, value: str) -> None:
    lines = data.decode().split("\r\n")
    row = draw.draw(st.sampled_from([i for i, line in enumerate(lines) if len(line.split()) == 12]))
    tokens = lines[row].split()
    tokens[draw.draw(st.integers(0, 2))] = value
    lines[row] = " ".join(tokens)
    with scratch() as tmp:
        path = tmp / NTU_NAME
        path.write_bytes("\r\n".join(lines).encode())
        expect_error(path, "non-finite", lambda: read_ntu_skeleton(path))


@SETTINGS
@given(NTU_FILES, st.data(), st.integers(-3, 60))
def test_ntu_raw_wrong_counts_are_an_error(data: bytes, draw: st.DataObject, count: int) -> None:
    """A frame, body or joint count changed to another number."""
    lines = data.decode().split("\r\n")
    row = draw.draw(st.sampled_from([i for i, line in enumerate(lines) if len(line.split()) == 1]))
    if int(lines[row]) == count:
        return
    lines[row] = str(count)
    assert ntu_outcome("\r\n".join(lines).encode()) is None


# NTU .npz -----------------------------------------------------------------------------------------------------------
def npz_arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (2, 12, 150)).astype(np.float32)
    y = np.eye(60, dtype=np.float32)[rng.integers(0, 60, 2)]
    return {"x_train": x, "y_train": y, "x_test": x[::-1].copy(), "y_test": y[::-1].copy()}


def npz_file(arrays: dict[str, np.ndarray], compressed: bool) -> bytes:
    with scratch() as tmp:
        (np.savez_compressed if compressed else np.savez)(tmp / "a.npz", **arrays)
        return (tmp / "a.npz").read_bytes()


def npz_outcome(data: bytes) -> list[SkeletonSample] | None:
    with scratch() as tmp:
        path = tmp / "NTU60_CS.npz"
        path.write_bytes(data)
        source = NTUNpzSource()
        return outcome(path, lambda: [source.load(path, item) for item in source.items(path)])


NPZ_FILES = st.builds(lambda seed, compressed: npz_file(npz_arrays(seed), compressed), SEEDS, st.booleans())


@SETTINGS
@given(NPZ_FILES, st.data())
def test_ntu_npz_truncated_is_an_error(data: bytes, draw: st.DataObject) -> None:
    assert npz_outcome(data) is not None
    assert npz_outcome(data[: draw.draw(st.integers(0, len(data) - 1))]) is None


@SETTINGS
@given(st.binary(max_size=4000))
def test_ntu_npz_random_bytes(data: bytes) -> None:
    npz_outcome(data)


@SETTINGS
@given(NPZ_FILES, st.data())
def test_ntu_npz_corrupted_bytes_are_an_error_or_the_same_data(data: bytes, draw: st.DataObject) -> None:
    """The members' CRC-32 is checked, so that a damaged file never reads as different numbers."""
    damaged = npz_outcome(corrupt(data, draw.draw))
    if damaged is not None:
        assert_same(damaged, npz_outcome(data))


@SETTINGS
@given(SEEDS, st.booleans(), st.sampled_from(["x_train", "x_test"]), st.data(),
       st.sampled_from([np.nan, np.inf, -np.inf]))
def test_ntu_npz_non_finite_values_are_an_error(seed: int, compressed: bool, key: str, draw: st.DataObject,
                                                value: float) -> None:
    arrays = npz_arrays(seed)
    index = tuple(draw.draw(st.integers(0, n - 1)) for n in arrays[key].shape)
    arrays[key][index] = value
    with scratch() as tmp:
        path = tmp / "NTU60_CS.npz"
        path.write_bytes(npz_file(arrays, compressed))
        source = NTUNpzSource()
        expect_error(path, "non-finite", lambda: [source.load(path, item) for item in source.items(path)])


@SETTINGS
@given(SEEDS, st.sampled_from(["x_train", "y_train", "x_test", "y_test"]), st.data())
def test_ntu_npz_wrong_shapes_are_an_error(seed: int, key: str, draw: st.DataObject) -> None:
    arrays = npz_arrays(seed)
    shape = list(arrays[key].shape)
    dim = draw.draw(st.sampled_from([0, 2] if key.startswith("x") else [0, 1]))  # any number of frames is fine
    shape[dim] += draw.draw(st.sampled_from([-1, 1, 7]))
    dims = draw.draw(st.sampled_from([shape, shape[:-1], [*shape, 2]]))
    arrays[key] = np.ones(dims, dtype=np.float32)
    assert npz_outcome(npz_file(arrays, False)) is None


# NW-UCLA json -------------------------------------------------------------------------------------------------------
UCLA_NAME = "a01_s01_e00_v01"


def ucla_record(seed: int, frames: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"file_name": UCLA_NAME, "skeletons": rng.uniform(-1, 3, (frames, 20, 3)).round(5).tolist(), "label": 1}


def ucla_outcome(data: bytes) -> list[SkeletonSample] | None:
    with scratch() as tmp:
        path = tmp / f"{UCLA_NAME}.json"
        path.write_bytes(data)
        return outcome(path, lambda: [read_nw_ucla(path)])


UCLA_FILES = st.builds(lambda seed, frames: json.dumps(ucla_record(seed, frames)).encode(), SEEDS, st.integers(1, 6))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=30,
)


@SETTINGS
@given(UCLA_FILES, st.data())
def test_nw_ucla_truncated_or_corrupted(data: bytes, draw: st.DataObject) -> None:
    assert ucla_outcome(data) is not None
    assert ucla_outcome(data[: draw.draw(st.integers(0, len(data) - 1))]) is None
    ucla_outcome(corrupt(data, draw.draw))


@SETTINGS
@given(st.binary(max_size=2000))
def test_nw_ucla_random_bytes(data: bytes) -> None:
    ucla_outcome(data)


@SETTINGS
@given(SEEDS, st.sampled_from(["file_name", "skeletons", "label", None]), JSON)
def test_nw_ucla_random_json_values(seed: int, key: str | None, value: object) -> None:
    """A random json value for one key of a good record, or as the whole record."""
    record: object = {**ucla_record(seed, 3), key: value} if key else value
    ucla_outcome(json.dumps(record).encode())


@SETTINGS
@given(SEEDS, st.integers(1, 6), st.data(), st.sampled_from([float("nan"), float("inf"), -float("inf")]))
def test_nw_ucla_non_finite_values_are_an_error(seed: int, frames: int, draw: st.DataObject, value: float) -> None:
    record = ucla_record(seed, frames)
    record["skeletons"][draw.draw(st.integers(0, frames - 1))][draw.draw(st.integers(0, 19))][
        draw.draw(st.integers(0, 2))] = value
    with scratch() as tmp:
        path = tmp / f"{UCLA_NAME}.json"
        path.write_text(json.dumps(record))
        expect_error(path, "non-finite", lambda: read_nw_ucla(path))


@SETTINGS
@given(SEEDS, st.integers(0, 4), st.integers(0, 25), st.integers(0, 5))
def test_nw_ucla_wrong_counts_are_an_error(seed: int, frames: int, joints: int, coords: int) -> None:
    if frames >= 1 and joints == 20 and coords == 3:
        return
    record = ucla_record(seed, 1)
    record["skeletons"] = np.ones((frames, joints, coords)).tolist()
    assert ucla_outcome(json.dumps(record).encode()) is None


# PKU-MMD ------------------------------------------------------------------------------------------------------------
VIDEO = "0002-L"


def pku_raw(tmp: Path, skeleton: bytes, labels: bytes) -> Path:
    for folder in ("skeleton", "label", "split"):
        (tmp / folder).mkdir()
    for name in ("cross-subject.txt", "cross-view.txt"):
        (tmp / "split" / name).write_text(f"Training videos:\n{VIDEO}, \nValidation videos:\n0002-M, \n")
    (tmp / "skeleton" / f"{VIDEO}.txt").write_bytes(skeleton)
    (tmp / "label" / f"{VIDEO}.txt").write_bytes(labels)
    return tmp


def pku_skeleton(seed: int, frames: int) -> bytes:
    rng = np.random.default_rng(seed)
    with scratch() as tmp:
        np.savetxt(tmp / "s.txt", rng.uniform(-1, 3, (frames, 150)), fmt="%.6f")
        return (tmp / "s.txt").read_bytes()


LABELS = b"3,0,5,1\n7,4,9,2\n"
PKU_SKELETONS = st.builds(pku_skeleton, SEEDS, st.integers(1, 10))


def pku_outcome(skeleton: bytes, labels: bytes = LABELS, damaged: str = "skeleton") -> list[SkeletonSample] | None:
    with scratch() as tmp:
        raw = pku_raw(tmp, skeleton, labels)
        return outcome(raw / damaged / f"{VIDEO}.txt", lambda: [PKUMMDSequenceSource().load(raw, VIDEO)])


@SETTINGS
@given(PKU_SKELETONS, st.data())
def test_pku_mmd_truncated_gives_an_error_or_the_complete_lines(data: bytes, draw: st.DataObject) -> None:
    (original,) = pku_outcome(data)
    cut = pku_outcome(data[: draw.draw(st.integers(0, len(data) - 1))])
    if cut is not None:  # cut at a line break: the complete frames before it, exactly
        frames = cut[0].num_frames
        np.testing.assert_array_equal(cut[0].data, original.data[:, :frames])
        np.testing.assert_array_equal(cut[0].frame_labels, original.frame_labels[:frames])


@SETTINGS
@given(st.binary(max_size=3000))
def test_pku_mmd_random_skeleton_bytes(data: bytes) -> None:
    pku_outcome(data)


@SETTINGS
@given(PKU_SKELETONS, st.data())
def test_pku_mmd_corrupted_skeleton_bytes(data: bytes, draw: st.DataObject) -> None:
    pku_outcome(corrupt(data, draw.draw))


@SETTINGS
@given(PKU_SKELETONS, st.one_of(st.binary(max_size=200), st.text(alphabet="0123456789,-\n .", max_size=60)
                                .map(str.encode)))
def test_pku_mmd_random_label_files(skeleton: bytes, labels: bytes) -> None:
    pku_outcome(skeleton, labels, damaged="label")


@SETTINGS
@given(PKU_SKELETONS, st.data(), NON_FINITE)
def test_pku_mmd_non_finite_values_are_an_error(data: bytes, draw: st.DataObject, value: str) -> None:
    lines = data.decode().splitlines()
    row, column = draw.draw(st.integers(0, len(lines) - 1)), draw.draw(st.integers(0, 149))
    tokens = lines[row].split()
    tokens[column] = value
    lines[row] = " ".join(tokens)
    with scratch() as tmp:
        raw = pku_raw(tmp, ("\n".join(lines) + "\n").encode(), LABELS)
        path = raw / "skeleton" / f"{VIDEO}.txt"
        expect_error(path, "non-finite", lambda: PKUMMDSequenceSource().load(raw, VIDEO))


@SETTINGS
@given(PKU_SKELETONS, st.data(), st.sampled_from([-1, 1, -150, 150]))
def test_pku_mmd_wrong_value_counts_are_an_error(data: bytes, draw: st.DataObject, change: int) -> None:
    lines = data.decode().splitlines()
    last = len(lines) - 1
    # emptying the last line leaves a trailing blank line: a valid file with one frame fewer, not a wrong count
    row = draw.draw(st.integers(0, last - 1 if change == -150 and last > 0 else last))
    tokens = lines[row].split()
    lines[row] = " ".join(tokens[:change] if change < 0 else tokens + ["0.5"] * change)
    assert pku_outcome(("\n".join(lines) + "\n").encode()) is None


# pyskl .pkl ---------------------------------------------------------------------------------------------------------
def pyskl_content(seed: int, persons: int, frames: int) -> dict:
    rng = np.random.default_rng(seed)
    anns = [{"frame_dir": f"clip{i}", "label": int(rng.integers(0, 60)), "total_frames": frames,
             "img_shape": (480, 640), "keypoint": rng.uniform(0, 500, (persons, frames, 17, 2)).astype(np.float32),
             "keypoint_score": rng.uniform(0, 1, (persons, frames, 17)).astype(np.float32)} for i in range(2)]
    return {"split": {"xsub_train": ["clip0"], "xsub_val": ["clip1"]}, "annotations": anns}


def pyskl_outcome(data: bytes) -> list[SkeletonSample] | None:
    with scratch() as tmp:
        path = tmp / "ntu60_2d.pkl"
        path.write_bytes(data)
        source = PysklSource(layout="coco17", num_classes=60)
        return outcome(path, lambda: [source.load(path, item) for item in source.items(path)])


PYSKL_CONTENTS = st.builds(pyskl_content, SEEDS, st.integers(1, 2), st.integers(1, 5))
PYSKL_FILES = st.builds(lambda content, protocol: pickle.dumps(content, protocol=protocol), PYSKL_CONTENTS,
                        st.sampled_from([2, 4, 5]))


@SETTINGS
@given(PYSKL_FILES, st.data())
def test_pyskl_truncated_is_an_error_and_corrupted_bytes_are_clean(data: bytes, draw: st.DataObject) -> None:
    assert pyskl_outcome(data) is not None
    assert pyskl_outcome(data[: draw.draw(st.integers(0, len(data) - 1))]) is None
    pyskl_outcome(corrupt(data, draw.draw))


@SETTINGS
@given(st.binary(max_size=2000))
def test_pyskl_random_bytes(data: bytes) -> None:
    pyskl_outcome(data)


ANNOTATION_VALUES = st.one_of(
    JSON,
    st.builds(lambda shape: np.ones(shape, dtype=np.float32), st.lists(st.integers(0, 18), max_size=4)),
    st.builds(lambda shape: np.ones(shape, dtype=np.int64), st.lists(st.integers(0, 18), max_size=4)),
)


@SETTINGS
@given(PYSKL_CONTENTS, st.sampled_from(["frame_dir", "label", "total_frames", "img_shape", "keypoint",
                                        "keypoint_score", "split", "annotations"]), ANNOTATION_VALUES)
def test_pyskl_wrong_values_shapes_and_counts(content: dict, key: str, value: object) -> None:
    """A random value (json-like, or an array of a random shape) for one key of an annotation or of the file."""
    if key in ("split", "annotations"):
        content[key] = value
    else:
        content["annotations"][0][key] = value
    pyskl_outcome(pickle.dumps(content, protocol=4))


@SETTINGS
@given(PYSKL_CONTENTS, st.sampled_from(["keypoint", "keypoint_score"]), st.data(),
       st.sampled_from([np.nan, np.inf, -np.inf]))
def test_pyskl_non_finite_values_are_an_error(content: dict, key: str, draw: st.DataObject, value: float) -> None:
    array = content["annotations"][1][key]
    array[tuple(draw.draw(st.integers(0, n - 1)) for n in array.shape)] = value
    with scratch() as tmp:
        path = tmp / "ntu60_2d.pkl"
        path.write_bytes(pickle.dumps(content, protocol=4))
        source = PysklSource(layout="coco17", num_classes=60)
        expect_error(path, "non-finite", lambda: [source.load(path, item) for item in source.items(path)])
