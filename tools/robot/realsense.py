"""Intel RealSense through pyrealsense2: a live Camera, replay of recordings, and human-demo recording.

- `RealSenseCamera`: one device (by serial), depth aligned to colour (rs.align), colour intrinsics,
  metric depth (device depth scale), warm-up frames for auto exposure, every wait bounded
  (wait_for_frames(timeout_ms)); T_world_camera comes from the calibration in settings
  (hardware.T_base_camera, `python main.py calibrate`); robot use without it is refused.
- `BagCamera` / `iter_bag_frames(path)`: the same frames from a recording (.bag, or the rosbag2 .db3
  that librealsense >= 2.56 writes), as fast as they can be read (playback real-time off), one frame per
  colour frame, so perception code reads recorded demos exactly like live ones.
- `record_human_demo(out, n, fps, task_text)`: records n demos into our demo format (core.demo, written
  atomically), optionally also keeping the raw streams next to each demo. librealsense 2.59 (pinned)
  records only to rosbag2 files, whose name must end in .db3, so the raw recording is `<demo_id>.db3`.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from core.demo import DemoMeta, DemoWriter
from core.errors import BackendUnavailable, ConfigError, HardwareError
from core.sensing import Intrinsics, RGBDFrame
from tools.robot.connectivity import DeadlineExceeded, call_with_deadline

UNCALIBRATED_HINT = "run `python main.py calibrate` (stores hardware.T_base_camera in vlmimic.toml)"


def import_realsense() -> ModuleType:
    try:
        return importlib.import_module("pyrealsense2")
    except ImportError as e:
        raise BackendUnavailable(f"pyrealsense2 is not installed ({e.msg}): pip install pyrealsense2") from None


def list_devices(timeout_s: float = 3.0) -> list[dict[str, str]]:
    """Connected RealSense devices as {"serial", "name"}; bounded in time (USB enumeration can hang)."""
    rs = import_realsense()

    def query() -> list[dict[str, str]]:
        out = []
        for dev in rs.context().query_devices():
            out.append({"serial": str(dev.get_info(rs.camera_info.serial_number)),
                        "name": str(dev.get_info(rs.camera_info.name))})
        return out

    try:
        return call_with_deadline(query, timeout_s, "RealSense device enumeration")
    except DeadlineExceeded as e:
        raise HardwareError(str(e)) from None


def calibrated_T_world_camera(settings: Any) -> np.ndarray | None:
    """hardware.T_base_camera from settings as a 4x4 array (the robot base is the world), or None."""
    T = settings.hardware.T_base_camera
    if T is None:
        return None
    T = np.asarray(T, dtype=float)
    if T.shape != (4, 4) or not np.allclose(T[3], (0, 0, 0, 1)):
        raise ConfigError("setting 'hardware.T_base_camera' must be a 4x4 rigid transform (rows)")
    return T


def _intrinsics_from_profile(rs: ModuleType, profile: Any) -> tuple[Intrinsics, list[float]]:
    vsp = profile.get_stream(rs.stream.color).as_video_stream_profile()
    i = vsp.get_intrinsics()
    intr = Intrinsics(width=int(i.width), height=int(i.height), fx=float(i.fx), fy=float(i.fy),
                      cx=float(i.ppx), cy=float(i.ppy))
    return intr, [float(c) for c in i.coeffs]


class _Stream:
    """What live and recorded RealSense streams share: alignment, conversion to RGBDFrame."""

    name: str
    _rs: ModuleType
    _pipeline: Any
    _align: Any
    _intrinsics: Intrinsics
    depth_scale: float
    distortion: list[float]
    T_world_camera: np.ndarray

    def _setup(self, profile: Any) -> None:
        rs = self._rs
        self.depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
        self._intrinsics, self.distortion = _intrinsics_from_profile(rs, profile)
        self._align = rs.align(rs.stream.color)

    def intrinsics(self) -> Intrinsics:
        return self._intrinsics

    def _to_frame(self, frames: Any) -> RGBDFrame | None:
        aligned = self._align.process(frames)
        color, depth = aligned.get_color_frame(), aligned.get_depth_frame()
        if not color or not depth:
            return None
        rgb = np.asanyarray(color.get_data())
        fmt = color.get_profile().format()
        rs = self._rs
        if fmt in (rs.format.bgr8, rs.format.bgra8):  # e.g. recordings made with the RealSense Viewer
            rgb = rgb[..., 2::-1]
        elif fmt == rs.format.rgba8:
            rgb = rgb[..., :3]
        elif fmt != rs.format.rgb8:
            raise HardwareError(f"{self.name}: colour format {fmt} is not supported (record rgb8 or bgr8)")
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise HardwareError(f"{self.name}: colour frames must be 3-channel, got shape {rgb.shape}")
        depth_m = np.asanyarray(depth.get_data()).astype(np.float32) * np.float32(self.depth_scale)
        return RGBDFrame(
            rgb=np.ascontiguousarray(rgb, dtype=np.uint8).copy(),
            depth=depth_m,
            intrinsics=self._intrinsics,
            T_world_camera=self.T_world_camera.copy(),
            timestamp=float(color.get_timestamp()) / 1000.0,
        )

    def close(self) -> None:
        pipeline, self._pipeline = getattr(self, "_pipeline", None), None
        if pipeline is not None:
            try:
                pipeline.stop()
            except RuntimeError:
                pass

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RealSenseCamera(_Stream):
    """A live RealSense (D4xx/L5xx) as a Camera: aligned RGB-D, metric depth, calibrated pose."""

    def __init__(
        self,
        serial: str | None = None,
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        T_world_camera: np.ndarray | None = None,
        require_calibration: bool = True,
        warmup_frames: int = 30,
        frame_timeout_ms: int = 2000,
        start_timeout_s: float = 10.0,
        record_to: Path | None = None,
    ) -> None:
        self._rs = rs = import_realsense()
        if T_world_camera is None and require_calibration:
            raise ConfigError(f"the RealSense is not calibrated to the robot base: {UNCALIBRATED_HINT}")
        self.calibrated = T_world_camera is not None
        self.T_world_camera = np.eye(4) if T_world_camera is None else np.asarray(T_world_camera, dtype=float)
        self.frame_timeout_ms = int(frame_timeout_ms)
        devices = list_devices()
        if not devices:
            raise HardwareError("no RealSense camera found: check the USB 3 cable (`rs-enumerate-devices`)")
        serials = [d["serial"] for d in devices]
        if serial is not None and serial not in serials:
            raise HardwareError(f"no RealSense with serial {serial!r}; connected: {', '.join(serials)}")
        self.serial = serial or serials[0]
        self.name = f"realsense:{self.serial}"
        config = rs.config()
        config.enable_device(self.serial)
        config.enable_stream(rs.stream.depth, width, height, rs.format.z16, fps)
        config.enable_stream(rs.stream.color, width, height, rs.format.rgb8, fps)
        if record_to is not None:
            config.enable_record_to_file(str(record_to))
        self._pipeline = rs.pipeline()
        try:
            profile = call_with_deadline(lambda: self._pipeline.start(config), start_timeout_s,
                                         f"{self.name} start")
        except DeadlineExceeded as e:
            raise HardwareError(str(e)) from None
        except RuntimeError as e:
            raise HardwareError(f"{self.name}: cannot start {width}x{height}@{fps} depth+colour: {e}") from None
        self._setup(profile)
        for _ in range(warmup_frames):  # let auto exposure settle
            self._wait()

    @classmethod
    def from_settings(cls, settings: Any, *, require_calibration: bool = True, **kwargs: Any) -> RealSenseCamera:
        return cls(settings.hardware.realsense_serial, T_world_camera=calibrated_T_world_camera(settings),
                   require_calibration=require_calibration, **kwargs)

    def _wait(self) -> Any:
        try:
            return self._pipeline.wait_for_frames(self.frame_timeout_ms)
        except RuntimeError as e:
            raise HardwareError(f"{self.name}: no frames within {self.frame_timeout_ms} ms ({e})") from None

    def capture(self) -> RGBDFrame:
        for _ in range(3):  # a frameset can lack one stream right after start
            frame = self._to_frame(self._wait())
            if frame is not None:
                return frame
        raise HardwareError(f"{self.name}: framesets keep missing colour or depth")


RECORDING_SUFFIX = ".db3"  # what librealsense 2.59's recorder accepts (rosbag2); playback also reads .bag


class BagCamera(_Stream):
    """Frames from a .bag/.db3 recording (rs.config.enable_device_from_file), real-time playback off."""

    def __init__(self, path: Path, *, T_world_camera: np.ndarray | None = None, frame_timeout_ms: int = 2000) -> None:
        self._rs = rs = import_realsense()
        self.path = Path(path)
        if not self.path.is_file():
            raise HardwareError(f"{self.path}: no such RealSense recording (.bag / .db3)")
        self.name = f"bag:{self.path.name}"
        self.T_world_camera = np.eye(4) if T_world_camera is None else np.asarray(T_world_camera, dtype=float)
        self.frame_timeout_ms = int(frame_timeout_ms)
        config = rs.config()
        config.enable_device_from_file(str(self.path), repeat_playback=False)
        self._pipeline = rs.pipeline()
        try:
            profile = self._pipeline.start(config)
        except RuntimeError as e:
            raise HardwareError(f"{self.path}: not a readable RealSense recording with depth and colour: {e}") from None
        self._playback = profile.get_device().as_playback()
        # Playback starts in real time as soon as the pipeline does; rewind once real time is off, or
        # the first frames may already have been dropped.
        self._playback.pause()
        self._playback.set_real_time(False)
        self._playback.seek(timedelta(0))
        self._playback.resume()
        self._setup(profile)
        self._ended = False
        self._last_color: int | None = None

    def capture(self) -> RGBDFrame:
        frame = self.next_frame()
        if frame is None:
            raise HardwareError(f"{self.path}: end of recording")
        return frame

    def next_frame(self) -> RGBDFrame | None:
        """The next aligned frame, or None at the end of the recording."""
        waited_ms = 0
        while not self._ended:
            ok, frames = self._pipeline.try_wait_for_frames(100)
            if not ok:
                waited_ms += 100
                # End of file: playback has stopped (or nothing came for frame_timeout_ms).
                if (self._playback.current_status() == self._rs.playback_status.stopped
                        or waited_ms >= self.frame_timeout_ms):
                    self._ended = True
                continue
            waited_ms = 0
            # Without real time, the syncer emits a frameset per new frame of either stream, repeating
            # the other stream's latest; keep the first frameset of each colour frame.
            color = frames.get_color_frame()
            number = int(color.get_frame_number()) if color else None
            if number is not None and number == self._last_color:
                continue
            self._last_color = number
            frame = self._to_frame(frames)
            if frame is not None:
                return frame
        return None

    def frames(self) -> Iterator[RGBDFrame]:
        while (frame := self.next_frame()) is not None:
            yield frame


def iter_bag_frames(path: Path, T_world_camera: np.ndarray | None = None) -> Iterator[RGBDFrame]:
    """Every aligned RGB-D frame of a .bag/.db3 recording, one per colour frame, in order
    (T_world_camera defaults to identity)."""
    cam = BagCamera(Path(path), T_world_camera=T_world_camera)
    try:
        yield from cam.frames()
    finally:
        cam.close()


# --- recording human demonstrations -------------------------------------------------------------


def _wait_for_enter(prompt: str) -> threading.Event:
    """An event set when the user presses Enter (read in a daemon thread so recording continues)."""
    ev = threading.Event()

    def read() -> None:
        try:
            input(prompt)
        except EOFError:
            pass
        ev.set()

    threading.Thread(target=read, daemon=True).start()
    return ev


def record_human_demo(
    out: Path,
    n: int,
    fps: float,
    task_text: str,
    *,
    settings: Any = None,
    duration_s: float | None = None,
    bag: bool = False,
    camera_factory: Callable[[Path | None], _Stream] | None = None,
    ask: Callable[[str], object] = input,
    echo: Callable[[str], None] = print,
) -> list[Path]:
    """Record `n` human demonstrations with a RealSense into `out/<demo_id>/` (our demo format).

    Each demo starts when the user presses Enter and ends at the next Enter (or after `duration_s`).
    Frames are kept at `fps` (the camera streams at 30). With `bag=True` the raw streams also go to
    `out/<demo_id>.db3` (replay with iter_bag_frames). Without a calibration the camera pose is the
    identity and meta.extra.calibrated=0.
    """
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if fps <= 0:
        raise ConfigError(f"--fps must be > 0, got {fps}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if camera_factory is None:
        from core.settings import load_settings

        s = settings or load_settings()

        def camera_factory(record_to: Path | None) -> _Stream:
            return RealSenseCamera.from_settings(s, require_calibration=False, record_to=record_to)

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    paths: list[Path] = []
    for i in range(n):
        demo_id = f"real_{stamp}_{i:02d}"
        bag_partial = out / f".{demo_id}.partial{RECORDING_SUFFIX}" if bag else None
        ask(f"demo {i + 1}/{n} ({task_text or 'no task text'}): press Enter to start recording ")
        cam = camera_factory(bag_partial)
        try:
            stop = _wait_for_enter("recording... press Enter to stop ") if duration_s is None else threading.Event()
            with DemoWriter(out / demo_id, depth_scale=cam.depth_scale) as writer:
                t0 = time.monotonic()
                last_kept = -np.inf
                n_frames = 0
                while not stop.is_set() and (duration_s is None or time.monotonic() - t0 < duration_s):
                    frame = cam.capture()
                    if frame.timestamp - last_kept < 1.0 / fps - 1e-3:
                        continue
                    last_kept = frame.timestamp
                    writer.add_frame(frame)
                    n_frames += 1
                if n_frames == 0:
                    raise HardwareError(f"demo {demo_id}: no frames were recorded")
                extra: dict[str, str | float | int] = {"calibrated": int(getattr(cam, "calibrated", False))}
                if getattr(cam, "serial", None):
                    extra["serial"] = str(cam.serial)  # type: ignore[attr-defined]
                if bag:
                    extra["bag"] = f"{demo_id}{RECORDING_SUFFIX}"
                path = writer.commit(DemoMeta(
                    demo_id=demo_id, task=task_text, source="realsense", fps=fps, n_frames=n_frames,
                    intrinsics=cam.intrinsics(), T_world_camera=cam.T_world_camera.tolist(), timestamps=[0.0],
                    depth_scale=cam.depth_scale, camera_name=cam.name, extra=extra,
                ))
        except BaseException:
            cam.close()
            if bag_partial is not None:
                bag_partial.unlink(missing_ok=True)
            raise
        cam.close()
        if bag_partial is not None and bag_partial.exists():
            os.replace(bag_partial, out / f"{demo_id}{RECORDING_SUFFIX}")
        echo(f"wrote {path} ({n_frames} frames)")
        paths.append(path)
    return paths
