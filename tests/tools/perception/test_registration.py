"""Registering a part's earlier cloud onto what is seen after an action (the review's check of the hand)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from core.geometry import make_transform, rotation_angle, transform_points
from tests.tools.perception.test_tracking import box_surface
from tools.perception.registration import register_after

LEVER = (0.15, 0.04, 0.025)
PIVOT = np.array([0.55, -0.10, 0.20])  # the lever turns about the vertical through its inner end


def lever_pose(turn_deg: float) -> np.ndarray:
    """The lever's pose after turning `turn_deg` about the pivot (its centre 7.5 cm out along x)."""
    R = Rotation.from_euler("z", turn_deg, degrees=True)
    return make_transform(R, PIVOT + R.apply([LEVER[0] / 2, 0.0, 0.0]))


def seen(turn_deg: float, keep: float = 1.0, seed: int = 0) -> np.ndarray:
    """The lever's visible surface at a turn; `keep` < 1 hides its far part (the fingers, the arm)."""
    pts = box_surface(LEVER)
    if keep < 1.0:
        pts = pts[pts[:, 0] < -LEVER[0] / 2 + keep * LEVER[0]]
    noise = np.random.default_rng(seed).normal(0.0, 0.0008, pts.shape)
    return transform_points(lever_pose(turn_deg), pts) + noise


def test_a_lever_that_turned_less_than_the_hand_is_measured_where_it_is() -> None:
    before_T = lever_pose(0.0)
    # the hand turned 72 degrees; the lever, slipping in the grasp, only 30
    priors = [lever_pose(a) for a in (0.0, 24.0, 48.0, 72.0)]
    reg = register_after(seen(0.0, keep=0.7), before_T, seen(30.0, seed=1), priors)
    assert reg is not None and reg.confident
    turn = np.degrees(rotation_angle(reg.T_world_object[:3, :3], before_T[:3, :3]))
    assert abs(turn - 30.0) < 3.0
    assert np.linalg.norm(reg.T_world_object[:3, 3] - lever_pose(30.0)[:3, 3]) < 0.01


def test_a_turn_far_from_every_prior_is_still_found_by_the_turns_about_the_vertical() -> None:
    before_T = lever_pose(0.0)
    # a revision scaled the plan: its poses lie centimetres off the lever's own arc
    priors = [make_transform(Rotation.from_euler("z", a, degrees=True), lever_pose(a)[:3, 3] + [0.04, 0.03, 0.0])
              for a in (0.0, 36.0, 72.0)]
    reg = register_after(seen(0.0), before_T, seen(50.0, keep=0.8, seed=2), priors)
    assert reg is not None and reg.confident
    assert abs(np.degrees(rotation_angle(reg.T_world_object[:3, :3], before_T[:3, :3])) - 50.0) < 3.0


def test_something_else_seen_now_is_not_trusted() -> None:
    before_T = lever_pose(0.0)
    other = transform_points(make_transform(Rotation.identity(), PIVOT), box_surface((0.06, 0.06, 0.12)))
    reg = register_after(seen(0.0), before_T, other, [before_T])
    assert reg is None or not reg.confident


def test_too_little_seen_gives_no_answer() -> None:
    assert register_after(seen(0.0), lever_pose(0.0), seen(0.0)[:10], [lever_pose(0.0)]) is None
