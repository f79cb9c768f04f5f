"""Robot state and motion outcomes, shared by the simulated and the real Panda."""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.geometry import Pose

# Franka Panda limits from the robot's datasheet (rad, rad/s); the hand opens to 8 cm.
PANDA_Q_MIN = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
PANDA_Q_MAX = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
PANDA_DQ_MAX = np.array([2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100])
PANDA_GRIPPER_MAX_WIDTH = 0.08
# A comfortable, well-conditioned start configuration (the classic "ready" pose).
PANDA_HOME_Q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])


class RobotState(BaseModel):
    model_config = ConfigDict(frozen=True)

    q: tuple[float, ...] = Field(description="joint positions, rad (7)")
    ee_pose: Pose = Field(description="T_base_gripper: the gripper's TCP between the fingertips")
    gripper_width: float = Field(description="finger opening, m")
    is_grasping: bool = False
    timestamp: float = 0.0


class MotionStatus(StrEnum):
    done = "done"
    stopped = "stopped"  # stop() was called or a safety limit intervened
    unreachable = "unreachable"  # no IK solution within limits for some waypoint
    collision = "collision"  # contact/force limit hit while moving
    fault = "fault"  # the controller reported an error (e.g. libfranka reflex)
    timeout = "timeout"


class MotionResult(BaseModel):
    status: MotionStatus
    message: str = ""
    duration_s: float = 0.0
    waypoints_done: int = 0
    waypoints_total: int = 0

    @property
    def ok(self) -> bool:
        return self.status == MotionStatus.done


class GraspResult(BaseModel):
    success: bool
    width: float = Field(description="finger opening after the grasp, m")
    message: str = ""
