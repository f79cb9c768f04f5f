"""Grasp candidates and world-frame gripper trajectories (DESIGN §1.4).

Grasping: candidates are sampled on the 5x5 grids of the learned regions (tools.constraints.grasp),
turned into world poses T_world_object · T_object_gripper with an orientation built from the
approach constraint (gripper z = approach) and the object's shape (closing axis y: the learned one
projected off the approach, else the object's thinnest axis across the approach), the 180° twist
about the approach that is kinder to the wrist chosen, and framed by a pre-grasp and a retreat pose
along the approach.

Manipulation: T_world_gripper(t) = T_world_master · T_master_slave(t) · T_slave_gripper, the program
started from the slave's measured pose in the master frame (so a drawer is pulled from where it is,
a held cup travels from where it was taken), with a Revision's scale/angle/lift applied.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial.transform import Rotation as Rot

from core.geometry import Pose
from core.program import Arc, Rotation, StartPose, Tilt, TrajectoryProgram
from core.skills import GraspConstraint, ManipulationConstraint
from tools.constraints.grasp import in_region, sample_candidates, to_fractions
from tools.constraints.instantiate import matrices_at

PREGRASP_M = 0.10  # pre-grasp stand-off along the approach
RETREAT_M = 0.10
N_TRAJECTORY = 24  # waypoints of a manipulation trajectory


class Revision(BaseModel):
    """The subset of agents.reasoning.questions.Revision the tools apply (duck-typed: tools never import agents)."""

    grasp_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    approach: tuple[float, float, float] | None = None
    trajectory_scale: float = 1.0
    angle_scale: float = 1.0
    lift_m: float = 0.0


def as_revision(r: object | None) -> Revision:
    if r is None:
        return Revision()
    if isinstance(r, Revision):
        return r
    return Revision(**{k: getattr(r, k) for k in Revision.model_fields if hasattr(r, k)})


class GraspPlan(BaseModel):
    """One grasp candidate in the world: approach path, grasp pose, retreat."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    region: int
    cell: int
    T_object_gripper: Pose
    grasp: Pose = Field(description="T_world_gripper at the grasp")
    pregrasp: Pose
    retreat: Pose
    width: float = Field(description="expected opening at contact, m")
    in_region: bool = True
    inside_object: bool = True

    def approach_path(self) -> list[Pose]:
        return [self.pregrasp, self.grasp]

    def waypoints(self) -> list[Pose]:
        return [self.pregrasp, self.grasp, self.retreat]


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


def grasp_rotation(
    approach: Sequence[float],
    learned: Sequence[float],
    bbox_size: Sequence[float],
    R_world_object: np.ndarray,
    prefer_y_world: Sequence[float] | None = None,
) -> np.ndarray:
    """Gripper rotation in the object frame: z = approach, y from the learned orientation (or shape).

    Of the two twists (y, -y) the one whose world y is nearest `prefer_y_world` (default: the home
    gripper's closing axis, world -y... any fixed reference keeps the wrist away from its limits) wins.
    """
    z = _unit(np.asarray(approach, dtype=float))
    y_learned = Rot.from_quat(learned).as_matrix()[:, 1]
    y = y_learned - z * float(y_learned @ z)
    if np.linalg.norm(y) < 0.3:  # learned closing axis along the approach: fall back to the shape
        size = np.asarray(bbox_size, dtype=float)
        axes = [i for i in range(3) if abs(z[i]) < 0.7]
        i = min(axes, key=lambda k: size[k]) if axes else int(np.argmin(np.abs(z)))
        y = np.eye(3)[i] - z * z[i]
    y = _unit(y)
    x = np.cross(y, z)
    R = np.column_stack([x, y, z])
    ref = np.asarray(prefer_y_world if prefer_y_world is not None else (0.0, -1.0, 0.0), dtype=float)
    if float((R_world_object @ y) @ ref) < 0:
        R = R @ np.diag([-1.0, -1.0, 1.0])  # twist 180° about the approach
    return R


def align_to_edges(R_og: np.ndarray, R_wo: np.ndarray, edges_world: np.ndarray, vertical: float = 0.8) -> np.ndarray:
    """For a grasp from above, turn the closing axis onto the nearest footprint edge direction (the
    fingers then close on two parallel faces of a box, not across its corners)."""
    R_wg = R_wo @ R_og
    z = R_wg[:, 2]
    if abs(float(z[2])) < vertical or len(edges_world) == 0:
        return R_og
    y = R_wg[:, 1]
    cands = np.concatenate([edges_world, -edges_world])
    cands = cands - np.outer(cands @ z, z)  # onto the plane across the approach
    cands = cands / np.maximum(np.linalg.norm(cands, axis=1, keepdims=True), 1e-9)
    y_new = cands[int(np.argmax(cands @ y))]
    x_new = np.cross(y_new, z)
    return R_wo.T @ np.column_stack([x_new, y_new, z])


def grasp_candidates(
    constraint: GraspConstraint,
    T_world_object: np.ndarray,
    bbox_size: Sequence[float],
    *,
    n: int = 4,
    seed: int = 0,
    revision: object | None = None,
    exclude: Sequence[tuple[int, int]] = (),
    prefer_y_world: Sequence[float] | None = None,
    edges_world: np.ndarray | None = None,
    pregrasp_m: float = PREGRASP_M,
    retreat_m: float = RETREAT_M,
) -> list[GraspPlan]:
    """Up to n world-frame grasp plans inside the learned regions (best-weighted region, centre cells first)."""
    rev = as_revision(revision)
    approach = np.asarray(rev.approach if rev.approach is not None else constraint.approach, dtype=float)
    R_wo = T_world_object[:3, :3]
    R_og = grasp_rotation(approach, constraint.orientation, bbox_size, R_wo, prefer_y_world)
    if edges_world is not None:
        R_og = align_to_edges(R_og, R_wo, np.asarray(edges_world, dtype=float))
    cands = sample_candidates(constraint, bbox_size, n=n, seed=seed, offset=rev.grasp_offset, exclude=exclude)
    out = []
    for c in cands:
        T_og = np.eye(4)
        T_og[:3, :3] = R_og
        T_og[:3, 3] = c.T_object_gripper.position
        T_wg = T_world_object @ T_og
        z_w = T_wg[:3, 2]
        grasp = Pose.from_matrix(T_wg)
        pre = T_wg.copy()
        pre[:3, 3] = T_wg[:3, 3] - z_w * pregrasp_m
        pre[2, 3] += max(rev.lift_m, 0.0)
        ret = T_wg.copy()
        ret[:3, 3] = T_wg[:3, 3] - z_w * retreat_m
        ret[2, 3] += 0.03
        frac = to_fractions(np.asarray(c.T_object_gripper.position)[None], bbox_size)[0]
        inside_reg = bool(any(in_region(r, frac[None], margin=0.02)[0] for r in constraint.regions))
        out.append(GraspPlan(
            region=c.region, cell=c.cell, T_object_gripper=Pose.from_matrix(T_og), grasp=grasp,
            pregrasp=Pose.from_matrix(pre), retreat=Pose.from_matrix(ret), width=constraint.width,
            in_region=inside_reg, inside_object=bool(np.all(np.abs(frac) <= 0.5 + 0.15)),
        ))
    return out


# --- manipulation ---------------------------------------------------------------------------------


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
) -> np.ndarray:
    """(n, 4, 4) T_master_slave(t), started from the measured pose when given, with the revision applied."""
    rev = as_revision(revision)
    prog = _scaled_angles(constraint.program, rev.angle_scale)
    if T_master_slave_now is not None:
        p = Pose.from_matrix(T_master_slave_now)
        prog = prog.model_copy(update={"start": StartPose(position=p.position, quaternion=p.quaternion)})
    Ts = matrices_at(prog, sizes, sample_times(prog, sizes, n))
    if abs(rev.trajectory_scale - 1.0) > 1e-9:
        p0 = Ts[0, :3, 3].copy()
        Ts[:, :3, 3] = p0 + rev.trajectory_scale * (Ts[:, :3, 3] - p0)
    if abs(rev.lift_m) > 1e-9 and len(Ts) > 2:
        # lift the middle of the motion (start and end stay where contact happens)
        bump = np.sin(np.linspace(0.0, np.pi, len(Ts)))
        Ts[:, 2, 3] += rev.lift_m * bump
    return Ts


def sample_times(program: TrajectoryProgram, sizes: dict[str, Sequence[float]], n: int = N_TRAJECTORY,
                 dense: int = 400, corner_deg: float = 30.0) -> np.ndarray:
    """n evenly spaced times plus the corners of the path (a press's deepest point, a waypoint), so
    that sparse sampling never cuts a corner short."""
    td = np.linspace(0.0, 1.0, dense)
    p = matrices_at(program, sizes, td)[:, :3, 3]
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
    return np.unique(np.concatenate([np.linspace(0.0, 1.0, n), corners]))


def world_trajectory(T_world_master: np.ndarray, T_master_slave: np.ndarray, T_slave_gripper: np.ndarray) -> list[Pose]:
    """T_world_gripper(t) = T_world_master · T_master_slave(t) · T_slave_gripper."""
    return [Pose.from_matrix(T_world_master @ T @ T_slave_gripper) for T in T_master_slave]


def retreat_pose(T_world_gripper: Pose, distance: float = RETREAT_M, up: float = 0.03) -> Pose:
    """Back off along the gripper's approach axis and a little up."""
    T = T_world_gripper.matrix()
    T[:3, 3] = T[:3, 3] - T[:3, 2] * distance + np.array([0.0, 0.0, up])
    return Pose.from_matrix(T)


def keypoints_of(Ts: np.ndarray, k: int = 10) -> np.ndarray:
    """k slave positions evenly spaced in time (the paper's 10 keypoints)."""
    idx = np.linspace(0, len(Ts) - 1, k).round().astype(int)
    return Ts[idx, :3, 3].copy()
