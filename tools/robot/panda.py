"""The real Franka Panda through panda-py (`pip install -e .[real]`), implementing tools.robot.protocols.Robot.

Every call that talks to the robot is bounded in time: the address is probed on the FCI port before
libfranka is asked to connect, the libfranka constructors run in a worker thread with a deadline
(libfranka blocks ~60 s on an unreachable host and forever on one that accepts but never answers),
and each motion runs in a worker thread while the calling thread waits in short slices, so Ctrl-C and
`stop()` reach the arm while it moves.

Poses are T_base_gripper of the TCP between the fingertips: panda-py's O_T_EE, which is that point when
the end effector configured in Desk is the Franka Hand (flange + 0.1034 m), as in the simulator.

Nothing here enforces workspace or speed limits: wrap the robot in tools.robot.safety.SafeRobot.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import threading
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from core.errors import BackendUnavailable, ConfigError, HardwareError
from core.geometry import Pose
from core.motion import PANDA_GRIPPER_MAX_WIDTH, GraspResult, MotionResult, MotionStatus, RobotState
from tools.robot.connectivity import FCI_PORT, DeadlineExceeded, call_with_deadline, probe_tcp

INSTALL_HINT = "pip install -e .[real]"
BUILDS_URL = "https://github.com/JeanElsner/panda-py#libfranka-version"
# FCI protocol ("server") version a robot reports -> the libfranka of the panda-py build that speaks it
# (panda-py's README table; kept here so the message works with builds that lack the table).
LIBFRANKA_FOR_SERVER_VERSION = {
    3: "0.7.1", 4: "0.8.0", 5: "0.9.2", 6: "0.13.2", 7: "0.13.6", 8: "0.14.2", 9: "0.17.0", 10: "0.21.3",
}
_INCOMPATIBLE_RE = re.compile(r"server version:?\s*(\d+).*library version:?\s*(\d+)", re.IGNORECASE | re.DOTALL)


# Franka's published kinematics (Craig's modified DH): a, d, alpha per joint, then the flange.
_DH_A = (0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088, 0.0)
_DH_D = (0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0, 0.107)
_DH_ALPHA = (0.0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2, 0.0)
HAND_TCP_OFFSET_M = 0.1034  # flange -> point between the Franka Hand's fingertips


def panda_forward_kinematics(q: Sequence[float]) -> np.ndarray:
    """T_base_gripper (4x4) of the Franka Hand TCP for joint positions q; pure numpy, no robot needed."""
    q = np.asarray(q, dtype=float).reshape(7)
    T = np.eye(4)
    for i in range(8):
        theta = q[i] if i < 7 else 0.0
        ca, sa = np.cos(_DH_ALPHA[i]), np.sin(_DH_ALPHA[i])
        ct, st = np.cos(theta), np.sin(theta)
        T = T @ np.array([
            [ct, -st, 0.0, _DH_A[i]],
            [st * ca, ct * ca, -sa, -_DH_D[i] * sa],
            [st * sa, ct * sa, ca, _DH_D[i] * ca],
            [0.0, 0.0, 0.0, 1.0],
        ])
    c, s = np.cos(-np.pi / 4), np.sin(-np.pi / 4)
    hand = np.array([[c, -s, 0.0, 0.0], [s, c, 0.0, 0.0], [0.0, 0.0, 1.0, HAND_TCP_OFFSET_M], [0.0, 0.0, 0.0, 1.0]])
    return T @ hand


def import_panda_py() -> ModuleType:
    """panda_py, imported on first use; a clear one-line error when the optional extra is missing."""
    try:
        return importlib.import_module("panda_py")
    except ImportError as e:
        raise BackendUnavailable(
            f"panda-py is not installed ({e.msg}); install the real-robot extra: {INSTALL_HINT}"
        ) from None


def bundled_libfranka_version() -> str | None:
    """The libfranka version bundled in the installed panda-python wheel (from its file list), or None."""
    try:
        files = importlib.metadata.files("panda-python") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        m = re.search(r"libfranka[^/]*\.so\.(\d+\.\d+\.\d+)$", str(f))
        if m:
            return m.group(1)
    return None


class ImpedanceSettings(BaseModel):
    """Controller gains passed to panda-py's motions; None keeps panda-py's defaults."""

    joint_stiffness: tuple[float, ...] | None = Field(None, description="7 values, Nm/rad (joint moves)")
    joint_damping: tuple[float, ...] | None = Field(None, description="7 values, Nms/rad (joint moves)")
    cartesian_stiffness: tuple[float, ...] | None = Field(
        None, description="6 diagonal values: x, y, z in N/m then rotations in Nm/rad (Cartesian moves)"
    )
    damping_ratio: float = Field(1.0, gt=0)
    nullspace_stiffness: float = Field(15.0, ge=0)

    def joint_kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.joint_stiffness is not None:
            out["stiffness"] = np.asarray(self.joint_stiffness, dtype=float).reshape(7)
        if self.joint_damping is not None:
            out["damping"] = np.asarray(self.joint_damping, dtype=float).reshape(7)
        return out

    def cartesian_kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"damping_ratio": self.damping_ratio, "nullspace_stiffness": self.nullspace_stiffness}
        if self.cartesian_stiffness is not None:
            out["impedance"] = np.diag(np.asarray(self.cartesian_stiffness, dtype=float).reshape(6))
        return out


def classify_libfranka_error(message: str) -> MotionStatus:
    """Map a libfranka/panda-py error message onto a MotionStatus."""
    m = message.lower()
    if "user stopped" in m or "kuserstopped" in m or "motion aborted by user" in m:
        return MotionStatus.stopped
    if any(k in m for k in ("cartesian_reflex", "joint_reflex", "collision", "contact")):
        return MotionStatus.collision
    if "position_limits" in m or "start_pose_invalid" in m or "elbow" in m:
        return MotionStatus.unreachable
    if "reflex" in m:  # a reflex without a named limit: almost always an unexpected contact
        return MotionStatus.collision
    if "timeout" in m or "timed out" in m:
        return MotionStatus.timeout
    return MotionStatus.fault


def version_mismatch_message(host: str, server_version: int, library_version: int | None) -> str:
    needed = LIBFRANKA_FOR_SERVER_VERSION.get(server_version)
    have = bundled_libfranka_version() or "unknown"
    lib = f" (protocol {library_version})" if library_version is not None else ""
    if needed is None:
        fix = f"no panda-py build supports it yet (see {BUILDS_URL})"
    else:
        fix = f"install the panda-py 1.1.1 build for libfranka {needed} from {BUILDS_URL} (README: real Panda)"
    return (
        f"robot at {host} speaks FCI protocol {server_version}, but the installed panda-py bundles libfranka "
        f"{have}{lib}: {fix}"
    )


def _connect_error(host: str, what: str, e: BaseException, pp: ModuleType) -> HardwareError:
    incompatible = getattr(pp, "IncompatibleVersionError", None)
    if incompatible is not None and isinstance(e, incompatible):
        return HardwareError(
            version_mismatch_message(host, int(e.server_version), getattr(e, "library_version", None))
        )
    text = str(e)
    m = _INCOMPATIBLE_RE.search(text)
    if "incompatible" in text.lower() and m:
        return HardwareError(version_mismatch_message(host, int(m.group(1)), int(m.group(2))))
    hint = ""
    if "refused" in text.lower():
        hint = "; activate FCI in Desk (and release the brakes) before connecting"
    return HardwareError(f"{what} at {host}: {text.removeprefix('libfranka: ')}{hint}")


class PandaRobot:
    """A Franka Panda (FER) with the Franka Hand, through panda-py and libfranka."""

    name = "panda"

    def __init__(
        self,
        host: str,
        *,
        connect_timeout_s: float = 5.0,
        motion_timeout_s: float = 120.0,
        gripper_timeout_s: float = 15.0,
        io_timeout_s: float = 2.0,
        impedance: ImpedanceSettings | None = None,
        auto_recover: bool = True,
        fci_port: int | None = None,
    ) -> None:
        if not host:
            raise ConfigError("no robot address: pass --panda-host or set VLMIMIC_HARDWARE__PANDA_HOST")
        self._pp = import_panda_py()
        self.host = host
        self.motion_timeout_s = motion_timeout_s
        self.gripper_timeout_s = gripper_timeout_s
        self.io_timeout_s = io_timeout_s
        self.impedance = impedance or ImpedanceSettings()
        self.auto_recover = auto_recover
        self._stop_requested = threading.Event()
        self._needs_recovery = False
        self._lock = threading.Lock()  # one motion at a time

        self.fci_port = fci_port or FCI_PORT
        probe = probe_tcp(host, self.fci_port, timeout_s=connect_timeout_s)
        if not probe.ok:
            raise HardwareError(
                f"Panda at {host}: {probe.message}; check the address (the control unit's, not the arm's "
                "base), the cable, and that FCI is activated in Desk"
            )
        self._panda = self._construct(lambda: self._pp.Panda(host), "robot", connect_timeout_s)
        libfranka = importlib.import_module("panda_py.libfranka")
        self._gripper = self._construct(lambda: libfranka.Gripper(host), "gripper", connect_timeout_s)
        self._bounded(self._panda.set_default_behavior, "set default behaviour")

    @classmethod
    def from_settings(cls, settings: Any, host: str | None = None) -> PandaRobot:
        """From core.settings.Settings (hardware.panda_host, hardware.connect_timeout_s)."""
        hw = settings.hardware
        return cls(host or hw.panda_host or "", connect_timeout_s=hw.connect_timeout_s)

    def _construct(self, make: Any, what: str, timeout_s: float) -> Any:
        try:
            return call_with_deadline(make, timeout_s, f"libfranka {what} connect to {self.host}")
        except DeadlineExceeded:
            raise HardwareError(
                f"Panda {what} at {self.host}: port {self.fci_port} accepted the connection but libfranka got no "
                f"answer within {timeout_s:g} s; is FCI activated in Desk, and is this a Franka control unit?"
            ) from None
        except Exception as e:  # libfranka errors reach Python as RuntimeError (or panda-py's subclasses)
            raise _connect_error(self.host, f"Panda {what}", e, self._pp) from None

    def _bounded(self, fn: Any, what: str, timeout_s: float | None = None) -> Any:
        try:
            return call_with_deadline(fn, timeout_s or self.io_timeout_s, f"Panda {what}")
        except DeadlineExceeded as e:
            raise HardwareError(f"Panda at {self.host}: {e}") from None
        except RuntimeError as e:
            raise _connect_error(self.host, f"Panda {what}", e, self._pp) from None

    # --- state ---------------------------------------------------------------------------------

    def joint_positions(self) -> np.ndarray:
        return np.asarray(self._bounded(lambda: self._panda.q, "read joints"), dtype=float).reshape(7)

    def ee_pose(self) -> Pose:
        return Pose.from_matrix(np.asarray(self._bounded(self._panda.get_pose, "read pose"), dtype=float))

    def _gripper_state(self) -> Any:
        return self._bounded(self._gripper.read_once, "read gripper")

    def gripper_width(self) -> float:
        return float(self._gripper_state().width)

    def is_grasping(self) -> bool:
        return bool(self._gripper_state().is_grasped)

    def state(self) -> RobotState:
        g = self._gripper_state()
        return RobotState(
            q=tuple(float(v) for v in self.joint_positions()),
            ee_pose=self.ee_pose(),
            gripper_width=float(g.width),
            is_grasping=bool(g.is_grasped),
            timestamp=time.time(),
        )

    def forward_kinematics(self, q: Sequence[float]) -> Pose:
        """T_base_gripper for joint positions q (panda-py's analytical model, Franka Hand TCP)."""
        return Pose.from_matrix(np.asarray(self._pp.fk(np.asarray(q, dtype=float).reshape(7)), dtype=float))

    # --- motion --------------------------------------------------------------------------------

    def _run_motion(self, what: str, fn: Any, total: int, target: Pose | np.ndarray | None) -> MotionResult:
        with self._lock:
            if self._needs_recovery and self.auto_recover:
                self.recover()
            self._stop_requested.clear()
            start = time.monotonic()
            try:
                ok = call_with_deadline(fn, self.motion_timeout_s, f"Panda {what}")
            except DeadlineExceeded:
                self.stop()
                self._needs_recovery = True
                return MotionResult(status=MotionStatus.timeout, duration_s=time.monotonic() - start,
                                    message=f"{what} did not finish within {self.motion_timeout_s:g} s; stopped",
                                    waypoints_total=total)
            except KeyboardInterrupt:
                self.stop()
                raise
            except RuntimeError as e:
                self._needs_recovery = True
                status = MotionStatus.stopped if self._stop_requested.is_set() else classify_libfranka_error(str(e))
                return MotionResult(status=status, duration_s=time.monotonic() - start, waypoints_total=total,
                                    message=f"{what}: {str(e).removeprefix('libfranka: ')}")
            duration = time.monotonic() - start
            if self._stop_requested.is_set():
                return MotionResult(status=MotionStatus.stopped, duration_s=duration, waypoints_total=total,
                                    message=f"{what}: stopped on request")
            if ok:
                return MotionResult(status=MotionStatus.done, duration_s=duration, waypoints_done=total,
                                    waypoints_total=total)
            return MotionResult(status=MotionStatus.fault, duration_s=duration, waypoints_total=total,
                                message=f"{what}: the controller settled away from the target "
                                        f"({self._miss(target)}); blocked by contact or out of reach?")

    def _miss(self, target: Pose | np.ndarray | None) -> str:
        try:
            if isinstance(target, Pose):
                dt, dr = self.ee_pose().distance_to(target)
                return f"{dt * 1000:.1f} mm, {np.rad2deg(dr):.1f} deg off"
            if target is not None:
                return f"max joint error {np.max(np.abs(self.joint_positions() - target)):.3f} rad"
        except HardwareError:
            pass
        return "error unknown"

    def move_to_joints(self, q: Sequence[float], speed_factor: float = 0.2) -> MotionResult:
        target = np.asarray(q, dtype=float)
        if target.shape != (7,):
            raise ValueError(f"expected 7 joint positions, got shape {target.shape}")
        kwargs = self.impedance.joint_kwargs()
        return self._run_motion(
            "joint move",
            lambda: self._panda.move_to_joint_position(positions=target, speed_factor=float(speed_factor), **kwargs),
            1,
            target,
        )

    def follow_poses(self, poses: Sequence[Pose], speed_factor: float = 0.2) -> MotionResult:
        poses = list(poses)
        if not poses:
            return MotionResult(status=MotionStatus.done, message="no poses")
        positions = [np.asarray(p.position, dtype=float) for p in poses]
        orientations = [np.asarray(p.quaternion, dtype=float) for p in poses]  # scalar-last, as panda-py
        kwargs = self.impedance.cartesian_kwargs()
        return self._run_motion(
            "Cartesian move",
            lambda: self._panda.move_to_pose(
                positions=positions, orientations=orientations, speed_factor=float(speed_factor), **kwargs
            ),
            len(poses),
            poses[-1],
        )

    def set_teaching_mode(self, active: bool) -> None:
        """Gravity-compensated hand guiding (used by `calibrate` to pose the arm by hand)."""
        self._bounded(lambda: self._panda.teaching_mode(bool(active)), "teaching mode")

    def recover(self) -> None:
        """Clear a reflex/error state (libfranka's automatic error recovery); does not move the arm."""
        self._bounded(self._panda.recover, "error recovery", timeout_s=10.0)
        self._needs_recovery = False

    def stop(self) -> None:
        """Preempt any running motion (libfranka Robot.stop); safe to call from another thread."""
        self._stop_requested.set()
        for fn, what in ((self._panda.stop_controller, "stop controller"),
                         (lambda: self._panda.get_robot().stop(), "stop")):
            try:
                self._bounded(fn, what)
            except HardwareError:
                pass

    # --- gripper -------------------------------------------------------------------------------

    def _gripper_call(self, what: str, fn: Any) -> tuple[bool, str]:
        try:
            return bool(call_with_deadline(fn, self.gripper_timeout_s, f"gripper {what}")), ""
        except DeadlineExceeded:
            try:
                self._bounded(self._gripper.stop, "gripper stop")
            except HardwareError:
                pass
            return False, f"gripper {what} did not finish within {self.gripper_timeout_s:g} s; stopped"
        except RuntimeError as e:
            return False, f"gripper {what}: {str(e).removeprefix('libfranka gripper: ')}"

    def home_gripper(self) -> bool:
        """Calibrate the fingers' width range (libfranka Gripper.homing); do it once after power-up."""
        ok, message = self._gripper_call("homing", self._gripper.homing)
        if not ok and message:
            raise HardwareError(f"Panda at {self.host}: {message}")
        return ok

    def open_gripper(self, width: float = PANDA_GRIPPER_MAX_WIDTH, speed: float = 0.1) -> bool:
        ok, _ = self._gripper_call("move", lambda: self._gripper.move(width=float(width), speed=float(speed)))
        return ok

    def grasp(
        self,
        width: float = 0.0,
        force: float = 40.0,
        speed: float = 0.1,
        epsilon_inner: float = 0.005,
        epsilon_outer: float = 0.08,
    ) -> GraspResult:
        ok, message = self._gripper_call(
            "grasp",
            lambda: self._gripper.grasp(width=float(width), speed=float(speed), force=float(force),
                                        epsilon_inner=float(epsilon_inner), epsilon_outer=float(epsilon_outer)),
        )
        try:
            final = self.gripper_width()
        except HardwareError:
            final = float("nan")
        if not ok and not message:
            message = f"nothing grasped between {width - epsilon_inner:.3f} and {width + epsilon_outer:.3f} m"
        return GraspResult(success=ok, width=final, message=message)

    def close(self) -> None:
        self._panda = None
        self._gripper = None
