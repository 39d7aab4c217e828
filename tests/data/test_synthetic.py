"""The synthetic data set: determinism, shapes, kinematics, persons, classes, splits, corruption, class semantics."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_skel.data.sample import SkeletonFileError
from ssl_skel.data.source import DatasetSource, get_source
from ssl_skel.data.synthetic import CLASSES, TWO_PERSON, SyntheticSource, generate
from ssl_skel.skeleton.layouts import get_layout

LAYOUT = get_layout("ntu25")
J = {name: j for j, name in enumerate(LAYOUT.joints)}
K = len(CLASSES)


@pytest.fixture(scope="module")
def clean() -> list:
    """Two samples of every class per camera cycle, without sensor noise or tracking loss."""
    return generate(4 * K, seed=1, noise=0.0, drop_prob=0.0)


def test_same_seed_same_data_other_seed_differs() -> None:
    a = SyntheticSource(num_samples=30, seed=5)
    b = SyntheticSource(num_samples=30, seed=5)
    for i in (0, 13, 29):
        x, y = a.sample(i), b.sample(i)
        assert x.name == y.name and x.label == y.label and x.meta == y.meta
        np.testing.assert_array_equal(x.data, y.data)
    np.testing.assert_array_equal(a.sample(13).data, a.sample(13).data)  # no hidden state between calls
    other = SyntheticSource(num_samples=30, seed=6).sample(13)
    assert other.data.shape != a.sample(13).data.shape or not np.array_equal(other.data, a.sample(13).data)


def test_sample_does_not_depend_on_data_set_size_or_global_rng() -> None:
    np.random.seed(0)  # noqa: NPY002 (the generator must not read the global state)
    x = SyntheticSource(num_samples=20, seed=2).sample(7)
    np.random.seed(1)  # noqa: NPY002
    y = SyntheticSource(num_samples=500, seed=2).sample(7)
    np.testing.assert_array_equal(x.data, y.data)


def test_shapes_dtype_labels_and_meta() -> None:
    source = SyntheticSource(num_samples=3 * K, seed=0, min_frames=30, max_frames=60)
    lengths = set()
    for i in range(source.num_samples):
        s = source.sample(i)
        c, t, v, m = s.data.shape
        assert (c, v, m) == (3, 25, 2) and 30 <= t <= 60
        assert s.data.dtype == np.float32 and np.isfinite(s.data).all()
        assert s.label == i % K
        assert set(s.meta) == {"subject", "camera", "repetition", "partner"}
        assert 1 <= s.meta["subject"] <= 40 and s.meta["camera"] in (1, 2, 3)
        lengths.add(t)
    assert len(lengths) > 5  # variable length


def test_every_class_appears_balanced() -> None:
    source = SyntheticSource(num_samples=K * 10)
    labels = np.array([int(n[-3:]) for n in source.items(None)])
    np.testing.assert_array_equal(np.bincount(labels, minlength=K), np.full(K, 10))
    assert [source.sample(i).label for i in range(K)] == list(range(K))


def bone_lengths(x: np.ndarray) -> np.ndarray:
    """``(T, V)`` bone lengths of one person ``(C, T, V)`` along the layout's tree (the centre's bone is 0)."""
    return np.linalg.norm(x - x[:, :, list(LAYOUT.parents)], axis=0)


def test_bone_lengths_constant_within_a_sample_and_per_subject(clean: list) -> None:
    per_subject: dict[int, np.ndarray] = {}
    for s in clean:
        for person in range(1 + (s.label in TWO_PERSON)):
            lengths = bone_lengths(s.data[..., person])
            np.testing.assert_allclose(lengths, np.broadcast_to(lengths[0], lengths.shape), atol=2e-5)
        ref = per_subject.setdefault(s.meta["subject"], bone_lengths(s.data[..., 0])[0])
        np.testing.assert_allclose(bone_lengths(s.data[..., 0])[0], ref, atol=2e-5)
    subjects = sorted(per_subject)
    assert not np.allclose(per_subject[subjects[0]], per_subject[subjects[1]], atol=1e-3)  # subjects differ
    arm = np.array([bone_lengths(s.data[..., 0])[0, J["left_elbow"]] for s in clean])
    assert 0.18 < arm.min() and arm.max() < 0.36  # metres, a human upper arm


def test_persons_and_centring(clean: list) -> None:
    for s in clean:
        assert s.data[:, 0, J["spine_mid"], 0].tolist() == [0.0, 0.0, 0.0]  # centred on actor 1's first frame
        assert np.all(np.any(s.data[..., 0] != 0, axis=(0, 2)))  # actor 1 in every frame
        if s.label in TWO_PERSON:
            assert np.all(np.any(s.data[..., 1] != 0, axis=(0, 2)))
            assert s.meta["partner"] not in (0, s.meta["subject"])
        else:
            assert not np.any(s.data[..., 1])  # exactly zero
            assert s.meta["partner"] == 0


def test_standing_body_is_upright_and_human_sized(clean: list) -> None:
    for s in clean:
        x = s.data[..., 0]
        assert np.all(x[1, :, J["head"]] > x[1, :, J["spine_base"]])  # y is up
        height = x[1, 0, J["head"]] - np.minimum(x[1, 0, J["left_foot"]], x[1, 0, J["right_foot"]])
        assert 1.2 < height < 2.1


def test_xsub_splits_disjoint_subjects_and_counts() -> None:
    source = SyntheticSource(num_samples=2 * K * 40, num_subjects=40)
    samples = [source.sample(i) for i in range(0, source.num_samples, 5)]
    meta = {k: np.array([s.meta[k] for s in samples]) for k in samples[0].meta}
    splits = source.splits([s.name for s in samples], meta)
    assert set(splits) == {"xsub", "xview"}
    for split in splits.values():
        assert split.dtype == np.int8 and set(np.unique(split)) <= {0, 1}
    xsub = splits["xsub"] == 1
    assert not set(meta["subject"][xsub]) & set(meta["subject"][~xsub])
    assert len(set(meta["subject"][xsub])) == 20 and len(set(meta["subject"][~xsub])) == 20
    partner = meta["partner"] > 0
    np.testing.assert_array_equal(meta["partner"][partner] % 2, meta["subject"][partner] % 2)  # same half
    np.testing.assert_array_equal(splits["xview"] == 1, meta["camera"] != 1)
    all_meta = {k: np.array([source.meta(i)[k] for i in range(source.num_samples)]) for k in ("subject", "camera")}
    counts = source.splits(source.items(None), all_meta)
    assert counts["xsub"].sum() == source.num_samples // 2
    assert abs(counts["xview"].mean() - 2 / 3) < 0.02


def test_items_load_round_trip_and_registry() -> None:
    source = get_source("synthetic", num_samples=15, seed=4)
    assert isinstance(source, DatasetSource) and source.layout == "ntu25" and source.num_classes == K
    names = source.items(None)
    assert len(names) == len(set(names)) == 15
    s = source.load(None, names[9])
    assert s.name == names[9]
    np.testing.assert_array_equal(s.data, SyntheticSource(num_samples=15, seed=4).sample(9).data)
    for bad in ("nonsense", names[9].replace("A009", "A003"), "I000099" + names[0][7:]):
        with pytest.raises(SkeletonFileError):
            source.load(None, bad)


def frozen_or_zero(x: np.ndarray) -> np.ndarray:
    """``(T, V)`` bool: the joint of ``(C, T, V)`` is exactly zero, or equal to the previous frame."""
    zero = np.all(x == 0, axis=0)
    frozen = np.zeros_like(zero)
    frozen[1:] = np.all(x[:, 1:] == x[:, :-1], axis=0)
    return zero | frozen


def test_tracking_loss_only_when_enabled() -> None:
    lost = generate(2 * K, seed=3, drop_prob=1.0)
    for s in lost:
        assert any(frozen_or_zero(s.data[..., m]).any() for m in range(1 + (s.label in TWO_PERSON)))
    kept = generate(2 * K, seed=3, drop_prob=0.0)
    for s in kept:
        assert not any(frozen_or_zero(s.data[..., m])[1:].any() for m in range(1 + (s.label in TWO_PERSON)))
    assert any((s.data[..., 0] == 0).all(axis=0).any() for s in lost)  # some losses zero joints, not only freeze


def test_noise_is_added_and_scales() -> None:
    clean = SyntheticSource(num_samples=K, noise=0.0, drop_prob=0.0).sample(3).data
    noisy = SyntheticSource(num_samples=K, noise=1.0, drop_prob=0.0).sample(3).data
    louder = SyntheticSource(num_samples=K, noise=3.0, drop_prob=0.0).sample(3).data
    err, err3 = np.abs(noisy - clean).mean(), np.abs(louder - clean).mean()
    assert 0.001 < err < 0.02 and err3 == pytest.approx(3 * err, rel=1e-3)


def classes_of(samples: list, *names: str) -> list:
    return [s for s in samples if CLASSES[s.label] in names]


def body_frame(x: np.ndarray, joints: list[int]) -> np.ndarray:
    """``(3, T, len(joints))`` positions relative to the chest in a per-frame frame: shoulder line, up, its normal."""
    right = x[:, :, J["right_shoulder"]] - x[:, :, J["left_shoulder"]]
    right[1] = 0.0
    right /= np.linalg.norm(right, axis=0)
    up = np.broadcast_to(np.array([[0.0], [1.0], [0.0]]), right.shape)
    axes = np.stack([right, up, np.cross(right.T, up.T).T])  # (3 axes, 3 coords, T)
    rel = x[:, :, joints] - x[:, :, [J["spine_shoulder"]]]
    return np.einsum("act,ctj->atj", axes, rel)


def hand_velocity_alignment(x: np.ndarray) -> float:
    """Correlation (uncentred) of the two hands' velocities in the body frame of one person ``(C, T, V)``."""
    v = np.diff(body_frame(x, [J["left_hand"], J["right_hand"]]), axis=1)
    return float((v[:, :, 0] * v[:, :, 1]).sum() / np.sqrt((v[:, :, 0] ** 2).sum() * (v[:, :, 1] ** 2).sum()))


def circle_direction(x: np.ndarray) -> float:
    """Correlation of the right hand's height above the shoulder with its forward speed (> 0: circles forward)."""
    right = x[:, :, J["right_shoulder"]] - x[:, :, J["left_shoulder"]]
    forward = np.cross(np.array([0.0, 1.0, 0.0]), right.T).T  # up x right = forward
    forward /= np.linalg.norm(forward, axis=0)
    height = (x[1, :, J["right_hand"]] - x[1, :, J["right_shoulder"]])[1:]
    speed = (np.diff(x[:, :, J["right_hand"]], axis=1) * forward[:, 1:]).sum(0)
    return float(np.corrcoef(height, speed)[0, 1])


@pytest.fixture(scope="module")
def rhythmic() -> list:
    source = SyntheticSource(num_samples=8 * K, seed=2, noise=0.0, drop_prob=0.0, min_frames=90)
    wanted = {CLASSES.index(n) for n in ("arm_circles_forward", "arm_circles_backward", "crawl_stroke",
                                          "back_stroke", "clap", "wipe", "punch_both", "punch_alternate")}
    return [source.sample(i) for i in range(source.num_samples) if i % K in wanted]


def share_positive(samples: list, statistic: object, *names: str) -> float:
    """Share of the named classes' samples whose statistic is positive, over frames 35..75 (2.5 s or more clips:
    the gesture is fully under way there, its onset and release are excluded)."""
    values = np.array([statistic(s.data[:, 35:75, :, 0]) for s in classes_of(samples, *names)])
    return float((values > 0).mean())


def test_classes_differ_in_the_phase_of_the_two_arms(rhythmic: list) -> None:
    """Hands move together in wipe / double punches / synchronous circles, oppositely in clap / alternate ones."""
    assert share_positive(rhythmic, hand_velocity_alignment, "wipe", "punch_both", "arm_circles_forward") > 0.9
    assert share_positive(rhythmic, hand_velocity_alignment, "clap", "punch_alternate", "crawl_stroke") < 0.1


def test_classes_differ_in_the_direction_of_arm_circles(rhythmic: list) -> None:
    assert share_positive(rhythmic, circle_direction, "arm_circles_forward", "crawl_stroke") > 0.9
    assert share_positive(rhythmic, circle_direction, "arm_circles_backward", "back_stroke") < 0.1


def test_rejects_bad_options() -> None:
    for options in ({"num_samples": 0}, {"seed": -1}, {"min_frames": 50, "max_frames": 40}, {"drop_prob": 1.5},
                    {"num_subjects": 1}):
        with pytest.raises(ValueError):
            SyntheticSource(**options)
    with pytest.raises(IndexError):
        SyntheticSource(num_samples=3).sample(3)
