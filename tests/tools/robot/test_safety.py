"""SafeRobot: refuses out-of-workspace and out-of-limit commands, clamps speed and force, asks first."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from core.errors import SafetyViolation
from core.geometry import Pose
from core.motion import PANDA_HOME_Q, PANDA_Q_MAX, GraspResult, MotionResult, MotionStatus, RobotState
from core.settings import SafetySettings
from tools.robot.panda import panda_forward_kinematics
from tools.robot.protocols import Robot
from tools.robot.safety import SafeRobot, stop_on_interrupt


class RecordingRobot:
    """A kinematic Robot that records every command it receives."""

    def __init__(self) -> None:
        self.q = PANDA_HOME_Q.copy()
        self.width = 0.08
        self.commands: list[tuple[str, dict]] = []

    def state(self) -> RobotState:
        return RobotState(q=tuple(self.q), ee_pose=self.ee_pose(), gripper_width=self.width)

    def joint_positions(self) -> np.ndarray:
        return self.q.copy()

    def ee_pose(self) -> Pose:
        return Pose.from_matrix(panda_forward_kinematics(self.q))

    def gripper_width(self) -> float:
        return self.width

    def is_grasping(self) -> bool:
        return False

    def move_to_joints(self, q: Sequence[float], speed_factor: float = 0.2) -> MotionResult:
        self.commands.append(("move_to_joints", {"q": np.asarray(q), "speed_factor": speed_factor}))
        self.q = np.asarray(q, dtype=float)
        return MotionResult(status=MotionStatus.done)

    def follow_poses(self, poses: Sequence[Pose], speed_factor: float = 0.2) -> MotionResult:
        self.commands.append(("follow_poses", {"poses": list(poses), "speed_factor": speed_factor}))
        return MotionResult(status=MotionStatus.done, waypoints_done=len(poses), waypoints_total=len(poses))

    def open_gripper(self, width: float = 0.08, speed: float = 0.1) -> bool:
        self.commands.append(("open_gripper", {"width": width}))
        return True

    def grasp(self, width: float = 0.0, force: float = 40.0, speed: float = 0.1, epsilon_inner: float = 0.005,
              epsilon_outer: float = 0.08) -> GraspResult:
        self.commands.append(("grasp", {"width": width, "force": force}))
        return GraspResult(success=True, width=width)

    def stop(self) -> None:
        self.commands.append(("stop", {}))


DOWN = (1.0, 0.0, 0.0, 0.0)  # gripper pointing down


def safe(robot: Robot | None = None, **settings: object) -> tuple[SafeRobot, RecordingRobot]:
    inner = robot or RecordingRobot()
    s = SafetySettings(**{"confirm_first_motion": False, **settings})  # type: ignore[arg-type]
    return SafeRobot(inner, s), inner  # type: ignore[return-value]


def test_is_a_robot() -> None:
    assert isinstance(safe()[0], Robot)


def test_refuses_a_pose_outside_the_workspace_and_sends_nothing() -> None:
    robot, inner = safe()
    inside = Pose(position=(0.5, 0.0, 0.3), quaternion=DOWN)
    outside = Pose(position=(0.5, 0.0, -0.02), quaternion=DOWN)  # below the table
    with pytest.raises(SafetyViolation, match=r"waypoint 2/2.*z=-0.020 is below the minimum 0.000"):
        robot.follow_poses([inside, outside])
    assert inner.commands == []
    assert robot.follow_poses([inside]).ok
    assert inner.commands[0][0] == "follow_poses"


def test_refuses_non_finite_values() -> None:
    robot, inner = safe()
    with pytest.raises(SafetyViolation, match="not finite"):
        robot.move_to_joints([np.nan] * 7)
    with pytest.raises(SafetyViolation, match="speed factor"):
        robot.follow_poses([Pose(position=(0.5, 0, 0.3))], speed_factor=float("inf"))
    assert inner.commands == []


def test_clamps_speed_and_grasp_force_and_width() -> None:
    robot, inner = safe(max_speed_factor=0.3, max_grasp_force=50.0)
    robot.follow_poses([Pose(position=(0.5, 0.0, 0.3), quaternion=DOWN)], speed_factor=1.0)
    assert inner.commands[-1][1]["speed_factor"] == pytest.approx(0.3)
    robot.follow_poses([Pose(position=(0.5, 0.0, 0.3), quaternion=DOWN)], speed_factor=0.1)
    assert inner.commands[-1][1]["speed_factor"] == pytest.approx(0.1)
    robot.grasp(width=0.03, force=140.0)
    assert inner.commands[-1] == ("grasp", {"width": 0.03, "force": 50.0})
    robot.open_gripper(width=0.5)
    assert inner.commands[-1] == ("open_gripper", {"width": 0.08})
    with pytest.raises(SafetyViolation, match="speed factor"):
        robot.move_to_joints(PANDA_HOME_Q, speed_factor=0.0)


def test_joint_limits_with_margin() -> None:
    robot, inner = safe(joint_margin_rad=0.1)
    q = PANDA_HOME_Q.copy()
    q[0] = PANDA_Q_MAX[0] - 0.05  # inside the hardware limit, inside the margin
    with pytest.raises(SafetyViolation, match=r"joint 1 target 2.847 rad is outside"):
        robot.move_to_joints(q)
    assert inner.commands == []


def test_joint_move_whose_path_dips_below_the_table_is_refused() -> None:
    robot, inner = safe()
    # Shoulder forward and elbow open: the TCP ends near the floor, beyond the workspace.
    q = PANDA_HOME_Q.copy()
    q[1] = 1.2
    q[3] = -1.0
    assert panda_forward_kinematics(q)[2, 3] < 0.0
    with pytest.raises(SafetyViolation, match=r"joint move \(\d+% along the path\).*leaves the workspace"):
        robot.move_to_joints(q)
    assert inner.commands == []


def test_endpoint_only_check_when_path_checking_is_off() -> None:
    inner = RecordingRobot()
    robot = SafeRobot(inner, SafetySettings(confirm_first_motion=False), check_joint_path=False)
    q = PANDA_HOME_Q.copy()
    q[0] = 0.3  # a pure base rotation keeps the TCP inside the box
    assert robot.move_to_joints(q).ok
    q_low = PANDA_HOME_Q.copy()
    q_low[1], q_low[3] = 1.2, -1.0
    with pytest.raises(SafetyViolation, match="joint move target"):
        robot.move_to_joints(q_low)


def test_first_motion_needs_confirmation() -> None:
    inner = RecordingRobot()
    asked: list[str] = []
    robot = SafeRobot(inner, SafetySettings(), confirm=lambda text: asked.append(text) or False)
    with pytest.raises(SafetyViolation, match="not confirmed; nothing moved"):
        robot.follow_poses([Pose(position=(0.5, 0.0, 0.3), quaternion=DOWN)])
    assert inner.commands == [] and "Cartesian path of 1 waypoints" in asked[0]

    robot = SafeRobot(inner, SafetySettings(), confirm=lambda text: asked.append(text) or True)
    robot.open_gripper()
    robot.grasp(width=0.02)
    assert [c[0] for c in inner.commands] == ["open_gripper", "grasp"]
    assert len(asked) == 2  # asked once per run (one SafeRobot), not per command


def test_without_a_way_to_confirm_nothing_moves() -> None:
    inner = RecordingRobot()
    robot = SafeRobot(inner, SafetySettings(), confirm=None)
    with pytest.raises(SafetyViolation, match="--yes"):
        robot.move_to_joints(PANDA_HOME_Q)
    assert inner.commands == []


def test_checks_happen_before_confirmation() -> None:
    inner = RecordingRobot()
    asked: list[str] = []
    robot = SafeRobot(inner, SafetySettings(), confirm=lambda t: asked.append(t) or True)
    with pytest.raises(SafetyViolation, match="workspace"):
        robot.follow_poses([Pose(position=(2.0, 0.0, 0.3))])
    assert asked == []


def test_stop_passes_through() -> None:
    robot, inner = safe()
    robot.stop()
    assert inner.commands == [("stop", {})]


def test_stop_on_interrupt_stops_the_arm_then_raises() -> None:
    inner = RecordingRobot()
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with stop_on_interrupt(inner):
            threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            time.sleep(5)
    assert inner.commands == [("stop", {})]
    assert signal.getsignal(signal.SIGINT) is before


# --- against the simulated Panda -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_world():
    pytest.importorskip("mujoco")
    import sim.render  # noqa: F401 - chooses MUJOCO_GL before mujoco is imported
    from sim.show import build_scene

    _, world, _ = build_scene("press_button", "seen", 0, with_robot=True, render=False)
    yield world
    world.close()


def test_default_kinematic_model_matches_the_simulated_arm(sim_world) -> None:
    robot = sim_world.robot
    np.testing.assert_allclose(panda_forward_kinematics(robot.joint_positions()), robot.ee_pose().matrix(), atol=1e-3)


def test_sim_robot_refusals_leave_the_arm_where_it_was(sim_world) -> None:
    robot = SafeRobot(sim_world.robot, SafetySettings(confirm_first_motion=False))
    q0 = robot.joint_positions()
    here = robot.ee_pose()
    below_table = Pose(position=(here.position[0], here.position[1], -0.05), quaternion=here.quaternion)
    with pytest.raises(SafetyViolation, match="leaves the workspace"):
        robot.follow_poses([here, below_table])
    q = PANDA_HOME_Q.copy()
    q[1], q[3] = 1.2, -1.0
    with pytest.raises(SafetyViolation, match="joint move"):
        robot.move_to_joints(q)
    np.testing.assert_allclose(robot.joint_positions(), q0, atol=1e-9)


def test_sim_robot_moves_within_limits(sim_world) -> None:
    robot = SafeRobot(sim_world.robot, SafetySettings(max_speed_factor=0.5), confirm=lambda what: True)
    here = robot.ee_pose()
    target = Pose(position=(here.position[0] + 0.05, here.position[1], here.position[2] - 0.05),
                  quaternion=here.quaternion)
    result = robot.follow_poses([target], speed_factor=1.0)  # clamped to 0.5
    assert result.ok, result.message
    dt, _ = robot.ee_pose().distance_to(target)
    assert dt < 0.01
