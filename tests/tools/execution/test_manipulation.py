"""World trajectories composed from object-centric programs, and where they pass a demo's keypoints."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation as Rot

from core.geometry import Pose
from core.program import Arc, Line, StartPose, TrajectoryProgram, Waypoints
from core.skills import ManipulationConstraint
from tests.frames import frame
from tools.execution.candidates import Revision, is_round
from tools.execution.manipulation import (
    keypoint_times,
    master_slave_trajectory,
    sample_times,
    world_trajectory,
    yaw_master_to_demo,
    yaw_slave_to_demo,
)


def _line(distance: str = "master.x*0.5") -> ManipulationConstraint:
    prog = TrajectoryProgram(family="line", start=StartPose(position=("master.x*0.5", 0.0, 0.0)),
                             steps=[Line(direction=(1.0, 0.0, 0.0), distance=distance)])
    return ManipulationConstraint(program=prog)


def test_world_trajectory_is_master_times_program_times_grasp_and_starts_where_the_slave_is() -> None:
    sizes = {"master": (0.3, 0.4, 0.4), "slave": (0.05, 0.3, 0.1)}
    now = np.eye(4)
    now[:3, 3] = (0.17, 0.01, 0.1)  # measured: not the learned start
    Ts = master_slave_trajectory(_line(), sizes, now, n=10)
    assert np.allclose(Ts[0], now)
    assert np.allclose(Ts[-1][:3, 3] - Ts[0][:3, 3], (0.15, 0.0, 0.0))
    T_wm = frame((0.7, 0.0, 0.2), 90.0)
    T_sg = Pose(position=(0.02, 0.0, 0.0), quaternion=tuple(Rot.from_euler("y", 90, degrees=True).as_quat()))
    poses = world_trajectory(T_wm, Ts, T_sg.matrix())
    for P, T in zip(poses, Ts, strict=True):
        assert np.allclose(P.matrix(), T_wm @ T @ T_sg.matrix(), atol=1e-9)
    # the master is turned 90 deg: its x (the pull direction) is the world y
    d = poses[-1].matrix()[:3, 3] - poses[0].matrix()[:3, 3]
    assert np.allclose(d, (0.0, 0.15, 0.0), atol=1e-9)


def test_revision_scales_motion_and_angles() -> None:
    sizes = {"master": (0.3, 0.4, 0.4), "slave": (0.05, 0.3, 0.1)}
    Ts = master_slave_trajectory(_line(), sizes, None, revision=Revision(trajectory_scale=1.5), n=10)
    assert np.isclose(np.linalg.norm(Ts[-1][:3, 3] - Ts[0][:3, 3]), 0.225)
    arc = TrajectoryProgram(family="arc", start=StartPose(position=(0.1, 0.0, 0.0)),
                            steps=[Arc(axis=(0, 0, 1), pivot=(0.0, 0.0, 0.0), angle_deg=40.0)])
    c = ManipulationConstraint(program=arc)
    Ta = master_slave_trajectory(c, sizes, None, revision=Revision(angle_scale=2.0), n=10)
    ang = np.rad2deg(Rot.from_matrix(Ta[-1][:3, :3]).magnitude())
    assert np.isclose(ang, 80.0)
    assert np.isclose(np.linalg.norm(Ta[-1][:3, 3]), 0.1)  # still on the circle about the pivot


def test_sampling_keeps_the_corner_of_a_press() -> None:
    sizes = {"master": (0.05, 0.05, 0.01), "slave": (0.08, 0.02, 0.1)}
    prog = TrajectoryProgram(family="reach", start=StartPose(position=(0.0, 0.0, 0.3)),
                             steps=[Waypoints(points=[(0.0, 0.0, "master.z*-0.5"), (0.0, 0.0, 0.0517)])])
    ts = sample_times(prog, sizes, n=24)
    Ts = master_slave_trajectory(ManipulationConstraint(program=prog), sizes, None, n=24)
    assert len(ts) == len(Ts) > 24
    assert np.isclose(Ts[:, 2, 3].min(), -0.005, atol=1e-3)  # the deepest point is sampled


def test_a_round_master_is_turned_so_the_slave_stands_where_it_stood_in_the_demo() -> None:
    assert is_round((0.09, 0.088, 0.08), frame((0, 0, 0), 30.0)) and not is_round((0.09, 0.05, 0.08), frame((0, 0, 0)))
    T_wm = frame((0.5, 0.1, 0.04))
    T_ws = frame((0.5, -0.14, 0.045))  # the source stands at the target's -y now
    learned = frame((0.045, 0.24, 0.0))  # in the demo it stood at the target's +y (and a little +x)
    T2 = yaw_master_to_demo(T_wm, T_ws, learned)
    rel = np.linalg.inv(T2) @ T_ws
    bearing = np.arctan2(rel[1, 3], rel[0, 3])
    assert np.isclose(bearing, np.arctan2(0.24, 0.045), atol=1e-6)
    assert np.allclose(T2[:3, 3], T_wm[:3, 3]) and np.allclose(T2[:3, 2], (0, 0, 1))
    # a round slave: the turn about its own axis that matches the demonstrated start orientation
    now = frame((0.0, 0.24, 0.0), 70.0)
    Rz = yaw_slave_to_demo(now, frame((0.0, 0.24, 0.0), -28.0))
    err = Rot.from_matrix((now @ Rz)[:3, :3] @ frame((0, 0, 0), -28.0)[:3, :3].T).magnitude()
    assert np.rad2deg(err) <= 2.5


def test_a_tilt_made_in_place_gets_poses_all_along_it() -> None:
    sizes = {"master": (0.09, 0.09, 0.08), "slave": (0.06, 0.06, 0.09)}
    q = [tuple(Rot.from_euler("x", a, degrees=True).as_quat()) for a in (0.0, 120.0)]
    prog = TrajectoryProgram(family="waypoints", start=StartPose(position=(0.0, 0.3, 0.0)),
                             steps=[Waypoints(points=[(0.0, 0.05, 0.15), (0.0, 0.05, 0.16), (0.0, 0.3, 0.0)],
                                              quaternions=[q[0], q[1], q[0]])])
    Ts = master_slave_trajectory(ManipulationConstraint(program=prog), sizes, None, n=24)
    turns = Rot.from_matrix(np.einsum("kji,kjl->kil", Ts[:-1, :3, :3], Ts[1:, :3, :3])).magnitude()
    assert np.rad2deg(turns.max()) <= 10.5  # 1 cm of travel turning 120 deg: many poses, none far apart


def test_a_free_hands_approach_is_stretched_about_the_press_not_its_start() -> None:
    sizes = {"master": (0.05, 0.05, 0.01), "slave": (0.08, 0.02, 0.1)}
    prog = TrajectoryProgram(family="reach", start=StartPose(position=(0.0, 0.0, 0.3)),
                             steps=[Waypoints(points=[(0.0, 0.0, -0.005), (0.0, 0.0, 0.05)])])
    c = ManipulationConstraint(program=prog)
    half = Revision(trajectory_scale=0.5)
    about_start = master_slave_trajectory(c, sizes, None, revision=half, n=24)
    about_contact = master_slave_trajectory(c, sizes, None, revision=half, n=24, scale_about="contact")
    assert np.isclose(about_start[:, 2, 3].min(), 0.1475, atol=1e-3)  # the press stops 15 cm above the button
    assert about_contact[:, 2, 3].min() <= 0.0  # the press still reaches the button's middle
    assert np.isclose(about_contact[0, 2, 3], 0.15, atol=3e-3)  # the approach is halved (about the contact)


def test_a_part_replays_the_demonstrated_motion_from_where_it_is() -> None:
    # a lever turned on and back off about the master's z through (0, 0.1, 0) (absolute waypoints)
    sizes = {"master": (0.15, 0.08, 0.16), "slave": (0.14, 0.04, 0.03)}
    piv = np.array([0.0, 0.1, 0.0])
    angles = [0.0, 35.0, 70.0, 35.0, 3.0]
    pts, qs = [], []
    for a in angles:
        R = Rot.from_euler("z", a, degrees=True)
        pts.append(tuple(piv + R.apply([0.0, -0.08, 0.0])))
        qs.append(tuple(R.as_quat()))
    prog = TrajectoryProgram(family="waypoints", start=StartPose(position=pts[0], quaternion=qs[0]),
                             steps=[Waypoints(points=pts[1:], quaternions=qs[1:])])
    mc = ManipulationConstraint(program=prog)
    # the lever perceived 30 deg off its demonstrated start orientation (it is off: at rest)
    now = np.eye(4)
    now[:3, :3] = Rot.from_euler("z", 30.0, degrees=True).as_matrix()
    now[:3, 3] = pts[0]
    absolute = master_slave_trajectory(mc, sizes, now, n=24)
    rel = master_slave_trajectory(mc, sizes, now, n=24, relative=True)
    turn = lambda T: np.rad2deg(Rot.from_matrix(T[:3, :3] @ now[:3, :3].T).magnitude())  # noqa: E731
    assert turn(absolute[-1]) > 20.0  # to the demonstrated end: a net turn of the lever
    assert turn(rel[-1]) < 4.0  # the demonstrated displacement: back where it started (3 deg)
    assert np.allclose(rel[0], now, atol=1e-9)
    assert max(turn(T) for T in rel) > 60.0  # and on through the full turn on the way


def test_keypoint_times_follow_a_scrub_that_passes_its_start_again() -> None:


    # out and back twice over (nearly) the same 10 cm line, the demo's keypoints nearer the second pass
    # all along: a nearest match jumps to the later pass and piles the rest up at the end
    pts = [(0.1, 0.0, 0.0), (0.0, 0.004, 0.0), (0.1, 0.004, 0.0), (0.0, 0.004, 0.0)]
    prog = TrajectoryProgram(family="waypoints", start=StartPose(position=(0.0, 0.0, 0.0)),
                             steps=[Waypoints(points=pts)])
    mc = ManipulationConstraint(program=prog)
    sizes = {"master": (0.3, 0.2, 0.05), "slave": (0.05, 0.05, 0.1)}
    demo = master_slave_trajectory(mc, sizes, None, times=np.linspace(0.0, 1.0, 17))[:, :3, 3]
    demo[:, 1] += 0.003
    tk = keypoint_times(mc, sizes, demo)
    assert np.all(np.diff(tk) >= 0)
    assert np.allclose(tk, np.linspace(0.0, 1.0, 17), atol=0.02)  # every pass matched in its turn
