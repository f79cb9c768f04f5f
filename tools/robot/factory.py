"""Real hardware by name, for the agent graph and the CLI: `make_robot(kind, settings)`, `make_camera(kind, settings)`.

The simulated robot and cameras come with their scene (sim.show.build_scene), so only real kinds are
built here. Robots are returned unwrapped: the caller wraps them in tools.robot.safety.SafeRobot.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import ConfigError
from core.settings import Settings
from tools.robot.protocols import Camera, Robot


def make_robot(kind: str, settings: Settings, *, host: str | None = None) -> Robot:
    """'panda': the real arm at `host` or settings.hardware.panda_host (env VLMIMIC_HARDWARE__PANDA_HOST)."""
    if kind == "panda":
        from tools.robot.panda import PandaRobot

        return PandaRobot.from_settings(settings, host=host)
    if kind == "sim":
        raise ConfigError("the simulated robot is created with its scene (sim.show.build_scene), not here")
    raise ConfigError(f"unknown robot {kind!r}: expected sim or panda")


def make_camera(kind: str, settings: Settings) -> Camera:
    """'realsense': the live camera (serial from settings, calibration required);
    'bag:PATH' or a PATH ending in .bag/.db3: replay of a recording, posed by the calibration if there is one."""
    from tools.robot.realsense import BagCamera, RealSenseCamera, calibrated_T_world_camera

    if kind == "realsense":
        return RealSenseCamera.from_settings(settings)
    path = kind.removeprefix("bag:")
    if kind.startswith("bag:") or path.endswith((".bag", ".db3")):
        return BagCamera(Path(path), T_world_camera=calibrated_T_world_camera(settings))
    raise ConfigError(f"unknown camera {kind!r}: expected realsense, bag:PATH, or a sim camera name with --robot sim")
