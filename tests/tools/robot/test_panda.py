"""PandaRobot against the fake panda_py, and the real panda_py/libfranka against loopback hosts only."""

from __future__ import annotations

import contextlib
import random
import socket
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from core.errors import BackendUnavailable, ConfigError, HardwareError
from core.geometry import Pose
from core.motion import PANDA_HOME_Q, MotionStatus
from tests.fakes.panda_py_fake import FakeBehaviour, install, wait_until
from tools.robot.connectivity import FCI_PORT, probe_tcp
from tools.robot.panda import PandaRobot, bundled_libfranka_version, classify_libfranka_error, panda_forward_kinematics
from tools.robot.protocols import Robot


@contextlib.contextmanager
def tcp_listener(host: str = "127.0.0.1", port: int = 0) -> Iterator[tuple[str, int, list[socket.socket]]]:
    """A real TCP server on loopback that accepts connections and never says anything."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(8)
    srv.settimeout(0.1)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                conns.append(c)
            except (TimeoutError, OSError):
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield host, srv.getsockname()[1], conns
    finally:
        stop.set()
        t.join(timeout=2)
        for c in conns:
            c.close()
        srv.close()


def random_loopback() -> str:
    """A loopback address other than 127.0.0.1 (all of 127/8 is local), so port 1337 is ours alone."""
    rng = random.Random()
    return f"127.{rng.randint(1, 254)}.{rng.randint(1, 254)}.{rng.randint(2, 254)}"


@pytest.fixture
def listener() -> Iterator[int]:
    with tcp_listener() as (_, port, _):
        yield port


def connect(port: int, **kwargs: object) -> PandaRobot:
    return PandaRobot("127.0.0.1", fci_port=port, connect_timeout_s=kwargs.pop("connect_timeout_s", 2.0),
                      **kwargs)  # type: ignore[arg-type]


# --- connecting ------------------------------------------------------------------------------------


def test_missing_panda_py_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "panda_py", None)
    with pytest.raises(BackendUnavailable, match=r"pip install -e \.\[real\]"):
        PandaRobot("127.0.0.1")


def test_no_address_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="VLMIMIC_HARDWARE__PANDA_HOST"):
        PandaRobot("")


def test_nothing_listening_fails_fast_with_clear_message() -> None:
    host = "127.0.0.1" if probe_tcp("127.0.0.1", FCI_PORT, 1.0).ok is False else random_loopback()
    t0 = time.monotonic()
    with pytest.raises(HardwareError, match=r"connection refused on .*:1337.*FCI is activated in Desk"):
        PandaRobot(host, connect_timeout_s=3.0)
    assert time.monotonic() - t0 < 10.0


def test_silent_host_fails_within_timeout_with_real_libfranka() -> None:
    """A host that accepts on 1337 and never answers: real libfranka would block forever."""
    pytest.importorskip("panda_py")
    for _ in range(5):
        host = random_loopback()
        try:
            ctx = tcp_listener(host, FCI_PORT)
            entered = ctx.__enter__()
            break
        except OSError:
            continue
    else:
        pytest.skip("no free loopback address for port 1337")
    try:
        t0 = time.monotonic()
        with pytest.raises(HardwareError, match=r"accepted the connection but libfranka got no answer within 2 s"):
            PandaRobot(host, connect_timeout_s=2.0)
        assert time.monotonic() - t0 < 10.0
        assert entered[2], "libfranka never connected to the listener"
    finally:
        ctx.__exit__(None, None, None)  # closing the connections unblocks the abandoned libfranka thread


def test_stalling_constructor_fails_within_timeout(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    fake = install(monkeypatch, FakeBehaviour(connect="stall"))
    t0 = time.monotonic()
    with pytest.raises(HardwareError, match="no answer within 1 s"):
        connect(listener, connect_timeout_s=1.0)
    assert time.monotonic() - t0 < 5.0
    fake.release.set()


def test_refusal_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    install(monkeypatch, FakeBehaviour(connect="refuse"))
    with pytest.raises(HardwareError, match="Connection to FCI refused.*activate FCI in Desk") as e:
        connect(listener)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("mode", ["incompatible", "incompatible_legacy"])
def test_version_mismatch_names_the_build_to_install(monkeypatch: pytest.MonkeyPatch, listener: int,
                                                     mode: str) -> None:
    install(monkeypatch, FakeBehaviour(connect=mode))
    with pytest.raises(HardwareError) as e:
        connect(listener)
    msg = str(e.value)
    assert "FCI protocol 6" in msg
    assert "libfranka 0.13.2" in msg  # the build for protocol 6 (FR3, system >= 5.2.0)
    assert "panda-py" in msg


def test_bundled_libfranka_version_is_read_from_the_installed_wheel() -> None:
    pytest.importorskip("panda_py")
    assert bundled_libfranka_version() == "0.9.2"


# --- state and motion -----------------------------------------------------------------------------


def test_connects_and_reads_state(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    fake = install(monkeypatch)
    robot = connect(listener)
    assert isinstance(robot, Robot)
    assert fake.names()[:3] == ["connect_panda", "connect_gripper", "set_default_behavior"]
    s = robot.state()
    np.testing.assert_allclose(s.q, PANDA_HOME_Q)
    np.testing.assert_allclose(s.ee_pose.matrix(), panda_forward_kinematics(PANDA_HOME_Q), atol=1e-9)
    assert s.gripper_width == pytest.approx(0.08)


def test_joint_and_cartesian_moves_reach_panda_py(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    from tools.robot.panda import ImpedanceSettings

    fake = install(monkeypatch)
    robot = connect(listener, impedance=ImpedanceSettings(cartesian_stiffness=(600, 600, 600, 30, 30, 30),
                                                          joint_stiffness=(500,) * 7))
    q = PANDA_HOME_Q + 0.1
    r = robot.move_to_joints(q, speed_factor=0.3)
    assert r.ok and r.waypoints_done == 1
    name, kw = fake.log[-1]
    assert name == "move_to_joint_position" and kw["speed_factor"] == 0.3
    np.testing.assert_allclose(kw["positions"], q)
    np.testing.assert_allclose(kw["stiffness"], [500] * 7)

    poses = [Pose(position=(0.5, 0.0, 0.3), quaternion=(1, 0, 0, 0)),
             Pose(position=(0.5, 0.1, 0.25), quaternion=(0.9238795, 0.3826834, 0, 0))]
    r = robot.follow_poses(poses, speed_factor=0.1)
    assert r.ok and r.waypoints_done == 2
    name, kw = fake.log[-1]
    assert name == "move_to_pose"
    np.testing.assert_allclose(kw["positions"][1], (0.5, 0.1, 0.25))
    np.testing.assert_allclose(kw["orientations"][1], poses[1].quaternion)  # scalar-last, as panda-py
    np.testing.assert_allclose(np.diag(kw["impedance"]), (600, 600, 600, 30, 30, 30))
    dt, dr = robot.ee_pose().distance_to(poses[1])
    assert dt < 1e-9 and dr < 1e-6


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ('libfranka: Move command aborted: motion aborted by reflex! ["cartesian_reflex"]', MotionStatus.collision),
        ('libfranka: Move command aborted: motion aborted by reflex! ["joint_position_limits_violation"]',
         MotionStatus.unreachable),
        ("libfranka: Move command aborted: motion aborted by reflex!", MotionStatus.collision),
        ('libfranka: Move command rejected: ["cartesian_motion_generator_joint_position_limits_violation"]',
         MotionStatus.unreachable),
        ('libfranka: Motion aborted: ["communication_constraints_violation"]', MotionStatus.fault),
    ],
)
def test_libfranka_errors_map_to_statuses_and_recover_next_time(monkeypatch: pytest.MonkeyPatch, listener: int,
                                                                message: str, status: MotionStatus) -> None:
    fake = install(monkeypatch, FakeBehaviour(motion_error=message))
    robot = connect(listener)
    r = robot.move_to_joints(PANDA_HOME_Q)
    assert r.status == status
    assert not r.message.startswith("libfranka") and ("aborted" in r.message or "rejected" in r.message)
    r2 = robot.move_to_joints(PANDA_HOME_Q + 0.05)
    assert r2.ok
    assert fake.names()[-2:] == ["recover", "move_to_joint_position"]


def test_classify_user_stop() -> None:
    assert classify_libfranka_error("libfranka: Move command aborted: User stopped!") == MotionStatus.stopped


def test_move_that_settles_short_is_a_fault_with_distance(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    install(monkeypatch, FakeBehaviour(motion_reaches_target=False))
    robot = connect(listener)
    target = robot.ee_pose() @ Pose(position=(0.0, 0.0, 0.05))
    r = robot.follow_poses([target])
    assert r.status == MotionStatus.fault
    assert "50.0 mm" in r.message


def test_stop_preempts_a_running_motion(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    fake = install(monkeypatch, FakeBehaviour(motion_duration_s=10.0))
    robot = connect(listener)
    out: list = []
    t = threading.Thread(target=lambda: out.append(robot.move_to_joints(PANDA_HOME_Q + 0.1)))
    t0 = time.monotonic()
    t.start()
    assert wait_until(lambda: "move_to_joint_position" in fake.names())
    robot.stop()
    t.join(timeout=5)
    assert out and out[0].status == MotionStatus.stopped
    assert time.monotonic() - t0 < 5
    assert "robot.stop" in fake.names()
    np.testing.assert_allclose(robot.joint_positions(), PANDA_HOME_Q)  # never reached the target


def test_motion_timeout_stops_the_arm(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    fake = install(monkeypatch, FakeBehaviour(motion_duration_s=10.0))
    robot = connect(listener, motion_timeout_s=0.3)
    r = robot.move_to_joints(PANDA_HOME_Q + 0.1)
    assert r.status == MotionStatus.timeout
    assert "robot.stop" in fake.names()


# --- gripper --------------------------------------------------------------------------------------


def test_grasp_passes_libfranka_arguments_by_name(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    fake = install(monkeypatch, FakeBehaviour(grasp_object_width=0.03))
    robot = connect(listener)
    assert robot.open_gripper(0.08, speed=0.05)
    res = robot.grasp(width=0.02, force=30.0, speed=0.07, epsilon_inner=0.005, epsilon_outer=0.02)
    assert res.success and res.width == pytest.approx(0.03)
    assert robot.is_grasping()
    assert fake.log[-1] == ("gripper.grasp", {"width": 0.02, "speed": 0.07, "force": 30.0,
                                              "epsilon_inner": 0.005, "epsilon_outer": 0.02})
    miss = robot.grasp(width=0.06, force=30.0, epsilon_inner=0.005, epsilon_outer=0.005)
    assert not miss.success and "nothing grasped" in miss.message


def test_stalled_gripper_times_out_and_is_stopped(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    fake = install(monkeypatch, FakeBehaviour(gripper_stall=True))
    robot = connect(listener, gripper_timeout_s=0.3)
    res = robot.grasp(width=0.0, force=20)
    assert not res.success and "did not finish within 0.3 s" in res.message
    assert "gripper.stop" in fake.names()


def test_fk_matches_panda_py() -> None:
    pp = pytest.importorskip("panda_py")
    rng = np.random.default_rng(3)
    for _ in range(10):
        q = rng.uniform(-2.5, 2.5, 7)
        q[3] = -abs(q[3]) - 0.1
        np.testing.assert_allclose(panda_forward_kinematics(q), pp.fk(q), atol=1e-3)


def test_factory_needs_an_address_and_contacts_nothing_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import load_settings
    from tools.robot.factory import make_robot

    monkeypatch.delenv("VLMIMIC_HARDWARE__PANDA_HOST", raising=False)
    monkeypatch.setenv("VLMIMIC_CONFIG", "/nonexistent/vlmimic.toml")
    fake = install(monkeypatch)
    with pytest.raises(ConfigError, match="--panda-host"):
        make_robot("panda", load_settings())
    assert fake.log == []
    with pytest.raises(ConfigError, match="unknown robot"):
        make_robot("ur5", load_settings())


def test_factory_connects_to_the_configured_host(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    from core.settings import load_settings
    from tools.robot.factory import make_robot

    monkeypatch.setattr("tools.robot.panda.FCI_PORT", listener)
    fake = install(monkeypatch)
    robot = make_robot("panda", load_settings(hardware={"panda_host": "127.0.0.1", "connect_timeout_s": 2.0}))
    assert isinstance(robot, PandaRobot)
    assert fake.log[0] == ("connect_panda", {"host": "127.0.0.1"})


def test_ctrl_c_during_a_motion_stops_the_arm(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    import os
    import signal

    fake = install(monkeypatch, FakeBehaviour(motion_duration_s=10.0))
    robot = connect(listener)
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        robot.move_to_joints(PANDA_HOME_Q + 0.1)
    assert time.monotonic() - t0 < 5
    assert "robot.stop" in fake.names()


def test_real_panda_py_version_error_is_mapped() -> None:
    pp = pytest.importorskip("panda_py")
    from tools.robot.panda import _connect_error

    err = _connect_error("172.16.0.2", "Panda robot", pp.IncompatibleVersionError(10, 5), pp)
    assert isinstance(err, HardwareError)
    assert "FCI protocol 10" in str(err) and "libfranka 0.21.3" in str(err) and "bundles libfranka 0.9.2" in str(err)


def test_gripper_homing(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    fake = install(monkeypatch)
    robot = connect(listener)
    assert robot.home_gripper()
    assert fake.log[-1] == ("gripper.homing", {})


def test_keyword_names_used_exist_in_the_real_bindings() -> None:
    """The fake accepts what PandaRobot passes; check the real pybind11 signatures accept it too."""
    pp = pytest.importorskip("panda_py")
    import panda_py.libfranka as lf

    used = [
        (pp.Panda.move_to_joint_position, ["positions", "speed_factor", "stiffness", "damping"]),
        (pp.Panda.move_to_pose, ["positions", "orientations", "speed_factor", "impedance", "damping_ratio",
                                 "nullspace_stiffness"]),
        (pp.Panda.teaching_mode, ["active"]),
        (lf.Gripper.grasp, ["width", "speed", "force", "epsilon_inner", "epsilon_outer"]),
        (lf.Gripper.move, ["width", "speed"]),
    ]
    for fn, names in used:
        doc = fn.__doc__ or ""
        for name in names:
            assert f"{name}:" in doc, f"{fn.__qualname__} has no parameter {name!r}"
    for name in ("q", "get_pose", "get_robot", "set_default_behavior", "recover", "stop_controller"):
        assert hasattr(pp.Panda, name)
    for name in ("read_once", "homing", "stop"):
        assert hasattr(lf.Gripper, name)
    assert hasattr(lf.Robot, "stop") and hasattr(lf.GripperState, "is_grasped") and hasattr(lf.GripperState, "width")
