"""The wash_pan demonstration is brisk; the per-step hand pose maths (numpy Rodrigues) equals scipy's;
the planner records long-horizon tasks at a lower frame rate."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from agents.planner import DEMO_FPS_MAX, DEMO_FPS_MIN, demo_fps
from sim.demonstrator import SETTLE_S, _add_hand_and_welds
from sim.hand_motion import _rotvec_matrix, plan_motion
from sim.script import Move, Wait
from sim.show import build_scene


def test_rotvec_matrix_matches_scipy() -> None:
    for v in np.random.default_rng(0).normal(size=(20, 3)) * 2.0:
        assert np.allclose(_rotvec_matrix(v), Rotation.from_rotvec(v).as_matrix(), atol=1e-12)
    assert np.allclose(_rotvec_matrix(np.zeros(3)), np.eye(3))


def test_planner_never_records_below_the_frame_rate_grounding_is_measured_at() -> None:
    assert DEMO_FPS_MIN >= 15.0
    assert demo_fps("open_drawer") == DEMO_FPS_MAX
    assert DEMO_FPS_MIN <= demo_fps("wash_pan") <= DEMO_FPS_MAX


def test_wash_pan_demo_is_brisk() -> None:
    """A person washes up in about a minute: the demonstration is quicker than the robot's solution."""
    for seed in (0, 1):
        task, world, params = build_scene("wash_pan", "seen", seed, with_robot=False, render=False,
                                          extend=_add_hand_and_welds)
        with world:
            world.step(int(round(SETTLE_S / world.timestep)))
            world.forward()
            demo = plan_motion(task.demonstration(world, params, np.random.default_rng(seed)),
                               np.random.default_rng(seed + 1))
            robot = sum(s.duration for s in task.solution(world, params).steps if isinstance(s, Move | Wait))
        assert demo.duration < 95.0
        assert demo.duration < robot
