"""A small analytic RGB-D scene for grounding tests: boxes ray-cast into a pinhole camera.

A hand (palm + two fingertips, label "hand") reaches a cube from above, closes on it, carries it
(turning it by `yaw_deg`) onto a plate, opens and retreats. Depth, segmentation, hand keypoints and
a ground_truth.json (for the never-opened test) are written with core.demo.DemoWriter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from core.demo import HAND_KEYPOINT_NAMES, DemoMeta, DemoWriter, HandTrack
from core.geometry import invert_transform, look_at, make_transform
from core.sensing import Intrinsics, RGBDFrame
from tools.perception.hands import keypoints_from_gripper

LABELS = {1: "table", 2: "hand", 3: "cube", 4: "plate"}
COLOURS = {0: (0, 0, 0), 1: (150, 120, 90), 2: (220, 170, 130), 3: (200, 30, 30), 4: (240, 240, 240)}
CUBE = 0.05
PLATE = (0.16, 0.16, 0.01)


def raycast(intr: Intrinsics, T_wc: np.ndarray, boxes: list[tuple[int, np.ndarray, np.ndarray]]) -> tuple:
    """(depth, seg) of oriented boxes (label, T_world_box, half extents)."""
    u, v = np.meshgrid(np.arange(intr.width), np.arange(intr.height))
    d_cam = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u, float)], -1).reshape(-1, 3)
    o_w = T_wc[:3, 3]
    d_w = d_cam @ T_wc[:3, :3].T
    best = np.full(len(d_w), np.inf)
    seg = np.zeros(len(d_w), np.int32)
    for label, T, h in boxes:
        Ti = invert_transform(T)
        o = Ti[:3, :3] @ o_w + Ti[:3, 3]
        d = d_w @ Ti[:3, :3].T
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-h - o) / d
            t2 = (h - o) / d
        tmin = np.nanmax(np.minimum(t1, t2), axis=1)
        tmax = np.nanmin(np.maximum(t1, t2), axis=1)
        hit = (tmax >= tmin) & (tmin > 0) & (tmin < best)
        best[hit] = tmin[hit]
        seg[hit] = label
    depth = np.where(np.isfinite(best), best, 0.0).astype(np.float32).reshape(intr.height, intr.width)
    return depth, seg.reshape(intr.height, intr.width)


def gripper_pose(p: np.ndarray, yaw: float = 0.0) -> np.ndarray:
    """Top-down gripper at grasp point p: z down, closing axis y rotated by yaw about world z."""
    R = Rotation.from_euler("z", yaw) * Rotation.from_matrix(np.array([[-1.0, 0, 0], [0, 1, 0], [0, 0, -1]]))
    return make_transform(R, p)


def script(n_frames: int = 50, yaw_deg: float = 30.0, drop_m: float = 0.0):  # noqa: ANN201
    """Per frame: gripper pose, width, cube pose. `drop_m`: the hand lets go of the cube this far above
    the plate, and it falls onto the plate as the hand starts to open."""
    cube0 = np.array([0.50, 0.10, CUBE / 2])
    plate_top = PLATE[2]
    start = np.array([0.38, 0.16, 0.30])
    above = cube0 + [0, 0, 0.12]
    lift = cube0 + [0, 0, 0.15]
    place_above = np.array([0.50, -0.12, 0.18])
    place = np.array([0.50, -0.12, plate_top + CUBE / 2])
    yaw = np.deg2rad(yaw_deg)
    keys = [  # (frame, grasp point, yaw, width, carrying)
        (0, start, 0.0, 0.08, False),
        (8, above, 0.0, 0.08, False),
        (14, cube0, 0.0, 0.08, False),
        (18, cube0, 0.0, CUBE, False),
        (19, cube0, 0.0, CUBE, True),
        (24, lift, 0.3 * yaw, CUBE, True),
        (30, place_above, 0.8 * yaw, CUBE, True),
        (34, place + [0, 0, drop_m], yaw, CUBE, True),
        (35, place + [0, 0, drop_m], yaw, CUBE, False),
        (38, place + [0, 0, drop_m], yaw, 0.08, False),
        (n_frames - 1, place + [0, 0, 0.25], yaw, 0.08, False),
    ]
    out = []
    for i in range(n_frames):
        k = max(j for j in range(len(keys)) if keys[j][0] <= i)
        f0, p0, y0, w0, c0 = keys[k]
        if k + 1 < len(keys):
            f1, p1, y1, w1, _ = keys[k + 1]
            s = (i - f0) / (f1 - f0)
            s = s * s * (3 - 2 * s)
        else:
            p1, y1, w1, s = p0, y0, w0, 0.0
        p = (1 - s) * np.asarray(p0) + s * np.asarray(p1)
        y = (1 - s) * y0 + s * y1
        w = (1 - s) * w0 + s * w1
        out.append((gripper_pose(p, y), w, c0 or (f0 >= 19 and i <= 34)))
    cube = []
    T_cube = make_transform(np.eye(3), cube0)
    T_grip_cube = None
    for T_g, _, carrying in out:
        if carrying:
            if T_grip_cube is None:
                T_grip_cube = invert_transform(T_g) @ T_cube
            T_cube = T_g @ T_grip_cube
        elif T_grip_cube is not None:  # let go: it rests on the plate
            T_cube[2, 3] = place[2]
        cube.append(T_cube.copy())
    return out, cube


def write_demo(
    out_dir: Path,
    n_frames: int = 50,
    yaw_deg: float = 30.0,
    width: int = 320,
    height: int = 240,
    ground_truth: bool = True,
    task: str = "put the cube on the plate",
    drop_m: float = 0.0,
) -> Path:
    intr = Intrinsics(
        width=width, height=height, fx=0.94 * width, fy=0.94 * width, cx=(width - 1) / 2, cy=(height - 1) / 2
    )
    T_wc = look_at((0.05, -0.10, 0.55), (0.50, 0.0, 0.03))
    steps, cubes = script(n_frames, yaw_deg, drop_m)
    plate_T = make_transform(np.eye(3), (0.50, -0.12, PLATE[2] / 2))
    table_T = make_transform(np.eye(3), (0.5, 0.0, -0.01))
    names = HAND_KEYPOINT_NAMES
    uv = np.zeros((n_frames, len(names), 2), np.float32)
    xyz = np.zeros((n_frames, len(names), 3), np.float32)
    frames_gt = []
    with DemoWriter(out_dir) as w:
        for i, ((T_g, wd, _), T_c) in enumerate(zip(steps, cubes, strict=True)):
            y, z = T_g[:3, 1], T_g[:3, 2]
            p = T_g[:3, 3]
            palm = T_g.copy()
            palm[:3, 3] = p - 0.065 * z
            fingers = []
            for sgn in (-1, 1):
                F = T_g.copy()
                F[:3, 3] = p + sgn * (wd / 2 + 0.006) * y - 0.01 * z
                fingers.append((2, F, np.array([0.008, 0.006, 0.03])))
            boxes = [
                (1, table_T, np.array([0.5, 0.6, 0.01])),
                (4, plate_T, np.asarray(PLATE) / 2),
                (3, T_c, np.full(3, CUBE / 2)),
                (2, palm, np.array([0.035, 0.045, 0.02])),
                *fingers,
            ]
            depth, seg = raycast(intr, T_wc, boxes)
            rgb = np.zeros((height, width, 3), np.uint8)
            for k, c in COLOURS.items():
                rgb[seg == k] = c
            w.add_frame(
                RGBDFrame(
                    rgb=rgb, depth=depth, intrinsics=intr, T_world_camera=T_wc, timestamp=i / 15.0, segmentation=seg
                )
            )
            kp = keypoints_from_gripper(T_g, wd)
            kp.update(
                {
                    "middle_tip": kp["index_tip"] + 0.01 * z,
                    "thumb_base": kp["wrist"] - 0.02 * y,
                    "index_base": kp["wrist"] + 0.02 * y,
                }
            )
            for k, n in enumerate(names):
                xyz[i, k] = kp[n]
                pc = invert_transform(T_wc) @ np.append(kp[n], 1.0)
                uv[i, k] = intr.project(pc[None, :3])[0]
            frames_gt.append({"frame": i, "bodies": {"cube": _body(T_c), "plate": _body(plate_T)}})
        meta = DemoMeta(
            demo_id=out_dir.name,
            task=task,
            source="sim",
            fps=15.0,
            n_frames=n_frames,
            intrinsics=intr,
            T_world_camera=T_wc.tolist(),
            timestamps=[],
            depth_scale=0.0001,
            labels=dict(LABELS),
        )
        hand = HandTrack(names=names, uv=uv, xyz=xyz, visible=np.ones(n_frames, bool))
        gt = {"labels": ["cube", "plate"], "frames": frames_gt, "contacts": []} if ground_truth else None
        return w.commit(meta, hand=hand, ground_truth=gt)


def _body(T: np.ndarray) -> dict:
    q = Rotation.from_matrix(T[:3, :3]).as_quat()
    return {"position": [float(v) for v in T[:3, 3]], "quaternion": [float(v) for v in q]}
