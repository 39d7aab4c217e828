"""Raw NTU ``.skeleton`` reader: real files, format round trip, and each rule of the denoising."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssl_skel.data.ntu_raw import (
    NTURawSource,
    RawBody,
    denoise_and_select_actors,
    parse_ntu_skeleton,
    read_ntu_skeleton,
    write_ntu_skeleton,
)
from ssl_skel.data.sample import SkeletonFileError
from ssl_skel.data.source import DatasetSource, get_source

EXPECTED_FRAMES = {
    "S001C001P001R001A011": 82,
    "S001C003P008R002A058": 70,
    "S002C001P003R001A003": 100,
    "S003C001P015R001A034": 71,
    "S004C002P003R001A017": 124,
}


def upright_body(body_id: str, frames: range | np.ndarray, amplitude: float, seed: int, shift: float = 0.0) -> RawBody:
    """A body standing upright (y spread 1.6 m, x spread 0.4 m) that sways by ``amplitude`` metres."""
    rng = np.random.default_rng(seed)
    frames = np.asarray(frames)
    base = np.stack([rng.uniform(-0.2, 0.2, 25), np.linspace(-0.8, 0.8, 25), rng.uniform(2.5, 3.0, 25)], axis=1)
    sway = amplitude * np.sin(np.linspace(0, 6, len(frames)))[:, None, None] * np.array([1.0, 0.1, 0.5])
    joints = base[None] + sway + np.array([shift, 0.0, 0.0])
    return RawBody(body_id=body_id, frames=frames, joints=joints.astype(np.float32))


def lying_frames(body: RawBody, count: int) -> RawBody:
    """Make the first ``count`` frames of ``body`` noisy (x spread > 0.8 y spread) by swapping x and y."""
    joints = body.joints.copy()
    joints[:count, :, [0, 1]] = joints[:count, :, [1, 0]]
    return RawBody(body.body_id, body.frames, joints)


def present(frames: np.ndarray) -> np.ndarray:
    """``(T, 25, 3)`` -> ``(T,)`` whether each frame holds a body."""
    return np.any(frames != 0, axis=(1, 2))


def test_real_samples(real_data: Path) -> None:
    for name, frames in EXPECTED_FRAMES.items():
        path = real_data / "ntu_rgbd" / "samples" / f"{name}.skeleton"
        assert b"\r\n" in path.read_bytes()[:100]
        sample = read_ntu_skeleton(path)
        assert sample.name == name
        assert sample.data.shape == (3, frames, 25, 2) and sample.data.dtype == np.float32
        assert sample.label == int(name[-3:]) - 1
        assert sample.meta == {"setup": int(name[1:4]), "camera": int(name[5:8]), "subject": int(name[9:12]),
                               "replication": int(name[13:16])}
        two_actors = name == "S001C003P008R002A058"
        assert np.abs(sample.data[..., 1]).sum() > 0 if two_actors else not sample.data[..., 1].any()
        np.testing.assert_array_equal(sample.data[:, 0, 1, 0], 0.0)  # origin: spine mid of actor 1, first frame
        assert np.abs(sample.data[..., 0]).max() < 3.0  # centred: no camera depth offset left


def test_real_two_actor_sample_keeps_both_bodies(real_data: Path) -> None:
    path = real_data / "ntu_rgbd" / "samples" / "S001C003P008R002A058.skeleton"
    _, bodies = parse_ntu_skeleton(path)
    sample = read_ntu_skeleton(path)
    motion = [np.var(b.joints.reshape(-1, 3), axis=0).sum() for b in bodies]
    first, second = (bodies[i] for i in np.argsort(motion)[::-1])
    origin = first.joints[0, 1]
    np.testing.assert_allclose(sample.data[..., 0].transpose(1, 2, 0), first.joints - origin, atol=1e-6)
    np.testing.assert_allclose(sample.data[..., 1].transpose(1, 2, 0), second.joints - origin, atol=1e-6)


def test_write_parse_round_trip(tmp_path: Path) -> None:
    bodies = [upright_body("72057594037931648", range(2, 20), 0.1, 0), upright_body("7", range(5, 9), 0.3, 1)]
    path = tmp_path / "S001C001P001R001A001.skeleton"
    write_ntu_skeleton(path, bodies, num_frames=22)
    num_frames, parsed = parse_ntu_skeleton(path)
    assert num_frames == 22 and [b.body_id for b in parsed] == ["72057594037931648", "7"]
    for got, want in zip(parsed, bodies, strict=True):
        np.testing.assert_array_equal(got.frames, want.frames)
        np.testing.assert_allclose(got.joints, want.joints, rtol=1e-6)


def test_short_bodies_are_dropped() -> None:
    short, kept = upright_body("a", range(11), 0.5, 0), upright_body("b", range(11, 23), 0.1, 1)
    actors = denoise_and_select_actors([short, kept], 23)
    assert not actors[:11].any() and present(actors[11:, 0]).all() and not actors[:, 1].any()
    assert not denoise_and_select_actors([upright_body("a", range(11), 0.5, 0)], 11).any()


@pytest.mark.parametrize(("noisy", "dropped"), [(697, False), (698, True)])
def test_spread_rule_threshold(noisy: int, dropped: bool) -> None:
    # over 1000 frames the ratio 0.69754 lies between 697 and 698 noisy frames
    calm = upright_body("calm", range(1000), 0.05, 0)
    wild = lying_frames(upright_body("wild", range(1000), 0.5, 1, shift=1.0), noisy)
    actors = denoise_and_select_actors([wild, calm], 1000)
    if dropped:
        np.testing.assert_array_equal(actors[:, 0], calm.joints)
        assert not actors[:, 1].any()
    else:  # kept; both overlap, so the more active one is actor 1
        assert actors[:, 1].any()


def test_spread_rule_needs_several_bodies() -> None:
    lone = lying_frames(upright_body("lone", range(50), 0.1, 0), 50)
    np.testing.assert_array_equal(denoise_and_select_actors([lone], 50)[:, 0], lone.joints)


def test_motion_is_remeasured_on_valid_frames() -> None:
    # "a" sways strongly only in its noisy frames; on its valid frames it is calmer than "b".
    a = upright_body("a", range(100), 0.0, 0)
    a.joints[:30] += np.random.default_rng(5).normal(0, 2.0, (30, 1, 3)).astype(np.float32)
    a = lying_frames(a, 30)
    b = upright_body("b", range(100), 0.3, 1, shift=1.0)
    actors = denoise_and_select_actors([a, b], 100)
    np.testing.assert_array_equal(actors[:, 0], b.joints)
    np.testing.assert_array_equal(actors[:, 1], a.joints)


def test_ranking_and_merging() -> None:
    # motion ranking: active > late > second > third, whatever the order in the file
    second = upright_body("second", range(0, 60), 0.25, 0)
    active = upright_body("active", range(0, 40), 0.6, 1, shift=1.0)
    late = upright_body("late", range(40, 60), 0.4, 2, shift=2.0)  # no overlap with "active": joins actor 1
    third = upright_body("third", range(10, 30), 0.1, 3, shift=3.0)  # overlaps both actors by then: dropped
    actors = denoise_and_select_actors([second, third, late, active], 60)
    np.testing.assert_array_equal(actors[:40, 0], active.joints)
    np.testing.assert_array_equal(actors[40:, 0], late.joints)
    np.testing.assert_array_equal(actors[:, 1], second.joints)


def test_touching_intervals_overlap() -> None:
    # intervals sharing one frame overlap: the second body cannot join actor 1 and starts actor 2
    a = upright_body("a", range(0, 30), 0.6, 0)
    b = upright_body("b", range(29, 60), 0.1, 1, shift=1.0)
    actors = denoise_and_select_actors([a, b], 60)
    assert not actors[30:, 0].any() and present(actors[29:, 1]).all()


def test_empty_frames_removed_and_absent_actor_stays_zero(tmp_path: Path) -> None:
    a = upright_body("a", np.r_[0:20, 25:40], 0.6, 0)
    b = upright_body("b", range(30, 45), 0.1, 1, shift=1.0)
    path = tmp_path / "S002C003P004R001A050.skeleton"
    write_ntu_skeleton(path, [a, b], num_frames=50)
    sample = read_ntu_skeleton(path)
    assert sample.num_frames == 40  # frames 20..24 and 45..49 hold no body
    origin = a.joints[0, 1]
    np.testing.assert_allclose(sample.data[..., 0].transpose(1, 2, 0)[:35], a.joints - origin, atol=1e-5)
    assert not sample.data[:, 35:, :, 0].any()  # actor 1 absent: exactly zero
    assert not sample.data[:, :25, :, 1].any()
    np.testing.assert_allclose(sample.data[..., 1].transpose(1, 2, 0)[25:], b.joints - origin, atol=1e-5)
    assert sample.label == 49 and sample.meta == {"setup": 2, "camera": 3, "subject": 4, "replication": 1}


def test_source(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("S001C001P001R001A001", "S001C002P002R001A061", "S018C001P050R001A002"):
        write_ntu_skeleton(tmp_path / "a" / f"{name}.skeleton", [upright_body("x", range(15), 0.1, 0)], 15)
    ntu60, ntu120 = get_source("ntu60"), get_source("ntu120")
    assert isinstance(ntu60, DatasetSource) and isinstance(ntu60, NTURawSource)
    assert ntu60.num_classes == 60 and ntu120.num_classes == 120 and ntu60.layout == "ntu25"
    assert ntu60.items(tmp_path) == ["a/S001C001P001R001A001.skeleton"]
    items = ntu120.items(tmp_path)
    assert len(items) == 3
    assert ntu120.load(tmp_path, items[1]).label == 60
    with pytest.raises(SkeletonFileError, match="not a class of ntu60"):
        ntu60.load(tmp_path, items[1])
    meta = {"subject": np.array([1, 3, 45]), "camera": np.array([1, 2, 3]), "setup": np.array([1, 2, 18])}
    s60, s120 = ntu60.splits([], meta), ntu120.splits([], meta)
    assert set(s60) == {"xsub", "xview"} and set(s120) == {"xsub", "xset"}
    np.testing.assert_array_equal(s60["xsub"], [1, 0, 0])
    np.testing.assert_array_equal(s120["xsub"], [1, 0, 1])
    np.testing.assert_array_equal(s60["xview"], [0, 1, 1])
    np.testing.assert_array_equal(s120["xset"], [0, 1, 1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.skeleton files"):
        ntu60.items(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not found"):
        ntu60.items(tmp_path / "absent")
