"""Score grasp candidates and trajectories: IK inside joint limits, and no collision.

A candidate's score is the fraction of its waypoints that have an IK solution within the Panda's
joint limits (warm-started from the previous waypoint, so the arm follows one continuous branch)
and whose configuration is collision-free. Collisions are judged by a `CollisionChecker`:

- `MujocoCollisionChecker`: the simulator's own MuJoCo model (in simulation only): the arm is posed
  in a private MjData copy of the world and MuJoCo's collision detection lists penetrating contacts
  between robot geoms and anything but the objects the step is allowed to touch.
- `PointCloudCollisionChecker`: the perceived point cloud (the general case, real robot): the hand
  and fingers as spheres in the gripper frame, the cloud without the target object's points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, Field
from scipy.spatial import cKDTree

from core.geometry import Pose
from core.motion import PANDA_Q_MAX, PANDA_Q_MIN
from tools.robot.ik import ARM_JOINTS, FINGER_JOINTS, ROBOT_BODY_PREFIX, panda_model

LIGHT_BODY_KG = 0.01


@runtime_checkable
class CollisionChecker(Protocol):
    name: str

    def collides(self, q: np.ndarray, tcp: Pose, width: float) -> str:
        """'' when the configuration is free, else what it hits."""
        ...


class PointCloudCollisionChecker:
    """The gripper (hand + fingers as spheres, gripper frame) against a world point cloud."""

    name = "point cloud"
    # (x, y, z in the gripper frame, radius): fingers near the TCP, the hand body ~7 cm behind it
    HAND_SPHERES = ((0.0, 0.0, -0.075, 0.03), (0.0, 0.06, -0.075, 0.025), (0.0, -0.06, -0.075, 0.025),
                    (0.0, 0.0, -0.13, 0.04))

    def __init__(self, cloud: np.ndarray, margin: float = 0.0, fingers_only: np.ndarray | None = None) -> None:
        """`fingers_only`: points of a part only the fingers may touch (the part being grasped): the
        hand's body is checked against them as well, the fingers are not."""
        self.cloud = np.asarray(cloud, dtype=float).reshape(-1, 3)
        self.tree = cKDTree(self.cloud) if len(self.cloud) else None
        part = np.zeros((0, 3)) if fingers_only is None else np.asarray(fingers_only, dtype=float).reshape(-1, 3)
        self.part_tree = cKDTree(part) if len(part) else None
        self.margin = margin

    def spheres(self, tcp: Pose, width: float) -> np.ndarray:
        half = min(max(width, 0.0), 0.08) / 2 + 0.008
        local = [(0.0, s * half, z, 0.009) for s in (-1, 1) for z in (-0.005, -0.025, -0.045)]
        local += list(self.HAND_SPHERES)
        arr = np.array(local)
        T = tcp.matrix()
        centres = arr[:, :3] @ T[:3, :3].T + T[:3, 3]
        return np.column_stack([centres, arr[:, 3]])

    def collides(self, q: np.ndarray, tcp: Pose, width: float) -> str:
        spheres = self.spheres(tcp, width)
        if self.tree is not None:
            for c in spheres:
                hits = self.tree.query_ball_point(c[:3], c[3] + self.margin)
                if len(hits) >= 3:  # a few points, not one stray pixel
                    return f"gripper within {c[3] * 100:.1f} cm of {len(hits)} scene points"
        if self.part_tree is not None:
            for c in spheres[-len(self.HAND_SPHERES):]:
                hits = self.part_tree.query_ball_point(c[:3], c[3] + self.margin)
                if len(hits) >= 3:
                    return f"hand within {c[3] * 100:.1f} cm of {len(hits)} points of the part it grasps"
        return ""


class MujocoCollisionChecker:
    """The arm posed in a copy of the simulator's MuJoCo state; penetrating contacts with the scene."""

    name = "mujoco model"

    def __init__(self, model: Any, data: Any, allowed_bodies: Sequence[str] = (), depth: float = 0.004,
                 hand_only_bodies: Sequence[str] = (), fingers_only_bodies: Sequence[str] = ()) -> None:
        """`allowed_bodies` (and their children) may be touched; those also in `hand_only_bodies` only by
        the hand and fingers (the arm's links against the cup poured into are a collision), those in
        `fingers_only_bodies` only by the fingers, and anything else of the robot touching them is a
        collision however shallow: a part on a hinge or a slide cannot give way, and the palm (a geom
        of link 7 in this model) driven 1 mm into a handle's end already presses with 60 N."""
        import mujoco

        self._mj = mujoco
        self.model = model
        self.data = mujoco.MjData(model)
        self.data.qpos[:] = data.qpos
        self.data.qvel[:] = 0.0
        jid = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ARM_JOINTS]
        self._qadr = np.array([model.jnt_qposadr[j] for j in jid])
        fid = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in FINGER_JOINTS]
        self._fadr = np.array([model.jnt_qposadr[j] for j in fid])
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) or "" for b in range(model.nbody)]
        robot = np.array([n.startswith(ROBOT_BODY_PREFIX) for n in names])
        # a body is allowed if it or an ancestor is allowed (a handle under a drawer)
        allowed = self._with_children(model, names, allowed_bodies)
        # light loose bodies (liquid particles, crumbs) are pushed aside, they never block the arm
        light = np.array([b > 0 and model.body_weldid[b] != 0 and model.body_subtreemass[b] < LIGHT_BODY_KG
                          for b in range(model.nbody)])
        hand_only = self._with_children(model, names, hand_only_bodies)
        fingers_only = self._with_children(model, names, fingers_only_bodies)
        is_finger = np.array([r and "finger" in n for r, n in zip(robot, names, strict=True)])
        self._fingers_only_geom = fingers_only[model.geom_bodyid]
        self._finger_geom = is_finger[model.geom_bodyid]
        is_hand = np.array([r and ("finger" in n or "hand" in n) for r, n in zip(robot, names, strict=True)])
        self._hand_only_geom = hand_only[model.geom_bodyid]
        self._hand_geom = is_hand[model.geom_bodyid]
        self._robot_geom = robot[model.geom_bodyid]
        self._allowed_geom = (allowed | (light & ~robot))[model.geom_bodyid]
        self._names = names
        self.depth = depth

    @staticmethod
    def _with_children(model: Any, names: list[str], bodies: Sequence[str]) -> np.ndarray:
        """Per body: whether it or an ancestor is named in `bodies`."""
        ids = {i for i, n in enumerate(names) if n in set(bodies)}
        out = np.zeros(model.nbody, dtype=bool)
        for b in range(model.nbody):
            k = b
            while k > 0:
                if k in ids:
                    out[b] = True
                    break
                k = int(model.body_parentid[k])
        return out

    def collides(self, q: np.ndarray, tcp: Pose, width: float) -> str:
        mj, m, d = self._mj, self.model, self.data
        d.qpos[self._qadr] = q
        d.qpos[self._fadr] = min(max(width, 0.0), 0.08) / 2
        mj.mj_kinematics(m, d)
        mj.mj_comPos(m, d)
        mj.mj_collision(m, d)
        n = d.ncon
        if n == 0:
            return ""
        g1, g2 = np.asarray(d.contact.geom1[:n]), np.asarray(d.contact.geom2[:n])
        dist = np.asarray(d.contact.dist[:n])
        r1, r2 = self._robot_geom[g1], self._robot_geom[g2]
        allowed = self._allowed_geom[g1] | self._allowed_geom[g2]
        # an arm link (not the hand) against a body only the hand may touch
        link_on_hand_only = (r1 & ~self._hand_geom[g1] & self._hand_only_geom[g2]) | \
            (r2 & ~self._hand_geom[g2] & self._hand_only_geom[g1])
        bad = (r1 ^ r2) & (~allowed | link_on_hand_only) & (dist < -self.depth)
        # the palm or a link against a part only the fingers may touch, at any penetration
        not_finger_on = (r1 & ~self._finger_geom[g1] & self._fingers_only_geom[g2]) | \
            (r2 & ~self._finger_geom[g2] & self._fingers_only_geom[g1])
        bad |= (r1 ^ r2) & not_finger_on & (dist < 0.0)
        if not np.any(bad):
            return ""
        i = int(np.flatnonzero(bad)[0])
        a, b = (g1[i], g2[i]) if r1[i] else (g2[i], g1[i])
        return f"{self._names[m.geom_bodyid[a]]} against {self._names[m.geom_bodyid[b]]}"


class NoCollisionChecker:
    name = "none"

    def collides(self, q: np.ndarray, tcp: Pose, width: float) -> str:
        return ""


class PathCheck(BaseModel):
    """Feasibility of one sequence of gripper poses."""

    n: int
    reachable: list[bool]
    collision_free: list[bool]
    q: list[list[float]] = Field(default_factory=list, repr=False)
    messages: list[str] = Field(default_factory=list)

    @property
    def score(self) -> float:
        if self.n == 0:
            return 0.0
        return sum(r and c for r, c in zip(self.reachable, self.collision_free, strict=True)) / self.n

    @property
    def ok(self) -> bool:
        return self.n > 0 and all(self.reachable) and all(self.collision_free)

    def first_problem(self) -> str:
        return next((m for m in self.messages if m), "")


def check_path(
    poses: Sequence[Pose],
    q0: Sequence[float],
    checker: CollisionChecker | None = None,
    *,
    widths: Sequence[float] | float = 0.08,
    collide_from: int = 0,
    model: Any = None,
) -> PathCheck:
    """IK along the path exactly as the robot will move (tools.robot.trajectory.cartesian_to_joint_path:
    finely interpolated, warm-started, inside joint limits, no branch jumps), then collisions of the
    configurations reaching each pose (and half-way to it).

    `collide_from`: poses before this index are not collision-checked; `widths`: the gripper opening
    at each pose.
    """
    from tools.robot.trajectory import cartesian_to_joint_path

    model = model if model is not None else panda_model()
    checker = checker or NoCollisionChecker()
    n = len(poses)
    ws = [float(widths)] * n if isinstance(widths, float | int) else [float(w) for w in widths]
    if n == 0:
        return PathCheck(n=0, reachable=[], collision_free=[])
    path = cartesian_to_joint_path(model, poses, np.asarray(q0, dtype=float))
    failed = n if path.reachable else int(path.failed_index or 0)
    reach = [i < failed for i in range(n)]
    free, qs, msgs = [], [], []
    idx = np.asarray(path.pose_index)
    for i in range(n):
        rows = np.flatnonzero(idx == i)
        if not reach[i] or len(rows) == 0:
            free.append(False)
            qs.append([])
            msgs.append(f"pose {i}: {path.message}" if i == failed else f"pose {i}: not reached")
            continue
        q_end = path.q[rows[-1]]
        inside = bool(np.all(q_end >= PANDA_Q_MIN) and np.all(q_end <= PANDA_Q_MAX))
        hit = ""
        if i >= collide_from:
            for r in (rows[len(rows) // 2], rows[-1]):
                hit = checker.collides(path.q[r], poses[i] if r == rows[-1] else _fk(model, path.q[r]), ws[i])
                if hit:
                    break
        if not inside:
            reach[i] = False
        free.append(not hit)
        qs.append([float(v) for v in q_end])
        msgs.append("" if (inside and not hit) else f"pose {i}: {hit or 'outside the joint limits'}")
    return PathCheck(n=n, reachable=reach, collision_free=free, q=qs, messages=msgs)


def _fk(model: Any, q: np.ndarray) -> Pose:
    from tools.robot.ik import tcp_pose

    return tcp_pose(model, q)


def rank(checks: Sequence[PathCheck]) -> list[int]:
    """Indices of candidates, best first (score, then order given: candidates come centre-first)."""
    return sorted(range(len(checks)), key=lambda i: (-checks[i].score, i))
