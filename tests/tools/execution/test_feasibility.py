"""Candidate feasibility: IK inside joint limits along the path, collisions against a cloud or MuJoCo."""

from __future__ import annotations

import numpy as np
import pytest

from core.geometry import Pose
from core.motion import PANDA_HOME_Q
from tools.execution.feasibility import (
    MujocoCollisionChecker,
    PointCloudCollisionChecker,
    check_path,
    rank,
)
from tools.robot.ik import home_tcp_pose, panda_model, solve_ik

DOWN = (1.0, 0.0, 0.0, 0.0)  # gripper z pointing down (x, y, z, w)


def test_reachable_path_scores_one_and_a_far_target_does_not() -> None:
    home = home_tcp_pose()
    near = [Pose(position=(0.45, 0.0, 0.3), quaternion=DOWN), Pose(position=(0.45, 0.1, 0.2), quaternion=DOWN)]
    ok = check_path(near, PANDA_HOME_Q)
    assert ok.ok and ok.score == 1.0 and all(len(q) == 7 for q in ok.q)
    far = [near[0], Pose(position=(1.6, 0.0, 0.3), quaternion=DOWN)]
    bad = check_path(far, PANDA_HOME_Q)
    assert bad.reachable == [True, False] and bad.score == 0.5 and "pose 1" in bad.first_problem()
    assert rank([bad, ok]) == [1, 0]
    assert np.linalg.norm(home.translation) > 0


def test_point_cloud_checker_sees_points_around_the_fingers_only() -> None:
    tcp = Pose(position=(0.5, 0.0, 0.2), quaternion=DOWN)
    blob = np.random.default_rng(0).normal(scale=0.004, size=(50, 3)) + np.array([0.5, 0.045, 0.205])
    assert PointCloudCollisionChecker(blob).collides(np.zeros(7), tcp, 0.08)  # right where a finger is
    far = blob + np.array([0.0, 0.0, -0.15])
    assert PointCloudCollisionChecker(far).collides(np.zeros(7), tcp, 0.08) == ""
    assert PointCloudCollisionChecker(np.zeros((0, 3))).collides(np.zeros(7), tcp, 0.08) == ""


@pytest.fixture(scope="module")
def drawer_world():
    from sim.show import build_scene

    _, world, _ = build_scene("open_drawer", "seen", 1, with_robot=True, render=False)
    yield world
    world.close()


def test_mujoco_checker_flags_the_hand_in_the_table_not_at_home_and_allows_the_target(drawer_world) -> None:
    w = drawer_world
    checker = MujocoCollisionChecker(w.model, w.data)
    assert checker.collides(PANDA_HOME_Q, home_tcp_pose(), 0.08) == ""
    low = solve_ik(panda_model(), Pose(position=(0.4, 0.0, -0.02), quaternion=DOWN), PANDA_HOME_Q)
    hit = checker.collides(low.q, Pose(position=(0.4, 0.0, -0.02), quaternion=DOWN), 0.08)
    assert "panda0" in hit and "against" in hit
    # a path into the drawer's front collides unless the drawer is the object we may touch
    drawer = w.body_pose("drawer").translation
    into = Pose(position=tuple(drawer + np.array([0.0, 0.0, 0.0])), quaternion=DOWN)
    q = solve_ik(panda_model(), into, PANDA_HOME_Q, restarts=4).q
    assert MujocoCollisionChecker(w.model, w.data).collides(q, into, 0.08)
    assert MujocoCollisionChecker(w.model, w.data, allowed_bodies=["drawer", "cabinet"]).collides(q, into, 0.08) == ""


def test_a_body_only_the_hand_may_touch_still_blocks_the_arms_links(drawer_world) -> None:
    w = drawer_world
    into = Pose(position=tuple(w.body_pose("drawer").translation), quaternion=DOWN)
    q = solve_ik(panda_model(), into, PANDA_HOME_Q, restarts=4).q  # straight down into the drawer: the wrist hits
    allowed = ["drawer", "cabinet"]
    assert MujocoCollisionChecker(w.model, w.data, allowed_bodies=allowed).collides(q, into, 0.08) == ""
    hit = MujocoCollisionChecker(w.model, w.data, allowed_bodies=allowed, hand_only_bodies=["cabinet"]).collides(
        q, into, 0.08)
    assert hit.startswith("panda0_link") and hit.endswith("against cabinet")


def test_a_part_only_the_fingers_may_touch_blocks_the_palm_however_shallow() -> None:
    # open_microwave unseen seed 10: a grasp 4 cm below the bar handle's top, coming down at 59 deg, puts the
    # palm (a geom of link 7 in this model) 1-2 mm into the bar's end; in the simulator that presses with 60 N
    import mujoco

    from sim.show import build_scene

    _, w, _ = build_scene("open_microwave", "unseen", 10, with_robot=True, render=False)
    try:
        m = w.model
        bar = next(g for g in range(m.ngeom) if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_CYLINDER
                   and mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, m.geom_bodyid[g]) == "microwave_door")
        centre, top = w.data.geom_xpos[bar].copy(), float(m.geom_size[bar][1])
        z = np.array([np.cos(np.deg2rad(59.0)), 0.0, -np.sin(np.deg2rad(59.0))])
        y = np.array([0.0, 1.0, 0.0])
        door = ["microwave_door"]

        def verdicts(below_top: float) -> tuple[str, str, str]:
            M = np.eye(4)
            M[:3, :3] = np.column_stack([np.cross(y, z), y, z])
            M[:3, 3] = centre + [0.0, 0.0, top - below_top]
            tcp = Pose.from_matrix(M)
            q = solve_ik(panda_model(), tcp, PANDA_HOME_Q, restarts=4).q
            checkers = [MujocoCollisionChecker(m, w.data, allowed_bodies=door),
                        MujocoCollisionChecker(m, w.data, allowed_bodies=door, hand_only_bodies=door),
                        MujocoCollisionChecker(m, w.data, allowed_bodies=door, fingers_only_bodies=door)]
            a, b, c = (ck.collides(q, tcp, 0.08) for ck in checkers)
            return a, b, c

        # too shallow for the 4 mm that other contacts are allowed, but the palm is on the bar
        assert verdicts(0.04) == ("", "", "panda0_link7 against microwave_door")
        assert verdicts(0.03) == ("", "", "")  # where the demos took it: clear
    finally:
        w.close()


def test_point_cloud_checker_keeps_the_hand_off_a_part_only_the_fingers_may_touch() -> None:
    tcp = Pose(position=(0.5, 0.0, 0.2), quaternion=DOWN)
    z = np.arange(0.0, 0.16, 0.004)
    bar = np.c_[np.full(len(z), 0.5), np.zeros(len(z)), 0.2 + z]  # a bar rising between the fingers into the palm
    free = PointCloudCollisionChecker(np.zeros((0, 3)), fingers_only=bar[z < 0.03])
    assert free.collides(np.zeros(7), tcp, 0.08) == ""  # between the fingers only
    hit = PointCloudCollisionChecker(np.zeros((0, 3)), fingers_only=bar).collides(np.zeros(7), tcp, 0.08)
    assert hit.startswith("hand within") and "part it grasps" in hit
    assert PointCloudCollisionChecker(np.zeros((0, 3))).collides(np.zeros(7), tcp, 0.08) == ""
