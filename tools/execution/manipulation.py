"""World-frame gripper trajectories of a manipulation (DESIGN §1.4).

T_world_gripper(t) = T_world_master · T_master_slave(t) · T_slave_gripper, the program started from
the slave's measured pose in the master frame (so a drawer is pulled from where it is, a held cup
travels from where it was taken), with a Revision's scale/angle/lift applied; the times at which a
program passes a demo's keypoints (where an adapted motion is compared with the demonstrated one).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation as Rot

from core.geometry import Pose, invert_transform
from core.program import Arc, Rotation, StartPose, Tilt, TrajectoryProgram
from core.skills import ManipulationConstraint
from tools.constraints.instantiate import matrices_at
from tools.execution.candidates import as_revision

N_TRAJECTORY = 24  # waypoints of a manipulation trajectory


def _scaled_angles(program: TrajectoryProgram, scale: float) -> TrajectoryProgram:
    if abs(scale - 1.0) < 1e-9:
        return program
    steps = []
    for st in program.steps:
        if isinstance(st, Arc | Rotation | Tilt):
            st = st.model_copy(update={"angle_deg": f"({st.angle_deg}) * {scale:.6g}"})
        steps.append(st)
    return program.model_copy(update={"steps": steps})


def master_slave_trajectory(
    constraint: ManipulationConstraint,
    sizes: dict[str, Sequence[float]],
    T_master_slave_now: np.ndarray | None,
    *,
    revision: object | None = None,
    n: int = N_TRAJECTORY,
    times: Sequence[float] | None = None,
    scale_about: str = "start",
    relative: bool = False,
) -> np.ndarray:
    """T_master_slave(t) (k, 4, 4), started from the measured pose when given, with the revision
    applied; at `times` when given (t in [0, 1]; the program's own clock: what the demo's keypoints
    are compared at), else at `sample_times(program, sizes, n)` (dense where it turns, for execution).

    A trajectory scale stretches the motion about its start (`scale_about="start"`: where the held
    or attached slave is, a drawer pulled further) or about its contact (`"contact"`: the point
    nearest the master, for a hand that starts in free space and presses or pushes: the approach
    shortens or lengthens, the press stays on the button).

    `relative`: the demonstrated motion is replayed as a displacement of the measured start,
    T(t) = T_demo(t) · inv(T_demo(0)) · T_now, instead of running from T_now to the demonstrated
    (absolute) waypoints. Right for a part of a fixture (a lever turned on and back off): where it
    ends is where the mechanism takes it from where it is, and a perceived frame that sits a few
    degrees off the demonstrated one must not turn into a net turn of the lever."""
    rev = as_revision(revision)
    prog = _scaled_angles(constraint.program, rev.angle_scale)
    if T_master_slave_now is not None and not relative:
        p = Pose.from_matrix(T_master_slave_now)
        prog = prog.model_copy(update={"start": StartPose(position=p.position, quaternion=p.quaternion)})
    shift = None
    if T_master_slave_now is not None and relative:
        shift = invert_transform(matrices_at(prog, sizes, [0.0])[0]) @ np.asarray(T_master_slave_now, dtype=float)

    def at(ts: Sequence[float] | np.ndarray) -> np.ndarray:
        M = matrices_at(prog, sizes, ts)
        return M if shift is None else np.einsum("kij,jl->kil", M, shift)

    Ts = at(sample_times(prog, sizes, n) if times is None else np.asarray(times, dtype=float))
    if abs(rev.trajectory_scale - 1.0) > 1e-9:
        if scale_about == "contact":
            dense = at(np.linspace(0.0, 1.0, 200))[:, :3, 3]
            p0 = dense[int(np.argmin(np.linalg.norm(dense, axis=1)))].copy()
        elif scale_about == "start":
            p0 = at([0.0])[0, :3, 3].copy()
        else:
            raise ValueError(f"scale_about must be 'start' or 'contact', not {scale_about!r}")
        Ts[:, :3, 3] = p0 + rev.trajectory_scale * (Ts[:, :3, 3] - p0)
    if abs(rev.lift_m) > 1e-9 and len(Ts) > 2:
        # lift the middle of the motion (start and end stay where contact happens)
        bump = np.sin(np.linspace(0.0, np.pi, len(Ts)))
        Ts[:, 2, 3] += rev.lift_m * bump
    return Ts


def sample_times(program: TrajectoryProgram, sizes: dict[str, Sequence[float]], n: int = N_TRAJECTORY,
                 dense: int = 400, corner_deg: float = 30.0, max_turn_deg: float = 10.0,
                 m_per_rad: float = 0.1) -> np.ndarray:
    """n times evenly spaced in motion (metres of travel plus `m_per_rad` per radian turned, so that a
    tilt made almost in place, a pour, gets its share of poses), more where needed so that no two
    neighbours differ by more than `max_turn_deg`, plus the corners of the path (a press's deepest
    point, a waypoint), so that sparse sampling never cuts a corner or a turn short."""
    td = np.linspace(0.0, 1.0, dense)
    Md = matrices_at(program, sizes, td)
    p = Md[:, :3, 3]
    turn = Rot.from_matrix(np.einsum("kji,kjl->kil", Md[:-1, :3, :3], Md[1:, :3, :3])).magnitude()
    effort = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1) + m_per_rad * turn)])
    n_turn = int(np.ceil(float(turn.sum()) / np.deg2rad(max_turn_deg))) + 1
    k = max(n, min(n_turn, 4 * n))
    if effort[-1] > 1e-9:
        t_even = np.interp(np.linspace(0.0, effort[-1], k), effort + np.arange(dense) * 1e-12, td)
    else:
        t_even = np.linspace(0.0, 1.0, k)
    d = np.diff(p, axis=0)
    norm = np.linalg.norm(d, axis=1)
    corners = []
    last = None
    for i in range(len(d)):
        if norm[i] < 1e-7:
            continue
        u = d[i] / norm[i]
        if last is not None and float(u @ last[1]) < np.cos(np.deg2rad(corner_deg)):
            corners.append(td[i])
        last = (i, u)
    ts = np.unique(np.concatenate([t_even, [0.0, 1.0], corners]))
    for _ in range(8):  # halve any interval that still turns too far (a tilt made within a few mm of travel)
        M = matrices_at(program, sizes, ts)
        gap = Rot.from_matrix(np.einsum("kji,kjl->kil", M[:-1, :3, :3], M[1:, :3, :3])).magnitude()
        wide = gap > np.deg2rad(max_turn_deg)
        if not np.any(wide) or len(ts) >= 8 * n:
            break
        ts = np.unique(np.concatenate([ts, 0.5 * (ts[:-1][wide] + ts[1:][wide])]))
    return ts



def _rot_z(a: float) -> np.ndarray:
    T = np.eye(4)
    c, s = np.cos(a), np.sin(a)
    T[:2, :2] = [[c, -s], [s, c]]
    return T


def yaw_master_to_demo(T_world_master: np.ndarray, T_world_slave: np.ndarray, T_ms_learned: np.ndarray,
                       min_offset_m: float = 0.03) -> np.ndarray:
    """A round master's frame turned about its z so that the slave lies in the same direction from it
    as at the demonstrated start (the demo's 'source to the side of the target' holds whichever side
    the source stands on now). Unchanged when either lies on the master's axis."""
    now = (invert_transform(T_world_master) @ T_world_slave)[:2, 3]
    then = np.asarray(T_ms_learned)[:2, 3]
    if np.linalg.norm(now) < min_offset_m or np.linalg.norm(then) < min_offset_m:
        return np.asarray(T_world_master, dtype=float).copy()
    a = float(np.arctan2(now[1], now[0]) - np.arctan2(then[1], then[0]))
    return np.asarray(T_world_master, dtype=float) @ _rot_z(a)


def yaw_slave_to_demo(T_master_slave: np.ndarray, T_ms_learned: np.ndarray) -> np.ndarray:
    """The turn Rz(d) about a round slave's own z that brings its measured orientation (master frame)
    nearest the demonstrated start orientation: use T_master_slave · Rz(d) and Rz(-d) · T_slave_gripper
    (the same physical grasp), so the program's orientations need no twist of the wrist about the
    slave's axis that the demo never made."""
    R_now, R_then = np.asarray(T_master_slave)[:3, :3], np.asarray(T_ms_learned)[:3, :3]
    best, best_err = np.eye(4), np.inf
    for a in np.deg2rad(np.arange(0.0, 360.0, 5.0)):
        Rz = _rot_z(float(a))
        err = float(Rot.from_matrix(R_then.T @ R_now @ Rz[:3, :3]).magnitude())
        if err < best_err:
            best, best_err = Rz, err
    return best


TILTED_DEG = 30.0  # a held object whose axis leaves the start's by more than this is tilted (a pour)


def tilts_slave(T_master_slave: np.ndarray, min_deg: float = TILTED_DEG) -> bool:
    """Does the trajectory tip the slave's own z away from where it starts (more than `min_deg`)?"""
    T = np.asarray(T_master_slave, dtype=float)
    z0 = T[0][:3, 2]
    cos = np.clip(T[:, :3, 2] @ z0, -1.0, 1.0)
    return bool(np.degrees(np.arccos(cos.min())) > min_deg)


def yaw_slave_to_grip(T_master_slave: np.ndarray, T_slave_gripper: np.ndarray, T_ms_learned: np.ndarray,
                      T_sg_learned: np.ndarray, max_finger_tilt: float = 0.7) -> np.ndarray | None:
    """For a round slave that the program tilts: the turn Rz(d) about its own z after which the gripper
    holds it as in the demos, i.e. Rz(-d) · T_slave_gripper has the demonstrated finger axis about the
    slave's z. The tilt is then about the same axis relative to the fingers as demonstrated (a pour's
    fingers along the tilt, its lip free; fingers across it stand in the lip and scatter the pour).
    Of the two such turns (a parallel gripper is the same after a half turn) the one nearer the
    demonstrated start orientation. None when a finger axis is too near the slave's z to have a yaw."""
    y_now = np.asarray(T_slave_gripper, dtype=float)[:3, 1]
    y_then = np.asarray(T_sg_learned, dtype=float)[:3, 1]
    if abs(y_now[2]) > max_finger_tilt or abs(y_then[2]) > max_finger_tilt:
        return None
    d0 = float(np.arctan2(y_now[1], y_now[0]) - np.arctan2(y_then[1], y_then[0]))
    R_now, R_then = np.asarray(T_master_slave)[:3, :3], np.asarray(T_ms_learned)[:3, :3]
    turns = [_rot_z(d0), _rot_z(d0 + np.pi)]
    errs = [float(Rot.from_matrix(R_then.T @ R_now @ Rz[:3, :3]).magnitude()) for Rz in turns]
    return turns[int(np.argmin(errs))]


def world_trajectory(T_world_master: np.ndarray, T_master_slave: np.ndarray, T_slave_gripper: np.ndarray) -> list[Pose]:
    """T_world_gripper(t) = T_world_master · T_master_slave(t) · T_slave_gripper."""
    return [Pose.from_matrix(T_world_master @ T @ T_slave_gripper) for T in T_master_slave]



def keypoint_times(constraint: ManipulationConstraint, demo_sizes: dict[str, Sequence[float]],
                   keypoints: Sequence[Sequence[float]], dense: int = 400) -> np.ndarray:
    """The program's times at which it passes the demonstrated keypoints (demo's object sizes; in
    order along the path): where the adapted program is to be compared with them point by point.
    The keypoints were taken evenly in the demo's time, the program runs on its own clock (a pause
    in the demo is no time in a program)."""
    td = np.linspace(0.0, 1.0, dense)
    P = matrices_at(constraint.program, demo_sizes, td)[:, :3, 3]
    K = np.asarray(keypoints, dtype=float).reshape(-1, 3)
    if len(K) == 0:
        return np.zeros(0)
    # the in-order match of least total distance (dynamic programming over non-decreasing times): a
    # greedy nearest match jumps to a later pass over the same place (a scrub's next stroke) and
    # leaves the rest of the keypoints piled up at the end
    C = np.linalg.norm(K[:, None, :] - P[None, :, :], axis=2)  # (k, dense)
    D = C[0].copy()
    back = np.zeros((len(K), dense), dtype=int)
    for i in range(1, len(K)):
        arg = np.zeros(dense, dtype=int)
        best = np.minimum.accumulate(D)
        # index of the running minimum (the best earlier time for each j)
        run = 0
        for j in range(dense):
            if D[j] <= D[run]:
                run = j
            arg[j] = run
        back[i] = arg
        D = C[i] + best
    j = int(np.argmin(D))
    idx = [j]
    for i in range(len(K) - 1, 0, -1):
        j = int(back[i][j])
        idx.append(j)
    return td[np.asarray(idx[::-1])]


def keypoints_of(Ts: np.ndarray, k: int = 10) -> np.ndarray:
    """k slave positions evenly spaced in time (the paper's 10 keypoints)."""
    idx = np.linspace(0, len(Ts) - 1, k).round().astype(int)
    return Ts[idx, :3, 3].copy()
