"""Joint trajectory time-parameterisation and Cartesian paths through IK."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.geometry import Pose
from core.motion import PANDA_DQ_MAX, PANDA_HOME_Q, PANDA_Q_MAX, PANDA_Q_MIN
from tools.robot.ik import panda_model, tcp_pose
from tools.robot.trajectory import PANDA_DDQ_MAX, cartesian_to_joint_path, time_parameterize

DOWN = Rotation.from_matrix(np.diag([1.0, -1.0, -1.0]))


def _random_path(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(PANDA_Q_MIN + 0.3, PANDA_Q_MAX - 0.3, size=(n, 7))


@pytest.mark.parametrize("speed", [0.1, 0.5, 1.0])
def test_velocity_and_acceleration_stay_inside_the_scaled_limits(speed: float) -> None:
    rng = np.random.default_rng(1)
    for n in (2, 3, 8):
        path = _random_path(rng, n)
        traj = time_parameterize(path, speed)
        dt = 1e-3
        t = np.arange(0.0, traj.duration + dt, dt)
        q, dq = traj.sample(t)
        fd = np.diff(q, axis=0) / dt  # finite differences: independent of the analytic dq
        assert np.all(np.abs(fd) <= PANDA_DQ_MAX * speed * 1.001)
        assert np.all(np.abs(dq) <= PANDA_DQ_MAX * speed * 1.001)
        acc = np.diff(dq, axis=0) / dt
        assert np.all(np.abs(acc) <= PANDA_DDQ_MAX * speed * 1.01)
        # Starts and ends at rest, on the first and last waypoints.
        assert np.allclose(q[0], path[0]) and np.allclose(q[-1], path[-1], atol=1e-9)
        assert np.allclose(dq[0], 0) and np.allclose(dq[-1], 0, atol=1e-9)


def test_trajectory_passes_through_every_waypoint_and_is_not_needlessly_slow() -> None:
    q0 = PANDA_HOME_Q
    q1 = q0 + np.array([1.0, 0, 0, 0, 0, 0, 0])
    traj = time_parameterize([q0, q1], 1.0)
    # One joint moving 1 rad at 2.175 rad/s needs ~0.46 s at least; ramps add a little.
    assert 0.46 < traj.duration < 1.5
    path = np.array([q0 + np.array([0, 0.1 * k, 0.05 * k, 0, 0, 0, 0]) for k in range(6)])
    traj = time_parameterize(path, 0.5)
    t = np.linspace(0, traj.duration, 20001)
    q, _ = traj.sample(t)
    for w in path:
        assert np.min(np.linalg.norm(q - w, axis=1)) < 1e-3


def test_slower_speed_factor_takes_longer() -> None:
    path = _random_path(np.random.default_rng(2), 4)
    assert time_parameterize(path, 0.2).duration > 2.0 * time_parameterize(path, 1.0).duration


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5, float("nan")])
def test_bad_speed_factor_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="speed_factor"):
        time_parameterize([PANDA_HOME_Q, PANDA_HOME_Q + 0.1], bad)


def test_bad_path_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="joint waypoints"):
        time_parameterize(np.zeros((3, 6)), 0.5)


def test_cartesian_path_follows_a_straight_line() -> None:
    model = panda_model()
    start = tcp_pose(model, PANDA_HOME_Q)
    a = Pose.from_rotation(DOWN, [0.45, -0.2, 0.25])
    b = Pose.from_rotation(DOWN * Rotation.from_euler("z", 0.8), [0.6, 0.25, 0.12])
    jp = cartesian_to_joint_path(model, [a, b], PANDA_HOME_Q)
    assert jp.reachable and jp.failed_index is None
    assert np.allclose(jp.q[0], PANDA_HOME_Q)
    assert tcp_pose(model, jp.q[-1]).distance_to(b)[0] < 1e-3
    seg = jp.q[jp.pose_index == 1]
    direction = (b.translation - a.translation) / np.linalg.norm(b.translation - a.translation)
    for q in seg:
        p = tcp_pose(model, q).translation - a.translation
        off_line = np.linalg.norm(p - np.dot(p, direction) * direction)
        assert off_line < 1.5e-3
    # Consecutive rows are close: no configuration jumps.
    assert np.max(np.abs(np.diff(jp.q, axis=0))) < 0.2
    assert start.distance_to(tcp_pose(model, jp.q[0]))[0] < 1e-9


def test_cartesian_path_flags_the_unreachable_waypoint() -> None:
    model = panda_model()
    ok = Pose.from_rotation(DOWN, [0.5, 0.0, 0.3])
    too_far = Pose.from_rotation(DOWN, [1.4, 0.0, 0.3])
    jp = cartesian_to_joint_path(model, [ok, too_far, ok], PANDA_HOME_Q)
    assert not jp.reachable
    assert jp.failed_index == 1
    assert "pose 1" in jp.message


def test_a_turn_about_the_vertical_blocked_by_joint_7_goes_the_long_way_round() -> None:
    model = panda_model()
    q0 = PANDA_HOME_Q.copy()
    q0[6] = 2.5  # the last joint near its upper limit (2.90)
    start = tcp_pose(model, q0)
    # Turning the gripper -150 deg about the vertical the short way needs joint 7 beyond its limit.
    target = Pose.from_rotation(Rotation.from_euler("z", -150, degrees=True) * start.rotation, start.position)
    jp = cartesian_to_joint_path(model, [target], q0)
    assert jp.reachable, jp.message
    dt, dr = tcp_pose(model, jp.q[-1]).distance_to(target)
    assert dt < 1e-3 and np.rad2deg(dr) < 0.5
    # The gripper stayed pointing down and turned +210 deg instead of -150 deg.
    yaw = [tcp_pose(model, q).rotation.as_euler("xyz")[2] for q in jp.q]
    turned = np.sum(np.diff(np.unwrap(yaw)))
    assert np.rad2deg(turned) == pytest.approx(210.0, abs=1.0)
    for q in jp.q:
        assert tcp_pose(model, q).matrix()[2, 2] < -0.999
    assert np.all(jp.q >= PANDA_Q_MIN) and np.all(jp.q <= PANDA_Q_MAX)
