"""The one place where motion limits are enforced, around any Robot (simulated or real).

`SafeRobot(robot, settings, confirm)` checks every command before it reaches the robot:

- every commanded gripper pose lies inside the workspace box (settings.safety.workspace_min/max, robot
  base frame); for joint moves the TCP is checked along the joint-space path (panda-py's joint moves are
  straight lines in joint space) with a kinematic model (the Panda's by default), or only at the target
  when `check_joint_path=False`;
- joint targets stay `joint_margin_rad` inside the Panda's joint limits;
- speed factors are clamped to `max_speed_factor`, grasp forces to `max_grasp_force`, widths to the hand;
- the first command that moves anything needs a confirmation (`confirm(description) -> bool`) when
  `confirm_first_motion` is set; refusing, or having no way to ask, raises SafetyViolation and nothing moves.

Violations raise core.errors.SafetyViolation with the offending value and the limit; nothing is sent.
`stop_on_interrupt(robot)` makes Ctrl-C stop the arm before KeyboardInterrupt propagates.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from core.errors import SafetyViolation
from core.geometry import Pose
from core.motion import PANDA_GRIPPER_MAX_WIDTH, PANDA_Q_MAX, PANDA_Q_MIN, GraspResult, MotionResult, RobotState
from core.settings import SafetySettings
from tools.robot.panda import panda_forward_kinematics
from tools.robot.protocols import Robot

log = logging.getLogger(__name__)

Confirm = Callable[[str], bool]
ForwardKinematics = Callable[[Sequence[float]], np.ndarray]


class SafeRobot:
    """A Robot that refuses unsafe commands and clamps speeds and forces; see the module docstring."""

    def __init__(
        self,
        robot: Robot,
        settings: SafetySettings,
        confirm: Confirm | None = None,
        *,
        fk: ForwardKinematics | None = panda_forward_kinematics,
        check_joint_path: bool = True,
        path_step_rad: float = 0.05,
        q_min: np.ndarray = PANDA_Q_MIN,
        q_max: np.ndarray = PANDA_Q_MAX,
    ) -> None:
        self.inner = robot
        self.settings = settings
        self.confirm = confirm
        self.fk = fk
        self.check_joint_path = check_joint_path
        self.path_step_rad = path_step_rad
        self.q_lo = np.asarray(q_min, dtype=float) + settings.joint_margin_rad
        self.q_hi = np.asarray(q_max, dtype=float) - settings.joint_margin_rad
        self.ws_min = np.asarray(settings.workspace_min, dtype=float)
        self.ws_max = np.asarray(settings.workspace_max, dtype=float)
        self._confirmed = not settings.confirm_first_motion
        self._lock = threading.Lock()

    # --- checks ----------------------------------------------------------------------------------

    def _require_confirmation(self, description: str) -> None:
        with self._lock:
            if self._confirmed:
                return
            if self.confirm is None:
                raise SafetyViolation(
                    f"refusing the first motion ({description}) without confirmation: confirm interactively, "
                    "pass --yes, or set VLMIMIC_SAFETY__CONFIRM_FIRST_MOTION=false"
                )
            if not self.confirm(description):
                raise SafetyViolation(f"first motion ({description}) not confirmed; nothing moved")
            self._confirmed = True

    def _speed(self, speed_factor: float) -> float:
        s = float(speed_factor)
        if not math.isfinite(s) or s <= 0:
            raise SafetyViolation(f"speed factor {speed_factor!r} must be a finite number > 0")
        if s > self.settings.max_speed_factor:
            log.info("speed factor %.3g clamped to %.3g", s, self.settings.max_speed_factor)
            return self.settings.max_speed_factor
        return s

    def check_position(self, p: Sequence[float], what: str) -> None:
        p = np.asarray(p, dtype=float)
        if not np.all(np.isfinite(p)):
            raise SafetyViolation(f"{what}: position {p.tolist()} is not finite")
        below, above = p < self.ws_min - 1e-9, p > self.ws_max + 1e-9
        if below.any() or above.any():
            axis = int(np.argmax(below | above))
            name = "xyz"[axis]
            bound = self.ws_min[axis] if below[axis] else self.ws_max[axis]
            side = "below the minimum" if below[axis] else "above the maximum"
            raise SafetyViolation(
                f"{what}: gripper at ({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m leaves the workspace: {name}="
                f"{p[axis]:.3f} is {side} {bound:.3f} (settings safety.workspace_min/max, robot base frame)"
            )

    def check_joints(self, q: Sequence[float]) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        if q.shape != (7,):
            raise SafetyViolation(f"expected 7 joint positions, got shape {q.shape}")
        if not np.all(np.isfinite(q)):
            raise SafetyViolation(f"joint target {q.tolist()} is not finite")
        bad = np.nonzero((q < self.q_lo) | (q > self.q_hi))[0]
        if bad.size:
            j = int(bad[0])
            raise SafetyViolation(
                f"joint {j + 1} target {q[j]:.3f} rad is outside [{self.q_lo[j]:.3f}, {self.q_hi[j]:.3f}] "
                f"(Panda limits minus safety.joint_margin_rad={self.settings.joint_margin_rad})"
            )
        return q

    def _check_joint_motion(self, q_target: np.ndarray) -> None:
        if self.fk is None:
            return
        if not self.check_joint_path:
            self.check_position(np.asarray(self.fk(q_target))[:3, 3], "joint move target")
            return
        q0 = np.asarray(self.inner.joint_positions(), dtype=float)
        n = max(1, int(np.ceil(np.max(np.abs(q_target - q0)) / self.path_step_rad)))
        for i in range(1, n + 1):
            q = q0 + (q_target - q0) * (i / n)
            self.check_position(np.asarray(self.fk(q))[:3, 3], f"joint move ({100 * i / n:.0f}% along the path)")

    # --- Robot protocol: reads pass through ------------------------------------------------------

    def state(self) -> RobotState:
        return self.inner.state()

    def joint_positions(self) -> np.ndarray:
        return self.inner.joint_positions()

    def ee_pose(self) -> Pose:
        return self.inner.ee_pose()

    def gripper_width(self) -> float:
        return self.inner.gripper_width()

    def is_grasping(self) -> bool:
        return self.inner.is_grasping()

    def stop(self) -> None:
        self.inner.stop()

    # --- Robot protocol: commands are checked ----------------------------------------------------

    def move_to_joints(self, q: Sequence[float], speed_factor: float = 0.2) -> MotionResult:
        target = self.check_joints(q)
        speed = self._speed(speed_factor)
        self._check_joint_motion(target)
        self._require_confirmation(f"joint move to {np.round(target, 3).tolist()} at speed {speed:.2f}")
        return self.inner.move_to_joints(target, speed_factor=speed)

    def follow_poses(self, poses: Sequence[Pose], speed_factor: float = 0.2) -> MotionResult:
        poses = list(poses)
        speed = self._speed(speed_factor)
        # The box is convex, so straight segments between checked waypoints stay inside it.
        for i, pose in enumerate(poses):
            self.check_position(pose.position, f"waypoint {i + 1}/{len(poses)}")
        if poses:
            p = poses[-1].position
            self._require_confirmation(
                f"Cartesian path of {len(poses)} waypoints to ({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) at speed {speed:.2f}"
            )
        return self.inner.follow_poses(poses, speed_factor=speed)

    def _width(self, width: float) -> float:
        w = float(width)
        if not math.isfinite(w):
            raise SafetyViolation(f"gripper width {width!r} is not finite")
        return min(max(w, 0.0), PANDA_GRIPPER_MAX_WIDTH)

    def open_gripper(self, width: float = PANDA_GRIPPER_MAX_WIDTH, speed: float = 0.1) -> bool:
        w = self._width(width)
        self._require_confirmation(f"open the gripper to {w:.3f} m")
        return self.inner.open_gripper(width=w, speed=speed)

    def grasp(
        self,
        width: float = 0.0,
        force: float = 40.0,
        speed: float = 0.1,
        epsilon_inner: float = 0.005,
        epsilon_outer: float = 0.08,
    ) -> GraspResult:
        f = float(force)
        if not math.isfinite(f) or f <= 0:
            raise SafetyViolation(f"grasp force {force!r} must be a finite number > 0")
        if f > self.settings.max_grasp_force:
            log.info("grasp force %.1f N clamped to %.1f N", f, self.settings.max_grasp_force)
            f = self.settings.max_grasp_force
        w = self._width(width)
        self._require_confirmation(f"grasp at width {w:.3f} m with {f:.0f} N")
        return self.inner.grasp(width=w, force=f, speed=speed, epsilon_inner=epsilon_inner,
                                epsilon_outer=epsilon_outer)

    def __getattr__(self, name: str) -> Any:
        # Extra capabilities of the wrapped robot (e.g. PandaRobot.recover) stay reachable.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


@contextlib.contextmanager
def stop_on_interrupt(robot: Robot) -> Iterator[None]:
    """Within the block, Ctrl-C (SIGINT) first stops the arm, then raises KeyboardInterrupt as usual.

    Only the main thread can install signal handlers; elsewhere this is a no-op context.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        try:
            robot.stop()
        finally:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
