"""Grasp verification from the gripper and judging the motion a manipulation achieved."""

from __future__ import annotations

import numpy as np

from tests.frames import frame
from tools.execution.verify import (
    judge_motion,
    placed_height_tolerance,
    placement_tolerance,
    relation,
    returns_to_start,
    verify_grasp,
)


def test_grasp_on_air_on_object_and_slipped() -> None:
    assert not verify_grasp(True, 0.0005).held  # fingers met: nothing between them
    v = verify_grasp(False, 0.03)
    assert not v.held and "without holding" in v.message
    assert not verify_grasp(True, 0.03, is_grasping=False).held
    ok = verify_grasp(True, 0.021, is_grasping=True, expected_width=0.02)
    assert ok.held and "21.0 mm" in ok.message
    # fingers that never closed (resting on the ends of an object as long as the open hand) hold nothing
    wide = verify_grasp(True, 0.0818, is_grasping=True, expected_width=0.061)
    assert not wide.held and "stayed open at 81.8 mm" in wide.message


def test_placement_tolerance_grows_with_the_master_but_never_below_perception_error() -> None:
    assert np.isclose(placement_tolerance((0.20, 0.20, 0.013)), 0.05)  # anywhere near a plate's middle
    assert np.isclose(placement_tolerance((0.05, 0.05, 0.05)), 0.025)  # a block on a block: nearly centred



def test_relation_is_the_slave_in_the_master_frame() -> None:
    m, s = frame((1.0, 0.0, 0.0), 90.0), frame((1.0, 0.2, 0.0), 90.0)
    assert np.allclose(relation(m, s)[:3, 3], (0.2, 0.0, 0.0))


def test_drawer_pulled_most_of_the_way_is_enough_a_third_is_not() -> None:
    plan = np.stack([frame((0.1 + 0.15 * t, 0.0, 0.0)) for t in np.linspace(0, 1, 10)])
    full = judge_motion(plan, plan[0], frame((0.24, 0.0, 0.0)))
    assert full.enough and np.isclose(full.expected_motion_m, 0.15) and np.isclose(full.achieved_motion_m, 0.14)
    short = judge_motion(plan, plan[0], frame((0.15, 0.0, 0.0)))
    assert not short.enough and "5.0/15.0 cm" in short.message


def test_door_must_turn_and_placement_counts_only_the_end() -> None:
    plan = np.stack([frame((0.0, 0.0, 0.0), a) for a in np.linspace(0, 80, 10)])
    assert judge_motion(plan, plan[0], frame((0.0, 0.0, 0.0), 70.0)).enough
    assert not judge_motion(plan, plan[0], frame((0.0, 0.0, 0.0), 20.0)).enough
    place = np.stack([frame((0.3 * (1 - t), 0.0, 0.05 * t)) for t in np.linspace(0, 1, 10)])
    on_top = judge_motion(place, place[0], frame((0.005, 0.0, 0.05)), placement=True, end_tolerance_m=0.02)
    fell = judge_motion(place, place[0], frame((0.04, 0.0, 0.0)), placement=True, end_tolerance_m=0.02)
    assert on_top.enough and not fell.enough


def test_a_block_that_slid_off_its_support_is_not_placed_one_that_settled_is() -> None:
    block = (0.045, 0.045, 0.045)
    tol = placed_height_tolerance(block)
    assert np.isclose(tol, 0.0225)
    place = np.stack([frame((0.3 * (1 - t), 0.0, 0.05 * t)) for t in np.linspace(0, 1, 10)])
    settled = judge_motion(place, place[0], frame((0.003, 0.0, 0.032)), placement=True, end_tolerance_m=0.025,
                           height_tolerance_m=tol)
    slid_off = judge_motion(place, place[0], frame((0.01, 0.0, 0.02)), placement=True, end_tolerance_m=0.025,
                            height_tolerance_m=tol)
    assert settled.enough and not slid_off.enough and "-3.0 cm in height" in slid_off.message
    assert placed_height_tolerance((0.01, 0.01, 0.01)) == 0.02  # never under perception's own error
    assert placed_height_tolerance((0.3, 0.2, 0.3)) == placed_height_tolerance(None)  # nor over the cap


def test_a_big_block_that_slid_off_a_small_one_is_not_placed() -> None:
    # a 5.7 cm block stacked on a 3.3 cm one slid off and leans on it: 2.9 cm low, just over half its own
    # height but nearly all of the small block's
    big, small = (0.058, 0.058, 0.057), (0.034, 0.034, 0.033)
    assert placed_height_tolerance(big) > 0.028
    tol = placed_height_tolerance(big, small)
    assert tol == 0.02
    place = np.stack([frame((0.25 * (1 - t), 0.0, 0.045 * t)) for t in np.linspace(0, 1, 10)])
    slid = judge_motion(place, place[0], frame((0.003, 0.0, 0.016)), placement=True, end_tolerance_m=0.025,
                        height_tolerance_m=tol)
    assert not slid.enough and "-2.9 cm in height" in slid.message


def test_a_scrub_counts_only_when_it_reaches_its_planned_end() -> None:
    # strokes back and forth across a pan: start and end 2 cm apart, 60 cm of path
    xs = 0.1 * np.sin(np.linspace(0.0, 3 * np.pi, 30))
    plan = np.stack([frame((x, 0.002 * i, 0.0)) for i, x in enumerate(xs)])
    done = judge_motion(plan, plan[0], plan[-1], sweep=True)
    # stopped mid-stroke, 5 cm from the end: by displacement alone it would pass (moved >= 70 % of 6 cm)
    stopped = judge_motion(plan, plan[0], frame((0.05, 0.06, 0.0)), sweep=True)
    assert judge_motion(plan, plan[0], frame((0.05, 0.06, 0.0))).enough
    assert done.enough and not stopped.enough


def test_a_handle_turned_there_and_back_counts_only_when_it_came_back() -> None:
    # wash_pan: the faucet's knob turned 70 degrees on and back off; it stuck 22 degrees open (unseen seed 2)
    out_and_back = np.concatenate([np.linspace(0, 70, 10), np.linspace(70, 3, 10)])
    plan = np.stack([frame((0.0, 0.0, 0.0), a) for a in out_and_back])
    assert judge_motion(plan, plan[0], frame((0.0, 0.0, 0.0), 5.0)).enough
    stuck = judge_motion(plan, plan[0], frame((0.0, 0.0, 0.0), 22.0))
    assert not stuck.enough and "turned 22/3 deg" in stuck.message
    # a small motion that never goes far is judged as before: a 3 degree nudge that turned 2.5 is done
    nudge = np.stack([frame((0.0, 0.0, 0.0), a) for a in np.linspace(0, 3, 10)])
    assert judge_motion(nudge, nudge[0], frame((0.0, 0.0, 0.0), 2.5)).enough


def test_only_a_motion_that_goes_out_and_comes_back_returns_to_its_start() -> None:
    angles = np.concatenate([np.linspace(0, 70, 10), np.linspace(70, 2, 10)])
    turn = np.stack([frame((0.0, 0.0, 0.0), a) for a in angles])
    pull = np.stack([frame((0.02 * i, 0.0, 0.0)) for i in range(10)])  # a drawer pulled 18 cm
    still = np.stack([frame((0.001 * i, 0.0, 0.0)) for i in range(10)])  # hardly moves at all
    assert returns_to_start(turn) and not returns_to_start(pull) and not returns_to_start(still)
    # judged from another start (where the step began), the same turn does not return to it
    assert not returns_to_start(turn, frame((0.0, 0.0, 0.0), 40.0))
