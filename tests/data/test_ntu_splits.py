"""NTU split rules against the official sample statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssl_skel.data.ntu_splits import (
    NTU60_XSUB_TRAIN_SUBJECTS,
    NTU120_XSUB_TRAIN_SUBJECTS,
    ntu_splits,
    parse_ntu_name,
    read_ntu_statistics,
    xset_split,
    xsub_split,
    xview_split,
)

EXPECTED = {
    "ntu60": {"xsub": (40_091, 16_487), "xview": (37_646, 18_932)},
    "ntu120": {"xsub": (63_026, 50_919), "xset": (54_468, 59_477)},
}


@pytest.mark.parametrize("dataset", ["ntu60", "ntu120"])
def test_split_counts(real_data: Path, dataset: str) -> None:
    stats = read_ntu_statistics(real_data / "ntu_rgbd" / "statistics" / dataset)
    assert len(stats.names) == {"ntu60": 56_578, "ntu120": 113_945}[dataset]
    assert len(stats.missing) == {"ntu60": 302, "ntu120": 535}[dataset]
    assert not set(stats.missing) & set(stats.names.tolist())  # the lists already exclude missing skeletons
    names = np.array([parse_ntu_name(n) for n in stats.names[::97]])
    for key in ("setup", "camera", "subject", "replication", "action"):
        np.testing.assert_array_equal([n[key] for n in names], stats.meta[key][::97])  # aligned rows
    splits = ntu_splits(dataset, stats.meta)
    assert set(splits) == set(EXPECTED[dataset])
    for split, (train, test) in EXPECTED[dataset].items():
        assert splits[split].dtype == np.int8
        assert ((splits[split] == 1).sum(), (splits[split] == 0).sum()) == (train, test)


def test_rules() -> None:
    assert len(NTU60_XSUB_TRAIN_SUBJECTS) == 20 and len(set(NTU120_XSUB_TRAIN_SUBJECTS)) == 53
    np.testing.assert_array_equal(xsub_split(np.array([1, 3, 38, 45]), NTU60_XSUB_TRAIN_SUBJECTS), [1, 0, 1, 0])
    np.testing.assert_array_equal(xsub_split(np.array([1, 3, 38, 45]), NTU120_XSUB_TRAIN_SUBJECTS), [1, 0, 1, 1])
    np.testing.assert_array_equal(xview_split(np.array([1, 2, 3])), [0, 1, 1])
    np.testing.assert_array_equal(xset_split(np.array([1, 2, 17, 32])), [0, 1, 0, 1])
    assert parse_ntu_name("S017C003P020R002A060.skeleton") == {
        "setup": 17, "camera": 3, "subject": 20, "replication": 2, "action": 60}
    with pytest.raises(ValueError, match="not an NTU sample name"):
        parse_ntu_name("S17C3P20R2A60")
    with pytest.raises(ValueError, match="unknown NTU data set"):
        ntu_splits("ntu90", {})


def test_missing_statistics(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"skes_available_name\.txt"):
        read_ntu_statistics(tmp_path, "ntu60")
    (tmp_path / "skes_available_name.txt").write_text("S001C001P001R001A001\nS001C001P001R001A002\n")
    for stem in ("setup", "camera", "performer", "replication"):
        (tmp_path / f"{stem}.txt").write_text("1\n1\n")
    (tmp_path / "label.txt").write_text("1\n")
    with pytest.raises(ValueError, match=r"label\.txt: 1 rows"):
        read_ntu_statistics(tmp_path, "ntu60")
