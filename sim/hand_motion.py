"""Human-like hand motion for the demonstrator: a Script's moves as minimum-jerk timelines.

Every Move is one minimum-jerk (quintic) time scaling along the arc length of its path (linear
position, slerped orientation between via poses), so the hand starts and stops smoothly and never
stops at intermediate via poses; a smooth per-demo wobble (zero at every segment end) keeps grasp
poses exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from core.errors import VLMimicError
from core.geometry import Pose
from sim.hand import hand_kinematics
from sim.script import Grasp, Move, Release, Script, Wait


class DemonstrationError(VLMimicError):
    """A task's demonstration script cannot be played (e.g. grasps a body that is not a label)."""


def _rotvec_matrix(v: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues' formula)."""
    x, y, z = float(v[0]), float(v[1]), float(v[2])
    th = math.sqrt(x * x + y * y + z * z)
    if th < 1e-12:
        return np.eye(3)
    x, y, z = x / th, y / th, z / th
    c, s_, C = math.cos(th), math.sin(th), 1.0 - math.cos(th)
    return np.array([[c + x * x * C, x * y * C - z * s_, x * z * C + y * s_],
                     [y * x * C + z * s_, c + y * y * C, y * z * C - x * s_],
                     [z * x * C - y * s_, z * y * C + x * s_, c + z * z * C]])


def min_jerk(tau: float) -> float:
    """Quintic minimum-jerk time scaling s(tau) on [0, 1] with zero end velocity and acceleration."""
    t = float(np.clip(tau, 0.0, 1.0))
    return t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)


@dataclass
class _Wobble:
    """Smooth human wobble: a few sinusoids, windowed to vanish (with its slope) at both ends."""

    amp_pos: np.ndarray  # (3,) metres
    amp_rot: np.ndarray  # (3,) radians
    freq: np.ndarray  # (6,) cycles per segment
    phase: np.ndarray  # (6,)

    @classmethod
    def draw(cls, rng: np.random.Generator, pos_mm: float, rot_deg: float) -> _Wobble:
        return cls(
            amp_pos=rng.uniform(0.5, 1.0, 3) * pos_mm / 1000.0,
            amp_rot=np.deg2rad(rng.uniform(0.3, 1.0, 3) * rot_deg),
            freq=rng.uniform(0.5, 1.5, 6),
            phase=rng.uniform(0.0, 2.0 * np.pi, 6),
        )

    def __call__(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        w = np.sin(np.pi * s) ** 2
        v = np.sin(2.0 * np.pi * self.freq * s + self.phase) * w
        return self.amp_pos * v[:3], self.amp_rot * v[3:]


@dataclass
class _Segment:
    kind: str  # move | hold | close | open
    t0: float
    duration: float
    poses: list[np.ndarray]  # 4x4; hold/close/open use poses[0]
    c0: float
    c1: float
    target: str = ""
    label: str = ""
    wobble: _Wobble | None = None
    _cum: np.ndarray = field(default_factory=lambda: np.zeros(1))
    _rots: Rotation | None = None
    _rel: list[np.ndarray] = field(default_factory=list)
    _mats: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))

    def __post_init__(self) -> None:
        if self.kind == "move" and len(self.poses) > 1:
            lengths = []
            for a, b in zip(self.poses[:-1], self.poses[1:], strict=True):
                dp = float(np.linalg.norm(b[:3, 3] - a[:3, 3]))
                dr = float(np.linalg.norm((Rotation.from_matrix(a[:3, :3]).inv()
                                           * Rotation.from_matrix(b[:3, :3])).as_rotvec()))
                lengths.append(dp + 0.1 * dr + 1e-9)  # 10 cm per radian: pure rotations take time too
            self._cum = np.concatenate([[0.0], np.cumsum(lengths)]) / sum(lengths)
            self._rots = Rotation.from_matrix(np.array([p[:3, :3] for p in self.poses]))
            self._rel = [(self._rots[i].inv() * self._rots[i + 1]).as_rotvec() for i in range(len(self.poses) - 1)]
            self._mats = self._rots.as_matrix()

    @property
    def t1(self) -> float:
        return self.t0 + self.duration

    def at(self, t: float) -> tuple[np.ndarray, float]:
        """(T_world_gripper, closure) at absolute time t within this segment."""
        tau = 0.0 if self.duration <= 0 else (t - self.t0) / self.duration
        s = min_jerk(tau)
        closure = self.c0 + (self.c1 - self.c0) * s
        if self.kind != "move" or len(self.poses) == 1:
            return self.poses[-1 if self.kind == "move" else 0], closure
        i = int(np.clip(np.searchsorted(self._cum, s, side="right") - 1, 0, len(self.poses) - 2))
        f = (s - self._cum[i]) / max(self._cum[i + 1] - self._cum[i], 1e-12)
        a, b = self.poses[i], self.poses[i + 1]
        p = (1.0 - f) * a[:3, 3] + f * b[:3, 3]
        # Plain numpy rotations (Rodrigues): this runs at every physics step, scipy's Rotation is ~10x slower.
        R = self._mats[i] @ _rotvec_matrix(f * self._rel[i])
        if self.wobble is not None:
            dp, dr = self.wobble(s)
            p = p + dp
            R = _rotvec_matrix(dr) @ R
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = p
        return T, closure


@dataclass
class Timeline:
    """A script turned into timed segments of hand pose and finger closure."""

    segments: list[_Segment]
    grasps: list[dict]
    pressing: bool = False  # no Grasp in the script: fingertips together, pads push moving parts

    @property
    def duration(self) -> float:
        return self.segments[-1].t1 if self.segments else 0.0

    def at(self, t: float) -> tuple[int, np.ndarray, float]:
        """(segment index, T_world_gripper, closure) at time t (clamped to the timeline)."""
        for i, seg in enumerate(self.segments):
            if t < seg.t1 or i == len(self.segments) - 1:
                return (i, *seg.at(min(t, seg.t1)))
        raise AssertionError("empty timeline")


def plan_motion(script: Script, rng: np.random.Generator, start: np.ndarray | None = None) -> Timeline:
    """Turn a Script into a human-like timeline (speed, wobble, pauses drawn from `rng`)."""
    kin = hand_kinematics()
    moves = [s for s in script.steps if isinstance(s, Move)]
    if not moves:
        raise DemonstrationError("the demonstration script has no Move step")
    speed = float(rng.uniform(0.85, 1.2))  # > 1 = slower person
    pos_mm, rot_deg = float(rng.uniform(2.0, 4.0)), float(rng.uniform(0.3, 1.0))
    if start is None:
        # The hand comes in from where a person's hand rests: back along the first approach, a bit higher.
        first = moves[0].path[0].matrix()
        start = first.copy()
        start[:3, 3] += -0.12 * first[:3, 2] + np.array([0.0, 0.0, 0.05]) + rng.uniform(-0.03, 0.03, 3)
    segs: list[_Segment] = []
    grasps: list[dict] = []
    t = 0.0
    pressing = not any(isinstance(s, Grasp) for s in script.steps)
    # The hand's shape at the start: the width of a Release that precedes the first Move, else an open
    # hand, or (pressing demonstrations) the fingertips together.
    closure = 1.0 if pressing else 0.0
    for s in script.steps:
        if isinstance(s, Move):
            break
        if isinstance(s, Release):
            closure = kin.closure_for_width(s.width)
    pose, holding = start, ""

    def add(kind: str, duration: float, poses: list[np.ndarray], c1: float, **kw) -> None:
        nonlocal t
        segs.append(_Segment(kind=kind, t0=t, duration=max(duration, 0.0), poses=poses, c0=closure, c1=c1, **kw))
        t += max(duration, 0.0)

    add("hold", float(rng.uniform(0.3, 0.6)), [pose], closure, label="idle")
    for step in script.steps:
        if isinstance(step, Move):
            path = [p.matrix() for p in step.path]
            add("move", step.duration * speed, [pose, *path], closure, label=step.label,
                wobble=_Wobble.draw(rng, pos_mm, rot_deg))
            pose = path[-1]
        elif isinstance(step, Wait):
            add("hold", step.duration, [pose], closure, label="wait")
        elif isinstance(step, Grasp):
            if holding:
                raise DemonstrationError(f"Grasp({step.target!r}) while still holding {holding!r}")
            add("hold", float(rng.uniform(0.1, 0.3)), [pose], closure, label="before_grasp")
            c1 = kin.closure_for_width(step.width) if step.width > 0 else 1.0
            add("close", float(rng.uniform(0.3, 0.45)), [pose], c1, target=step.target, label="grasp")
            closure = c1
            grasps.append({"time": t, "target": step.target, "width": float(step.width),
                           "T_world_gripper": Pose.from_matrix(pose).model_dump(mode="json")})
            holding = step.target
            add("hold", float(rng.uniform(0.15, 0.3)), [pose], closure, label="settle")
        elif isinstance(step, Release):
            c1 = kin.closure_for_width(step.width)
            if holding or abs(c1 - closure) > 1e-6:
                add("open", float(rng.uniform(0.3, 0.45)), [pose], c1, target=holding, label="release")
                closure = c1
                if holding:
                    add("hold", float(rng.uniform(0.1, 0.3)), [pose], closure, label="after_release")
                holding = ""
    add("hold", 0.5, [pose], closure, label="end")
    return Timeline(segments=segs, grasps=grasps, pressing=pressing)


# --- scene with hand -------------------------------------------------------------------------------
