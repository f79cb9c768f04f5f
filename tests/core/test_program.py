import numpy as np
import pytest
from pydantic import ValidationError

from core.expr import ExpressionError
from core.geometry import Pose
from core.program import (
    Arc,
    Line,
    Rotation,
    Spiral,
    StartPose,
    Tilt,
    TrajectoryProgram,
    Waypoints,
    Zigzag,
)
from tools.constraints.instantiate import ProgramError, instantiate, sample_matrices, world_gripper_trajectory

SIZES = {"master": (0.4, 0.4, 0.5), "slave": (0.02, 0.4, 0.45)}


def door(angle=90.0):
    return TrajectoryProgram(
        start=StartPose(position=("master.x/2", 0.0, 0.0)),
        steps=[Arc(axis=(0, 0, 1), pivot=("master.x/2", "-master.y/2", 0), angle_deg=angle)],
    )


def test_arc_about_a_hinge_keeps_the_radius_and_rotates_the_slave():
    m = sample_matrices(door(), SIZES, 21)
    pivot = np.array([0.2, -0.2, 0.0])
    radii = np.linalg.norm(m[:, :3, 3] - pivot, axis=1)
    assert np.allclose(radii, 0.2)
    # after 90 degrees about +z: the start (0.2, 0, 0) swings to (0.0, -0.2, 0), slave x along +y
    assert np.allclose(m[-1, :3, 3], [0.0, -0.2, 0.0], atol=1e-9)
    assert np.allclose(m[-1, :3, 0], [0, 1, 0], atol=1e-9)


def test_program_parameters_follow_object_sizes():
    small = sample_matrices(door(), SIZES, 5)
    big = sample_matrices(door(), {"master": (0.8, 0.8, 0.5)}, 5)
    assert np.allclose(big[:, :3, 3], 2 * small[:, :3, 3])


def test_each_step_kind_moves_as_documented():
    s = StartPose(position=(0.0, 0.0, 0.0))
    line = sample_matrices(TrajectoryProgram(start=s, steps=[Line(direction=(0, 0, 2), distance=0.1)]), SIZES, 3)
    assert np.allclose(line[-1, :3, 3], [0, 0, 0.1])
    rot = sample_matrices(TrajectoryProgram(start=s, steps=[Rotation(axis=(0, 0, 1), angle_deg=90)]), SIZES, 3)
    assert np.allclose(rot[-1, :3, 3], 0) and np.allclose(rot[-1, :3, 0], [0, 1, 0])
    tilted = StartPose(position=(0, 0, 0), quaternion=(0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)))
    tilt = sample_matrices(TrajectoryProgram(start=tilted, steps=[Tilt(axis=(1, 0, 0), angle_deg=90)]), SIZES, 3)
    # tilt's axis is in the slave frame: slave x is world y, so the slave turns about world y
    assert np.allclose(tilt[-1, :3, 1], [0, 0, 1], atol=1e-9)
    wp = sample_matrices(TrajectoryProgram(start=s, steps=[Waypoints(points=[(0.1, 0, 0), (0.1, 0.1, 0)])]), SIZES, 3)
    assert np.allclose(wp[1, :3, 3], [0.1, 0, 0]) and np.allclose(wp[2, :3, 3], [0.1, 0.1, 0])
    zz = sample_matrices(TrajectoryProgram(start=s, steps=[Zigzag(direction=(1, 0, 0), across=(1, 1, 0), length=0.2,
                                                                    amplitude=0.05, cycles=1)]), SIZES, 5)
    assert np.allclose(zz[1, :3, 3], [0.05, 0.05, 0]) and np.allclose(zz[-1, :3, 3], [0.2, 0, 0], atol=1e-9)
    sp = sample_matrices(TrajectoryProgram(start=StartPose(position=(0.1, 0, 0)),
                                           steps=[Spiral(axis=(0, 0, 1), center=(0, 0, 0), turns=1, pitch=0.02)]),
                         SIZES, 5)
    assert np.allclose(np.linalg.norm(sp[:, :2, 3], axis=1), 0.1) and np.isclose(sp[-1, 2, 3], 0.02)


def test_steps_are_timed_by_weight_and_chain():
    prog = TrajectoryProgram(start=StartPose(position=(0, 0, 0)),
                             steps=[Line(direction=(1, 0, 0), distance=0.1, weight=3), Line(direction=(0, 1, 0),
                                                                                          distance=0.1)])
    m = sample_matrices(prog, SIZES, 5)
    assert np.allclose(m[3, :3, 3], [0.1, 0, 0]) and np.allclose(m[4, :3, 3], [0.1, 0.1, 0])


def test_world_gripper_trajectory_composes_frames():
    T_wm = Pose(position=(0.5, 0, 0.1))
    T_sg = Pose(position=(0.05, 0, 0))
    poses = world_gripper_trajectory(door(0.0), SIZES, T_wm, T_sg, n=3)
    assert np.allclose(poses[0].position, [0.5 + 0.2 + 0.05, 0, 0.1])


def test_bad_programs_fail_with_clear_errors():
    with pytest.raises(ValidationError, match="rejected"):
        TrajectoryProgram.model_validate({"start": {"position": ["__import__('os')", 0, 0]}})
    with pytest.raises(ValidationError):
        TrajectoryProgram.model_validate({"start": {"position": [0, 0, 0]}, "steps": [{"kind": "teleport"}]})
    with pytest.raises(ProgramError, match="zero vector"):
        instantiate(TrajectoryProgram(start=StartPose(position=(0, 0, 0)), steps=[Line(direction=(0, 0, 0),
                                                                                         distance=1)]), SIZES)
    with pytest.raises(ExpressionError, match="slave sizes are not known"):
        instantiate(TrajectoryProgram(start=StartPose(position=("slave.x", 0, 0))), {"master": (1, 1, 1)})


def test_scaled_programs_revise_lengths_and_angles():
    from tools.constraints.instantiate import scaled

    m = sample_matrices(scaled(door(60.0), angle_scale=1.5), SIZES, 3)
    assert np.allclose(m[-1], sample_matrices(door(90.0), SIZES, 3)[-1])
    s = StartPose(position=("master.x/2", 0.0, 0.0))
    wp = TrajectoryProgram(start=s, steps=[Waypoints(points=[("master.x", 0.0, 0.0)]), Line(direction=(0, 0, 1),
                                                                                          distance="master.z/5")])
    big = sample_matrices(scaled(wp, trajectory_scale=2.0), SIZES, 3)
    assert np.allclose(big[1, :3, 3], [0.6, 0, 0]) and np.allclose(big[2, :3, 3], [0.6, 0, 0.2])
