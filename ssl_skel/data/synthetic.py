"""The embedded default data set: procedurally generated skeleton actions in the ``ntu25`` layout.

Every sample is an articulated body (or two) whose bones come from a template skeleton in metres, scaled per
subject and per limb, posed by forward kinematics over the layout's bone tree from per-frame segment angles.
Class-specific motion programs drive the angles on top of per-subject posture and tempo, idle sway and fidgeting
and occasional distractor gestures of a free arm. A camera (one of three discrete yaws, like NTU's, plus a
per-sample orientation, pitch and roll) views the scene; Gaussian sensor noise and Kinect-like tracking loss
(joints zero or frozen for a few frames) are added last.

Twelve classes (:data:`CLASSES`). Eight are bimanual rhythms in two families of four that share posture, tempo
and motion energy and differ only in the phase relation of the two arms and the direction or axis of their
motion: arm circles (forward or backward, arms together or half a cycle apart as in crawl and back stroke) and
arms held forward (clap versus wipe: mirrored versus parallel sideways swings; both fists punching together
versus alternately). The others are a wave of either hand, repeated squats and two two-person interactions
(handshake, push). A randomly initialised encoder sees the same pose and energy statistics within a family; a
trained one must read the temporal pattern across both arms.

Output convention (like the NTU reader's): ``(3, T, 25, 2)`` float32 metres in camera space (x lateral, y up,
z depth), centred on actor 1's spine-mid joint (index 1) of the first frame; the second person is exactly zero
in one-person actions; a joint lost by tracking is exactly zero. Camera translation is therefore absorbed by the
centring. Sample ``i`` of seed ``s`` is generated from ``numpy.random.default_rng((s, 0, i))`` and is always the
same array. Metadata: ``subject`` (1-based, actor 1), ``camera`` (1..3), ``repetition`` and ``partner`` (the
second actor's subject, 0 in one-person actions). Splits: ``xsub`` trains on the odd subjects, ``xview`` on
cameras 2 and 3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..skeleton.layouts import get_layout
from .sample import SkeletonFileError, SkeletonSample

__all__ = ["CLASSES", "FPS", "TWO_PERSON", "SyntheticSource", "generate"]

#: Action classes; the label of a sample is its index here.
CLASSES: tuple[str, ...] = (
    "wave",
    "arm_circles_forward",
    "arm_circles_backward",
    "crawl_stroke",
    "back_stroke",
    "clap",
    "wipe",
    "punch_both",
    "punch_alternate",
    "squat",
    "handshake",
    "push",
)
#: Labels of the two-person interactions.
TWO_PERSON: frozenset[int] = frozenset({10, 11})
#: Frame rate of the generated sequences (Hz).
FPS = 30.0

_LAYOUT = "ntu25"
_ROOT = "spine_base"
_CAMERA_YAW = {1: np.deg2rad(45.0), 2: 0.0, 3: np.deg2rad(-45.0)}
_SAMPLE_STREAM, _SUBJECT_STREAM = 0, 1

# Template rest pose (metres, body frame: x to the person's right, y up, -z forward), arms and legs hanging.
_REST: dict[str, tuple[float, float, float]] = {
    "spine_base": (0.0, 0.0, 0.0),
    "spine_mid": (0.0, 0.26, 0.01),
    "spine_shoulder": (0.0, 0.46, 0.0),
    "neck": (0.0, 0.53, -0.01),
    "head": (0.0, 0.65, -0.02),
    "left_hip": (-0.085, -0.03, 0.0),
    "left_knee": (-0.085, -0.44, 0.0),
    "left_ankle": (-0.085, -0.84, 0.0),
    "left_foot": (-0.085, -0.89, -0.09),
}
_ARM = {"shoulder": (0.16, 0.43, 0.0), "elbow": (0.16, 0.17, 0.0), "wrist": (0.16, -0.07, 0.0),
        "hand": (0.16, -0.15, 0.0), "thumb": (0.15, -0.17, -0.045), "hand_tip": (0.16, -0.22, -0.005)}
for _side, _sign in (("left", -1.0), ("right", 1.0)):
    for _name, (_x, _y, _z) in _ARM.items():
        _REST[f"{_side}_{_name}"] = (_sign * _x, _y, _z)
for _name in ("hip", "knee", "ankle", "foot"):
    _x, _y, _z = _REST[f"left_{_name}"]
    _REST[f"right_{_name}"] = (-_x, _y, _z)

# Segment whose orientation carries the bone ending at each joint, and the limb group that scales its length.
_SEGMENT = {"spine_mid": "pelvis", "spine_shoulder": "chest", "neck": "chest", "head": "head",
            "left_hip": "pelvis", "right_hip": "pelvis"}
_SCALE_GROUP = {"spine_mid": "torso", "spine_shoulder": "torso", "neck": "torso", "head": "head"}
for _side in ("left", "right"):
    _SEGMENT.update({f"{_side}_shoulder": "chest", f"{_side}_elbow": f"{_side}_upper_arm",
                     f"{_side}_knee": f"{_side}_thigh", f"{_side}_ankle": f"{_side}_shank", f"{_side}_foot": "feet"})
    _SEGMENT.update({f"{_side}_{j}": f"{_side}_forearm" for j in ("wrist", "hand", "thumb", "hand_tip")})
    _SCALE_GROUP.update({f"{_side}_{j}": "arms" for j in ("elbow", "wrist", "hand", "thumb", "hand_tip")})
    _SCALE_GROUP.update({f"{_side}_{j}": "legs" for j in ("knee", "ankle", "foot")})
    _SCALE_GROUP.update({f"{_side}_shoulder": "shoulders", f"{_side}_hip": "hips"})
_SEGMENTS = ("pelvis", "chest", "head", "feet", *(f"{s}_{p}" for s in ("left", "right")
                                                  for p in ("upper_arm", "forearm", "thigh", "shank")))
_GROUPS = ("torso", "head", "arms", "legs", "shoulders", "hips")


@dataclass(frozen=True)
class _Skeleton:
    """Bone tree of the layout rooted at the pelvis: joints by depth level, parents, rest bones, segments."""

    parents: np.ndarray  # (V,) parent of every joint in the tree rooted at spine_base (root: itself)
    levels: tuple[np.ndarray, ...]  # joint indices by depth, root excluded
    rest: np.ndarray  # (V, 3) rest bone vectors (joint minus parent), metres
    segment: np.ndarray  # (V,) index into _SEGMENTS of the segment carrying each bone (root: pelvis)
    group: np.ndarray  # (V,) index into _GROUPS of the limb group scaling each bone
    index: dict[str, int]


def _skeleton() -> _Skeleton:
    layout = get_layout(_LAYOUT)
    index = {name: j for j, name in enumerate(layout.joints)}
    v = layout.num_joints
    neighbours: list[list[int]] = [[] for _ in range(v)]
    for a, b in layout.edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    root = index[_ROOT]
    parents = np.full(v, -1, dtype=np.int64)
    depth = np.zeros(v, dtype=np.int64)
    parents[root] = root
    frontier = [root]
    while frontier:
        nxt = []
        for j in frontier:
            for k in neighbours[j]:
                if parents[k] == -1:
                    parents[k], depth[k] = j, depth[j] + 1
                    nxt.append(k)
        frontier = nxt
    pos = np.array([_REST[name] for name in layout.joints])
    names = layout.joints
    return _Skeleton(
        parents=parents,
        levels=tuple(np.flatnonzero(depth == d) for d in range(1, int(depth.max()) + 1)),
        rest=pos - pos[parents],
        segment=np.array([_SEGMENTS.index(_SEGMENT.get(n, "pelvis")) for n in names]),
        group=np.array([_GROUPS.index(_SCALE_GROUP.get(n, "torso")) for n in names]),
        index=index,
    )


_SKELETON = _skeleton()


def _below() -> np.ndarray:
    """``(V, V)`` bool: ``[j, k]`` when joint ``k`` is ``j`` or lies below ``j`` in the bone tree."""
    parents = _SKELETON.parents
    below = np.eye(len(parents), dtype=bool)
    for level in _SKELETON.levels:  # ancestors of a level are already complete
        below[:, level] |= below[:, parents[level]]
    return below


_BELOW = _below()
_LOSABLE = np.flatnonzero((_BELOW.sum(1) <= 4) & (_SKELETON.parents != np.arange(len(_SKELETON.parents))))


# ----------------------------------------------------------------------------------------------- rotations
def _rx(a: np.ndarray) -> np.ndarray:
    """Rotations about x for angles ``(T,)`` (radians) -> ``(T, 3, 3)``."""
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*a.shape, 3, 3)


def _ry(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def _rz(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


def _limb(frame: np.ndarray, elevation: np.ndarray, azimuth: np.ndarray, sign: float) -> np.ndarray:
    """Orientation ``(T, 3, 3)`` of a limb segment hanging down at rest, inside a parent ``frame``.

    ``elevation`` lifts the limb forward from hanging (0 down, pi/2 horizontal, pi up); ``azimuth`` turns it
    outward from forward (pi/2 points to the side of the limb); ``sign`` is -1 for the left side, +1 for the right.
    """
    return frame @ _ry(-sign * azimuth) @ _rx(elevation)


# ----------------------------------------------------------------------------------------------- subjects
@dataclass(frozen=True)
class _Subject:
    """A performer: bone lengths and personal style."""

    bones: np.ndarray  # (V, 3) rest bone vectors scaled to this subject (metres)
    tempo: float  # speed multiplier of every motion
    amplitude: float  # multiplier of gesture amplitudes
    lean: float  # habitual forward lean (rad)
    arm_el: float  # habitual arm elevation at rest (rad)
    elbow: float  # habitual elbow flexion at rest (rad)
    stance: float  # habitual leg splay (rad)
    fidget: float  # amplitude multiplier of idle motion


def _subject(seed: int, subject: int) -> _Subject:
    rng = np.random.default_rng((seed, _SUBJECT_STREAM, subject))
    height = rng.uniform(0.86, 1.12)
    group_scale = height * rng.uniform(0.92, 1.08, size=len(_GROUPS))
    return _Subject(
        bones=_SKELETON.rest * group_scale[_SKELETON.group][:, None],
        tempo=rng.uniform(0.85, 1.18),
        amplitude=rng.uniform(0.85, 1.15),
        lean=rng.normal(0.03, 0.04),
        arm_el=rng.uniform(0.04, 0.25),
        elbow=rng.uniform(0.05, 0.45),
        stance=rng.uniform(0.0, 0.12),
        fidget=rng.uniform(0.6, 1.5),
    )


# ----------------------------------------------------------------------------------------------- motion
class _Motion:
    """Per-frame pose parameters of one person (angles in radians, positions in metres), side 0 left / 1 right.

    ``root`` (T, 3) moves the pelvis in the scene (x, extra lift above the ground, z); ``yaw`` turns the whole body
    (0 faces the camera of yaw 0); ``lean`` tilts the trunk forward at the pelvis, ``bend`` and ``twist`` the chest
    on the trunk, ``nod`` the head. Limbs: ``(2, T)`` elevation/azimuth of the upper arm, forearm, thigh, shank.
    """

    def __init__(self, t: np.ndarray, rng: np.random.Generator, subject: _Subject) -> None:
        n = len(t)

        def sway(amplitude: float, shape: tuple[int, ...] = ()) -> np.ndarray:
            return amplitude * subject.fidget * _smooth(rng, t, shape)

        self.t = t
        self.root = np.stack([sway(0.03), np.zeros(n), sway(0.03)], -1)
        self.yaw = sway(0.1)
        self.lean = subject.lean + sway(0.04)
        self.bend = sway(0.05)
        self.twist = sway(0.08)
        self.nod = rng.normal(0.0, 0.08) + sway(0.1)
        self.arm_el = subject.arm_el + rng.uniform(-0.04, 0.08, (2, 1)) + np.abs(sway(0.15, (2,)))
        self.arm_az = rng.uniform(-0.1, 0.35, (2, 1)) + sway(0.15, (2,))
        self.fore_el = self.arm_el + subject.elbow + rng.uniform(0.0, 0.2, (2, 1)) + np.abs(sway(0.25, (2,)))
        self.fore_az = self.arm_az + sway(0.2, (2,))
        self.thigh_el = rng.uniform(-0.03, 0.06, (2, 1)) + sway(0.04, (2,))
        self.thigh_az = subject.stance + sway(0.03, (2,))
        self.shank_el = self.thigh_el - np.abs(sway(0.06, (2,)))
        self.shank_az = self.thigh_az.copy()
        self.lift = np.zeros(n)

    def set_arm(self, side: int, env: np.ndarray, el: object, az: object, fel: object, faz: object) -> None:
        """Blend arm ``side`` from its idle angles toward the given ones by ``env`` in [0, 1]."""
        self.arm_el[side] = _lerp(self.arm_el[side], el, env)
        self.arm_az[side] = _lerp(self.arm_az[side], az, env)
        self.fore_el[side] = _lerp(self.fore_el[side], fel, env)
        self.fore_az[side] = _lerp(self.fore_az[side], faz, env)

    def set_legs(self, env: np.ndarray, thigh_el: object, shank_el: object) -> None:
        self.thigh_el = _lerp(self.thigh_el, thigh_el, env)
        self.shank_el = _lerp(self.shank_el, shank_el, env)


def _smooth(rng: np.random.Generator, t: np.ndarray, shape: tuple[int, ...] = ()) -> np.ndarray:
    """Smooth random signal ``(*shape, T)`` of roughly unit amplitude: three slow sinusoids (0.1..0.8 Hz)."""
    f = rng.uniform(0.1, 0.8, (*shape, 3, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (*shape, 3, 1))
    weight = rng.normal(0.0, 0.6, (*shape, 3, 1))
    return (weight * np.sin(2 * np.pi * f * t + phase)).sum(-2)


def _lerp(a: np.ndarray, b: object, w: np.ndarray) -> np.ndarray:
    return a + (np.asarray(b) - a) * w


def _ramp(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    """Smooth step from 0 (before ``start``) to 1 (after ``start + duration``), seconds."""
    x = np.clip((t - start) / max(duration, 1e-3), 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _window(t: np.ndarray, rng: np.random.Generator, rise: float, on: tuple[float, float] = (-0.4, 0.1),
            off: tuple[float, float] = (0.9, 1.4)) -> np.ndarray:
    """Envelope: ramps up at ``on`` and down at ``off`` (fractions of the clip, drawn uniformly)."""
    duration = t[-1] + 1 / FPS
    start, stop = rng.uniform(*on) * duration, rng.uniform(*off) * duration
    return _ramp(t, start, rise) * (1 - _ramp(t, stop, rise))


# ----------------------------------------------------------------------------------------------- programs
_Program = Callable[[list[_Motion], np.random.Generator, float, float], list[bool]]
_HALF_PI = np.pi / 2


def _phase(rng: np.random.Generator, t: np.ndarray, speed: float, hz: tuple[float, float] = (0.7, 1.2)) -> np.ndarray:
    """Phase angle ``(T,)`` of a rhythmic motion at a random frequency (Hz, scaled by ``speed``) and offset."""
    return 2 * np.pi * rng.uniform(*hz) * speed * t + rng.uniform(0, 2 * np.pi)


def _wave(people: list[_Motion], rng: np.random.Generator, speed: float, amp: float) -> list[bool]:
    """One raised forearm (either hand) swinging side to side."""
    p, t = people[0], people[0].t
    side = int(rng.integers(2))
    env = _window(t, rng, rng.uniform(0.3, 0.5) / speed)
    swing = rng.uniform(0.1, 0.3) + amp * rng.uniform(0.3, 0.5) * np.sin(_phase(rng, t, speed, (1.4, 2.4)))
    p.set_arm(side, env, amp * rng.uniform(1.7, 2.2), rng.uniform(1.0, 1.4), np.pi - swing, _HALF_PI)
    return [side == 0, side == 1]


def _circles(direction: float, alternate: bool) -> _Program:
    """Both arms out to the sides circling forward (+1) or backward (-1), together or half a cycle apart."""

    def program(people: list[_Motion], rng: np.random.Generator, speed: float, amp: float) -> list[bool]:
        p, t = people[0], people[0].t
        env = _window(t, rng, rng.uniform(0.3, 0.5) / speed)
        angle = _phase(rng, t, speed)
        radius = amp * rng.uniform(0.22, 0.4)
        el, az, bend = rng.uniform(1.2, 1.9), rng.uniform(1.1, 1.5), rng.uniform(0.0, 0.15)
        for side in (0, 1):
            a = angle + np.pi * (alternate and side == 1)
            el_s, az_s = el + radius * np.sin(a), az + direction * radius * np.cos(a)
            p.set_arm(side, env, el_s, az_s, el_s + bend, az_s - bend)
        return [True, True]

    return program


def _sideways(in_phase: bool) -> _Program:
    """Both forearms forward swinging sideways: mirrored (hands meet: clap) or in phase (wipe a window)."""

    def program(people: list[_Motion], rng: np.random.Generator, speed: float, amp: float) -> list[bool]:
        p, t = people[0], people[0].t
        env = _window(t, rng, rng.uniform(0.3, 0.5) / speed)
        osc = np.sin(_phase(rng, t, speed))
        el = amp * rng.uniform(0.9, 1.5)
        fel = el + rng.uniform(0.1, 0.4)
        half, centre, inward = amp * rng.uniform(0.25, 0.35), rng.uniform(0.15, 0.3), rng.uniform(0.2, 0.4)
        for side in (0, 1):
            az = centre + half * osc * (-1.0 if in_phase and side == 0 else 1.0)
            p.set_arm(side, env, el, az, fel, az - inward)
        return [True, True]

    return program


def _punches(alternate: bool) -> _Program:
    """Both fists thrust forward and pulled back, together or alternately."""

    def program(people: list[_Motion], rng: np.random.Generator, speed: float, amp: float) -> list[bool]:
        p, t = people[0], people[0].t
        env = _window(t, rng, rng.uniform(0.3, 0.5) / speed)
        angle = _phase(rng, t, speed)
        back, reach = rng.uniform(0.3, 0.6), amp * rng.uniform(1.2, 1.5)
        cocked, az = rng.uniform(1.3, 1.7), rng.uniform(0.0, 0.3)
        for side in (0, 1):
            out = 0.5 + 0.5 * np.sin(angle + np.pi * (alternate and side == 1))
            p.set_arm(side, env, _lerp(back, reach, out), az, _lerp(cocked, reach + 0.05, out), az - 0.2)
        return [True, True]

    return program


def _squat(people: list[_Motion], rng: np.random.Generator, speed: float, amp: float) -> list[bool]:
    """Repeated squats: down and up again, arms forward for balance or towards the knees."""
    p, t = people[0], people[0].t
    env = _window(t, rng, 0.3, on=(-0.6, 0.2), off=(0.9, 1.5))
    depth = env * (0.5 - 0.5 * np.cos(_phase(rng, t, speed, (0.5, 0.9))))
    p.set_legs(depth, amp * rng.uniform(1.0, 1.5), -rng.uniform(0.5, 0.85))
    p.lean = _lerp(p.lean, rng.uniform(0.25, 0.5), depth)
    forward = rng.random() < 0.5
    el = rng.uniform(1.1, 1.5) if forward else rng.uniform(0.5, 0.8)
    for side in (0, 1):
        p.set_arm(side, depth, el, rng.uniform(0.0, 0.3), el + rng.uniform(0.0, 0.3), rng.uniform(-0.1, 0.2))
    return [True, True]


def _face_each_other(people: list[_Motion], separation: np.ndarray) -> None:
    """Place actor 1 left and actor 2 right, facing each other, ``separation`` (T,) metres apart (pelvis)."""
    for p, sign in zip(people, (-1.0, 1.0), strict=True):
        p.root[:, 0] += sign * separation / 2
        p.yaw = p.yaw + sign * _HALF_PI


def _handshake(people: list[_Motion], rng: np.random.Generator, speed: float, amp: float) -> list[bool]:
    t = people[0].t
    _face_each_other(people, np.full(len(t), rng.uniform(0.8, 1.0)))
    env = _window(t, rng, rng.uniform(0.4, 0.6) / speed, on=(-0.3, 0.3), off=(0.75, 1.3))
    shake = amp * rng.uniform(0.06, 0.14) * np.sin(2 * np.pi * rng.uniform(2.0, 3.0) * speed * t)
    for k, p in enumerate(people):
        lag = int(rng.integers(1, 5)) * k
        e = np.concatenate([np.full(lag, env[0]), env[: len(t) - lag]])
        el = rng.uniform(0.9, 1.15)
        p.set_arm(1, e, el, rng.uniform(-0.25, -0.05), el + rng.uniform(0.2, 0.45) + shake, rng.uniform(-0.35, -0.15))
    return [True, True]


def _push(people: list[_Motion], rng: np.random.Generator, speed: float, amp: float) -> list[bool]:
    t = people[0].t
    duration = t[-1] + 1 / FPS
    at = rng.uniform(0.3, 0.65) * duration
    strike = rng.uniform(0.2, 0.35) / speed
    step = rng.uniform(0.2, 0.45) * amp * _ramp(t, at + 0.05, rng.uniform(0.3, 0.5))
    _face_each_other(people, rng.uniform(0.7, 0.9) + step)
    p, q = people
    ready = _ramp(t, at - rng.uniform(0.5, 0.8) / speed, 0.3 / speed)
    hit = _ramp(t, at, strike)
    for side in (0, 1):
        el = _lerp(np.full(len(t), rng.uniform(0.6, 0.85)), rng.uniform(1.35, 1.55), hit)
        fel = _lerp(np.full(len(t), rng.uniform(1.3, 1.6)), el + rng.uniform(0.0, 0.15), hit)
        p.set_arm(side, ready, el, rng.uniform(0.05, 0.25), fel, rng.uniform(-0.1, 0.1))
    recoil = _ramp(t, at, 0.2) * (1 - _ramp(t, at + rng.uniform(0.4, 0.7), 0.4))
    q.lean = q.lean - rng.uniform(0.15, 0.35) * recoil
    for side in (0, 1):
        q.arm_el[side] = q.arm_el[side] + rng.uniform(0.2, 0.6) * recoil
    return [True, True]


_PROGRAMS: tuple[_Program, ...] = (
    _wave, _circles(1.0, False), _circles(-1.0, False), _circles(1.0, True), _circles(-1.0, True), _sideways(False),
    _sideways(True), _punches(False), _punches(True), _squat, _handshake, _push,
)

# Distractor gestures of a free arm: (elevation, azimuth, forearm elevation, forearm azimuth).
_GESTURES = np.array([
    [0.5, 1.3, 1.9, -0.3],   # hand on hip
    [2.3, 0.7, 3.4, 0.2],    # scratch head
    [0.8, -0.1, 2.2, -1.2],  # touch chest
    [1.2, 0.9, 1.4, 0.9],    # point to the side
    [1.3, 0.1, 1.5, 0.0],    # reach forward
])


def _distract(p: _Motion, busy: list[bool], rng: np.random.Generator) -> None:
    """With some probability a free arm makes a slow gesture; the body may turn."""
    free = [side for side in (0, 1) if not busy[side]]
    if free and rng.random() < 0.5:
        side = free[int(rng.integers(len(free)))]
        el, az, fel, faz = _GESTURES[rng.integers(len(_GESTURES))] + rng.normal(0.0, 0.1, 4)
        p.set_arm(side, el=el, az=az, fel=fel, faz=faz,
                  env=_window(p.t, rng, rng.uniform(0.4, 0.8), on=(-0.3, 0.6), off=(0.4, 1.3)))
    if rng.random() < 0.3:
        p.yaw = p.yaw + rng.uniform(-0.5, 0.5) * _ramp(p.t, rng.uniform(0.0, 0.7) * p.t[-1], rng.uniform(0.5, 1.2))


# ----------------------------------------------------------------------------------------------- kinematics
def _forward_kinematics(subject: _Subject, p: _Motion) -> np.ndarray:
    """Joint positions ``(T, V, 3)`` in the scene (metres, y up, lowest ankle/foot on the ground + ``lift``)."""
    feet = _ry(p.yaw)
    pelvis = feet @ _rx(-p.lean)
    chest = pelvis @ _ry(p.twist) @ _rx(-p.bend)
    frames = {"pelvis": pelvis, "chest": chest, "head": chest @ _rx(-p.nod), "feet": feet}
    for side, sign, name in ((0, -1.0, "left"), (1, 1.0, "right")):
        frames[f"{name}_upper_arm"] = _limb(chest, p.arm_el[side], p.arm_az[side], sign)
        frames[f"{name}_forearm"] = _limb(chest, p.fore_el[side], p.fore_az[side], sign)
        frames[f"{name}_thigh"] = _limb(feet, p.thigh_el[side], p.thigh_az[side], sign)
        frames[f"{name}_shank"] = _limb(feet, p.shank_el[side], p.shank_az[side], sign)
    rotations = np.stack([frames[s] for s in _SEGMENTS])  # (S, T, 3, 3)
    bones = np.einsum("vtab,vb->tva", rotations[_SKELETON.segment], subject.bones)
    pos = np.zeros_like(bones)
    for level in _SKELETON.levels:
        pos[:, level] = pos[:, _SKELETON.parents[level]] + bones[:, level]
    lowest = pos[:, [_SKELETON.index[f"{s}_{j}"] for s in ("left", "right") for j in ("ankle", "foot")], 1].min(1)
    offset = p.root + np.stack([np.zeros_like(lowest), p.lift - lowest, np.zeros_like(lowest)], -1)
    return pos + offset[:, None, :]


# ----------------------------------------------------------------------------------------------- source
class SyntheticSource:
    """The synthetic data set as a :class:`~ssl_skel.data.source.DatasetSource` (nothing to download).

    Sample ``i`` has label ``i % K``, subject ``(i // K) % num_subjects + 1`` and a camera rotating with the
    repetition, so classes, subjects and cameras are balanced; everything else is drawn from the generator seeded
    by ``(seed, i)``.

    Args:
        dataset: registry name (``"synthetic"``).
        num_samples: number of clips.
        seed: data-set seed (>= 0); the same seed always gives the same data set.
        num_subjects: number of performers (xsub trains on the odd ones).
        min_frames, max_frames: range of clip lengths (frames at 30 Hz, drawn uniformly).
        noise: scale of the sensor noise (1 = about 6 mm on the body, 15 mm on hands and feet; 0 = none).
        drop_prob: probability that a clip has tracking loss (joints zero or frozen for 2..8 frames).
    """

    layout = _LAYOUT
    num_classes = len(CLASSES)
    classes = CLASSES

    def __init__(
        self,
        dataset: str = "synthetic",
        num_samples: int = 1440,
        seed: int = 0,
        num_subjects: int = 40,
        min_frames: int = 40,
        max_frames: int = 100,
        noise: float = 1.0,
        drop_prob: float = 0.3,
    ) -> None:
        if num_samples < 1 or num_subjects < 2 or seed < 0:
            raise ValueError("synthetic data set: need num_samples >= 1, num_subjects >= 2 and seed >= 0")
        if not 2 <= min_frames <= max_frames:
            raise ValueError(f"synthetic data set: need 2 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
        if noise < 0 or not 0 <= drop_prob <= 1:
            raise ValueError("synthetic data set: need noise >= 0 and 0 <= drop_prob <= 1")
        self.name = dataset
        self.num_samples = num_samples
        self.seed = seed
        self.num_subjects = num_subjects
        self.min_frames = min_frames
        self.max_frames = max_frames
        self.noise = noise
        self.drop_prob = drop_prob
        self._subjects: dict[int, _Subject] = {}

    def meta(self, index: int) -> dict[str, int]:
        """Metadata of sample ``index``: ``subject``, ``camera``, ``repetition`` (no generation needed)."""
        repetition = index // self.num_classes
        subject = repetition % self.num_subjects + 1
        return {"subject": subject, "camera": (repetition // self.num_subjects + subject) % 3 + 1,
                "repetition": repetition // self.num_subjects}

    def item_name(self, index: int) -> str:
        m = self.meta(index)
        return f"I{index:06d}P{m['subject']:03d}C{m['camera']:03d}A{index % self.num_classes:03d}"

    def items(self, raw: Path | None = None) -> list[str]:
        """Names of all samples (``raw`` is ignored: the data set is generated)."""
        return [self.item_name(i) for i in range(self.num_samples)]

    def load(self, raw: Path | None, item: str) -> SkeletonSample:
        """Generate the sample named ``item`` (``raw`` is ignored)."""
        try:
            index = int(item[1:7])
        except ValueError:
            raise SkeletonFileError(item, "not a synthetic sample name") from None
        if item[:1] != "I" or not 0 <= index < self.num_samples or item != self.item_name(index):
            raise SkeletonFileError(item, f"not a sample of this synthetic data set ({self.num_samples} samples)")
        return self.sample(index)

    def splits(self, names: list[str], meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``xsub``: odd subjects train; ``xview``: cameras 2 and 3 train, camera 1 tests."""
        return {
            "xsub": (np.asarray(meta["subject"]) % 2 == 1).astype(np.int8),
            "xview": np.isin(np.asarray(meta["camera"]), (2, 3)).astype(np.int8),
        }

    def _subject(self, subject: int) -> _Subject:
        if subject not in self._subjects:
            self._subjects[subject] = _subject(self.seed, subject)
        return self._subjects[subject]

    def _partner(self, subject: int, rng: np.random.Generator) -> int:
        """Another subject of the same xsub half (same parity), so splits stay subject-disjoint."""
        same = [s for s in range(1 + (subject + 1) % 2, self.num_subjects + 1, 2) if s != subject]
        others = same or [s for s in range(1, self.num_subjects + 1) if s != subject]
        return others[int(rng.integers(len(others)))]

    def sample(self, index: int) -> SkeletonSample:
        """Generate sample ``index``: ``(3, T, 25, 2)`` float32 (see the module docstring for the convention)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} outside 0..{self.num_samples - 1}")
        rng = np.random.default_rng((self.seed, _SAMPLE_STREAM, index))
        label, meta = index % self.num_classes, self.meta(index)
        num_frames = int(rng.integers(self.min_frames, self.max_frames + 1))
        t = np.arange(num_frames) / FPS
        subjects = [self._subject(meta["subject"])]
        meta["partner"] = self._partner(meta["subject"], rng) if label in TWO_PERSON else 0
        if meta["partner"]:
            subjects.append(self._subject(meta["partner"]))
        people = [_Motion(t, rng, s) for s in subjects]
        speed = subjects[0].tempo * rng.uniform(0.8, 1.25)
        busy = _PROGRAMS[label](people, rng, speed, subjects[0].amplitude * rng.uniform(0.85, 1.15))
        _distract(people[0], busy, rng)
        scene = np.stack([_forward_kinematics(s, p) for s, p in zip(subjects, people, strict=True)])  # (P, T, V, 3)
        scene = self._camera(scene, meta["camera"], label in TWO_PERSON, rng)
        data = np.zeros((2, num_frames, scene.shape[2], 3))
        data[: len(scene)] = scene - scene[0, 0, _SKELETON.index["spine_mid"]]
        data = self._corrupt(data, len(scene), rng)
        return SkeletonSample(
            name=self.item_name(index),
            data=np.ascontiguousarray(data.transpose(3, 1, 2, 0), dtype=np.float32),
            label=label,
            meta=meta,
        )

    def _camera(self, scene: np.ndarray, camera: int, interaction: bool, rng: np.random.Generator) -> np.ndarray:
        """Rotate the scene into camera space: camera yaw, the actors' orientation, pitch and roll."""
        facing = rng.uniform(-0.6, 0.6) + (rng.choice((0.0, np.pi)) if interaction else 0.0)
        yaw = np.array(_CAMERA_YAW[camera] + facing)
        pitch, roll = np.array(rng.normal(0.0, 0.08)), np.array(rng.normal(0.0, 0.03))
        rotation = _rz(roll) @ _rx(pitch) @ _ry(yaw)
        return scene @ rotation.T

    def _corrupt(self, data: np.ndarray, persons: int, rng: np.random.Generator) -> np.ndarray:
        """Add sensor noise to present persons and, with ``drop_prob``, tracking loss; ``data`` is (M, T, V, 3)."""
        v = data.shape[2]
        hands_feet = [_SKELETON.index[f"{s}_{j}"] for s in ("left", "right")
                      for j in ("hand", "hand_tip", "thumb", "wrist", "foot", "ankle")]
        sigma = np.full(v, 0.006)
        sigma[hands_feet] = 0.015
        level = self.noise * rng.uniform(0.5, 1.5)
        data[:persons] += rng.normal(0.0, 1.0, data[:persons].shape) * (level * sigma)[:, None]
        if rng.random() < self.drop_prob:
            num_frames = data.shape[1]
            for _ in range(int(rng.integers(1, 4))):
                person = int(rng.integers(persons))
                joints = self._lost_joints(rng)
                start = int(rng.integers(num_frames))
                stop = min(num_frames, start + int(rng.integers(2, 9)))
                span = np.ix_([person], np.arange(start, stop), joints)
                data[span] = 0.0 if rng.random() < 0.5 else data[person, max(start - 1, 0), joints][None, None]
        return data

    @staticmethod
    def _lost_joints(rng: np.random.Generator) -> np.ndarray:
        """A small end of the bone tree: a joint with at most 3 joints below it (e.g. a hand, a foot, the head)."""
        return np.flatnonzero(_BELOW[_LOSABLE[rng.integers(len(_LOSABLE))]])


def generate(num_samples: int = 1440, seed: int = 0, **options: object) -> list[SkeletonSample]:
    """Generate the whole synthetic data set: ``num_samples`` :class:`SkeletonSample` in index order.

    ``options`` are the other :class:`SyntheticSource` arguments (``num_subjects``, ``min_frames``, ``noise``...).
    """
    source = SyntheticSource(num_samples=num_samples, seed=seed, **options)
    return [source.sample(i) for i in range(num_samples)]
