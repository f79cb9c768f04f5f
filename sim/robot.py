"""`SimRobot`: the MuJoCo implementation of tools.robot.protocols.Robot.

The arm is driven like a real Panda under a joint position controller: the actuators are PD loops
with velocity feed-forward, fed every physics step from a time-parameterised trajectory
(tools.robot.trajectory) that respects the Panda's velocity limits scaled by `speed_factor`.
Cartesian motion goes through the same IK the real robot uses (tools.robot.ik).

The gripper is physical: the two coupled fingers close at `speed` until they are blocked, then
squeeze with `force` (the actuator's force limit). Nothing is ever attached kinematically; a grasped
object is held by friction only.
"""

from __future__ import annotations

import sim.render  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)

# isort: split

from collections.abc import Sequence
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from core.geometry import Pose
from core.motion import (
    PANDA_GRIPPER_MAX_WIDTH,
    PANDA_HOME_Q,
    PANDA_Q_MAX,
    PANDA_Q_MIN,
    GraspResult,
    MotionResult,
    MotionStatus,
    RobotState,
)
from tools.robot.ik import (
    ARM_ACTUATORS,
    ARM_JOINTS,
    ARM_KP,
    ARM_KV,
    FINGER_BODIES,
    FINGER_JOINTS,
    GRIPPER_ACTUATOR,
    GRIPPER_FORCE_MAX,
    ROBOT_BODY_PREFIX,
    TCP_SITE,
)
from tools.robot.trajectory import JointTrajectory, cartesian_to_joint_path, time_parameterize

if TYPE_CHECKING:
    from sim.world import SimWorld

# An unexpected contact force above this (arm links against anything, fingers against the static
# scene) counts as a collision (N).
COLLISION_FORCE_N = 60.0
# Joint tracking error that means the arm is blocked (rad).
TRACKING_LIMIT_RAD = 0.25
SETTLE_TOL_RAD = 2e-3
BLOCKED_RAD = 0.02  # final joint error after settling that means the arm was blocked
SETTLE_MAX_S = 0.6
CHECK_EVERY = 10  # physics steps between safety checks


class SimRobot:
    """The simulated Panda of a SimWorld (poses in the world = robot base frame)."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        m = world.model
        jid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ARM_JOINTS]
        self._qadr = np.array([m.jnt_qposadr[j] for j in jid])
        self._dadr = np.array([m.jnt_dofadr[j] for j in jid])
        self._act = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n) for n in ARM_ACTUATORS])
        self._grip = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, GRIPPER_ACTUATOR)
        fid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in FINGER_JOINTS]
        self._fadr = np.array([m.jnt_qposadr[j] for j in fid])
        self._fdadr = np.array([m.jnt_dofadr[j] for j in fid])
        self._site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, TCP_SITE)
        self._ff = ARM_KV / ARM_KP  # velocity feed-forward folded into the position set-point
        robot_bodies = {
            b for b in range(m.nbody) if (mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) or "").startswith(
                ROBOT_BODY_PREFIX)
        }
        finger_bodies = {mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n) for n in FINGER_BODIES}
        self._finger_bodies = tuple(mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n) for n in FINGER_BODIES)
        geom_body = m.geom_bodyid
        self._is_robot_geom = np.isin(geom_body, list(robot_bodies))
        self._is_finger_geom = np.isin(geom_body, list(finger_bodies))
        self._arm_geom = self._is_robot_geom & ~self._is_finger_geom
        self._stop_requested = False
        self._grasped = False
        self._grasp_force = 40.0
        self._grasp_width = 0.0
        self._held_roots: list[int] = []
        self._force6 = np.zeros(6)
        self.reset(PANDA_HOME_Q)

    # --- state -----------------------------------------------------------------------------------

    def reset(self, q: Sequence[float] = PANDA_HOME_Q, width: float = PANDA_GRIPPER_MAX_WIDTH) -> None:
        """Teleport the arm to q with the gripper open to `width` (for scene setup, not for motion)."""
        qa = self._check_q(q)
        d = self.world.data
        d.qpos[self._qadr] = qa
        d.qvel[self._dadr] = 0.0
        d.ctrl[self._act] = qa
        d.qpos[self._fadr] = width / 2
        d.qvel[self._fdadr] = 0.0
        d.ctrl[self._grip] = width
        self.world.model.actuator_forcerange[self._grip] = [-GRIPPER_FORCE_MAX, GRIPPER_FORCE_MAX]
        self._grasped = False
        mujoco.mj_forward(self.world.model, d)

    def set_joint_setpoint(self, q: Sequence[float]) -> None:
        """Set the joint position controller's set-point without stepping (low-level streaming control;
        the caller steps the world). Prefer move_to_joints/follow_poses."""
        self.world.data.ctrl[self._act] = np.clip(self._check_q(q), PANDA_Q_MIN, PANDA_Q_MAX)

    def joint_positions(self) -> np.ndarray:
        return self.world.data.qpos[self._qadr].copy()

    def ee_pose(self) -> Pose:
        d = self.world.data
        T = np.eye(4)
        T[:3, :3] = d.site_xmat[self._site].reshape(3, 3)
        T[:3, 3] = d.site_xpos[self._site]
        return Pose.from_matrix(T)

    def gripper_width(self) -> float:
        return float(np.sum(self.world.data.qpos[self._fadr]))

    def _finger_contacts(self) -> tuple[set[int], set[int]]:
        """Non-robot bodies touched by the left and by the right finger."""
        m, d = self.world.model, self.world.data
        n = d.ncon
        if n == 0:
            return set(), set()
        g1, g2 = np.asarray(d.contact.geom1[:n]), np.asarray(d.contact.geom2[:n])
        b1, b2 = m.geom_bodyid[g1], m.geom_bodyid[g2]
        r1, r2 = self._is_robot_geom[g1], self._is_robot_geom[g2]
        out = []
        for f in self._finger_bodies:
            touched = set(b2[(b1 == f) & ~r2].tolist()) | set(b1[(b2 == f) & ~r1].tolist())
            out.append({int(x) for x in touched})
        return out[0], out[1]

    def held_bodies(self) -> set[int]:
        """Movable bodies (ids) touched by both fingers at once."""
        left, right = self._finger_contacts()
        m = self.world.model
        return {b for b in left & right if m.body_weldid[b] != 0}

    def is_grasping(self) -> bool:
        """True after a successful grasp while the object is still between the fingers: the opening
        stays where the grasp closed (as libfranka judges it) or both fingers still touch the object."""
        if not self._grasped:
            return False
        w = self.gripper_width()
        if w < 5e-4 or (abs(w - self._grasp_width) > 0.003 and not self.held_bodies()):
            self._grasped = False
        return self._grasped

    def state(self) -> RobotState:
        return RobotState(
            q=tuple(float(v) for v in self.joint_positions()),
            ee_pose=self.ee_pose(),
            gripper_width=self.gripper_width(),
            is_grasping=self.is_grasping(),
            timestamp=self.world.time,
        )

    # --- arm motion ------------------------------------------------------------------------------

    @staticmethod
    def _check_q(q: Sequence[float]) -> np.ndarray:
        qa = np.asarray(q, dtype=float)
        if qa.shape != (7,) or not np.all(np.isfinite(qa)):
            raise ValueError(f"expected 7 finite joint values, got {q!r}")
        return qa

    def move_to_joints(self, q: Sequence[float], speed_factor: float = 0.2) -> MotionResult:
        target = self._check_q(q)
        if np.any(target < PANDA_Q_MIN) or np.any(target > PANDA_Q_MAX):
            bad = [i + 1 for i in range(7) if not PANDA_Q_MIN[i] <= target[i] <= PANDA_Q_MAX[i]]
            return MotionResult(
                status=MotionStatus.unreachable, message=f"joints {bad} outside the Panda's limits",
                waypoints_total=1,
            )
        traj = time_parameterize([self.joint_positions(), target], speed_factor)
        return self._execute(traj, waypoints_total=1, pose_index=np.array([-1, 0]))

    def follow_poses(self, poses: Sequence[Pose], speed_factor: float = 0.2) -> MotionResult:
        if len(poses) == 0:
            return MotionResult(status=MotionStatus.done, message="no poses")
        path = cartesian_to_joint_path(self.world.model, poses, self.joint_positions())
        if not path.reachable:
            return MotionResult(
                status=MotionStatus.unreachable, message=path.message, waypoints_total=len(poses),
                waypoints_done=int(path.failed_index or 0),
            )
        traj = time_parameterize(path.q, speed_factor)
        return self._execute(traj, waypoints_total=len(poses), pose_index=path.pose_index)

    def stop(self) -> None:
        """Stop the current motion at the next control step (callable from a step callback)."""
        self._stop_requested = True

    def _arm_contact_force(self) -> tuple[float, str]:
        """Largest normal contact force the robot takes where contact is unexpected: any arm link
        (fingers excluded) against anything, or the fingers against the static scene (table, walls).
        Fingers touching movable objects (grasping, pushing) are expected and not counted, nor is the
        hand touching the object it holds (same root body as what the fingers grasped).
        Returns (force in N, "robot body against other body")."""
        m, d = self.world.model, self.world.data
        n = d.ncon
        if n == 0:
            return 0.0, ""
        g1 = np.asarray(d.contact.geom1[:n])
        g2 = np.asarray(d.contact.geom2[:n])
        static1 = m.body_weldid[m.geom_bodyid[g1]] == 0
        static2 = m.body_weldid[m.geom_bodyid[g2]] == 0
        unexpected = (
            self._arm_geom[g1] | self._arm_geom[g2]
            | (self._is_finger_geom[g1] & static2) | (self._is_finger_geom[g2] & static1)
        )
        if self._grasped and self._held_roots:
            roots1 = m.body_rootid[m.geom_bodyid[g1]]
            roots2 = m.body_rootid[m.geom_bodyid[g2]]
            unexpected &= ~(np.isin(roots1, self._held_roots) | np.isin(roots2, self._held_roots))
        worst, where = 0.0, ""
        for i in np.nonzero(unexpected)[0]:
            mujoco.mj_contactForce(m, d, int(i), self._force6)
            f = abs(float(self._force6[0]))
            if f > worst:
                a, b = int(g1[i]), int(g2[i])
                if not self._is_robot_geom[a]:
                    a, b = b, a
                name_a = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.geom_bodyid[a])) or "robot"
                name_b = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.geom_bodyid[b])) or "world"
                worst, where = f, f"{name_a} against {name_b}"
        return worst, where

    def _execute(self, traj: JointTrajectory, waypoints_total: int, pose_index: np.ndarray) -> MotionResult:
        world = self.world
        d = world.data
        dt = world.timestep
        self._stop_requested = False
        t0 = world.time
        n_steps = int(np.ceil(traj.duration / dt)) if traj.duration > 0 else 0
        times = (np.arange(n_steps) + 1) * dt
        if n_steps:
            q_des, dq_des = traj.sample(times)
            ctrl = q_des + dq_des * self._ff
        else:
            q_des = ctrl = traj.path[-1:].copy()
        # Last path row of each requested waypoint: waypoint i is done once that row is passed.
        last_row = np.array([np.nonzero(pose_index == i)[0].max() for i in range(waypoints_total)
                             if np.any(pose_index == i)])

        def done_count(k: int) -> int:
            if n_steps == 0 or k <= 0:
                return 0
            row = traj.row_at(times[min(k, n_steps) - 1])
            return int(np.sum(last_row <= row))

        act = self._act
        for k in range(n_steps):
            d.ctrl[act] = ctrl[k]
            world.step(1)
            if self._stop_requested:
                return self._halt(MotionStatus.stopped, "stop() was called", t0, done_count(k + 1), waypoints_total)
            if k % CHECK_EVERY == 0:
                err = float(np.max(np.abs(d.qpos[self._qadr] - q_des[k])))
                force, where = self._arm_contact_force()
                if force > COLLISION_FORCE_N or err > TRACKING_LIMIT_RAD:
                    why = (f"contact force {force:.0f} N: {where}" if force > COLLISION_FORCE_N
                           else f"joint tracking error {err:.2f} rad (arm blocked)")
                    return self._halt(MotionStatus.collision, why, t0, done_count(k + 1), waypoints_total)
        # Settle on the final set-point.
        target = traj.path[-1]
        d.ctrl[act] = target
        settle_steps = int(SETTLE_MAX_S / dt)
        for _ in range(settle_steps):
            settled = np.max(np.abs(d.qpos[self._qadr] - target)) < SETTLE_TOL_RAD
            if settled and np.max(np.abs(d.qvel[self._dadr])) < 0.02:
                break
            world.step(1)
            if self._stop_requested:
                return self._halt(MotionStatus.stopped, "stop() was called", t0, waypoints_total, waypoints_total)
        err = float(np.max(np.abs(d.qpos[self._qadr] - target)))
        if err > BLOCKED_RAD:
            return self._halt(
                MotionStatus.collision, f"arm blocked {err:.3f} rad short of the target", t0,
                done_count(n_steps), waypoints_total,
            )
        return MotionResult(
            status=MotionStatus.done, message="", duration_s=world.time - t0,
            waypoints_done=waypoints_total, waypoints_total=waypoints_total,
        )

    def _halt(self, status: MotionStatus, message: str, t0: float, done: int, total: int) -> MotionResult:
        """Hold the current configuration (set-point = measured position) and report."""
        self._stop_requested = False
        d = self.world.data
        d.ctrl[self._act] = d.qpos[self._qadr]
        self.world.step(int(0.05 / self.world.timestep))
        d.ctrl[self._act] = d.qpos[self._qadr]
        return MotionResult(
            status=status, message=message, duration_s=self.world.time - t0, waypoints_done=done,
            waypoints_total=total,
        )

    # --- gripper ---------------------------------------------------------------------------------

    def _drive_gripper(self, target: float, speed: float, until_blocked: bool) -> None:
        """Ramp the width set-point towards `target` at `speed`; stop early when the fingers are blocked."""
        world, d = self.world, self.world.data
        dt = world.timestep
        start = float(d.ctrl[self._grip])
        start = min(max(start, self.gripper_width() - 0.005), PANDA_GRIPPER_MAX_WIDTH)
        n = max(1, int(np.ceil(abs(target - start) / (speed * dt))))
        setpoints = np.linspace(start, target, n + 1)[1:]
        lag = 0
        for sp in setpoints:
            d.ctrl[self._grip] = sp
            world.step(1)
            if self._stop_requested:
                return
            if until_blocked and self.gripper_width() - sp > 0.012:
                lag += 1
                if lag > int(0.05 / dt):  # set-point well inside the fingers for 50 ms: blocked
                    break
        d.ctrl[self._grip] = target
        # Let the fingers settle (at most 0.5 s).
        prev = self.gripper_width()
        for _ in range(int(0.5 / dt / 10)):
            world.step(10)
            w = self.gripper_width()
            if abs(w - prev) < 2e-5:
                break
            prev = w

    def open_gripper(self, width: float = 0.08, speed: float = 0.1) -> bool:
        if not 0.0 <= width <= PANDA_GRIPPER_MAX_WIDTH + 1e-9:
            raise ValueError(f"width must be in [0, {PANDA_GRIPPER_MAX_WIDTH}] m, got {width}")
        if not 0.0 < speed <= 0.2:
            raise ValueError(f"gripper speed must be in (0, 0.2] m/s, got {speed}")
        self._grasped = False
        self.world.model.actuator_forcerange[self._grip] = [-GRIPPER_FORCE_MAX, GRIPPER_FORCE_MAX]
        self._drive_gripper(width, speed, until_blocked=False)
        return abs(self.gripper_width() - width) < 0.003

    def grasp(
        self,
        width: float = 0.0,
        force: float = 40.0,
        speed: float = 0.1,
        epsilon_inner: float = 0.005,
        epsilon_outer: float = 0.08,
    ) -> GraspResult:
        """Close until blocked, squeeze with `force` (N); success if the fingers stopped on an object
        with the opening within [width - epsilon_inner, width + epsilon_outer]."""
        if not 0.0 < force <= GRIPPER_FORCE_MAX:
            raise ValueError(f"grasp force must be in (0, {GRIPPER_FORCE_MAX}] N, got {force}")
        if not 0.0 < speed <= 0.2:
            raise ValueError(f"gripper speed must be in (0, 0.2] m/s, got {speed}")
        m = self.world.model
        m.actuator_forcerange[self._grip] = [-force, force]
        self._grasp_force = force
        lo = float(m.actuator_ctrlrange[self._grip][0])
        self._drive_gripper(lo, speed, until_blocked=True)
        w = self.gripper_width()
        held = self.held_bodies()
        within = width - epsilon_inner <= w <= width + epsilon_outer
        self._grasped = bool(held) and within and w > 5e-4
        self._grasp_width = w
        self._held_roots = sorted({int(m.body_rootid[b]) for b in held}) if self._grasped else []
        if self._grasped:
            names = sorted(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) or f"body{b}" for b in held)
            msg = f"holding {', '.join(names)} at {w * 1000:.1f} mm"
        elif not held:
            msg = f"closed to {w * 1000:.1f} mm without holding anything"
        else:
            msg = f"width {w * 1000:.1f} mm outside [{(width - epsilon_inner) * 1000:.1f}, " \
                  f"{(width + epsilon_outer) * 1000:.1f}] mm"
        return GraspResult(success=self._grasped, width=w, message=msg)
