"""Images of grounded interactions for the reasoner (and for people reading a run).

- `render_grasp`: the frame where the hand takes the object, with the gripper drawn as a
  parallel-jaw outline (fingertips along the closing axis, approach axis as the stem) and labels.
- `render_trajectory`: the segment's last keyframe with the slave's path (its frame origin, from
  start to end) drawn over it, start and end marked, labelled "slave -> master".
- `object_crop`: the object's first-frame crop (the ObjectDescriptor image).
All return PNG bytes; nothing here writes files.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.geometry import invert_transform
from core.sensing import RGBDFrame

GREEN = (40, 200, 60)
RED = (230, 50, 40)
BLUE = (40, 90, 230)
WHITE = (255, 255, 255)


def _project(frame: RGBDFrame, points_world: np.ndarray) -> np.ndarray:
    T_cw = invert_transform(np.asarray(frame.T_world_camera))
    pc = np.asarray(points_world, dtype=float) @ T_cw[:3, :3].T + T_cw[:3, 3]
    return frame.intrinsics.project(pc)


def _label(img: np.ndarray, text: str, org: tuple[int, int] = (8, 22)) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, WHITE, 1, cv2.LINE_AA)


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _pt(uv: np.ndarray) -> tuple[int, int]:
    return int(round(float(uv[0]))), int(round(float(uv[1])))


def render_grasp(frame: RGBDFrame, T_world_gripper: np.ndarray, width: float, label: str) -> bytes:
    img = frame.rgb.copy()
    T = np.asarray(T_world_gripper, dtype=float)
    p, y, z = T[:3, 3], T[:3, 1], T[:3, 2]
    w = max(width, 0.01) / 2
    tips = np.array([p - w * y, p + w * y])
    backs = tips - 0.045 * z
    stem = np.array([p - 0.045 * z, p - 0.10 * z])
    uv = _project(frame, np.vstack([tips, backs, stem, p[None]]))
    cv2.line(img, _pt(uv[0]), _pt(uv[2]), GREEN, 2, cv2.LINE_AA)
    cv2.line(img, _pt(uv[1]), _pt(uv[3]), GREEN, 2, cv2.LINE_AA)
    cv2.line(img, _pt(uv[2]), _pt(uv[3]), GREEN, 2, cv2.LINE_AA)
    cv2.line(img, _pt(uv[4]), _pt(uv[5]), GREEN, 2, cv2.LINE_AA)
    cv2.circle(img, _pt(uv[6]), 4, RED, -1, cv2.LINE_AA)
    _label(img, label)
    return _png(img)


def render_trajectory(frame: RGBDFrame, points_world: np.ndarray, label: str) -> bytes:
    img = frame.rgb.copy()
    pts = np.asarray(points_world, dtype=float)
    if len(pts):
        uv = _project(frame, pts)
        poly = np.round(uv).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [poly], False, BLUE, 2, cv2.LINE_AA)
        cv2.circle(img, _pt(uv[0]), 5, GREEN, -1, cv2.LINE_AA)
        cv2.circle(img, _pt(uv[-1]), 5, RED, -1, cv2.LINE_AA)
    _label(img, label)
    return _png(img)


def object_crop(frame: RGBDFrame, mask: np.ndarray, pad: int = 6) -> bytes:
    v, u = np.nonzero(mask)
    if len(v) == 0:
        return _png(np.zeros((1, 1, 3), np.uint8))
    h, w = mask.shape
    v0, v1 = max(0, v.min() - pad), min(h, v.max() + pad + 1)
    u0, u1 = max(0, u.min() - pad), min(w, u.max() + pad + 1)
    crop = frame.rgb[v0:v1, u0:u1]
    return _png(np.ascontiguousarray(crop))
