"""The `HandTracker` seam (DESIGN §3): hand keypoints per frame, and the hand -> gripper mapping.

Trackers produce a `core.demo.HandTrack` (keypoints `wrist`, `thumb_tip`, `index_tip`, ... in world
metres). `gripper_from_hand` then applies the demonstrator's hand contract, shared with
sim/demonstrator.py:

    grasp point  p = midpoint(thumb_tip, index_tip)
    closing axis y = unit(index_tip - thumb_tip)                       (gripper y)
    approach     z = unit(p - wrist), orthogonalised against y          (gripper z)
    x = y cross z;  width = |index_tip - thumb_tip|

Implementations: `ChannelHandTracker` (the demo's hand.npz: the simulator's perfect hand tracker),
`MediaPipeHandTracker` (MediaPipe hand landmarker from a local .task file, lifted to 3-D with the
aligned depth; mediapipe is an optional install) and `ArucoGripperTracker` (a handheld gripper
carrying an ArUco marker, cv2.aruco).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict

from core.demo import HAND_FILE, HandTrack
from core.errors import BackendUnavailable, DemoFormatError
from core.settings import PerceptionSettings

if TYPE_CHECKING:
    from tools.perception.readers import DemoSource

REQUIRED_KEYPOINTS = ("wrist", "thumb_tip", "index_tip")
CHANNEL_HAND_TRACKER_NAME = "perfect hand tracker (simulator channel)"


@runtime_checkable
class HandTracker(Protocol):
    name: str

    def track(self, source: DemoSource) -> HandTrack:
        """Keypoints for every frame of the demo (`visible` False where the hand was not found)."""
        ...


class GripperTrack(BaseModel):
    """The hand read as a parallel gripper, per frame (held constant through invisible frames)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    poses: np.ndarray  # (T, 4, 4) T_world_gripper
    width: np.ndarray  # (T,) metres
    grasp_point: np.ndarray  # (T, 3)
    closing_axis: np.ndarray  # (T, 3) gripper y
    approach_axis: np.ndarray  # (T, 3) gripper z
    visible: np.ndarray  # (T,) bool
    hand_points: np.ndarray  # (T, K, 3) all keypoints (world)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n < 1e-12, 1.0, n)


def gripper_from_keypoints(wrist: np.ndarray, thumb: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) keypoints -> (T, 4, 4) T_world_gripper and (T,) widths, per the hand contract."""
    wrist, thumb, index = (np.atleast_2d(np.asarray(a, dtype=float)) for a in (wrist, thumb, index))
    p = 0.5 * (thumb + index)
    d = index - thumb
    width = np.linalg.norm(d, axis=-1)
    y = _unit(d)
    z0 = p - wrist
    z = _unit(z0 - np.sum(z0 * y, axis=-1, keepdims=True) * y)
    x = np.cross(y, z)
    T = np.tile(np.eye(4), (len(p), 1, 1))
    T[:, :3, 0], T[:, :3, 1], T[:, :3, 2], T[:, :3, 3] = x, y, z, p
    return T, width


def keypoints_from_gripper(
    T_world_gripper: np.ndarray, width: float, wrist_offset: float = 0.09
) -> dict[str, np.ndarray]:
    """Inverse of the contract: keypoints a hand would have for this gripper pose and opening."""
    T = np.asarray(T_world_gripper, dtype=float)
    p, y, z = T[:3, 3], T[:3, 1], T[:3, 2]
    return {
        "wrist": p - wrist_offset * z,
        "thumb_tip": p - 0.5 * width * y,
        "index_tip": p + 0.5 * width * y,
    }


def gripper_from_hand(track: HandTrack, source: str = "") -> GripperTrack:
    """Apply the hand contract to every frame; invisible frames hold the nearest visible value."""
    where = f"{source}: " if source else ""
    missing = [k for k in REQUIRED_KEYPOINTS if k not in track.names]
    if missing:
        raise DemoFormatError(f"{where}hand keypoints lack {missing} (have {list(track.names)})")
    vis = np.asarray(track.visible, dtype=bool)
    if not vis.any():
        raise DemoFormatError(f"{where}the hand is not visible in any frame")
    xyz = np.asarray(track.xyz, dtype=float)
    k = {n: track.names.index(n) for n in REQUIRED_KEYPOINTS}
    bad = ~np.isfinite(xyz[:, [k["wrist"], k["thumb_tip"], k["index_tip"]]]).all(axis=(1, 2)) & vis
    if bad.any():
        raise DemoFormatError(f"{where}hand keypoints are not finite in frame {int(np.argmax(bad))}")
    # nearest visible frame for every frame
    idx = np.arange(len(vis))
    vis_idx = idx[vis]
    nearest = vis_idx[np.clip(np.searchsorted(vis_idx, idx), 0, len(vis_idx) - 1)]
    prev = vis_idx[np.clip(np.searchsorted(vis_idx, idx, side="right") - 1, 0, len(vis_idx) - 1)]
    nearest = np.where(np.abs(prev - idx) <= np.abs(nearest - idx), prev, nearest)
    xyz = xyz[nearest]
    T, width = gripper_from_keypoints(xyz[:, k["wrist"]], xyz[:, k["thumb_tip"]], xyz[:, k["index_tip"]])
    return GripperTrack(
        poses=T,
        width=width,
        grasp_point=T[:, :3, 3].copy(),
        closing_axis=T[:, :3, 1].copy(),
        approach_axis=T[:, :3, 2].copy(),
        visible=vis,
        hand_points=xyz,
    )


# --- trackers ----------------------------------------------------------------------------------


class ChannelHandTracker:
    """The demo's own hand keypoints (hand.npz, written by the simulator's demonstrator)."""

    name = CHANNEL_HAND_TRACKER_NAME

    def track(self, source: DemoSource) -> HandTrack:
        track = source.hand()
        if track is None:
            raise DemoFormatError(
                f"{source.dir / HAND_FILE}: this demo has no hand channel; set perception.hand_tracker to "
                "'mediapipe' or 'aruco' (VLMIMIC_PERCEPTION__HAND_TRACKER)"
            )
        return track


def _lift(uv: np.ndarray, depth: np.ndarray, intr, T_world_camera: np.ndarray, win: int = 3) -> np.ndarray | None:
    """Pixel -> world point using the median valid depth in a (2 win + 1)^2 window."""
    h, w = depth.shape
    u, v = int(round(uv[0])), int(round(uv[1]))
    if not (0 <= u < w and 0 <= v < h):
        return None
    patch = depth[max(0, v - win) : v + win + 1, max(0, u - win) : u + win + 1]
    d = patch[patch > 0]
    if d.size == 0:
        return None
    p = intr.deproject(np.array([[uv[0], uv[1]]]), np.array([float(np.median(d))]))[0]
    return T_world_camera[:3, :3] @ p + T_world_camera[:3, 3]


class MediaPipeHandTracker:
    """MediaPipe's hand landmarker (local .task model), keypoints lifted to 3-D with depth."""

    name = "MediaPipe hand landmarker"
    LANDMARKS = {"wrist": 0, "thumb_base": 2, "thumb_tip": 4, "index_base": 5, "index_tip": 8, "middle_tip": 12}

    def __init__(self, model_path: Path | None) -> None:
        if model_path is None:
            raise BackendUnavailable(
                "the MediaPipe hand tracker needs a local hand_landmarker.task: set perception.mediapipe_model_path "
                "(VLMIMIC_PERCEPTION__MEDIAPIPE_MODEL_PATH); models are never downloaded"
            )
        self.model_path = Path(model_path).expanduser()
        if not self.model_path.is_file():
            raise BackendUnavailable(
                f"MediaPipe model not found at {self.model_path} (setting perception.mediapipe_model_path)"
            )
        try:
            import mediapipe as mp  # type: ignore[import-not-found]
        except ImportError as e:
            raise BackendUnavailable(
                "mediapipe is not installed (optional): `pip install mediapipe` to use "
                "perception.hand_tracker='mediapipe', or choose 'channel' / 'aruco'"
            ) from e
        self._mp = mp

    def track(self, source: DemoSource) -> HandTrack:
        mp = self._mp
        vision = mp.tasks.vision
        options = vision.HandLandmarkerOptions(
            base_options=mp.tasks.BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.VIDEO,
            num_hands=1,
        )
        names = tuple(self.LANDMARKS)
        n = len(source)
        uv = np.zeros((n, len(names), 2), np.float32)
        xyz = np.zeros((n, len(names), 3), np.float32)
        visible = np.zeros(n, bool)
        with vision.HandLandmarker.create_from_options(options) as landmarker:
            for i, frame in source.frames():
                image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame.rgb))
                res = landmarker.detect_for_video(image, int(round(frame.timestamp * 1000)))
                if not res.hand_landmarks:
                    continue
                lms = res.hand_landmarks[0]
                ok = True
                for k, name in enumerate(names):
                    lm = lms[self.LANDMARKS[name]]
                    uv[i, k] = (lm.x * frame.intrinsics.width, lm.y * frame.intrinsics.height)
                    p = _lift(uv[i, k], frame.depth, frame.intrinsics, np.asarray(frame.T_world_camera))
                    if p is None:
                        ok = False
                        break
                    xyz[i, k] = p
                visible[i] = ok
        if not visible.any():
            raise DemoFormatError(f"{source.dir}: MediaPipe found no hand in any of the {n} frames")
        return HandTrack(names=names, uv=uv, xyz=xyz, visible=visible)


class ArucoGripperTracker:
    """A handheld parallel gripper with an ArUco marker on its body (and optionally one per finger).

    T_marker_gripper is the calibrated offset from the body marker to the gripper TCP; with finger
    markers the opening is the distance between their centres minus `finger_offset`, otherwise
    `default_width`. Output keypoints follow the hand contract, so the same mapping applies.
    """

    name = "ArUco handheld gripper"

    def __init__(
        self,
        marker_id: int = 0,
        marker_length_m: float = 0.04,
        T_marker_gripper: np.ndarray | None = None,
        finger_ids: tuple[int, int] | None = None,
        finger_offset: float = 0.0,
        default_width: float = 0.08,
        dictionary: int = cv2.aruco.DICT_4X4_50,
    ) -> None:
        self.marker_id = marker_id
        self.marker_length = marker_length_m
        self.T_marker_gripper = np.eye(4) if T_marker_gripper is None else np.asarray(T_marker_gripper, float)
        self.finger_ids = finger_ids
        self.finger_offset = finger_offset
        self.default_width = default_width
        self._detector = cv2.aruco.ArucoDetector(
            cv2.aruco.getPredefinedDictionary(dictionary), cv2.aruco.DetectorParameters()
        )

    def marker_poses(self, rgb: np.ndarray, K: np.ndarray) -> dict[int, np.ndarray]:
        """T_camera_marker for every detected marker (marker z out of its face)."""
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        corners, ids, _ = self._detector.detectMarkers(gray)
        out: dict[int, np.ndarray] = {}
        if ids is None:
            return out
        s = self.marker_length / 2.0
        obj = np.array([[-s, s, 0], [s, s, 0], [s, -s, 0], [-s, -s, 0]], dtype=np.float64)
        for c, mid in zip(corners, ids.ravel(), strict=True):
            ok, rvec, tvec = cv2.solvePnP(obj, c.reshape(4, 2).astype(np.float64), K, None,
                                          flags=cv2.SOLVEPNP_IPPE_SQUARE)
            if ok:
                T = np.eye(4)
                T[:3, :3] = cv2.Rodrigues(rvec)[0]
                T[:3, 3] = tvec.ravel()
                out[int(mid)] = T
        return out

    def track(self, source: DemoSource) -> HandTrack:
        names = ("wrist", "thumb_tip", "index_tip")
        n = len(source)
        uv = np.zeros((n, 3, 2), np.float32)
        xyz = np.zeros((n, 3, 3), np.float32)
        visible = np.zeros(n, bool)
        K = source.intrinsics.matrix()
        T_wc = source.T_world_camera
        for i, frame in source.frames():
            poses = self.marker_poses(frame.rgb, K)
            if self.marker_id not in poses:
                continue
            T_wg = T_wc @ poses[self.marker_id] @ self.T_marker_gripper
            width = self.default_width
            if self.finger_ids is not None and all(f in poses for f in self.finger_ids):
                a, b = (poses[f][:3, 3] for f in self.finger_ids)
                width = max(0.0, float(np.linalg.norm(a - b)) - self.finger_offset)
            kp = keypoints_from_gripper(T_wg, width)
            for k, name in enumerate(names):
                xyz[i, k] = kp[name]
                pc = np.linalg.inv(T_wc) @ np.append(kp[name], 1.0)
                uv[i, k] = source.intrinsics.project(pc[None, :3])[0]
            visible[i] = True
        if not visible.any():
            raise DemoFormatError(f"{source.dir}: ArUco marker {self.marker_id} not found in any of the {n} frames")
        return HandTrack(names=names, uv=uv, xyz=xyz, visible=visible)


def make_hand_tracker(settings: PerceptionSettings) -> HandTracker:
    if settings.hand_tracker == "channel":
        return ChannelHandTracker()
    if settings.hand_tracker == "mediapipe":
        return MediaPipeHandTracker(settings.mediapipe_model_path)
    return ArucoGripperTracker()
