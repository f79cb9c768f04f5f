"""The on-disk demonstration format (documented in the README, section "Demo format").

A demo is one folder:

    meta.json            DemoMeta below: task text, fps, intrinsics, camera pose, timestamps,
                         depth scale, label names, which optional channels exist
    rgb/000000.png       colour frames, 8-bit RGB
    depth/000000.png     depth frames, 16-bit unsigned, metres = value * depth_scale (0 = invalid)
    seg/000000.png       optional: 16-bit label ids, names in meta.labels
    hand.npz             optional: hand keypoints (names, uv pixels, xyz world metres, visible)
    ground_truth.json    optional, written only by the simulator: object poses, articulation states,
                         contact events. Only bench/ and accuracy tests may read it (GROUND_TRUTH_FILE).

Demos are written to a temporary sibling folder and renamed into place, so an interrupted recording
never leaves a half-written demo behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, Field, ValidationError

from core.errors import DemoFormatError
from core.sensing import Intrinsics, RGBDFrame

FORMAT_VERSION = 1
META_FILE = "meta.json"
HAND_FILE = "hand.npz"
GROUND_TRUTH_FILE = "ground_truth.json"
HAND_KEYPOINT_NAMES = ("wrist", "thumb_tip", "index_tip", "middle_tip", "thumb_base", "index_base")


class DemoMeta(BaseModel):
    format_version: int = FORMAT_VERSION
    demo_id: str
    task: str = Field(description="task text as the demonstrator or user names it, may be empty")
    source: str = Field(description="sim | realsense | other")
    fps: float = Field(gt=0)
    n_frames: int = Field(gt=0)
    intrinsics: Intrinsics
    T_world_camera: list[list[float]]
    timestamps: list[float]
    depth_scale: float = Field(gt=0, description="metres per depth unit in depth/*.png")
    labels: dict[int, str] = Field(default_factory=dict, description="segmentation id -> name")
    has_segmentation: bool = False
    has_hand: bool = False
    camera_name: str = ""
    extra: dict[str, str | float | int] = Field(default_factory=dict)


class HandTrack(BaseModel):
    """Hand keypoints per frame: uv (T, K, 2) pixels, xyz (T, K, 3) world metres, visible (T,)."""

    model_config = {"arbitrary_types_allowed": True}

    names: tuple[str, ...]
    uv: np.ndarray
    xyz: np.ndarray
    visible: np.ndarray


def _frame_name(i: int) -> str:
    return f"{i:06d}.png"


class DemoWriter:
    """Writes a demo frame by frame into a temp folder; `commit()` renames it into place.

    Use as a context manager: leaving the block with an exception deletes the temp folder.
    """

    def __init__(self, out_dir: Path, *, depth_scale: float = 0.0001) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists():
            raise DemoFormatError(f"{self.out_dir}: already exists; refusing to overwrite a demo")
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.partial-", dir=self.out_dir.parent))
        for sub in ("rgb", "depth", "seg"):
            (self._tmp / sub).mkdir()
        self.depth_scale = depth_scale
        self._n = 0
        self._timestamps: list[float] = []
        self._has_seg = False
        self._committed = False

    def __enter__(self) -> DemoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:
            self.abort()

    def add_frame(self, frame: RGBDFrame) -> None:
        i = self._n
        cv2.imwrite(str(self._tmp / "rgb" / _frame_name(i)), cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, 1])
        units = np.clip(np.round(frame.depth / self.depth_scale), 0, 65535).astype(np.uint16)
        cv2.imwrite(str(self._tmp / "depth" / _frame_name(i)), units, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if frame.segmentation is not None:
            self._has_seg = True
            seg = np.clip(frame.segmentation, 0, 65535).astype(np.uint16)
            cv2.imwrite(str(self._tmp / "seg" / _frame_name(i)), seg, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        self._timestamps.append(float(frame.timestamp))
        self._n += 1

    def commit(
        self,
        meta: DemoMeta,
        hand: HandTrack | None = None,
        ground_truth: dict | None = None,
    ) -> Path:
        """Write meta, optional channels and ground truth, then atomically move into place."""
        if self._n == 0:
            raise DemoFormatError(f"{self.out_dir}: no frames were recorded")
        meta = meta.model_copy(
            update={
                "n_frames": self._n,
                "timestamps": self._timestamps,
                "depth_scale": self.depth_scale,
                "has_segmentation": self._has_seg,
                "has_hand": hand is not None,
            }
        )
        if not self._has_seg:
            shutil.rmtree(self._tmp / "seg")
        if hand is not None:
            np.savez_compressed(
                self._tmp / HAND_FILE,
                names=np.array(hand.names),
                uv=hand.uv.astype(np.float32),
                xyz=hand.xyz.astype(np.float32),
                visible=hand.visible.astype(bool),
            )
        if ground_truth is not None:
            (self._tmp / GROUND_TRUTH_FILE).write_text(json.dumps(ground_truth))
        (self._tmp / META_FILE).write_text(meta.model_dump_json(indent=1))
        os.replace(self._tmp, self.out_dir)
        self._committed = True
        return self.out_dir

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


class DemoReader:
    """Reads and validates a demo folder; every error names the file (and frame) at fault.

    Never touches ground_truth.json: that file is for bench/ and accuracy tests only.
    """

    def __init__(self, demo_dir: Path) -> None:
        self.dir = Path(demo_dir)
        meta_path = self.dir / META_FILE
        if not meta_path.is_file():
            raise DemoFormatError(f"{meta_path}: missing; is {self.dir} a demo folder?")
        try:
            self.meta = DemoMeta.model_validate_json(meta_path.read_text())
        except (ValidationError, ValueError) as e:
            raise DemoFormatError(f"{meta_path}: invalid demo metadata: {e}") from e
        if len(self.meta.timestamps) != self.meta.n_frames:
            raise DemoFormatError(
                f"{meta_path}: {len(self.meta.timestamps)} timestamps for n_frames={self.meta.n_frames}"
            )
        for sub in ("rgb", "depth") + (("seg",) if self.meta.has_segmentation else ()):
            n = len(list((self.dir / sub).glob("*.png"))) if (self.dir / sub).is_dir() else 0
            if n != self.meta.n_frames:
                raise DemoFormatError(
                    f"{self.dir / sub}: {n} frames, but {META_FILE} says n_frames={self.meta.n_frames}"
                )

    def __len__(self) -> int:
        return self.meta.n_frames

    @property
    def T_world_camera(self) -> np.ndarray:
        return np.asarray(self.meta.T_world_camera, dtype=float)

    def _read_png(self, sub: str, i: int, flags: int) -> np.ndarray:
        path = self.dir / sub / _frame_name(i)
        img = cv2.imread(str(path), flags)
        if img is None:
            raise DemoFormatError(f"{path}: unreadable image (frame {i})")
        return img

    def frame(self, i: int) -> RGBDFrame:
        if not 0 <= i < self.meta.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.meta.n_frames - 1}")
        intr = self.meta.intrinsics
        bgr = self._read_png("rgb", i, cv2.IMREAD_COLOR)
        depth_raw = self._read_png("depth", i, cv2.IMREAD_UNCHANGED)
        if depth_raw.dtype != np.uint16 or depth_raw.ndim != 2:
            raise DemoFormatError(
                f"{self.dir / 'depth' / _frame_name(i)}: depth must be 16-bit single-channel PNG "
                f"(got {depth_raw.dtype}, {depth_raw.ndim} channels) in frame {i}"
            )
        depth = depth_raw.astype(np.float32) * np.float32(self.meta.depth_scale)
        valid = depth[depth > 0]
        if valid.size == 0:
            raise DemoFormatError(f"{self.dir / 'depth' / _frame_name(i)}: no valid depth in frame {i}")
        # A tabletop scene lies 0.1-5 m from the camera; a median outside means a wrong depth_scale
        # (e.g. millimetres declared as metres), which would silently wreck every 3-D quantity.
        med = float(np.median(valid))
        if not 0.05 <= med <= 10.0:
            raise DemoFormatError(
                f"{self.dir / 'depth' / _frame_name(i)}: median depth {med:.3g} m in frame {i} is "
                f"implausible; check depth_scale={self.meta.depth_scale} in {META_FILE} (metres per unit)"
            )
        seg = None
        if self.meta.has_segmentation:
            seg = self._read_png("seg", i, cv2.IMREAD_UNCHANGED).astype(np.int32)
        if bgr.shape[:2] != (intr.height, intr.width) or depth.shape != (intr.height, intr.width):
            raise DemoFormatError(
                f"{self.dir}: frame {i} is {bgr.shape[1]}x{bgr.shape[0]} but intrinsics say "
                f"{intr.width}x{intr.height}"
            )
        return RGBDFrame(
            rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
            depth=depth,
            intrinsics=intr,
            T_world_camera=self.T_world_camera,
            timestamp=self.meta.timestamps[i],
            segmentation=seg,
            labels=self.meta.labels or None,
        )

    def frames(self) -> Iterator[RGBDFrame]:
        for i in range(self.meta.n_frames):
            yield self.frame(i)

    def hand(self) -> HandTrack | None:
        if not self.meta.has_hand:
            return None
        path = self.dir / HAND_FILE
        try:
            data = np.load(path)
            track = HandTrack(
                names=tuple(str(n) for n in data["names"]),
                uv=data["uv"],
                xyz=data["xyz"],
                visible=data["visible"],
            )
        except (OSError, KeyError, ValueError) as e:
            raise DemoFormatError(f"{path}: unreadable hand keypoints: {e}") from e
        if track.uv.shape[0] != self.meta.n_frames:
            raise DemoFormatError(f"{path}: {track.uv.shape[0]} frames of keypoints, expected {self.meta.n_frames}")
        if not track.visible.any():
            raise DemoFormatError(f"{path}: the hand is not visible in any frame")
        return track


def read_ground_truth(demo_dir: Path) -> dict:
    """Ground truth written by the simulator. Only bench/ and accuracy tests may call this."""
    path = Path(demo_dir) / GROUND_TRUTH_FILE
    if not path.is_file():
        raise DemoFormatError(f"{path}: no ground truth (only simulator demos have it)")
    return json.loads(path.read_text())
