"""Grasp candidates in learned regions and world trajectories composed from object-centric programs."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation as Rot

from core.geometry import Pose
from core.program import Arc, Line, StartPose, TrajectoryProgram, Waypoints
from core.skills import GraspConstraint, GraspRegion, ManipulationConstraint
from tools.constraints.grasp import in_region, to_fractions
from tools.execution.candidates import (
    PREGRASP_M,
    Revision,
    align_to_edges,
    grasp_candidates,
    master_slave_trajectory,
    sample_times,
    world_trajectory,
)

SIZE = (0.06, 0.30, 0.12)
TOP = GraspConstraint(regions=[GraspRegion(center=(0.0, 0.2, 0.4), extent=(0.3, 0.3, 0.2))], approach=(0, 0, -1),
                      orientation=tuple(Rot.from_euler("x", 180, degrees=True).as_quat()), width=0.03)


def _T(yaw_deg: float, pos: tuple[float, float, float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rot.from_euler("z", yaw_deg, degrees=True).as_matrix()
    T[:3, 3] = pos
    return T


def test_candidates_lie_in_the_region_with_the_gripper_along_the_approach_and_follow_the_object() -> None:
    for yaw in (0.0, 70.0):
        T_wo = _T(yaw, (0.5, 0.1, 0.1))
        cands = grasp_candidates(TOP, T_wo, SIZE, n=4, seed=0)
        assert len(cands) == 4
        assert len({(c.region, c.cell) for c in cands}) == 4
        for c in cands:
            local = np.linalg.inv(T_wo) @ c.grasp.matrix()
            frac = to_fractions(local[:3, 3][None], SIZE)
            assert in_region(TOP.regions[0], frac)[0]
            assert np.allclose(local[:3, 2], (0, 0, -1), atol=1e-6)  # gripper z = approach (object frame)
            # the pre-grasp stands off along the approach, above the grasp here
            assert np.allclose(c.pregrasp.matrix()[:3, 3], c.grasp.matrix()[:3, 3] + np.array([0, 0, PREGRASP_M]))
            assert c.in_region and c.inside_object


def test_revision_offset_moves_candidates_and_excluded_cells_are_skipped() -> None:
    T_wo = _T(0.0, (0.5, 0.0, 0.1))
    base = grasp_candidates(TOP, T_wo, SIZE, n=1, seed=0)[0]
    moved = grasp_candidates(TOP, T_wo, SIZE, n=1, seed=0, revision=Revision(grasp_offset=(0.0, 0.0, -0.1)))[0]
    assert np.isclose(base.grasp.position[2] - moved.grasp.position[2], 0.1 * SIZE[2])
    nxt = grasp_candidates(TOP, T_wo, SIZE, n=1, seed=0, exclude=[(base.region, base.cell)])[0]
    assert (nxt.region, nxt.cell) != (base.region, base.cell)


def test_top_grasp_closing_axis_snaps_to_a_footprint_edge() -> None:
    R_wo = np.eye(3)
    R_og = Rot.from_euler("xz", [180, 20], degrees=True).as_matrix()  # closing axis 20 deg off the faces
    edges = np.array([[np.cos(np.deg2rad(35)), np.sin(np.deg2rad(35)), 0], [-np.sin(np.deg2rad(35)),
                                                                            np.cos(np.deg2rad(35)), 0]])
    R = align_to_edges(R_og, R_wo, edges)
    y = R[:, 1]
    assert np.isclose(abs(y @ edges[0]), 1.0, atol=1e-6) or np.isclose(abs(y @ edges[1]), 1.0, atol=1e-6)
    assert np.allclose(R[:, 2], R_og[:, 2])


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
    T_wm = _T(90.0, (0.7, 0.0, 0.2))
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
