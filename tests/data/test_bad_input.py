"""Every reader turns malformed input into a SkeletonFileError naming the file and the problem."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ssl_skel.data.ntu_npz import NTUNpzSource
from ssl_skel.data.ntu_raw import RawBody, read_ntu_skeleton, write_ntu_skeleton
from ssl_skel.data.nw_ucla import read_nw_ucla
from ssl_skel.data.pku_mmd import PKUMMDClipSource, PKUMMDSequenceSource
from ssl_skel.data.pyskl_pkl import PysklSource
from ssl_skel.data.sample import SkeletonFileError

RNG = np.random.default_rng(0)


def expect_error(path: Path, problem: str, read: Callable[[], object]) -> None:
    with pytest.raises(SkeletonFileError) as info:
        read()
    assert info.value.path == str(path) and path.name in str(info.value)
    assert problem in info.value.problem, info.value.problem


# NTU raw .skeleton ---------------------------------------------------------------------------------------------
def ntu_lines(tmp_path: Path) -> list[str]:
    joints = RNG.uniform(-1, 1, (15, 25, 3)).astype(np.float32)
    write_ntu_skeleton(tmp_path / "good.skeleton", [RawBody("1", np.arange(15), joints)], 15)
    return (tmp_path / "good.skeleton").read_text().splitlines()


def ntu_case(lines: list[str], case: str) -> str:
    if case == "truncated":
        return "\r\n".join(lines[: len(lines) // 2])
    if case == "non-numeric":
        lines[40] = lines[40].replace(lines[40].split()[1], "abc", 1)
    elif case == "nan":
        lines[40] = "nan " + " ".join(lines[40].split()[1:])
    elif case == "inf":
        lines[40] = "0 -inf " + " ".join(lines[40].split()[2:])
    elif case == "joint count":
        lines[3] = "24"
    elif case == "zero frames":
        return "0\r\n"
    elif case == "no bodies":
        return "\r\n".join(["3", "0", "0", "0"])
    elif case == "empty":
        return ""
    elif case == "short values":
        lines[40] = " ".join(lines[40].split()[:11])
    elif case == "binary":
        return "15\r\n\xff\xfe"
    return "\r\n".join(lines)


@pytest.mark.parametrize(
    ("case", "problem"),
    [("truncated", "truncated"), ("non-numeric", "malformed joint line"), ("nan", "non-finite"),
     ("inf", "non-finite"), ("joint count", "24 joints, expected 25"), ("zero frames", "declares 0 frames"),
     ("no bodies", "no body is tracked"), ("empty", "empty file"), ("short values", "malformed joint line"),
     ("binary", "")],
)
def test_ntu_raw(tmp_path: Path, case: str, problem: str) -> None:
    path = tmp_path / "S001C001P001R001A001.skeleton"
    text = ntu_case(ntu_lines(tmp_path), case)
    path.write_bytes(text.encode("latin-1"))
    expect_error(path, problem, lambda: read_ntu_skeleton(path))


def test_ntu_raw_bad_name(tmp_path: Path) -> None:
    ntu_lines(tmp_path)
    path = tmp_path / "good.skeleton"
    expect_error(path, "not an NTU sample name", lambda: read_ntu_skeleton(path))


# NTU .npz -------------------------------------------------------------------------------------------------------
def npz_arrays() -> dict[str, np.ndarray]:
    x = np.zeros((2, 300, 150), dtype=np.float32)
    x[:, :20] = RNG.normal(size=(2, 20, 150))
    y = np.eye(60, dtype=np.float32)[[3, 5]]
    return {"x_train": x, "y_train": y, "x_test": x.copy(), "y_test": y}


@pytest.mark.parametrize(
    ("case", "problem"),
    [("truncated", "cannot read array"), ("corrupt", "cannot read array"), ("nan", "x_train[1]: non-finite"),
     ("joint count", "expected (N, T, 150)"), ("zero frames", "x_train[1]: every frame is zero"),
     ("no frames", "x_train has zero frames"), ("missing key", "missing array 'y_test'"),
     ("object array", "holds Python objects"), ("not one-hot", "y_train is not one-hot")],
)
def test_ntu_npz(tmp_path: Path, case: str, problem: str) -> None:
    path = tmp_path / "NTU60_CS.npz"
    arrays = npz_arrays()
    if case == "nan":
        arrays["x_train"][1, 3, 7] = np.nan
    elif case == "joint count":
        arrays["x_train"] = arrays["x_train"][:, :, :120]
    elif case == "zero frames":
        arrays["x_train"][1] = 0
    elif case == "no frames":
        arrays["x_train"] = arrays["x_train"][:, :0]
    elif case == "missing key":
        del arrays["y_test"]
    elif case == "object array":
        arrays["x_test"] = np.array([None, 1], dtype=object)
    elif case == "not one-hot":
        arrays["y_train"] = arrays["y_train"] * 2
    np.savez(path, **arrays)
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:100_000])
    elif case == "corrupt":
        path.write_bytes(RNG.bytes(5000))
    source = NTUNpzSource()
    expect_error(path, problem, lambda: [source.load(path, item) for item in source.items(path)])


# NW-UCLA json ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "problem"),
    [("truncated", "cannot parse json"), ("non-numeric", "not a numeric"), ("nan", "non-finite"),
     ("joint count", "expected (T >= 1, 20, 3)"), ("zero frames", "expected (T >= 1, 20, 3)"),
     ("missing key", "missing key(s) ['label']"), ("ragged", "not a numeric"), ("bad label", "label 11"),
     ("name mismatch", "does not match"), ("not an object", "expected a json object"), ("binary", "cannot parse")],
)
def test_nw_ucla(tmp_path: Path, case: str, problem: str) -> None:
    path = tmp_path / "a01_s01_e00_v01.json"
    frames = RNG.uniform(-1, 3, (5, 20, 3)).round(4).tolist()
    record: object = {"file_name": path.stem, "skeletons": frames, "label": 1}
    if case == "non-numeric":
        frames[2][3][1] = "x"
    elif case == "nan":
        frames[2][3][1] = float("nan")
    elif case == "joint count":
        record["skeletons"] = [f[:19] for f in frames]
    elif case == "zero frames":
        record["skeletons"] = []
    elif case == "missing key":
        del record["label"]
    elif case == "ragged":
        frames[1] = frames[1][:10]
    elif case == "bad label":
        record["label"] = 11
    elif case == "name mismatch":
        record["file_name"] = "a01_s01_e00_v02"
    elif case == "not an object":
        record = frames
    text = json.dumps(record)
    if case == "truncated":
        text = text[: len(text) // 2]
    path.write_bytes(b"\xff\xfe\x00" if case == "binary" else text.encode())
    expect_error(path, problem, lambda: read_nw_ucla(path))


# PKU-MMD --------------------------------------------------------------------------------------------------------
def pku_raw(tmp_path: Path) -> Path:
    for folder in ("skeleton", "label", "split"):
        (tmp_path / folder).mkdir()
    for name in ("cross-subject.txt", "cross-view.txt"):
        (tmp_path / "split" / name).write_text("Training videos:\n0002-L, \nValidation videos:\n0002-M, \n")
    np.savetxt(tmp_path / "skeleton" / "0002-L.txt", RNG.uniform(-1, 3, (40, 150)), fmt="%.6f")
    (tmp_path / "label" / "0002-L.txt").write_text("3,5,20,1\n7,22,39,2\n")
    return tmp_path


@pytest.mark.parametrize(
    ("case", "problem"),
    [("truncated", "truncated: its last line has no line break"), ("non-numeric", "malformed skeleton file"),
     ("nan", "non-finite"),
     ("joint count", "147 values per frame, expected 150"), ("zero frames", "no frames"),
     ("missing label file", "label file not found"), ("bad label", "malformed label file"),
     ("label columns", "3 values per line, expected 4"), ("action id", "action id 52 outside 1..51"),
     ("binary", "malformed skeleton file")],
)
def test_pku_mmd(tmp_path: Path, case: str, problem: str) -> None:
    raw = pku_raw(tmp_path)
    skeleton, label = raw / "skeleton" / "0002-L.txt", raw / "label" / "0002-L.txt"
    lines = skeleton.read_text().splitlines()
    if case == "truncated":
        skeleton.write_text("\n".join(lines)[:-300])
    elif case == "non-numeric":
        skeleton.write_text("\n".join([*lines[:5], lines[5].replace(lines[5].split()[3], "1.0.0"), *lines[6:]]) + "\n")
    elif case == "nan":
        skeleton.write_text("\n".join([*lines[:5], "nan " + " ".join(lines[5].split()[1:]), *lines[6:]]) + "\n")
    elif case == "joint count":
        skeleton.write_text("\n".join(" ".join(line.split()[:147]) for line in lines) + "\n")
    elif case == "zero frames":
        skeleton.write_text("")
    elif case == "missing label file":
        label.unlink()
    elif case == "bad label":
        label.write_text("3,5,twenty,1\n")
    elif case == "label columns":
        label.write_text("3,5,20\n")
    elif case == "action id":
        label.write_text("52,5,20,1\n")
    elif case == "binary":
        skeleton.write_bytes(b"\xff\xfe\x00\x01" * 50)
    bad = label if "label" in case or case == "action id" else skeleton
    expect_error(bad, problem, lambda: PKUMMDSequenceSource().load(raw, "0002-L"))


def test_pku_mmd_clip_outside_sequence(tmp_path: Path) -> None:
    raw = pku_raw(tmp_path)
    label = raw / "label" / "0002-L.txt"
    label.write_text("3,5,20,1\n7,45,60,2\n")
    source = PKUMMDClipSource()
    assert source.items(raw) == ["0002-L_000", "0002-L_001"]
    assert source.load(raw, "0002-L_000").num_frames == 15
    expect_error(label, "interval 001 is empty within the 40 frames", lambda: source.load(raw, "0002-L_001"))
    label.unlink()
    with pytest.raises(FileNotFoundError, match=r"label file .*0002-L\.txt not found"):
        source.items(raw)


# pyskl .pkl ------------------------------------------------------------------------------------------------------
def pyskl_annotation() -> dict:
    return {"frame_dir": "clip", "label": 4, "total_frames": 10, "img_shape": (480, 640),
            "keypoint": RNG.uniform(0, 500, (2, 10, 17, 2)).astype(np.float32),
            "keypoint_score": RNG.uniform(0, 1, (2, 10, 17)).astype(np.float32)}


@pytest.mark.parametrize(
    ("case", "problem"),
    [("truncated", "malformed pickle"), ("corrupt", "pickle"), ("non-numeric", "not numeric arrays"),
     ("nan", "non-finite"), ("inf score", "non-finite"), ("joint count", "keypoint has 18 joints, the layout has 17"),
     ("zero frames", "0 frames"), ("no persons", "0 persons"), ("missing key", "missing key(s) ['keypoint']"),
     ("missing split", "missing key 'split'"), ("score shape", "keypoint_score has shape"),
     ("total_frames", "total_frames is 11"), ("label", "label 60 is not an integer"),
     ("not a dict", "expected a dict with an 'annotations' list"), ("coordinate dims", "expected (M, T, V, 2 or 3)")],
)
def test_pyskl(tmp_path: Path, case: str, problem: str) -> None:
    path = tmp_path / "data.pkl"
    ann = pyskl_annotation()
    content: object = {"split": {"xsub_train": ["clip"]}, "annotations": [ann]}
    if case == "non-numeric":
        ann["keypoint"] = [["a"]]
    elif case == "nan":
        ann["keypoint"][0, 3, 2, 1] = np.nan
    elif case == "inf score":
        ann["keypoint_score"][1, 0, 0] = np.inf
    elif case == "joint count":
        ann["keypoint"] = np.zeros((2, 10, 18, 2), dtype=np.float32)
    elif case == "zero frames":
        ann["keypoint"], ann["keypoint_score"], ann["total_frames"] = ann["keypoint"][:, :0], None, 0
    elif case == "no persons":
        ann["keypoint"], ann["keypoint_score"] = ann["keypoint"][:0], None
    elif case == "missing key":
        del ann["keypoint"]
    elif case == "missing split":
        del content["split"]
    elif case == "score shape":
        ann["keypoint_score"] = ann["keypoint_score"][:, :5]
    elif case == "total_frames":
        ann["total_frames"] = 11
    elif case == "label":
        ann["label"] = 60
    elif case == "not a dict":
        content = [ann]
    elif case == "coordinate dims":
        ann["keypoint"] = np.zeros((2, 10, 17, 4), dtype=np.float32)
    data = pickle.dumps(content, protocol=4)
    if case == "truncated":
        data = data[: len(data) // 2]
    elif case == "corrupt":
        data = RNG.bytes(300)
    path.write_bytes(data)
    source = PysklSource(layout="coco17", num_classes=60)
    expect_error(path, problem, lambda: [source.load(path, item) for item in source.items(path)])
