"""The simulated Panda through the Robot protocol: motion, physical grasping, stop, failures."""

from __future__ import annotations

import sim.render  # noqa: F401

# isort: split

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.geometry import Pose
from core.motion import PANDA_HOME_Q, MotionStatus
from sim.robot import SimRobot
from sim.world import SimWorld, base_spec
from tools.robot.protocols import Robot

DOWN = Rotation.from_matrix(np.diag([1.0, -1.0, -1.0]))  # TCP z (approach) pointing down


def _down(x: float, y: float, z: float, yaw: float = 0.0) -> Pose:
    return Pose.from_rotation(DOWN * Rotation.from_euler("z", yaw), [x, y, z])


def _world(obj: str | None = None) -> SimWorld:
    spec = base_spec()
    if obj is not None:
        body = spec.worldbody.add_body()
        body.name = "obj"
        body.add_freejoint()
        g = body.add_geom()
        if obj == "cube":  # a 5 cm cube, 200 g
            body.pos = [0.5, 0.0, 0.025]
            g.type = mujoco.mjtGeom.mjGEOM_BOX
            g.size = [0.025, 0.025, 0.025]
            g.mass = 0.2
        else:  # a pan-like object: a 2.5 cm cylindrical handle along x, 4.5 cm above the table
            body.pos = [0.5, 0.0, 0.045]
            g.type = mujoco.mjtGeom.mjGEOM_CYLINDER
            g.size = [0.0125, 0.06, 0.0]
            g.quat = [np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0]
            g.mass = 0.1
            for pos, size, mass in (
                ([0.11, 0.0, -0.035], [0.05, 0.05, 0.01], 0.3),  # the pan's base, resting on the table
                ([0.06, 0.0, -0.0125], [0.006, 0.006, 0.0125], 0.02),  # the post joining them
            ):
                part = body.add_geom()
                part.type = mujoco.mjtGeom.mjGEOM_BOX
                part.pos = pos
                part.size = size
                part.mass = mass
    return SimWorld(spec, render=False, labels=["obj"] if obj else ())


def _relative(world: SimWorld, robot: SimRobot) -> Pose:
    return robot.ee_pose().inverse() @ world.body_pose("obj")


FAST_TOUR = [
    _down(0.5, 0.0, 0.35),
    _down(0.35, 0.35, 0.45, yaw=1.2),
    Pose.from_rotation(DOWN * Rotation.from_euler("x", 0.6), [0.65, -0.3, 0.2]),
    _down(0.5, 0.0, 0.3),
]


def test_sim_robot_satisfies_the_robot_protocol_and_reports_state() -> None:
    world = _world()
    robot = world.robot
    assert isinstance(robot, Robot)
    state = robot.state()
    assert np.allclose(state.q, PANDA_HOME_Q, atol=1e-6)
    assert state.gripper_width == pytest.approx(0.08, abs=1e-6)
    assert not state.is_grasping
    assert state.ee_pose.position[2] == pytest.approx(0.487, abs=2e-3)


def test_move_to_joints_reaches_the_target_within_the_time_it_should_take() -> None:
    world = _world()
    robot = world.robot
    target = PANDA_HOME_Q + np.array([0.5, 0.2, -0.3, 0.3, 0.2, -0.2, 0.4])
    res = robot.move_to_joints(target, speed_factor=0.5)
    assert res.ok, res.message
    assert np.max(np.abs(robot.joint_positions() - target)) < 3e-3
    assert 0.3 < res.duration_s < 5.0
    bad = robot.move_to_joints(PANDA_HOME_Q + np.array([0, 0, 0, 3.0, 0, 0, 0]))
    assert bad.status == MotionStatus.unreachable and "joints [4]" in bad.message


def test_follow_poses_tracks_the_cartesian_path_and_flags_unreachable_poses() -> None:
    world = _world()
    robot = world.robot
    target = _down(0.55, 0.15, 0.2, yaw=0.5)
    res = robot.follow_poses([_down(0.45, -0.1, 0.3), target], speed_factor=0.6)
    assert res.ok and res.waypoints_done == 2
    dt, dr = robot.ee_pose().distance_to(target)
    assert dt < 3e-3 and np.rad2deg(dr) < 0.5
    q_before = robot.joint_positions()
    res = robot.follow_poses([_down(0.5, 0.0, 0.3), _down(1.6, 0.0, 0.3)])
    assert res.status == MotionStatus.unreachable and res.waypoints_done == 1
    assert np.allclose(robot.joint_positions(), q_before)  # planned first: nothing moved


def test_grasping_nothing_fails_and_open_reopens() -> None:
    world = _world()
    robot = world.robot
    g = robot.grasp(width=0.0, force=30)
    assert not g.success and g.width < 0.002 and "without holding" in g.message
    assert not robot.is_grasping()
    assert robot.open_gripper(0.06)
    assert robot.gripper_width() == pytest.approx(0.06, abs=2e-3)


@pytest.mark.parametrize("obj,width", [("cube", 0.05), ("handle", 0.025)])
def test_a_physical_grasp_holds_during_a_fast_motion(obj: str, width: float) -> None:
    world = _world(obj)
    robot = world.robot
    z = world.body_pose("obj").position[2]
    assert robot.follow_poses([_down(0.5, 0.0, z + 0.12), _down(0.5, 0.0, z)], speed_factor=0.5).ok
    g = robot.grasp(width=width, force=40)
    assert g.success, g.message
    assert g.width == pytest.approx(width, abs=2e-3)
    assert robot.is_grasping()
    before = _relative(world, robot)
    res = robot.follow_poses(FAST_TOUR, speed_factor=1.0)
    assert res.ok, res.message
    dt, dr = _relative(world, robot).distance_to(before)
    assert dt < 0.005 and np.rad2deg(dr) < 12.0  # held by friction only: no weld exists
    assert world.body_pose("obj").position[2] > 0.15  # it really travelled with the hand
    assert robot.is_grasping()
    assert world.model.neq == 1  # the finger coupling is the only equality: nothing attaches the object
    assert robot.open_gripper()
    robot.follow_poses([_down(0.5, 0.0, 0.45)], speed_factor=1.0)
    world.step(250)
    assert not robot.is_grasping()
    assert world.body_pose("obj").position[2] < 0.1  # released: it fell


def test_a_slow_grasp_with_too_little_force_slips() -> None:
    """Control for the test above: friction (not an attachment) is what holds the object."""
    world = _world("cube")
    robot = world.robot
    world.model.body_mass[world.body_id("obj")] = 5.0  # a 5 kg cube cannot be held with 3 N
    assert robot.follow_poses([_down(0.5, 0.0, 0.145), _down(0.5, 0.0, 0.025)], speed_factor=0.5).ok
    assert robot.grasp(width=0.05, force=3).success
    robot.follow_poses([_down(0.5, 0.0, 0.3)], speed_factor=0.5)
    assert world.body_pose("obj").position[2] < 0.05


def test_stop_from_a_step_callback_halts_the_motion() -> None:
    world = _world()
    robot = world.robot
    t_stop = world.time + 0.3
    world.add_step_callback(lambda w: robot.stop() if w.time >= t_stop else None)
    res = robot.follow_poses([_down(0.6, 0.3, 0.2)], speed_factor=0.3)
    assert res.status == MotionStatus.stopped
    assert res.duration_s < 0.5
    q = robot.joint_positions()
    world.step(200)
    assert np.max(np.abs(robot.joint_positions() - q)) < 0.01  # it holds where it stopped


def test_driving_into_the_table_is_reported_as_a_collision() -> None:
    world = _world()
    robot = world.robot
    assert robot.follow_poses([_down(0.5, 0.0, 0.1)], speed_factor=0.5).ok
    res = robot.follow_poses([_down(0.5, 0.0, -0.05)], speed_factor=0.3)
    assert res.status == MotionStatus.collision, res
    assert robot.ee_pose().position[2] > 0.0


def test_bad_gripper_arguments_are_refused() -> None:
    robot = _world().robot
    with pytest.raises(ValueError, match="force"):
        robot.grasp(force=500.0)
    with pytest.raises(ValueError, match="width"):
        robot.open_gripper(width=0.2)
    with pytest.raises(ValueError, match="speed_factor"):
        robot.move_to_joints(PANDA_HOME_Q, speed_factor=2.0)
