"""NW-UCLA json reader on the complete recorded release, and its view split."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from ssl_skel.data.nw_ucla import NWUCLASource, parse_nw_ucla_name, read_nw_ucla
from ssl_skel.data.safe_pickle import safe_load
from ssl_skel.data.source import DatasetSource, get_source

ACTION_TO_LABEL = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7, 9: 8, 11: 9, 12: 10}


def test_all_clips(real_data: Path) -> None:
    raw = real_data / "nw_ucla"
    source = get_source("nw_ucla")
    assert isinstance(source, DatasetSource) and isinstance(source, NWUCLASource)
    assert source.layout == "nw_ucla20" and source.num_classes == 10
    start = time.perf_counter()
    items = source.items(raw)
    samples = [source.load(raw, item) for item in items]
    elapsed = time.perf_counter() - start
    assert len(samples) == 1484 and elapsed < 15
    for sample in samples:
        assert sample.data.shape == (3, sample.num_frames, 20, 1) and sample.data.dtype == np.float32
        assert sample.label == ACTION_TO_LABEL[sample.meta["action"]] - 1
    assert {s.name for s in samples if s.num_frames == 1} == {"a02_s09_e04_v02", "a02_s09_e04_v03"}
    assert max(s.num_frames for s in samples) == 201
    depth = np.concatenate([s.data[2].ravel() for s in samples])
    assert 2.0 < np.median(depth) < 3.5 and depth.max() < 6.0  # z in metres, camera coordinates (not centred)

    meta = {key: np.array([s.meta[key] for s in samples]) for key in ("action", "subject", "repetition", "view")}
    split = source.splits(items, meta)["view"]
    assert (split == 1).sum() == 1020 and (split == 0).sum() == 464
    val = safe_load(raw / "val_label.pkl", allow_numpy=False)
    by_name = {s.name: s for s in samples}
    assert {v["file_name"] for v in val} == {s.name for s, train in zip(samples, split, strict=True) if not train}
    for v in val:
        assert by_name[v["file_name"]].label == v["label"] - 1
        assert by_name[v["file_name"]].num_frames == v["length"]


def test_one_frame_clip_values(real_data: Path) -> None:
    path = real_data / "nw_ucla" / "all_sqe" / "a02_s09_e04_v02.json"
    sample = read_nw_ucla(path)
    want = np.array(json.loads(path.read_text())["skeletons"], dtype=np.float32)
    assert sample.data.shape == (3, 1, 20, 1)
    np.testing.assert_array_equal(sample.data[:, 0, :, 0], want[0].T)
    assert sample.meta == {"action": 2, "subject": 9, "repetition": 4, "view": 2} and sample.label == 1


def test_name_parsing() -> None:
    assert parse_nw_ucla_name("a12_s10_e03_v01") == {"action": 12, "subject": 10, "repetition": 3, "view": 1}
    with pytest.raises(ValueError, match="not an NW-UCLA clip name"):
        parse_nw_ucla_name("a12_s10_v01")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no \.json clips"):
        NWUCLASource().items(tmp_path)
