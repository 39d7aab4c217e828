"""PKU-MMD phase 1: untrimmed sequences with frame labels, trimmed clips, official splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssl_skel.data.pku_mmd import (
    PKUMMDClipSource,
    PKUMMDSequenceSource,
    frame_labels_from_intervals,
    parse_video_name,
    read_pku_labels,
    read_pku_skeleton,
)
from ssl_skel.data.source import DatasetSource, get_source


def test_sequences_and_frame_labels(real_data: Path) -> None:
    raw = real_data / "pku_mmd_v1"
    source = get_source("pku_mmd1_untrimmed")
    assert isinstance(source, DatasetSource) and isinstance(source, PKUMMDSequenceSource)
    assert source.num_classes == 52 and source.layout == "ntu25"
    items = source.items(raw)
    assert len(items) == 24
    in_action = total = 0
    classes: set[int] = set()
    for item in items[::4]:
        sample = source.load(raw, item)
        labels = read_pku_labels(raw / "label" / f"{item}.txt")
        assert sample.data.shape == (3, sample.num_frames, 25, 2) and 1333 <= sample.num_frames <= 2670
        assert sample.meta["video"] == int(item[:4]) and sample.meta["view"] == {"L": 1, "R": 3}[item[-1]]
        assert sample.meta["xview"] == 1 and sample.meta["xsub"] in (0, 1)
        inside = np.zeros(sample.num_frames, dtype=bool)
        for action, start, end, _ in labels:
            np.testing.assert_array_equal(sample.frame_labels[start:end], action)
            inside[start:end] = True
        assert not sample.frame_labels[~inside].any()  # background is 0
        in_action += int(inside.sum())
        total += sample.num_frames
        classes |= set(np.unique(sample.frame_labels[inside]).tolist())
    assert 0.30 < in_action / total < 0.42
    assert classes <= {12, 14, 16, 18, 21, 24, 26, 27}


def test_trimmed_clips(real_data: Path) -> None:
    raw = real_data / "pku_mmd_v1"
    source = get_source("pku_mmd1")
    assert isinstance(source, DatasetSource) and isinstance(source, PKUMMDClipSource) and source.num_classes == 51
    items = source.items(raw)
    video = "0005-L"
    labels = read_pku_labels(raw / "label" / f"{video}.txt")
    clips = [i for i in items if i.startswith(video)]
    assert clips == [f"{video}_{k:03d}" for k in range(len(labels))]
    sequence = read_pku_skeleton(raw / "skeleton" / f"{video}.txt")
    for k, item in enumerate(clips):
        clip = source.load(raw, item)
        action, start, end, _ = labels[k]
        assert clip.num_frames == end - start and clip.label == action - 1
        np.testing.assert_array_equal(clip.data, sequence[:, start:end])
        assert clip.meta["start"] == start and clip.meta["end"] == end and clip.meta["view"] == 1
    metas = [source.load(raw, item).meta for item in items[::40]]
    splits = source.splits(items[::40], {k: np.array([m[k] for m in metas]) for k in ("xsub", "xview")})
    assert set(splits) == {"xsub", "xview"}
    assert (splits["xview"] == 1).all()  # every shipped video is on the cross-view training side


def test_interval_clamping_and_overlap() -> None:
    labels = np.array([[3, -5, 2, 1], [7, 4, 6, 1], [9, 5, 8, 2], [4, 8, 20, 1], [2, 30, 40, 1]])
    np.testing.assert_array_equal(frame_labels_from_intervals(labels, 10), [3, 3, 0, 0, 7, 9, 9, 9, 4, 4])


def test_video_names() -> None:
    assert parse_video_name("0291-M") == {"video": 291, "view": 2}
    with pytest.raises(ValueError, match="not a PKU-MMD video name"):
        parse_video_name("0291-X")


def test_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "skeleton").mkdir()
    (tmp_path / "split").mkdir()
    for name in ("cross-subject.txt", "cross-view.txt"):
        (tmp_path / "split" / name).write_text("Training videos:\n0002-L, 0002-R, \nValidation videos:\n0002-M, \n")
    with pytest.raises(FileNotFoundError, match="label"):
        PKUMMDSequenceSource().items(tmp_path)
    (tmp_path / "label").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no NNNN-V\.txt skeleton files"):
        PKUMMDClipSource().items(tmp_path)
