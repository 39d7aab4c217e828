"""The restricted unpickler refuses code-running pickles and loads numpy-bearing data pickles."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ssl_skel.data.safe_pickle import UnsafePickleError, safe_load, safe_loads
from ssl_skel.data.sample import SkeletonFileError


class RunsCommand:
    """Unpickling this object would call ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


class CallsSubprocess:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[list[str]]]:
        return subprocess.call, (["touch", str(self.marker)],)


class BuiltinEval:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return eval, ("1 + 1",)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_os_system_is_refused_and_not_run(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"split": {}, "annotations": [RunsCommand(f"touch {marker}")]}, protocol=protocol))
    refused = r"evil\.pkl: unsafe pickle: refusing to load global (posix|os|nt)\.system"
    with pytest.raises(SkeletonFileError, match=refused):
        safe_load(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the unrestricted unpickler does run it: the test payload is live
    assert marker.exists()


@pytest.mark.parametrize("payload", [CallsSubprocess(Path("/nonexistent/marker")), BuiltinEval()])
def test_other_callables_are_refused(payload: object) -> None:
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        safe_loads(pickle.dumps(payload))


def test_builtins_only_mode_refuses_numpy() -> None:
    assert safe_loads(pickle.dumps([{"a": 1, "b": (2.5, "x")}]), allow_numpy=False) == [{"a": 1, "b": (2.5, "x")}]
    with pytest.raises(UnsafePickleError, match="numpy"):
        safe_loads(pickle.dumps(np.zeros(3)), allow_numpy=False)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_payloads_round_trip(protocol: int) -> None:
    value = {
        "f": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "i": np.int64(7),
        "s": np.float16(0.5),
        "structured": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
        "set": {1, 2},
        "shape": (1080, 1920),
    }
    loaded = safe_loads(pickle.dumps(value, protocol=protocol))
    assert loaded.keys() == value.keys()
    for key in ("f", "fortran", "structured"):
        assert loaded[key].dtype == value[key].dtype
        np.testing.assert_array_equal(loaded[key], value[key])
    assert loaded["i"] == 7 and type(loaded["i"]) is np.int64 and loaded["s"] == np.float16(0.5)
    assert loaded["set"] == {1, 2} and loaded["shape"] == (1080, 1920)


def test_object_arrays_cannot_smuggle_callables() -> None:
    evil = np.array([RunsCommand("true")], dtype=object)
    with pytest.raises(UnsafePickleError, match="system"):
        safe_loads(pickle.dumps(evil))


def test_malformed_pickle(tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"a": np.zeros(100)})[:-20])
    with pytest.raises(SkeletonFileError, match=r"cut\.pkl: malformed pickle"):
        safe_load(path)
