"""Geometry of the adapter's composition: the shifts tried for a put-down at a free place."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation as Rot

from agents.adapter_compose import FREE_PLACE_MIN_M, compose_manipulation, free_place_shifts
from agents.reasoning.questions import Revision
from core.geometry import Pose, invert_transform
from core.grounding import Phase
from core.program import StartPose, TrajectoryProgram, Waypoints
from core.skills import ManipulationConstraint, Provenance, Skill, SkillObject


def test_free_place_shifts_head_for_the_arm_nearest_first_within_the_demos_spread() -> None:
    end = np.array([0.85, -0.05, 0.2])  # a place past the arm's reach
    shifts = free_place_shifts(end, spread_m=0.10)
    lengths = [float(np.linalg.norm(s)) for s in shifts]
    assert lengths == sorted(lengths) and max(lengths) <= 0.10 + 1e-9
    assert all(abs(s[2]) < 1e-12 for s in shifts)  # on the same surface: horizontal only
    # every shift brings the place nearer the base (the world origin)
    assert all(np.linalg.norm((end + s)[:2]) < np.linalg.norm(end[:2]) for s in shifts)
    straight = shifts[0] / np.linalg.norm(shifts[0])
    assert np.allclose(straight[:2], -end[:2] / np.linalg.norm(end[:2]))


def test_a_tight_spread_still_allows_a_few_centimetres_and_no_place_at_the_base_gets_none() -> None:
    shifts = free_place_shifts(np.array([0.8, 0.0, 0.1]), spread_m=0.01)
    assert shifts and max(float(np.linalg.norm(s)) for s in shifts) <= FREE_PLACE_MIN_M + 1e-9
    assert free_place_shifts(np.zeros(3), spread_m=0.1) == []


def _pour_skill(tilt_deg: float) -> Skill:
    """A source cup carried from beside the target to above it and tipped about the target's x axis; in
    the demos the fingers closed along that axis (gripper y along the cup's x), leaving the lip free."""
    q = [tuple(Rot.from_euler("x", a, degrees=True).as_quat()) for a in (0.0, tilt_deg, 0.0)]
    prog = TrajectoryProgram(family="waypoints", start=StartPose(position=(0.0, -0.15, 0.0)),
                             steps=[Waypoints(points=[(0.0, -0.04, 0.13), (0.0, -0.03, 0.13), (0.0, -0.15, 0.0)],
                                              quaternions=q)])
    grip = Pose.from_matrix(_gripper_with_fingers_along((1.0, 0.0, 0.0), (0.0, 0.0, 0.02)))
    return Skill(id="pour.01.put.x", task="pour", subtask="pour", phase=Phase.manipulation,
                 master=SkillObject(name="cup_target", bbox_size=(0.09, 0.09, 0.08)),
                 slave=SkillObject(name="cup_source", bbox_size=(0.06, 0.06, 0.09)), semantic="pour",
                 manipulation=ManipulationConstraint(program=prog, T_slave_gripper=grip),
                 provenance=Provenance(demo_ids=["d0"]))


def _gripper_with_fingers_along(fingers: tuple, pos: tuple) -> np.ndarray:
    """A top-down gripper (z down) whose fingers close along `fingers` (its y axis)."""
    y = np.asarray(fingers, dtype=float)
    z = np.array([0.0, 0.0, -1.0])
    T = np.eye(4)
    T[:3, :3] = np.column_stack([np.cross(y, z), y, z])
    T[:3, 3] = pos
    return T


def _compose_from_a_grasp_across_the_tilt(skill: Skill) -> list[Pose]:
    T_wm = np.eye(4)
    T_wm[:3, 3] = (0.5, 0.0, 0.04)
    # the source cup is round: the yaw perception gives it (40 deg) means nothing
    T_ws = np.eye(4)
    T_ws[:3, :3] = Rot.from_euler("z", 40.0, degrees=True).as_matrix()
    T_ws[:3, 3] = (0.5, -0.15, 0.045)
    T_wg = _gripper_with_fingers_along((0.0, 1.0, 0.0), (0.5, -0.15, 0.065))  # fingers along source->target
    c = compose_manipulation(skill, T_wm, (0.09, 0.09, 0.08), T_ws, invert_transform(T_ws) @ T_wg,
                             (0.06, 0.06, 0.09), Revision(), T_wg, slave_round=True)
    return c.poses


def test_a_round_cup_is_tipped_about_the_fingers_as_demonstrated_whatever_way_it_was_taken() -> None:
    poses = _compose_from_a_grasp_across_the_tilt(_pour_skill(120.0))
    tips = [np.degrees(np.arccos(np.clip(-p.matrix()[2, 2], -1.0, 1.0))) for p in poses]
    most = poses[int(np.argmax(tips))].matrix()
    assert max(tips) > 100.0
    # the tilt is about the target's x; the fingers lie along it, so neither stands in the pouring lip
    assert abs(most[:3, 1] @ np.array([1.0, 0.0, 0.0])) > 0.98


def test_a_round_object_carried_upright_keeps_the_grip_it_was_taken_with() -> None:
    poses = _compose_from_a_grasp_across_the_tilt(_pour_skill(10.0))
    # no tilt to line the fingers up with: the slave keeps its demonstrated start orientation and the
    # wrist makes no turn the demo did not make
    for p in poses:
        assert abs(p.matrix()[:3, 1] @ np.array([0.0, 1.0, 0.0])) > 0.97
