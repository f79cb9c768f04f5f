"""Object clouds and what the first frame establishes, for the grounder (agents/grounder.py, step 2).

`_Frame0` holds frame 0's descriptors, clouds, crops and table height; `_object_clouds` turns masks into
voxel-downsampled world clouds; `_first_views` samples the frames that complete frame 0's clouds.
"""

from __future__ import annotations

import numpy as np

from core.errors import DemoFormatError
from core.geometry import Pose
from core.grounding import ObjectDescriptor
from tools.perception import renders
from tools.perception.first_views import view_frames
from tools.perception.parsing import HAND, TABLE
from tools.perception.pointcloud import cloud_from_mask, meets_image_edge, remove_outliers, voxel_downsample
from tools.perception.segmenters import Segmenter
from tools.perception.tracking import canonical_frame

MIN_OBJECT_POINTS = 30


class _Frame0:
    """What the first frame establishes."""

    def __init__(self) -> None:
        self.descriptors: dict[str, ObjectDescriptor] = {}
        self.clouds: dict[str, np.ndarray] = {}
        self.crops: dict[str, bytes] = {}
        self.table_z: float | None = None


def _object_clouds(frame, masks: dict[str, np.ndarray], prompts: list[str], voxel: float) -> dict[str, np.ndarray]:  # noqa: ANN001
    clouds: dict[str, np.ndarray] = {}
    for name in prompts:
        if name in masks:
            pts = voxel_downsample(cloud_from_mask(frame, masks[name], stride=2), voxel)
            if len(pts):
                clouds[name] = pts
    return clouds


def _first_views(source, segmenter: Segmenter, prompts: list[str], voxel: float) -> list[tuple[int, dict]]:  # noqa: ANN001
    """Object clouds of the frames sampled for completing frame 0's (first_views.view_frames)."""
    out = []
    for i in view_frames(source.times):
        frame = source.frame(i)
        out.append((i, _object_clouds(frame, segmenter.segment(frame, [*prompts, HAND, TABLE]), prompts, voxel)))
    return out


def _init_first_frame(first: _Frame0, frame, masks, clouds, prompts, cam_pos, where: str) -> None:  # noqa: ANN001
    if TABLE in masks:
        tz = frame.points_world(masks[TABLE] & _grid(masks[TABLE].shape, 4))
        if len(tz):
            first.table_z = float(np.median(tz[:, 2]))
    for o in prompts:
        if o not in clouds or len(clouds[o]) < MIN_OBJECT_POINTS:
            continue
        pts = remove_outliers(clouds[o])
        T, size = canonical_frame(pts, whole_outline=not meets_image_edge(masks[o]))
        colour = frame.rgb[masks[o]].reshape(-1, 3).mean(axis=0)
        first.descriptors[o] = ObjectDescriptor(
            name=o, T_world_object=Pose.from_matrix(T), bbox_size=tuple(float(v) for v in size),
            color_rgb=tuple(float(v) for v in colour), crop_path=f"crops/{o}.png", n_points=len(pts),
        )
        first.clouds[o] = pts
        first.crops[o] = renders.object_crop(frame, masks[o])
    if not first.descriptors:
        raise DemoFormatError(f"{where}: none of the objects {list(prompts)} is visible in frame 0")


def _grid(shape: tuple[int, int], stride: int) -> np.ndarray:
    g = np.zeros(shape, bool)
    g[::stride, ::stride] = True
    return g
