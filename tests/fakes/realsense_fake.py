"""A stand-in for `pyrealsense2` at the hardware edge, injected into sys.modules by tests.

Mirrors the names tools.robot.realsense uses (checked against the installed pyrealsense2 2.59):
context().query_devices(), device.get_info(camera_info.serial_number), config.enable_device /
enable_stream(stream, w, h, format, fps) / enable_record_to_file / enable_device_from_file(path,
repeat_playback), pipeline.start(config) -> profile, wait_for_frames(timeout_ms) (RuntimeError "Frame
didn't arrive within N" on timeout), try_wait_for_frames(timeout_ms) -> (ok, frames), align(stream).process,
profile.get_device().first_depth_sensor().get_depth_scale(), .as_playback().set_real_time,
profile.get_stream(stream).as_video_stream_profile().get_intrinsics().

The scene: a table plane 0.8 m away with a 0.6 m box in the middle of the image. The raw depth stream
has a different resolution from colour (as on a D435), so code that forgets rs.align gets the wrong
shape. A recording written by enable_record_to_file is an .npz of the raw frames (the path must end in
.db3, as librealsense 2.59's recorder demands); enable_device_from_file plays it back the way the real
syncer does without real time: one frameset per new frame of either stream, repeating the other's latest.
"""

from __future__ import annotations

import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

COLOR_W, COLOR_H = 64, 48
DEPTH_W, DEPTH_H = 80, 48
DEPTH_SCALE = 0.001


@dataclass
class FakeRealSense:
    serials: list[str] = field(default_factory=lambda: ["123456789012"])
    stall_after: int | None = None  # frames delivered before the stream stops delivering
    start_error: str | None = None
    enumerate_stall_s: float = 0.0
    color_format: str = "rgb8"  # what recorded colour frames claim to be (live streams are rgb8)
    frames_delivered: int = 0
    aligned: int = 0
    log: list[tuple[str, Any]] = field(default_factory=list)


def scene(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Colour (COLOR_H, COLOR_W, 3) and raw depth (DEPTH_H, DEPTH_W) z16 for frame i."""
    rgb = np.zeros((COLOR_H, COLOR_W, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 1] = (i * 7) % 256
    rgb[COLOR_H // 4: 3 * COLOR_H // 4, COLOR_W // 4: 3 * COLOR_W // 4] = (20, 40, 220)
    depth = np.full((DEPTH_H, DEPTH_W), 800 + i, np.uint16)  # the table recedes 1 mm per frame
    depth[DEPTH_H // 4: 3 * DEPTH_H // 4, DEPTH_W // 4: 3 * DEPTH_W // 4] = 600
    return rgb, depth


def build(fake: FakeRealSense) -> types.ModuleType:
    rs = types.ModuleType("pyrealsense2")

    class _Enum:
        def __init__(self, name: str) -> None:
            self.name = name

        def __repr__(self) -> str:
            return self.name

    rs.stream = types.SimpleNamespace(depth=_Enum("depth"), color=_Enum("color"))
    rs.format = types.SimpleNamespace(z16=_Enum("z16"), rgb8=_Enum("rgb8"), bgr8=_Enum("bgr8"), rgba8=_Enum("rgba8"),
                                      bgra8=_Enum("bgra8"), yuyv=_Enum("yuyv"))
    rs.camera_info = types.SimpleNamespace(serial_number=_Enum("serial_number"), name=_Enum("name"))
    rs.playback_status = types.SimpleNamespace(playing=_Enum("playing"), stopped=_Enum("stopped"))

    class Device:
        def __init__(self, serial: str) -> None:
            self.serial = serial

        def get_info(self, key: Any) -> str:
            return self.serial if key is rs.camera_info.serial_number else "Intel RealSense D435 (fake)"

    class context:  # noqa: N801 - pyrealsense2's name
        def query_devices(self) -> list[Device]:
            if fake.enumerate_stall_s:
                time.sleep(fake.enumerate_stall_s)
            return [Device(s) for s in fake.serials]

    class config:  # noqa: N801
        def __init__(self) -> None:
            self.device: str | None = None
            self.streams: list[tuple] = []
            self.record_to: str | None = None
            self.play_from: str | None = None

        def enable_device(self, serial: str) -> None:
            self.device = serial

        def enable_stream(self, stream: Any, width: int, height: int, fmt: Any, fps: int) -> None:
            self.streams.append((stream.name, width, height, fmt.name, fps))

        def enable_record_to_file(self, path: str) -> None:
            self.record_to = path

        def enable_device_from_file(self, path: str, repeat_playback: bool = True) -> None:
            self.play_from = path
            self.repeat = repeat_playback

    class Intr:
        def __init__(self) -> None:
            self.width, self.height = COLOR_W, COLOR_H
            self.fx = self.fy = 60.0
            self.ppx, self.ppy = (COLOR_W - 1) / 2, (COLOR_H - 1) / 2
            self.coeffs = [0.0] * 5
            self.model = "brown_conrady"

    class VideoProfile:
        def get_intrinsics(self) -> Intr:
            return Intr()

    class StreamProfile:
        def as_video_stream_profile(self) -> VideoProfile:
            return VideoProfile()

    class Playback:
        def __init__(self, pipe: Any) -> None:
            self.real_time = True
            self.pipe = pipe

        def current_status(self) -> Any:
            p = self.pipe.playing
            done = p is not None and (self.pipe.i + 1) // 2 >= len(p["ts"])
            return rs.playback_status.stopped if done else rs.playback_status.playing

        def set_real_time(self, value: bool) -> None:
            self.real_time = value
            fake.log.append(("set_real_time", value))

        def pause(self) -> None:
            fake.log.append(("pause", None))

        def resume(self) -> None:
            fake.log.append(("resume", None))

        def seek(self, t: Any) -> None:
            fake.log.append(("seek", t.total_seconds()))

    class DepthSensor:
        def get_depth_scale(self) -> float:
            return DEPTH_SCALE

    class ProfileDevice:
        def __init__(self, pipe: Any) -> None:
            self.pipe = pipe

        def first_depth_sensor(self) -> DepthSensor:
            return DepthSensor()

        def as_playback(self) -> Playback:
            return Playback(self.pipe)

    class Profile:
        def __init__(self, pipe: Any) -> None:
            self.pipe = pipe

        def get_device(self) -> ProfileDevice:
            return ProfileDevice(self.pipe)

        def get_stream(self, stream: Any) -> StreamProfile:
            return StreamProfile()

    class FrameProfile:
        def __init__(self, fmt: Any) -> None:
            self._fmt = fmt

        def format(self) -> Any:
            return self._fmt

    class Frame:
        def __init__(self, data: np.ndarray, ts_ms: float, number: int, fmt: Any = None) -> None:
            self._data, self._ts, self._number, self._fmt = data, ts_ms, number, fmt

        def get_profile(self) -> FrameProfile:
            return FrameProfile(self._fmt)

        def get_frame_number(self) -> int:
            return self._number

        def get_data(self) -> np.ndarray:
            return self._data

        def get_timestamp(self) -> float:
            return self._ts

        def __bool__(self) -> bool:
            return True

    class FrameSet:
        def __init__(self, rgb: np.ndarray, depth: np.ndarray, ts_ms: float, number: int,
                     color_format: str = "rgb8") -> None:
            self.rgb, self.depth, self.ts, self.number = rgb, depth, ts_ms, number
            self.color_format = color_format

        def get_color_frame(self) -> Frame:
            return Frame(self.rgb, self.ts, self.number, getattr(rs.format, self.color_format))

        def get_depth_frame(self) -> Frame:
            return Frame(self.depth, self.ts, self.number, rs.format.z16)

    class align:  # noqa: N801
        def __init__(self, to: Any) -> None:
            assert to is rs.stream.color
            self.to = to

        def process(self, frames: FrameSet) -> FrameSet:
            fake.aligned += 1
            h, w = frames.rgb.shape[:2]
            rows = (np.arange(h) * frames.depth.shape[0] / h).astype(int)
            cols = (np.arange(w) * frames.depth.shape[1] / w).astype(int)
            return FrameSet(frames.rgb, frames.depth[np.ix_(rows, cols)], frames.ts, frames.number,
                            frames.color_format)

    class pipeline:  # noqa: N801
        def __init__(self) -> None:
            self.cfg: config | None = None
            self.i = 0
            self.recorded: list[tuple[np.ndarray, np.ndarray, float]] = []
            self.playing: dict[str, np.ndarray] | None = None

        def start(self, cfg: config) -> Profile:
            fake.log.append(("start", {"device": cfg.device, "streams": cfg.streams, "record_to": cfg.record_to,
                                       "play_from": cfg.play_from}))
            if fake.start_error:
                raise RuntimeError(fake.start_error)
            if cfg.record_to and not cfg.record_to.endswith(".db3"):
                raise RuntimeError(f"Output file must have .db3 extension: '{cfg.record_to}'")
            self.cfg = cfg
            if cfg.play_from:
                with open(cfg.play_from, "rb") as f:
                    data = np.load(f)
                    self.playing = {k: data[k] for k in data.files}
            return Profile(self)

        def _next(self) -> FrameSet | None:
            if self.playing is not None:
                # framesets (c0, d0), (c0, d1), (c1, d1), (c1, d2), ...: depth runs one step ahead
                # every other time, as the real syncer's output does
                p, k = self.playing, self.i
                i, j = k // 2, (k + 1) // 2
                if j >= len(p["ts"]):
                    return None
                self.i += 1
                rgb = p["rgb"][i]
                if fake.color_format == "bgr8":
                    rgb = rgb[..., ::-1].copy()
                return FrameSet(rgb, p["depth"][j], float(p["ts"][i]), i, fake.color_format)
            if fake.stall_after is not None and fake.frames_delivered >= fake.stall_after:
                return None
            rgb, depth = scene(self.i)
            ts = 1000.0 + self.i * 1000.0 / 30.0
            self.i += 1
            fake.frames_delivered += 1
            if self.cfg is not None and self.cfg.record_to:
                self.recorded.append((rgb, depth, ts))
            return FrameSet(rgb, depth, ts, self.i - 1)

        def wait_for_frames(self, timeout_ms: int = 5000) -> FrameSet:
            fs = self._next()
            if fs is None:
                time.sleep(min(timeout_ms, 50) / 1000.0)
                raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
            return fs

        def try_wait_for_frames(self, timeout_ms: int = 5000) -> tuple[bool, FrameSet | None]:
            fs = self._next()
            return (fs is not None), fs

        def stop(self) -> None:
            fake.log.append(("stop", None))
            if self.cfg is not None and self.cfg.record_to and self.recorded:
                with open(self.cfg.record_to, "wb") as f:
                    np.savez(f, rgb=np.stack([r[0] for r in self.recorded]),
                             depth=np.stack([r[1] for r in self.recorded]),
                             ts=np.array([r[2] for r in self.recorded]))

    rs.context = context
    rs.config = config
    rs.pipeline = pipeline
    rs.align = align
    return rs


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeRealSense | None = None) -> FakeRealSense:
    fake = fake or FakeRealSense()
    monkeypatch.setitem(sys.modules, "pyrealsense2", build(fake))
    return fake


def write_fake_bag(path: Path, n: int = 5) -> Path:
    frames = [scene(i) for i in range(n)]
    with open(path, "wb") as f:
        np.savez(f, rgb=np.stack([r for r, _ in frames]), depth=np.stack([d for _, d in frames]),
                 ts=1000.0 + np.arange(n) * 1000.0 / 30.0)
    return path
