"""Panda model and damped-least-squares IK for the TCP."""

from __future__ import annotations

import numpy as np
import pytest

from core.geometry import Pose
from core.motion import PANDA_HOME_Q, PANDA_Q_MAX, PANDA_Q_MIN
from tools.robot.ik import ARM_JOINTS, panda_model, solve_ik, tcp_pose


def _dh_tcp(q: np.ndarray) -> np.ndarray:
    """The Panda's TCP from Franka's published (modified) DH parameters, flange + 0.1034 m, -45 deg."""
    a = [0, 0, 0, 0.0825, -0.0825, 0, 0.088]
    d = [0.333, 0, 0.316, 0, 0.384, 0, 0]
    alpha = [0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2]
    T = np.eye(4)
    for i in range(7):
        ca, sa, ct, st = np.cos(alpha[i]), np.sin(alpha[i]), np.cos(q[i]), np.sin(q[i])
        T = T @ np.array([
            [ct, -st, 0, a[i]],
            [st * ca, ct * ca, -sa, -d[i] * sa],
            [st * sa, ct * sa, ca, d[i] * ca],
            [0, 0, 0, 1],
        ])
    flange = np.eye(4)
    flange[2, 3] = 0.107
    ee = np.eye(4)
    c, s = np.cos(-np.pi / 4), np.sin(-np.pi / 4)
    ee[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    ee[2, 3] = 0.1034
    return T @ flange @ ee


def test_robot_only_model_uses_the_real_panda_joint_convention_and_limits() -> None:
    model = panda_model()
    for i, name in enumerate(ARM_JOINTS):
        j = model.joint(name)
        assert j.range[0] == pytest.approx(PANDA_Q_MIN[i]) and j.range[1] == pytest.approx(PANDA_Q_MAX[i])
    rng = np.random.default_rng(3)
    for q in [PANDA_HOME_Q, *rng.uniform(PANDA_Q_MIN, PANDA_Q_MAX, size=(5, 7))]:
        T = tcp_pose(model, q).matrix()
        ref = _dh_tcp(q)
        assert np.abs(T[:3, 3] - ref[:3, 3]).max() < 1e-3  # the kitchen TCP is 0.21 m vs 0.2104 m
        assert np.abs(T[:3, :3] - ref[:3, :3]).max() < 1e-3
    home = tcp_pose(model, PANDA_HOME_Q).matrix()
    assert home[2, 2] == pytest.approx(-1.0, abs=1e-3)  # pointing down at home


def test_ik_reaches_ten_random_reachable_targets_within_1mm_and_half_a_degree() -> None:
    model = panda_model()
    rng = np.random.default_rng(0)
    margin = 0.2
    for _ in range(10):
        q_true = rng.uniform(PANDA_Q_MIN + margin, PANDA_Q_MAX - margin)
        target = tcp_pose(model, q_true)
        res = solve_ik(model, target, PANDA_HOME_Q)
        assert res.success, (res.pos_err, res.rot_err)
        dt, dr = tcp_pose(model, res.q).distance_to(target)  # checked independently of the solver
        assert dt < 1e-3 and np.rad2deg(dr) < 0.5
        assert np.all(res.q >= PANDA_Q_MIN - 1e-9) and np.all(res.q <= PANDA_Q_MAX + 1e-9)


def test_ik_reports_failure_honestly_for_an_unreachable_target() -> None:
    model = panda_model()
    res = solve_ik(model, Pose(position=(1.5, 0.0, 0.3)), PANDA_HOME_Q, restarts=2)
    assert not res.success
    assert res.pos_err > 0.3
    assert np.all(res.q >= PANDA_Q_MIN - 1e-9) and np.all(res.q <= PANDA_Q_MAX + 1e-9)


def test_ik_works_on_the_simulated_world_model_too() -> None:
    from sim.world import SimWorld, base_spec

    world = SimWorld(base_spec(), render=False)
    target = tcp_pose(panda_model(), np.array([0.3, -0.2, 0.1, -2.0, 0.1, 1.9, 0.5]))
    res = solve_ik(world.model, target, PANDA_HOME_Q)
    assert res.success
    assert tcp_pose(panda_model(), res.q).distance_to(target)[0] < 1e-3


def test_ik_rejects_a_wrong_sized_start() -> None:
    with pytest.raises(ValueError, match="7 joint values"):
        solve_ik(panda_model(), Pose(position=(0.5, 0, 0.3)), np.zeros(6))
