"""RGB-D input for grounding: our demo folders (core.demo) and RealSense .bag recordings.

`open_demo(path)` returns a `DemoSource` for a demo folder; a `.bag` file is first converted into a
demo folder beside it (`bag_to_demo`), so everything downstream reads one format. Frames are read
with a small thread pool (PNG decoding releases the GIL), in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from core.demo import DemoMeta, DemoReader, DemoWriter, HandTrack
from core.errors import BackendUnavailable, ConfigError, DemoFormatError
from core.sensing import Intrinsics, RGBDFrame


class DemoSource:
    """A validated demo folder; frames are read on demand (and prefetched when iterating)."""

    def __init__(self, demo_dir: Path) -> None:
        self.dir = Path(demo_dir)
        if not self.dir.exists():
            raise DemoFormatError(f"{self.dir}: no such demo folder")
        self.reader = DemoReader(self.dir)
        self.meta: DemoMeta = self.reader.meta

    def __len__(self) -> int:
        return self.meta.n_frames

    @property
    def intrinsics(self) -> Intrinsics:
        return self.meta.intrinsics

    @property
    def T_world_camera(self) -> np.ndarray:
        return self.reader.T_world_camera

    @property
    def times(self) -> np.ndarray:
        return np.asarray(self.meta.timestamps, dtype=float)

    def frame(self, i: int) -> RGBDFrame:
        return self.reader.frame(i)

    def frames(self, indices: list[int] | None = None, workers: int = 2) -> Iterator[tuple[int, RGBDFrame]]:
        """(index, frame) in order, decoding up to `workers` frames ahead."""
        idx = list(range(len(self))) if indices is None else list(indices)
        if workers <= 1:
            for i in idx:
                yield i, self.frame(i)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            ahead = workers * 2
            futures = [pool.submit(self.frame, i) for i in idx[:ahead]]
            for k, i in enumerate(idx):
                frame = futures[k].result()
                if k + ahead < len(idx):
                    futures.append(pool.submit(self.frame, idx[k + ahead]))
                futures[k] = None  # type: ignore[call-overload]  # let the frame go
                yield i, frame

    def hand(self) -> HandTrack | None:
        return self.reader.hand()


def open_demo(path: Path, **bag_kwargs: object) -> DemoSource:
    """A demo folder, or a RealSense .bag converted into a demo folder beside it."""
    path = Path(path)
    if path.suffix == ".bag":
        out = path.with_suffix("")
        if not (out / "meta.json").is_file():
            bag_to_demo(path, out, **bag_kwargs)  # type: ignore[arg-type]
        return DemoSource(out)
    return DemoSource(path)


# --- RealSense .bag ----------------------------------------------------------------------------


def iter_bag_frames(bag_path: Path, T_world_camera: np.ndarray, timeout_s: float = 2.0) -> Iterator[RGBDFrame]:
    """Aligned RGB-D frames from a RealSense recording (depth aligned to colour), in order.

    Uses the shared reader tools.robot.realsense.iter_bag_frames when present; otherwise plays the
    file back with pyrealsense2 here, not in real time, so no frame is dropped.
    """
    bag_path = Path(bag_path)
    if not bag_path.is_file():
        raise DemoFormatError(f"{bag_path}: no such RealSense recording")
    try:
        from tools.robot import realsense as _rs_mod  # type: ignore[attr-defined]

        shared = getattr(_rs_mod, "iter_bag_frames", None)
    except ImportError:
        shared = None
    if shared is not None:
        yield from shared(bag_path, T_world_camera=T_world_camera)
        return
    yield from _iter_bag_pyrealsense(bag_path, T_world_camera, timeout_s)


def _iter_bag_pyrealsense(bag_path: Path, T_world_camera: np.ndarray, timeout_s: float) -> Iterator[RGBDFrame]:
    try:
        import pyrealsense2 as rs
    except ImportError as e:  # pragma: no cover - pinned dependency
        raise BackendUnavailable("pyrealsense2 is not installed (pip install pyrealsense2)") from e
    pipeline = rs.pipeline()
    config = rs.config()
    try:
        config.enable_device_from_file(str(bag_path), repeat_playback=False)
        config.enable_stream(rs.stream.depth)
        config.enable_stream(rs.stream.color)
        profile = pipeline.start(config)
    except RuntimeError as e:
        raise DemoFormatError(f"{bag_path}: not a readable RealSense recording with depth and colour: {e}") from e
    try:
        playback = profile.get_device().as_playback()
        playback.set_real_time(False)
        depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
        align = rs.align(rs.stream.color)
        vsp = profile.get_stream(rs.stream.color).as_video_stream_profile()
        ci = vsp.get_intrinsics()
        intr = Intrinsics(width=ci.width, height=ci.height, fx=ci.fx, fy=ci.fy, cx=ci.ppx, cy=ci.ppy)
        t0: float | None = None
        n = 0
        while True:
            ok, frames = pipeline.try_wait_for_frames(int(timeout_s * 1000))
            if not ok:
                break
            frames = align.process(frames)
            depth_f, color_f = frames.get_depth_frame(), frames.get_color_frame()
            if not depth_f or not color_f:
                raise DemoFormatError(f"{bag_path}: frame {n} lacks depth or colour")
            color = np.asanyarray(color_f.get_data())
            if color_f.get_profile().format() == rs.format.bgr8:
                color = color[..., ::-1]
            depth = np.asanyarray(depth_f.get_data()).astype(np.float32) * np.float32(depth_scale)
            t = color_f.get_timestamp() / 1000.0
            t0 = t if t0 is None else t0
            yield RGBDFrame(
                rgb=np.ascontiguousarray(color, dtype=np.uint8),
                depth=depth,
                intrinsics=intr,
                T_world_camera=np.asarray(T_world_camera, dtype=float),
                timestamp=t - t0,
            )
            n += 1
            if playback.current_status() == rs.playback_status.stopped:
                break
        if n == 0:
            raise DemoFormatError(f"{bag_path}: the recording holds no frames")
    finally:
        pipeline.stop()


def bag_to_demo(
    bag_path: Path,
    out_dir: Path,
    T_world_camera: np.ndarray | None = None,
    task: str = "",
    fps: float | None = None,
) -> Path:
    """Convert a RealSense recording into a demo folder (atomically; nothing partial is left)."""
    if T_world_camera is None:
        from core.settings import load_settings

        cal = load_settings().hardware.T_base_camera
        if cal is None:
            raise ConfigError(
                "setting 'hardware.T_base_camera' is not set: a .bag needs the camera pose in the robot base "
                "frame (run `python main.py calibrate` or set VLMIMIC_HARDWARE__T_BASE_CAMERA)"
            )
        T_world_camera = np.asarray(cal, dtype=float)
    T = np.asarray(T_world_camera, dtype=float)
    times: list[float] = []
    intr: Intrinsics | None = None
    with DemoWriter(Path(out_dir)) as writer:
        for frame in iter_bag_frames(Path(bag_path), T):
            writer.add_frame(frame)
            times.append(frame.timestamp)
            intr = frame.intrinsics
        if intr is None:
            raise DemoFormatError(f"{bag_path}: the recording holds no frames")
        rate = fps or (float((len(times) - 1) / (times[-1] - times[0])) if len(times) > 1 and times[-1] > times[0]
                       else 30.0)
        meta = DemoMeta(
            demo_id=Path(out_dir).name,
            task=task,
            source="realsense",
            fps=rate,
            n_frames=len(times),
            intrinsics=intr,
            T_world_camera=T.tolist(),
            timestamps=times,
            depth_scale=writer.depth_scale,
        )
        return writer.commit(meta)
