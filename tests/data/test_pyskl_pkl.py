"""pyskl annotation pickles: 2D keypoints + scores, 3D keypoints, split families, layout checks."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from ssl_skel.data.pyskl_pkl import PysklSource, split_family
from ssl_skel.data.sample import SkeletonFileError
from ssl_skel.data.source import DatasetSource, get_source


def annotation(name: str, label: int, persons: int, frames: int, joints: int = 17, dims: int = 2,
               seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    ann = {"frame_dir": name, "label": label, "total_frames": frames, "img_shape": (1080, 1920),
           "original_shape": (1080, 1920),
           "keypoint": rng.uniform(0, 1000, (persons, frames, joints, dims)).astype(np.float32)}
    if dims == 2:
        ann["keypoint_score"] = rng.uniform(0, 1, (persons, frames, joints)).astype(np.float16)
    return ann


def write_pkl(path: Path, annotations: list[dict], split: dict[str, list[str]]) -> Path:
    path.write_bytes(pickle.dumps({"split": split, "annotations": annotations}, protocol=4))
    return path


def test_2d_annotations_and_splits(tmp_path: Path) -> None:
    anns = [annotation("S001C001P001R001A001", 0, 1, 30, seed=1), annotation("S001C002P003R001A050", 49, 2, 12),
            annotation("S002C001P002R001A003", 2, 2, 1, seed=2)]
    split = {"xsub_train": ["S001C001P001R001A001", "S002C001P002R001A003"], "xsub_val": ["S001C002P003R001A050"],
             "xview_train": ["S001C002P003R001A050"], "xview_val": ["S001C001P001R001A001"], "notes": ["x"]}
    path = write_pkl(tmp_path / "ntu60_hrnet.pkl", anns, split)
    source = get_source("pyskl", layout="coco17", num_classes=60)
    assert isinstance(source, DatasetSource) and isinstance(source, PysklSource) and source.layout == "coco17"
    items = source.items(tmp_path)
    assert items == [a["frame_dir"] for a in anns]
    samples = [source.load(path, item) for item in items]
    for sample, ann in zip(samples, anns, strict=True):
        m, t, v, _ = ann["keypoint"].shape
        assert sample.data.shape == (3, t, v, m) and sample.data.dtype == np.float32
        np.testing.assert_array_equal(sample.data[:2], ann["keypoint"].transpose(3, 1, 2, 0))
        np.testing.assert_array_equal(sample.data[2], ann["keypoint_score"].astype(np.float32).transpose(1, 2, 0))
        assert sample.label == ann["label"] and sample.name == ann["frame_dir"]
        assert sample.meta["img_height"] == 1080 and sample.meta["img_width"] == 1920
    meta = {key: np.array([s.meta[key] for s in samples]) for key in ("split_xsub", "split_xview")}
    splits = source.splits(items, meta)
    np.testing.assert_array_equal(splits["xsub"], [1, 0, 1])
    np.testing.assert_array_equal(splits["xview"], [0, 1, -1])
    assert splits["xsub"].dtype == np.int8


def test_3d_annotations(tmp_path: Path) -> None:
    ann = annotation("clip", 3, 2, 20, joints=25, dims=3)
    path = write_pkl(tmp_path / "ntu3d.pkl", [ann], {"train": ["clip"]})
    source = PysklSource(layout="ntu25", num_classes=60)
    sample = source.load(path, "clip")
    np.testing.assert_array_equal(sample.data, ann["keypoint"].transpose(3, 1, 2, 0))
    assert source.splits(["clip"], {"split_default": np.array([sample.meta["split_default"]])}) == {
        "default": np.array([1], dtype=np.int8)}


def test_layout_is_checked(tmp_path: Path) -> None:
    path = write_pkl(tmp_path / "k400.pkl", [annotation("v", 0, 1, 5, joints=17)], {})
    wrong = r"k400\.pkl: annotation 'v': keypoint has 17 joints, the layout has 18"
    with pytest.raises(SkeletonFileError, match=wrong):
        PysklSource(layout="openpose18").load(path, "v")
    with pytest.raises(KeyError, match="unknown skeleton layout"):
        PysklSource(layout="coco18")


def test_split_family_names() -> None:
    assert split_family("xsub_train") == ("xsub", 1)
    assert split_family("xset_val") == ("xset", 0)
    assert split_family("sub_1_test") == ("sub_1", 0)
    assert split_family("val") == ("default", 0)
    assert split_family("xsub_extra") is None


def test_inconsistent_split_and_duplicates(tmp_path: Path) -> None:
    ann = annotation("a", 0, 1, 5)
    write_pkl(tmp_path / "both.pkl", [ann], {"xsub_train": ["a"], "xsub_val": ["a"]})
    with pytest.raises(SkeletonFileError, match="both the train and test lists of xsub"):
        PysklSource().items(tmp_path / "both.pkl")
    write_pkl(tmp_path / "dup.pkl", [ann, ann], {})
    with pytest.raises(SkeletonFileError, match="duplicate frame_dir 'a'"):
        PysklSource().items(tmp_path / "dup.pkl")
    with pytest.raises(FileNotFoundError, match=r"expected one \.pkl"):
        PysklSource().items(tmp_path)
