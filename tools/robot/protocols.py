"""The two hardware seams: `Robot` and `Camera`.

Shaped after what a real Franka Panda (through panda-py / libfranka) and a real RealSense offer, so
that the simulator implements exactly the same surface and nothing above this line knows which one
it drives. All poses are in the robot base frame (= the world frame in simulation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from core.geometry import Pose
from core.motion import GraspResult, MotionResult, RobotState
from core.sensing import Intrinsics, RGBDFrame


@runtime_checkable
class Robot(Protocol):
    """A 7-DoF arm with a parallel gripper."""

    def state(self) -> RobotState: ...

    def joint_positions(self) -> np.ndarray: ...

    def ee_pose(self) -> Pose: ...

    def gripper_width(self) -> float: ...

    def is_grasping(self) -> bool: ...

    def move_to_joints(self, q: Sequence[float], speed_factor: float = 0.2) -> MotionResult: ...

    def follow_poses(self, poses: Sequence[Pose], speed_factor: float = 0.2) -> MotionResult:
        """Follow a Cartesian path of gripper poses (T_base_gripper), time-parameterised inside the
        Panda's velocity limits scaled by `speed_factor` in (0, 1]."""
        ...

    def open_gripper(self, width: float = 0.08, speed: float = 0.1) -> bool: ...

    def grasp(
        self,
        width: float = 0.0,
        force: float = 40.0,
        speed: float = 0.1,
        epsilon_inner: float = 0.005,
        epsilon_outer: float = 0.08,
    ) -> GraspResult: ...

    def stop(self) -> None: ...


@runtime_checkable
class Camera(Protocol):
    """An aligned RGB-D camera with known intrinsics and pose in the robot base frame."""

    name: str

    def intrinsics(self) -> Intrinsics: ...

    def capture(self) -> RGBDFrame: ...

    def close(self) -> None: ...
