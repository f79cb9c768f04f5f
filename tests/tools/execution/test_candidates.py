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
    centre_between_fingers,
    close_across_section,
    grasp_candidates,
    is_round,
    master_slave_trajectory,
    match_demo_frame,
    material_between_fingers,
    mirror_grasp_constraint,
    sample_times,
    twist_grasp,
    world_trajectory,
    yaw_master_to_demo,
    yaw_slave_to_demo,
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


def test_a_frame_whose_sides_fall_the_other_way_is_turned_to_match_the_demo() -> None:
    T = _T(10.0, (0.5, 0.0, 0.03))
    # the demo's mango lay long along its x; this one is perceived long along y
    T2, size = match_demo_frame(T, (0.047, 0.085, 0.046), (0.081, 0.049, 0.044))
    assert np.allclose(size, (0.085, 0.047, 0.046))
    assert np.allclose(T2[:3, 0], T[:3, 1]) and np.allclose(T2[:3, 1], -T[:3, 0])  # still right-handed
    assert np.isclose(np.linalg.det(T2[:3, :3]), 1.0) and np.allclose(T2[:3, 3], T[:3, 3])
    # a learned closing axis across the demo's short side now closes across this one's short side
    middle = TOP.model_copy(update={"regions": [GraspRegion(center=(0, 0, 0), extent=(0.2, 0.2, 0.2))]})
    cands = grasp_candidates(middle, T2, size, n=1)
    y_world = cands[0].grasp.matrix()[:3, 1]
    assert abs(y_world @ T[:3, 0]) > 0.99  # the perceived short side (x)
    # sides that already agree, or a near-square, are left alone
    same, s2 = match_demo_frame(T, (0.08, 0.05, 0.04), (0.081, 0.049, 0.044))
    assert np.allclose(same, T) and s2 == (0.08, 0.05, 0.04)
    sq, _ = match_demo_frame(T, (0.050, 0.052, 0.04), (0.081, 0.049, 0.044))
    assert np.allclose(sq, T)


def test_grasps_are_kept_above_the_floor_and_centred_between_the_fingers() -> None:
    low = GraspConstraint(regions=[GraspRegion(center=(0.0, 0.0, -0.4), extent=(0.1, 0.1, 0.1))], approach=(0, 0, -1),
                          orientation=TOP.orientation, width=0.05)
    T_wo = _T(0.0, (0.5, 0.0, 0.03))
    g = grasp_candidates(low, T_wo, (0.05, 0.05, 0.05), n=1)[0]
    assert g.grasp.position[2] < 0.02
    g = grasp_candidates(low, T_wo, (0.05, 0.05, 0.05), n=1, floor_z=0.02)[0]
    assert np.isclose(g.grasp.position[2], 0.02) and np.isclose(g.pregrasp.position[2], 0.02 + PREGRASP_M)
    # a cylinder 4.6 cm across whose frame sits 6 mm off its axis along the closing direction
    rng = np.random.default_rng(0)
    ang, z = rng.uniform(0, 2 * np.pi, 2000), rng.uniform(0.0, 0.056, 2000)
    y_w = g.grasp.matrix()[:3, 1]
    axis = np.array([0.5, 0.0]) - 0.006 * y_w[:2]
    pts = np.column_stack([axis[0] + 0.023 * np.cos(ang), axis[1] + 0.023 * np.sin(ang), z])
    c = centre_between_fingers(g, pts)
    off = (c.grasp.matrix()[:3, 3] - np.array([*axis, 0.0])) @ y_w
    assert abs(off) < 0.001 and abs((g.grasp.matrix()[:3, 3] - np.array([*axis, 0.0])) @ y_w) > 0.005
    assert np.allclose(c.pregrasp.matrix()[:3, 3] - c.grasp.matrix()[:3, 3],
                       g.pregrasp.matrix()[:3, 3] - g.grasp.matrix()[:3, 3])
    # too few points, or an object wider than the open hand: unchanged
    assert centre_between_fingers(g, pts[:5]) == g
    wide = np.column_stack([0.5 + 0.0 * ang, np.linspace(-0.1, 0.1, len(ang)), z])
    assert centre_between_fingers(g, wide).grasp == g.grasp


def test_a_round_master_is_turned_so_the_slave_stands_where_it_stood_in_the_demo() -> None:
    assert is_round((0.09, 0.088, 0.08), _T(30.0, (0, 0, 0))) and not is_round((0.09, 0.05, 0.08), _T(0.0, (0, 0, 0)))
    T_wm = _T(0.0, (0.5, 0.1, 0.04))
    T_ws = _T(0.0, (0.5, -0.14, 0.045))  # the source stands at the target's -y now
    learned = _T(0.0, (0.045, 0.24, 0.0))  # in the demo it stood at the target's +y (and a little +x)
    T2 = yaw_master_to_demo(T_wm, T_ws, learned)
    rel = np.linalg.inv(T2) @ T_ws
    bearing = np.arctan2(rel[1, 3], rel[0, 3])
    assert np.isclose(bearing, np.arctan2(0.24, 0.045), atol=1e-6)
    assert np.allclose(T2[:3, 3], T_wm[:3, 3]) and np.allclose(T2[:3, 2], (0, 0, 1))
    # a round slave: the turn about its own axis that matches the demonstrated start orientation
    now = _T(70.0, (0.0, 0.24, 0.0))
    Rz = yaw_slave_to_demo(now, _T(-28.0, (0.0, 0.24, 0.0)))
    err = Rot.from_matrix((now @ Rz)[:3, :3] @ _T(-28.0, (0, 0, 0))[:3, :3].T).magnitude()
    assert np.rad2deg(err) <= 2.5


def test_a_grasp_twisted_about_its_approach_keeps_its_point_and_axis() -> None:
    g = grasp_candidates(TOP, _T(0.0, (0.5, 0.0, 0.1)), SIZE, n=1)[0]
    t = twist_grasp(g, np.pi / 2)
    assert np.allclose(t.grasp.matrix()[:3, 3], g.grasp.matrix()[:3, 3])
    assert np.allclose(t.grasp.matrix()[:3, 2], g.grasp.matrix()[:3, 2])
    assert np.allclose(t.grasp.matrix()[:3, 1], -g.grasp.matrix()[:3, 0], atol=1e-9)
    assert np.allclose(t.pregrasp.matrix()[:3, 3], g.pregrasp.matrix()[:3, 3])


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


def _pan_points(handle_yaw_deg: float, centre=(0.5, 0.0), n: int = 3000) -> np.ndarray:
    """Top surface of a 'pan': a 10 cm disc at z 0.006 and a 2 cm x 13 cm bar handle at z 0.04 leaving it
    along `handle_yaw_deg`."""
    rng = np.random.default_rng(0)
    r, a = 0.1 * np.sqrt(rng.uniform(0, 1, n)), rng.uniform(0, 2 * np.pi, n)
    disc = np.column_stack([centre[0] + r * np.cos(a), centre[1] + r * np.sin(a), np.full(n, 0.006)])
    u, v = rng.uniform(0.105, 0.235, n // 2), rng.uniform(-0.01, 0.01, n // 2)
    c, s_ = np.cos(np.deg2rad(handle_yaw_deg)), np.sin(np.deg2rad(handle_yaw_deg))
    handle = np.column_stack([centre[0] + u * c - v * s_, centre[1] + u * s_ + v * c, np.full(n // 2, 0.04)])
    return np.vstack([disc, handle])


def test_a_grasp_region_mirrored_in_a_tilted_frame_is_found_where_the_material_is() -> None:
    # the frame fitted to the pan came out tilted the other way than in the demo: the handle, learned at
    # the frame's (+x, -y), lies at its (+x, +y) now
    size = (0.33, 0.21, 0.05)
    learned = GraspConstraint(regions=[GraspRegion(center=(0.3, -0.34, 0.25), extent=(0.1, 0.1, 0.1))],
                              approach=(0, 0, -1), orientation=TOP.orientation, width=0.02)
    T_wo = _T(0.0, (0.5, 0.0, 0.03))
    pts = _pan_points(np.rad2deg(np.arctan2(0.34 * 0.21, 0.3 * 0.33)))  # handle through the mirrored centre
    g = grasp_candidates(learned, T_wo, size, n=1)[0]
    assert material_between_fingers(g, pts)[0] == 0  # the learned region is empty space here
    m = grasp_candidates(mirror_grasp_constraint(learned, 1, -1), T_wo, size, n=1)[0]
    n, extent = material_between_fingers(m, pts)
    assert n >= 20 and extent is not None and extent < 0.08
    assert np.isclose(m.grasp.position[1], -g.grasp.position[1])
    assert np.isclose(m.grasp.position[0], g.grasp.position[0])
    assert np.allclose(m.grasp.matrix()[:3, 2], (0, 0, -1), atol=1e-9)  # still from above, a proper rotation
    assert np.isclose(np.linalg.det(m.grasp.matrix()[:3, :3]), 1.0)
    # mirroring twice is the identity
    back = mirror_grasp_constraint(mirror_grasp_constraint(learned, -1, -1), -1, -1)
    assert np.allclose(back.regions[0].center, learned.regions[0].center)


def test_the_fingers_close_across_a_handle_not_at_a_slant() -> None:
    pts = _pan_points(30.0)
    on = np.array([0.5 + 0.17 * np.cos(np.deg2rad(30)), 0.17 * np.sin(np.deg2rad(30)), 0.04])
    g = grasp_candidates(TOP, _T(0.0, (0.5, 0.0, 0.03)), SIZE, n=1)[0]
    M = g.grasp.matrix()
    M[:3, 3] = on
    g = g.model_copy(update={"grasp": Pose.from_matrix(M)})
    handle_dir = np.array([np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30)), 0.0])
    assert abs(g.grasp.matrix()[:3, 1] @ handle_dir) > 0.3  # planned at a slant to the handle
    c = close_across_section(g, pts)
    y = c.grasp.matrix()[:3, 1]
    assert abs(y @ handle_dir) < 0.1  # closing axis across the handle
    assert float(y @ g.grasp.matrix()[:3, 1]) > 0  # the twist nearest the planned one
    assert np.allclose(c.grasp.matrix()[:3, 3], on) and np.allclose(c.grasp.matrix()[:3, 2], (0, 0, -1), atol=1e-9)
    # a round blob (nothing elongated) or too few points: unchanged
    rng = np.random.default_rng(1)
    blob = np.column_stack([on[0] + rng.normal(0, 0.01, 500), on[1] + rng.normal(0, 0.01, 500), np.full(500, 0.04)])
    assert close_across_section(g, blob) == g and close_across_section(g, pts[:3]) == g


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
    from tools.execution.candidates import keypoint_times

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
