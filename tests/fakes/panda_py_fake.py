"""A stand-in for the `panda_py` package (panda-python 1.1.1) at the hardware edge.

Same names and call signatures as the real package where tools.robot.panda uses them (checked against
the installed panda_py's stubs): Panda(hostname), .q, get_pose(), move_to_joint_position(positions=...,
speed_factor=..., stiffness=..., damping=...), move_to_pose(positions=[...], orientations=[...],
speed_factor=..., impedance=..., damping_ratio=..., nullspace_stiffness=...), set_default_behavior(),
recover(), teaching_mode(active), stop_controller(), get_robot().stop(); panda_py.fk(q);
panda_py.IncompatibleVersionError(server_version, library_version); panda_py.libfranka.Gripper(address)
with move(width, speed), grasp(width, speed, force, epsilon_inner, epsilon_outer), read_once(), stop().

Errors are raised the way the real bindings raise them: libfranka exceptions arrive as RuntimeError
with libfranka's message. `FakeBehaviour` chooses refusals, stalls, version mismatches and motion faults;
every command is recorded in `FakePandaPy.log`.
"""

from __future__ import annotations

import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from core.motion import PANDA_HOME_Q
from tools.robot.panda import panda_forward_kinematics


class IncompatibleVersionError(RuntimeError):
    def __init__(self, server_version: int, library_version: int) -> None:
        self.server_version = server_version
        self.library_version = library_version
        super().__init__(f"The robot speaks protocol version {server_version}, but this panda-py was built "
                         f"with a libfranka that speaks version {library_version}.")


@dataclass
class FakeBehaviour:
    connect: str = "ok"  # ok | refuse | stall | incompatible | incompatible_legacy
    motion_error: str | None = None  # libfranka message raised by the next motion
    motion_reaches_target: bool = True  # False: the move returns False (settled away from the target)
    motion_duration_s: float = 0.0  # a motion takes this long; stop() preempts it
    grasp_succeeds: bool = True
    grasp_object_width: float = 0.04
    gripper_stall: bool = False


@dataclass
class FakePandaPy:
    behaviour: FakeBehaviour = field(default_factory=FakeBehaviour)
    log: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    q: np.ndarray = field(default_factory=lambda: PANDA_HOME_Q.copy())
    pose_override: np.ndarray | None = None
    gripper_width: float = 0.08
    grasped: bool = False
    in_reflex: bool = False
    stop_event: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)  # ends a "stall"

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def module(self) -> tuple[types.ModuleType, types.ModuleType]:
        return _build_modules(self)


def _build_modules(fake: FakePandaPy) -> tuple[types.ModuleType, types.ModuleType]:
    b = fake.behaviour

    def connect(kind: str, host: str) -> None:
        fake.log.append((f"connect_{kind}", {"host": host}))
        if b.connect == "refuse":
            raise RuntimeError("libfranka: Connection to FCI refused. Please install FCI feature or enable FCI "
                               "mode in Desk.")
        if b.connect == "stall":
            fake.release.wait()
            raise RuntimeError("libfranka: Connection error: Connection reset by peer")
        if b.connect == "incompatible":
            raise IncompatibleVersionError(6, 5)
        if b.connect == "incompatible_legacy":
            raise RuntimeError("libfranka: Incompatible library version (server version: 6, library version: 5). "
                               "Please check https://frankaemika.github.io for Panda system updates.")

    def run_motion(name: str, kwargs: dict[str, Any], apply: Any) -> bool:
        fake.log.append((name, kwargs))
        if fake.in_reflex:
            raise RuntimeError("libfranka: Move command rejected: command not possible in the current mode "
                               "(\"Reflex\")!")
        fake.stop_event.clear()
        if b.motion_duration_s > 0 and fake.stop_event.wait(b.motion_duration_s):
            fake.in_reflex = True
            raise RuntimeError("libfranka: Move command aborted: User stopped!")
        if b.motion_error is not None:
            message, b.motion_error = b.motion_error, None
            fake.in_reflex = True
            raise RuntimeError(message)
        if b.motion_reaches_target:
            apply()
        return b.motion_reaches_target

    class LibfrankaRobot:
        def stop(self) -> None:
            fake.log.append(("robot.stop", {}))
            fake.stop_event.set()

    class Panda:
        def __init__(self, hostname: str, name: str = "panda", realtime_config: Any = None) -> None:
            connect("panda", hostname)
            self._robot = LibfrankaRobot()

        @property
        def q(self) -> np.ndarray:
            return fake.q.copy()

        def get_pose(self) -> np.ndarray:
            return fake.pose_override.copy() if fake.pose_override is not None else panda_forward_kinematics(fake.q)

        def get_robot(self) -> LibfrankaRobot:
            return self._robot

        def set_default_behavior(self) -> None:
            fake.log.append(("set_default_behavior", {}))

        def recover(self) -> None:
            fake.log.append(("recover", {}))
            fake.in_reflex = False

        def teaching_mode(self, active: bool, damping: Any = None) -> None:
            fake.log.append(("teaching_mode", {"active": active}))

        def stop_controller(self) -> None:
            fake.log.append(("stop_controller", {}))

        def move_to_joint_position(self, positions: Any, speed_factor: float = 0.2, **kwargs: Any) -> bool:
            target = np.asarray(positions, dtype=float).reshape(7)

            def apply() -> None:
                fake.q = target.copy()
                fake.pose_override = None

            return run_motion("move_to_joint_position",
                              {"positions": target, "speed_factor": speed_factor, **kwargs}, apply)

        def move_to_pose(self, positions: Any, orientations: Any, speed_factor: float = 0.2, **kwargs: Any) -> bool:
            from scipy.spatial.transform import Rotation

            positions = [np.asarray(p, dtype=float) for p in positions]
            orientations = [np.asarray(o, dtype=float) for o in orientations]

            def apply() -> None:
                T = np.eye(4)
                T[:3, :3] = Rotation.from_quat(orientations[-1]).as_matrix()
                T[:3, 3] = positions[-1]
                fake.pose_override = T

            return run_motion("move_to_pose", {"positions": positions, "orientations": orientations,
                                               "speed_factor": speed_factor, **kwargs}, apply)

    class GripperState:
        def __init__(self) -> None:
            self.width = fake.gripper_width
            self.is_grasped = fake.grasped
            self.max_width = 0.08

    class Gripper:
        def __init__(self, franka_address: str) -> None:
            connect("gripper", franka_address)

        def _maybe_stall(self) -> None:
            if b.gripper_stall:
                fake.release.wait()

        def move(self, width: float, speed: float) -> bool:
            fake.log.append(("gripper.move", {"width": width, "speed": speed}))
            self._maybe_stall()
            fake.gripper_width = float(width)
            fake.grasped = False
            return True

        def grasp(self, width: float, speed: float, force: float, epsilon_inner: float = 0.005,
                  epsilon_outer: float = 0.005) -> bool:
            fake.log.append(("gripper.grasp", {"width": width, "speed": speed, "force": force,
                                               "epsilon_inner": epsilon_inner, "epsilon_outer": epsilon_outer}))
            self._maybe_stall()
            obj = b.grasp_object_width
            ok = b.grasp_succeeds and width - epsilon_inner <= obj <= width + epsilon_outer
            fake.gripper_width = obj if b.grasp_succeeds else 0.0
            fake.grasped = ok
            return ok

        def homing(self) -> bool:
            fake.log.append(("gripper.homing", {}))
            self._maybe_stall()
            fake.gripper_width = 0.08
            return True

        def read_once(self) -> GripperState:
            return GripperState()

        def stop(self) -> bool:
            fake.log.append(("gripper.stop", {}))
            fake.release.set()
            return True

    libfranka = types.ModuleType("panda_py.libfranka")
    libfranka.Gripper = Gripper  # type: ignore[attr-defined]
    libfranka.GripperState = GripperState  # type: ignore[attr-defined]
    libfranka.Robot = LibfrankaRobot  # type: ignore[attr-defined]

    pp = types.ModuleType("panda_py")
    pp.__version__ = "1.1.1"  # type: ignore[attr-defined]
    pp.Panda = Panda  # type: ignore[attr-defined]
    pp.IncompatibleVersionError = IncompatibleVersionError  # type: ignore[attr-defined]
    pp.fk = lambda q: panda_forward_kinematics(q)  # type: ignore[attr-defined]
    pp.libfranka = libfranka  # type: ignore[attr-defined]
    pp.__path__ = []  # type: ignore[attr-defined]  # a package, so `import panda_py.libfranka` resolves
    return pp, libfranka


def install(monkeypatch: pytest.MonkeyPatch, behaviour: FakeBehaviour | None = None) -> FakePandaPy:
    """Put a fake panda_py (and panda_py.libfranka) into sys.modules for the duration of a test."""
    fake = FakePandaPy(behaviour=behaviour or FakeBehaviour())
    pp, libfranka = fake.module()
    monkeypatch.setitem(__import__("sys").modules, "panda_py", pp)
    monkeypatch.setitem(__import__("sys").modules, "panda_py.libfranka", libfranka)
    return fake


def wait_until(predicate: Any, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False
