"""Trajectory program + object sizes -> T_master_slave(t) poses (and world-frame gripper poses)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.spatial.transform import Rotation as Rot

from core.errors import VLMimicError
from core.expr import evaluate
from core.geometry import Pose
from core.program import (
    Arc,
    Line,
    Rotation,
    Spiral,
    Step,
    Tilt,
    TrajectoryProgram,
    Waypoints,
    Zigzag,
)

Sizes = Mapping[str, Sequence[float]]


class ProgramError(VLMimicError):
    """A trajectory program cannot be instantiated (bad axis, unknown size name, ...)."""


def _vec(v: Sequence[float | str], sizes: Sizes) -> np.ndarray:
    return np.array([evaluate(x, sizes) for x in v], dtype=float)


def _unit(v: np.ndarray, what: str) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < 1e-9:
        raise ProgramError(f"{what} is a zero vector")
    return v / n


class _Resolved:
    """One step with numbers instead of expressions; `at(s, R0, p0)` -> (R, p) at fraction s."""

    def __init__(self, step: Step, sizes: Sizes) -> None:
        self.step = step
        self.weight = step.weight
        if isinstance(step, Waypoints):
            self.points = np.array([_vec(p, sizes) for p in step.points])
            self.rots = None if step.quaternions is None else Rot.from_quat(step.quaternions).as_matrix()
        elif isinstance(step, Line):
            self.d = _unit(_vec(step.direction, sizes), "line direction") * evaluate(step.distance, sizes)
        elif isinstance(step, Arc):
            self.axis = _unit(_vec(step.axis, sizes), "arc axis")
            self.pivot = _vec(step.pivot, sizes)
            self.angle = np.deg2rad(evaluate(step.angle_deg, sizes))
        elif isinstance(step, Rotation | Tilt):
            self.axis = _unit(_vec(step.axis, sizes), f"{step.kind} axis")
            self.angle = np.deg2rad(evaluate(step.angle_deg, sizes))
        elif isinstance(step, Spiral):
            self.axis = _unit(_vec(step.axis, sizes), "spiral axis")
            self.center = _vec(step.center, sizes)
            self.turns = evaluate(step.turns, sizes)
            self.pitch = evaluate(step.pitch, sizes)
            self.growth = evaluate(step.growth, sizes)
        elif isinstance(step, Zigzag):
            d = _unit(_vec(step.direction, sizes), "zigzag direction")
            a = _vec(step.across, sizes)
            a = _unit(a - d * float(a @ d), "zigzag across (parallel to direction?)")
            self.d = d * evaluate(step.length, sizes)
            self.a = a * evaluate(step.amplitude, sizes)
            self.cycles = evaluate(step.cycles, sizes)
        else:  # pragma: no cover - the union is closed
            raise ProgramError(f"unknown step {step!r}")

    def at(self, s: np.ndarray, R0: np.ndarray, p0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poses after fractions s (k,) of this step from (R0, p0): (k, 3, 3) rotations, (k, 3) positions."""
        st = self.step
        s = np.atleast_1d(np.asarray(s, dtype=float))
        k = len(s)
        Rk = np.broadcast_to(R0, (k, 3, 3)).copy()
        if isinstance(st, Waypoints):
            pts = np.vstack([p0, self.points])
            seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
            total = float(seg.sum())
            if total < 1e-12:
                cum = np.linspace(0.0, 1.0, len(pts))
            else:
                cum = np.concatenate([[0.0], np.cumsum(seg)]) / total
                cum = cum + np.arange(len(cum)) * 1e-12  # strictly increasing for interp
            pos = np.column_stack([np.interp(s, cum, pts[:, j]) for j in range(3)])
            if self.rots is None:
                return Rk, pos
            rots = Rot.from_matrix(np.concatenate([R0[None], self.rots]))
            i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(pts) - 2)
            f = np.clip((s - cum[i]) / np.maximum(cum[i + 1] - cum[i], 1e-12), 0.0, 1.0)
            a, b = rots[i], rots[i + 1]
            delta = (a.inv() * b).as_rotvec()
            return (a * Rot.from_rotvec(delta * f[:, None])).as_matrix(), pos
        if isinstance(st, Line):
            return Rk, p0 + s[:, None] * self.d
        if isinstance(st, Arc):
            Q = Rot.from_rotvec(self.axis[None, :] * (self.angle * s)[:, None]).as_matrix()
            return Q @ R0, self.pivot + np.einsum("kij,j->ki", Q, p0 - self.pivot)
        if isinstance(st, Rotation):
            Q = Rot.from_rotvec(self.axis[None, :] * (self.angle * s)[:, None]).as_matrix()
            return Q @ R0, np.broadcast_to(p0, (k, 3)).copy()
        if isinstance(st, Tilt):
            Q = Rot.from_rotvec(self.axis[None, :] * (self.angle * s)[:, None]).as_matrix()
            return R0 @ Q, np.broadcast_to(p0, (k, 3)).copy()
        if isinstance(st, Spiral):
            v = p0 - self.center
            h0 = float(v @ self.axis)
            rv = v - h0 * self.axis
            r0 = float(np.linalg.norm(rv))
            adv = self.axis[None, :] * (h0 + self.pitch * self.turns * s)[:, None]
            if r0 < 1e-9:
                return Rk, self.center + adv
            ang = 2 * np.pi * self.turns * s
            radius = r0 + self.growth * self.turns * s
            rdir = Rot.from_rotvec(self.axis[None, :] * ang[:, None]).apply(rv / r0)
            return Rk, self.center + adv + radius[:, None] * rdir
        if isinstance(st, Zigzag):
            return Rk, p0 + s[:, None] * self.d + np.sin(2 * np.pi * self.cycles * s)[:, None] * self.a
        raise ProgramError(f"unknown step {st!r}")  # pragma: no cover


def sample_matrices(program: TrajectoryProgram, sizes: Sizes, n: int = 50) -> np.ndarray:
    """(n, 4, 4) T_master_slave at t = linspace(0, 1, n)."""
    return matrices_at(program, sizes, np.linspace(0.0, 1.0, n))


def matrices_at(program: TrajectoryProgram, sizes: Sizes, ts: Sequence[float]) -> np.ndarray:
    """(len(ts), 4, 4) T_master_slave at times ts in [0, 1] (each step takes its weight's share of time)."""
    p0 = _vec(program.start.position, sizes)
    R0 = Rot.from_quat(program.start.quaternion).as_matrix()
    steps = [_Resolved(s, sizes) for s in program.steps]
    ts = np.clip(np.asarray(ts, dtype=float), 0.0, 1.0)
    out = np.zeros((len(ts), 4, 4))
    out[:, 3, 3] = 1.0
    if not steps:
        out[:, :3, :3] = R0
        out[:, :3, 3] = p0
        return out
    w = np.array([st.weight for st in steps], dtype=float)
    bounds = np.concatenate([[0.0], np.cumsum(w) / w.sum()])
    idx = np.clip(np.searchsorted(bounds, ts, side="right") - 1, 0, len(steps) - 1)
    Rc, pc = R0, p0
    for i, st in enumerate(steps):
        sel = idx == i
        if np.any(sel):
            span = bounds[i + 1] - bounds[i]
            s = np.clip((ts[sel] - bounds[i]) / span, 0.0, 1.0) if span > 0 else np.ones(int(sel.sum()))
            Rs, ps = st.at(s, Rc, pc)
            out[sel, :3, :3] = Rs
            out[sel, :3, 3] = ps
        Re, pe = st.at(np.array([1.0]), Rc, pc)
        Rc, pc = Re[0], pe[0]
    return out


def instantiate(program: TrajectoryProgram, sizes: Sizes, n: int = 50) -> list[Pose]:
    """T_master_slave poses at n evenly spaced times for the given bbox sizes {"master": .., "slave": ..}."""
    return [Pose.from_matrix(T) for T in sample_matrices(program, sizes, n)]


def world_gripper_trajectory(
    program: TrajectoryProgram,
    sizes: Sizes,
    T_world_master: Pose,
    T_slave_gripper: Pose,
    n: int = 50,
) -> list[Pose]:
    """T_world_gripper(t) = T_world_master · T_master_slave(t) · T_slave_gripper (DESIGN §1.4)."""
    Wm = T_world_master.matrix()
    Sg = T_slave_gripper.matrix()
    return [Pose.from_matrix(Wm @ T @ Sg) for T in sample_matrices(program, sizes, n)]


def _times(v: float | str, k: float) -> float | str:
    if k == 1.0:
        return v
    return float(v) * k if not isinstance(v, str) else f"({v})*{k:.6g}"


def scaled(program: TrajectoryProgram, trajectory_scale: float = 1.0, angle_scale: float = 1.0) -> TrajectoryProgram:
    """A revised program (diagnose/compare revisions): lengths of the motion times `trajectory_scale`,
    angles times `angle_scale`. The start pose is kept; waypoints scale about it."""
    steps: list[Step] = []
    start = [str(x) if isinstance(x, str) else float(x) for x in program.start.position]
    for st in program.steps:
        if isinstance(st, Line):
            st = st.model_copy(update={"distance": _times(st.distance, trajectory_scale)})
        elif isinstance(st, Zigzag):
            st = st.model_copy(update={"length": _times(st.length, trajectory_scale),
                                       "amplitude": _times(st.amplitude, trajectory_scale)})
        elif isinstance(st, Arc | Rotation | Tilt):
            st = st.model_copy(update={"angle_deg": _times(st.angle_deg, angle_scale)})
        elif isinstance(st, Spiral):
            st = st.model_copy(update={"turns": _times(st.turns, angle_scale),
                                       "pitch": st.pitch, "growth": st.growth})
        elif isinstance(st, Waypoints) and trajectory_scale != 1.0:
            pts = []
            for p in st.points:
                pts.append(tuple(
                    _add(start[i], _times(_sub(p[i], start[i]), trajectory_scale)) for i in range(3)))
            st = st.model_copy(update={"points": pts})
        steps.append(st)
    return program.model_copy(update={"steps": steps})


def _sub(a: float | str, b: float | str) -> float | str:
    if not isinstance(a, str) and not isinstance(b, str):
        return float(a) - float(b)
    return f"({a})-({b})"


def _add(a: float | str, b: float | str) -> float | str:
    if not isinstance(a, str) and not isinstance(b, str):
        return float(a) + float(b)
    return f"({a})+({b})"
