"""NTU RGB+D 60/120 raw ``.skeleton`` files: parsing, the standard denoising and two-actor selection.

File format (text, CRLF or LF): line 1 the frame count; per frame a body count; per body one line of 10 body values
(the first is the body id), the joint count (25), then one line of 12 values per joint (x y z in metres first).

Denoising and actor selection (the SGN / CTR-GCN preprocessing; see the data spec):

1. drop bodies tracked for 11 frames or fewer;
2. while several bodies remain (in order of first appearance), a body whose frames are noisy (x spread > 0.8 *
   y spread over its joints) in a ratio of 0.69754 or more is dropped; otherwise, if it has noisy frames, its
   motion is re-measured on its valid frames;
3. bodies are ranked by motion: the sum over x, y, z of the variance of all its joint coordinates (pooled over
   joints and tracked frames). The first is actor 1; each other body in rank order is merged into actor 1 when its
   tracked interval shares no frame with actor 1's interval (which then grows to cover both), else into actor 2
   under the same rule (the first such body starts actor 2), else dropped;
4. frames where both actors are all zero are removed, and the spine-mid joint (index 1) of actor 1's first frame
   is subtracted from every present actor frame; absent actor frames stay exactly zero.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from .ntu_splits import ntu_splits, parse_ntu_name
from .sample import SkeletonFileError, SkeletonSample

__all__ = [
    "NTURawSource",
    "RawBody",
    "denoise_and_select_actors",
    "parse_ntu_skeleton",
    "read_ntu_skeleton",
    "write_ntu_skeleton",
]

NUM_JOINTS = 25
MIN_TRACKED_FRAMES = 12  # bodies tracked for 11 frames or fewer are noise
SPREAD_RATIO = 0.8  # a frame is noisy when its x spread exceeds 0.8 times its y spread
NOISY_FRAME_RATIO = 0.69754  # bodies with at least this ratio of noisy frames are dropped
ORIGIN_JOINT = 1  # spine mid


@dataclass
class RawBody:
    """One tracked body of a raw file.

    Attributes:
        body_id: the Kinect body id (text, as in the file).
        frames: ``(n,)`` increasing frame indices (0-based) where the body is tracked.
        joints: ``(n, 25, 3)`` float32 x, y, z in metres.
    """

    body_id: str
    frames: np.ndarray
    joints: np.ndarray

    @property
    def interval(self) -> tuple[int, int]:
        """First and last tracked frame (inclusive)."""
        return int(self.frames[0]), int(self.frames[-1])


def _motion(joints: np.ndarray) -> float:
    """Sum over x, y, z of the variance of ``(..., 3)`` coordinates pooled over all leading axes."""
    return float(np.var(joints.reshape(-1, 3), axis=0, dtype=np.float64).sum())


def parse_ntu_skeleton(path: str | PathLike) -> tuple[int, list[RawBody]]:
    """Parse a raw ``.skeleton`` file into its frame count and its bodies, in order of first appearance.

    Raises:
        SkeletonFileError: unreadable, truncated or malformed content, a joint count other than 25, non-finite
            coordinates, no frames, or no body in any frame.
    """
    try:
        lines = Path(path).read_bytes().decode("ascii").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise SkeletonFileError(path, f"cannot read the file as text ({err})") from err
    if not lines or not lines[0].strip():
        raise SkeletonFileError(path, "empty file (no frame count)")
    pos = 0
    try:
        num_frames = int(lines[0])
        if num_frames <= 0:
            raise SkeletonFileError(path, f"the file declares {num_frames} frames")
        pos = 1
        body_ids: list[str] = []
        body_frames: list[int] = []
        joint_starts: list[int] = []
        for frame in range(num_frames):
            num_bodies = int(lines[pos])
            if num_bodies < 0:
                raise SkeletonFileError(path, f"line {pos + 1}: negative body count {num_bodies}")
            pos += 1
            for _ in range(num_bodies):
                info = lines[pos].split()
                if len(info) != 10:
                    raise SkeletonFileError(path, f"line {pos + 1}: body line has {len(info)} values, expected 10")
                num_joints = int(lines[pos + 1])
                if num_joints != NUM_JOINTS:
                    raise SkeletonFileError(path, f"line {pos + 2}: {num_joints} joints, expected {NUM_JOINTS}")
                body_ids.append(info[0])
                body_frames.append(frame)
                joint_starts.append(pos + 2)
                pos += 2 + NUM_JOINTS
        if pos > len(lines):
            raise IndexError("joint lines end early")
    except IndexError:
        problem = f"truncated: the file ends at line {len(lines)} inside its declared frames"
        raise SkeletonFileError(path, problem) from None
    except ValueError as err:
        if isinstance(err, SkeletonFileError):
            raise
        raise SkeletonFileError(path, f"line {pos + 1}: malformed count ({err})") from None
    if any(line.strip() for line in lines[pos:]):
        raise SkeletonFileError(path, f"unexpected content after the last declared frame (line {pos + 1})")
    if not body_ids:
        raise SkeletonFileError(path, f"no body is tracked in any of the {num_frames} frames")

    joint_lines = [line for start in joint_starts for line in lines[start : start + NUM_JOINTS]]
    blank = next((i for i, line in enumerate(joint_lines) if not line.strip()), None)
    if blank is not None:  # np.loadtxt would skip it and shift every later joint
        line = joint_starts[blank // NUM_JOINTS] + blank % NUM_JOINTS + 1
        raise SkeletonFileError(path, f"malformed joint line (line {line} is empty)")
    try:
        values = np.loadtxt(joint_lines, dtype=np.float32, ndmin=2, comments=None)
    except ValueError as err:
        raise SkeletonFileError(path, f"malformed joint line ({err})") from None
    if values.shape[1] != 12:
        raise SkeletonFileError(path, f"joint lines have {values.shape[1]} values, expected 12")
    joints = values[:, :3].reshape(len(body_ids), NUM_JOINTS, 3)
    if not np.isfinite(joints).all():
        bad = int(np.flatnonzero(~np.isfinite(joints).all(axis=(1, 2)))[0])
        raise SkeletonFileError(path, f"non-finite (NaN/inf) joint coordinates in frame {body_frames[bad]}")

    ids, first, inverse = np.unique(np.array(body_ids), return_index=True, return_inverse=True)
    frames = np.array(body_frames)
    bodies = []
    for b in np.argsort(first, kind="stable"):
        rows = np.flatnonzero(inverse == b)
        bodies.append(RawBody(body_id=str(ids[b]), frames=frames[rows], joints=joints[rows]))
    return num_frames, bodies


def write_ntu_skeleton(path: str | PathLike, bodies: list[RawBody], num_frames: int) -> None:
    """Write ``bodies`` in the raw ``.skeleton`` format (CRLF), the inverse of :func:`parse_ntu_skeleton`.

    Body values other than the id and joint values other than x, y, z are written as fixed placeholders.
    """
    frame_of = np.concatenate([b.frames for b in bodies]) if bodies else np.zeros(0, dtype=np.int64)
    body_of = np.concatenate([np.full(len(b.frames), i) for i, b in enumerate(bodies)]) if bodies else frame_of
    joints = np.concatenate([b.joints for b in bodies]) if bodies else np.zeros((0, NUM_JOINTS, 3))
    order = np.lexsort((body_of, frame_of))
    rows = np.zeros((len(order) * NUM_JOINTS, 12))
    rows[:, :3] = joints[order].reshape(-1, 3)
    rows[:, 11] = 2
    text = io.StringIO()
    np.savetxt(text, rows, fmt="%.7g")
    joint_lines = text.getvalue().splitlines()
    counts = np.bincount(frame_of, minlength=num_frames)
    out = [str(num_frames)]
    k = 0
    for frame in range(num_frames):
        out.append(str(counts[frame]))
        for _ in range(counts[frame]):
            out.append(f"{bodies[body_of[order[k]]].body_id} 0 1 1 1 1 0 0 0 2")
            out.append(str(NUM_JOINTS))
            out.extend(joint_lines[k * NUM_JOINTS : (k + 1) * NUM_JOINTS])
            k += 1
    Path(path).write_bytes(("\r\n".join(out) + "\r\n").encode("ascii"))


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return max(a[0], b[0]) <= min(a[1], b[1])


def denoise_and_select_actors(bodies: list[RawBody], num_frames: int) -> np.ndarray:
    """Denoise ``bodies`` and merge them into two actors (module docstring, steps 1 to 3).

    Returns:
        ``(num_frames, 2, 25, 3)`` float32 coordinates of actor 1 and actor 2; frames where an actor is absent
        are zero. Empty bodies list after denoising gives all zeros.
    """
    bodies = [b for b in bodies if len(b.frames) >= MIN_TRACKED_FRAMES]
    motion = {b.body_id: _motion(b.joints) for b in bodies}
    for body in list(bodies):
        if len(bodies) <= 1:
            break
        x, y = body.joints[..., 0], body.joints[..., 1]
        noisy = np.ptp(x, axis=1) > SPREAD_RATIO * np.ptp(y, axis=1)
        if noisy.mean() >= NOISY_FRAME_RATIO:
            bodies.remove(body)
        elif noisy.any():
            motion[body.body_id] = _motion(body.joints[~noisy])
    bodies.sort(key=lambda b: motion[b.body_id], reverse=True)

    actors = np.zeros((num_frames, 2, NUM_JOINTS, 3), dtype=np.float32)
    intervals: list[tuple[int, int] | None] = [None, None]
    for body in bodies:
        start, end = body.interval
        for actor, interval in enumerate(intervals):
            if interval is None or not _overlaps(interval, body.interval):
                actors[body.frames, actor] = body.joints
                if interval is not None:
                    start, end = min(start, interval[0]), max(end, interval[1])
                intervals[actor] = (start, end)
                break
    return actors


def read_ntu_skeleton(path: str | PathLike) -> SkeletonSample:
    """Read, denoise and centre a raw NTU ``.skeleton`` file named ``SsssCcccPpppRrrrAaaa.skeleton``.

    Returns:
        a sample with data ``(3, T, 25, 2)`` float32 (metres, origin at actor 1's first spine-mid), label
        ``action - 1`` and meta ``{setup, camera, subject, replication}``.

    Raises:
        SkeletonFileError: malformed file or name, or no body left after denoising.
    """
    name = Path(path).name.split(".")[0]
    try:
        ids = parse_ntu_name(name)
    except ValueError as err:
        raise SkeletonFileError(path, f"file name: {err}") from None
    num_frames, bodies = parse_ntu_skeleton(path)
    actors = denoise_and_select_actors(bodies, num_frames)
    present = np.any(actors != 0, axis=(2, 3))  # (T, 2)
    keep = present.any(axis=1)
    actors, present = actors[keep], present[keep]
    if not present[:, 0].any():
        raise SkeletonFileError(path, f"no body is tracked for more than {MIN_TRACKED_FRAMES - 1} frames")
    origin = actors[np.argmax(present[:, 0]), 0, ORIGIN_JOINT]
    actors = np.where(present[:, :, None, None], actors - origin, np.float32(0))
    meta = {k: ids[k] for k in ("setup", "camera", "subject", "replication")}
    data = np.ascontiguousarray(actors.transpose(3, 0, 2, 1), dtype=np.float32)
    return SkeletonSample(name=name, data=data, label=ids["action"] - 1, meta=meta)


class NTURawSource:
    """Raw NTU RGB+D ``.skeleton`` files under a directory (searched recursively).

    Args:
        dataset: ``"ntu60"`` (setups 1..17, actions 1..60; splits xsub + xview) or ``"ntu120"`` (all; splits
            xsub + xset). Samples whose files hold no usable body raise :class:`SkeletonFileError` on load (the
            samples with missing skeletons of the official lists).
    """

    layout = "ntu25"

    def __init__(self, dataset: str = "ntu60") -> None:
        if dataset not in ("ntu60", "ntu120"):
            raise ValueError(f"NTURawSource: dataset must be 'ntu60' or 'ntu120', got {dataset!r}")
        self.name = dataset
        self.num_classes = 60 if dataset == "ntu60" else 120

    def _in_dataset(self, name: str) -> bool:
        if self.name == "ntu120":
            return True
        try:
            ids = parse_ntu_name(name)
        except ValueError:
            return True  # listed, and reported as a bad file on load
        return ids["action"] <= 60 and ids["setup"] <= 17

    def items(self, raw: Path) -> list[str]:
        """Relative paths of the ``.skeleton`` files under ``raw``, sorted by sample name."""
        raw = Path(raw)
        if not raw.is_dir():
            raise FileNotFoundError(f"{self.name}: raw skeleton directory {raw} not found")
        files = sorted(raw.rglob("*.skeleton"), key=lambda p: (p.name, str(p)))
        items = [p.relative_to(raw).as_posix() for p in files if self._in_dataset(p.name)]
        if not items:
            raise FileNotFoundError(f"{self.name}: no .skeleton files of this data set under {raw}")
        return items

    def load(self, raw: Path, item: str) -> SkeletonSample:
        path = Path(raw) / item
        sample = read_ntu_skeleton(path)
        if sample.label >= self.num_classes:
            raise SkeletonFileError(path, f"action {sample.label + 1} is not a class of {self.name}")
        return sample

    def splits(self, names: list[str], meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return ntu_splits(self.name, meta)
