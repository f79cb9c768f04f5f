"""Time-parameterised joint trajectories for the Panda and Cartesian paths turned into joint paths.

A joint path (list of 7-vectors) is followed as one piecewise-linear curve in joint space whose
progress s(t) has a smooth trapezoidal profile (cosine blends: velocity and acceleration are
continuous, zero at both ends). The path parameter is measured in "seconds at full speed" so that
s' <= 1 keeps every joint inside PANDA_DQ_MAX * speed_factor, and s'' is bounded so that joint
accelerations stay inside PANDA_DDQ_MAX * speed_factor along each segment. Dense paths (as produced
by `cartesian_to_joint_path`) make the direction changes between segments negligible.

Plain functions; no simulator imports (the real Panda uses the same code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation

from core.geometry import Pose
from core.motion import PANDA_DQ_MAX, PANDA_Q_MAX, PANDA_Q_MIN
from tools.robot.ik import solve_ik, tcp_pose

if TYPE_CHECKING:
    import mujoco

# Panda joint acceleration limits (rad/s^2), from Franka's control parameters.
PANDA_DDQ_MAX = np.array([15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0])


def _check_speed(speed_factor: float) -> float:
    s = float(speed_factor)
    if not 0.0 < s <= 1.0 or not np.isfinite(s):
        raise ValueError(f"speed_factor must be in (0, 1], got {speed_factor}")
    return s


@dataclass(frozen=True)
class _Piece:
    """One rest-to-rest stretch: a C2 cubic spline q(s) through the waypoints, followed with a smooth
    trapezoidal progress profile s(t) (cosine blends, zero speed and acceleration at both ends)."""

    path: np.ndarray  # (N, 7) waypoints
    knots: np.ndarray  # (N,) path parameter at each waypoint
    spline: CubicSpline | None  # None for a zero-length piece
    t_start: float
    duration: float
    v_peak: float
    t_ramp: float

    def progress(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.clip(t - self.t_start, 0.0, self.duration)
        S = float(self.knots[-1])
        vp, Ta, T = self.v_peak, self.t_ramp, self.duration
        if Ta <= 0.0:
            return np.full_like(t, S), np.zeros_like(t)
        s = np.empty_like(t)
        v = np.empty_like(t)
        a = t < Ta
        s[a] = 0.5 * vp * (t[a] - Ta / np.pi * np.sin(np.pi * t[a] / Ta))
        v[a] = 0.5 * vp * (1.0 - np.cos(np.pi * t[a] / Ta))
        c = (t >= Ta) & (t <= T - Ta)
        s[c] = 0.5 * vp * Ta + vp * (t[c] - Ta)
        v[c] = vp
        d = t > T - Ta
        td = T - t[d]
        s[d] = S - 0.5 * vp * (td - Ta / np.pi * np.sin(np.pi * td / Ta))
        v[d] = 0.5 * vp * (1.0 - np.cos(np.pi * td / Ta))
        return np.clip(s, 0.0, S), v

    def sample(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.spline is None:
            return np.repeat(self.path[-1:], len(t), axis=0), np.zeros((len(t), self.path.shape[1]))
        s, sdot = self.progress(t)
        return self.spline(s), self.spline(s, 1) * sdot[:, None]


@dataclass(frozen=True)
class JointTrajectory:
    """q(t) through a joint path: rest-to-rest pieces (split at sharp corners), each a piecewise-linear
    path with a smooth trapezoidal progress profile (cosine blends; zero velocity at both ends)."""

    pieces: tuple[_Piece, ...]
    duration: float
    speed_factor: float
    dq_max: np.ndarray = field(repr=False)  # the scaled velocity limits used

    @property
    def path(self) -> np.ndarray:
        """All waypoints, in order (the first piece's start, then each piece's rest)."""
        return np.vstack([self.pieces[0].path[:1]] + [p.path[1:] for p in self.pieces])

    @property
    def rest_times(self) -> list[float]:
        """End time of each piece (the arm is at rest there)."""
        return [p.t_start + p.duration for p in self.pieces]

    def row_at(self, t: float) -> int:
        """Index (into `path`) of the last waypoint passed at time t."""
        offset = 0
        for i, piece in enumerate(self.pieces):
            if t <= piece.t_start + piece.duration or i == len(self.pieces) - 1:
                s, _ = piece.progress(np.array([float(t)]))
                return offset + int(np.searchsorted(piece.knots, s[0] + 1e-9, side="right") - 1)
            offset += len(piece.path) - 1
        return offset

    def sample(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(q, dq) at time(s) t: shapes (7,) for a scalar t, else (len(t), 7)."""
        scalar = np.ndim(t) == 0
        tt = np.atleast_1d(np.asarray(t, dtype=float))
        q = np.empty((len(tt), self.pieces[0].path.shape[1]))
        dq = np.zeros_like(q)
        starts = np.array([p.t_start for p in self.pieces])
        which = np.clip(np.searchsorted(starts, tt, side="right") - 1, 0, len(self.pieces) - 1)
        for i, piece in enumerate(self.pieces):
            sel = which == i
            if np.any(sel):
                q[sel], dq[sel] = piece.sample(tt[sel])
        if scalar:
            return q[0], dq[0]
        return q, dq


def _piece(P: np.ndarray, vmax: np.ndarray, amax: np.ndarray, t_start: float) -> _Piece:
    seg_len = np.max(np.abs(np.diff(P, axis=0)) / vmax, axis=1)  # seconds at full speed per segment
    knots = np.concatenate([[0.0], np.cumsum(seg_len)])
    S = float(knots[-1])
    if S <= 1e-12:
        return _Piece(P, knots, None, t_start, 0.0, 0.0, 0.0)
    spline = CubicSpline(knots, P, axis=0, bc_type="natural")
    ss = np.unique(np.concatenate([np.linspace(0.0, S, min(4000, 16 * len(P))), knots]))
    d1 = np.abs(spline(ss, 1))
    d2 = np.abs(spline(ss, 2))
    r_v = float(np.max(d1 / vmax))  # ~1 (exactly 1 for a straight segment)
    r_a = float(np.max(d2 / amax))  # path curvature against the acceleration limits
    r_t = float(np.max(d1 / amax))
    # Half of each joint's acceleration budget for curvature (q'' s'^2), half for speeding up (q' s'').
    v_peak = 1.0 / max(r_v, 1e-9)
    if r_a > 1e-12:
        v_peak = min(v_peak, float(np.sqrt(0.5 / r_a)))
    a_s = 0.5 / max(r_t, 1e-12)
    t_ramp = v_peak * np.pi / (2.0 * a_s)  # cosine blend: peak s'' = v_peak * pi / (2 t_ramp)
    if S >= v_peak * t_ramp:
        duration = S / v_peak + t_ramp
    else:  # too short to reach the peak speed
        v_peak = float(np.sqrt(2.0 * a_s * S / np.pi))
        t_ramp = v_peak * np.pi / (2.0 * a_s)
        duration = 2.0 * t_ramp
    return _Piece(P, knots, spline, t_start, float(duration), float(v_peak), float(t_ramp))


def time_parameterize(
    path: Sequence[Sequence[float]] | np.ndarray,
    speed_factor: float = 0.2,
    *,
    dq_max: np.ndarray = PANDA_DQ_MAX,
    ddq_max: np.ndarray = PANDA_DDQ_MAX,
    corner_deg: float = 30.0,
) -> JointTrajectory:
    """Time-parameterise a joint path inside dq_max * speed_factor (and ddq_max * speed_factor).

    The waypoints are joined by a C2 cubic spline and passed without stopping; where the path turns
    by more than `corner_deg` between two segments (in joint space scaled by the limits) the arm comes
    to rest instead, so a spline never overshoots around a sharp corner.
    """
    speed = _check_speed(speed_factor)
    P = np.asarray(path, dtype=float)
    if P.ndim != 2 or P.shape[1] != len(dq_max) or len(P) < 1:
        raise ValueError(f"path must be an (N, {len(dq_max)}) array of joint waypoints, got shape {P.shape}")
    if not np.all(np.isfinite(P)):
        raise ValueError("path contains non-finite joint values")
    # Drop repeated waypoints; keep at least two rows.
    keep = np.concatenate([[True], np.max(np.abs(np.diff(P, axis=0)), axis=1) > 1e-9])
    P = P[keep]
    if len(P) == 1:
        P = np.vstack([P, P])
    vmax = np.asarray(dq_max, dtype=float) * speed
    amax = np.asarray(ddq_max, dtype=float) * speed
    D = np.diff(P, axis=0) / vmax
    U = D / np.maximum(np.linalg.norm(D, axis=1), 1e-12)[:, None]  # a hold in place is one zero-length row
    cos_turn = np.sum(U[1:] * U[:-1], axis=1)
    cuts = [0] + [k + 1 for k in np.nonzero(cos_turn < np.cos(np.deg2rad(corner_deg)))[0]] + [len(P) - 1]
    pieces = []
    t = 0.0
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        piece = _piece(P[a : b + 1], vmax, amax, t)
        pieces.append(piece)
        t += piece.duration
    return JointTrajectory(tuple(pieces), float(t), speed, vmax)


@dataclass(frozen=True)
class JointPath:
    """A joint path following a Cartesian path; `reachable` is False if some pose had no IK solution
    (or only one that jumps configuration), with `failed_index` the index into the given poses."""

    q: np.ndarray  # (M, 7), starting at q0
    pose_index: np.ndarray  # (M,) index of the given pose each row leads to (-1 for q0)
    reachable: bool
    failed_index: int | None = None
    message: str = ""


def _segment_poses(a: Pose, b: Pose, max_step_m: float, max_step_rad: float, long_way: bool) -> list[Pose]:
    """Poses from a (excluded) to b (included): straight line and a rotation about one fixed axis,
    the short way round, or the long way round (same end pose, the complementary arc)."""
    rotvec = (b.rotation * a.rotation.inv()).as_rotvec()  # world-frame rotation taking a to b
    angle = float(np.linalg.norm(rotvec))
    if long_way and angle > 1e-9:
        rotvec = rotvec / angle * (angle - 2.0 * np.pi)
        angle = 2.0 * np.pi - angle
    dist = float(np.linalg.norm(b.translation - a.translation))
    n = max(1, int(np.ceil(max(dist / max_step_m, angle / max_step_rad))))
    out = []
    for k in range(1, n + 1):
        s = k / n
        rot = Rotation.from_rotvec(s * rotvec) * a.rotation
        out.append(Pose.from_rotation(rot, (1.0 - s) * a.translation + s * b.translation))
    out[-1] = b
    return out


def cartesian_to_joint_path(
    model: mujoco.MjModel,
    poses: Sequence[Pose],
    q0: Sequence[float] | np.ndarray,
    *,
    max_step_m: float = 0.01,
    max_step_rad: float = np.deg2rad(5.0),
    max_joint_jump: float = 0.5,
    pos_tol: float = 1e-3,
    rot_tol: float = np.deg2rad(0.5),
    vertical_cos: float = 0.9,
) -> JointPath:
    """IK along a Cartesian TCP path from the pose at q0 through `poses`, interpolated finely
    (<= max_step_m, <= max_step_rad per step) so the TCP follows straight lines and turns about a
    fixed axis; each solve is warm-started from the previous one for continuity.

    A segment turns the short way round. If that is infeasible (typically joint 7 running into its
    limit) and the turn is about a near-vertical axis (|axis . z| >= vertical_cos: a held object stays
    upright either way), the segment is retried the long way round, which reaches the same pose.
    """
    q_prev = np.asarray(q0, dtype=float)
    if q_prev.shape != (7,):
        raise ValueError(f"q0 must have 7 joint values, got shape {q_prev.shape}")
    if len(poses) == 0:
        raise ValueError("poses is empty")
    rows = [q_prev.copy()]
    index = [-1]
    current = tcp_pose(model, q_prev)
    for i, target in enumerate(poses):
        rotvec = (target.rotation * current.rotation.inv()).as_rotvec()
        angle = float(np.linalg.norm(rotvec))
        vertical = angle > np.deg2rad(20.0) and abs(rotvec[2]) / angle >= vertical_cos
        attempts = (False, True) if vertical else (False,)
        failure = ""
        for long_way in attempts:
            seg_rows, failure = _solve_segment(
                model, _segment_poses(current, target, max_step_m, max_step_rad, long_way), q_prev,
                pos_tol, rot_tol, max_joint_jump, seed=i,
            )
            if not failure:
                break
        if failure:
            return JointPath(
                q=np.asarray(rows), pose_index=np.asarray(index), reachable=False, failed_index=i,
                message=f"pose {i} at {tuple(round(v, 3) for v in target.position)}: {failure}",
            )
        rows += seg_rows
        index += [i] * len(seg_rows)
        q_prev = seg_rows[-1]
        current = target
    return JointPath(q=np.asarray(rows), pose_index=np.asarray(index), reachable=True)


def _solve_segment(
    model: mujoco.MjModel,
    poses: list[Pose],
    q_prev: np.ndarray,
    pos_tol: float,
    rot_tol: float,
    max_joint_jump: float,
    seed: int,
) -> tuple[list[np.ndarray], str]:
    """Joint rows for consecutive poses, or ([], why) at the first one without a continuous solution."""
    rows: list[np.ndarray] = []
    for p in poses:
        res = solve_ik(model, p, q_prev, pos_tol=pos_tol, rot_tol=rot_tol, restarts=0, max_iters=100,
                       nullspace_gain=0.0)
        if not res.success:
            # Pure tracking stalls when a joint runs into its limit (typically joint 7 while a held
            # object turns); the same warm start with a pull towards mid-range uses the arm's seventh
            # degree of freedom to move the other joints instead, staying on the same branch.
            res = solve_ik(model, p, q_prev, pos_tol=pos_tol, rot_tol=rot_tol, restarts=0, max_iters=300,
                           nullspace_gain=0.2)
        if not res.success or float(np.max(np.abs(res.q - q_prev))) > max_joint_jump:
            res = solve_ik(model, p, q_prev, pos_tol=pos_tol, rot_tol=rot_tol, restarts=6, seed=seed)
        jump = float(np.max(np.abs(res.q - q_prev)))
        if not res.success:
            return [], f"no IK solution (error {res.pos_err * 1000:.1f} mm, {np.rad2deg(res.rot_err):.1f} deg)"
        if jump > max_joint_jump:
            return [], f"the only IK solution found jumps {jump:.2f} rad in one step"
        rows.append(res.q)
        q_prev = res.q
    return rows, ""


def within_joint_limits(q: Sequence[float] | np.ndarray, margin: float = 0.0) -> bool:
    qa = np.asarray(q, dtype=float)
    return bool(np.all(qa >= PANDA_Q_MIN + margin) and np.all(qa <= PANDA_Q_MAX - margin))
