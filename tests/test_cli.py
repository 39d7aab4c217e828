"""The ssl-skel command: subcommand dispatch and `ssl-skel prepare`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssl_skel import cli
from ssl_skel.data.sample import SkeletonFileError, SkeletonSample
from ssl_skel.data.source import SOURCES
from ssl_skel.data.store import SkeletonStore


class CliSource:
    """A generated data set of ``num_samples`` items; item 1 is unreadable."""

    name = "fake"
    layout = "nw_ucla20"
    num_classes = 2

    def __init__(self, dataset: str, num_samples: int = 4, scale: float = 1.0, tag: str = "", mirror: bool = False):
        self.name, self.num_samples, self.scale, self.tag = dataset, num_samples, scale, tag

    def items(self, raw: Path) -> list[str]:
        return [f"{self.tag}{k}" for k in range(self.num_samples)]

    def load(self, raw: Path, item: str) -> SkeletonSample:
        if item.endswith("1"):
            raise SkeletonFileError(raw / item, "bad header")
        data = np.full((3, 5, 20, 1), self.scale, np.float32)
        return SkeletonSample(item, data, label=len(item) % 2, meta={"view": 1})

    def splits(self, names: list[str], meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"view": np.ones(len(names), np.int8)}


@pytest.fixture
def fake_source(monkeypatch):
    monkeypatch.setitem(SOURCES, "fake", f"{__name__}:CliSource")


def test_usage_and_unknown_subcommand(capsys):
    assert cli.main([]) == 0
    assert "prepare" in capsys.readouterr().out
    assert cli.main(["bogus"]) == 2
    assert "unknown subcommand 'bogus'" in capsys.readouterr().err


def test_source_options_are_converted_and_checked(fake_source):
    opts = cli.parse_source_options("fake", ["--num-samples", "7", "--scale=0.5", "--tag", "12", "--mirror"])
    assert opts == {"num_samples": 7, "scale": 0.5, "tag": "12", "mirror": True}
    with pytest.raises(ValueError, match="unknown option --seed; its source accepts: --num-samples, --scale"):
        cli.parse_source_options("fake", ["--seed", "1"])
    with pytest.raises(ValueError, match="unexpected argument 'x'"):
        cli.parse_source_options("fake", ["x"])


def test_prepare_end_to_end(fake_source, tmp_path, capsys):
    out = tmp_path / "store"
    argv = ["prepare", "fake", "--raw", str(tmp_path), "--out", str(out), "--num-samples", "6", "--scale", "2.5",
            "--max-bad-fraction", "0.2", "--quiet"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "prepared fake: 5 samples" in text and "skipped 1 item(s)" in text and "bad header" in text
    store = SkeletonStore(out)
    assert len(store) == 5 and store.layout == "nw_ucla20"
    assert store.manifest["source_options"] == {"num_samples": 6, "scale": 2.5}
    assert float(store[0][0][0, 0, 0, 0]) == 2.5
    assert cli.main(argv) == 1  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite", "--num-samples", "3", "--max-bad-fraction", "0.5"]) == 0
    assert len(SkeletonStore(out)) == 2


def test_prepare_argument_errors(fake_source, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["prepare", "fake", "--out", str(tmp_path / "o")])
    assert "--raw is required for fake" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["prepare", "fake", "--raw", ".", "--out", str(tmp_path / "o"), "--bogus", "1"])
    assert "unknown option --bogus" in capsys.readouterr().err
    assert cli.main(["prepare", "fake", "--raw", ".", "--out", str(tmp_path / "o"), "--quiet",
                     "--num-samples", "2"]) == 1  # 1 of 2 unreadable > 5%
    assert "unreadable" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
