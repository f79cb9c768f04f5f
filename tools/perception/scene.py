"""Perceive the objects a plan step names from one RGB-D frame (the adapter's eyes).

segment (the configured `Segmenter`) -> world clouds (`pointcloud`) -> canonical frames and bboxes
(`tracking.canonical_frame`, the same rule the grounder uses on demos, so skills learned there apply
here). Besides the named objects the result keeps one obstacle cloud of everything else the camera
sees (other objects, the table; never the robot) for collision checks against the perceived scene.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.errors import VLMimicError
from core.geometry import Pose
from core.grounding import HAND, ObjectDescriptor
from core.sensing import RGBDFrame
from tools.perception.pointcloud import cloud_from_mask, meets_image_edge, remove_outliers, voxel_downsample
from tools.perception.segmenters import ChannelSegmenter, Segmenter
from tools.perception.tracking import canonical_frame, footprint_axes

VOXEL_M = 0.005
OBSTACLE_VOXEL_M = 0.015
MIN_OBJECT_POINTS = 30
ROBOT_LABELS = frozenset({"robot", HAND, "background", "world", "floor"})
ARM_LABELS = ("robot", HAND)  # the robot's own masks, where a segmenter gives them (a labelled channel)
HIDDEN_OUTLINE_PX = 12  # an object whose outline meets this many pixels of the arm in front of it is cut off


class ObjectNotVisible(VLMimicError):
    """A step names an object the camera does not see (or sees with too few points)."""


class PerceivedObject(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    descriptor: ObjectDescriptor
    points: np.ndarray = Field(repr=False, description="(N, 3) world cloud, voxel-downsampled")

    @property
    def name(self) -> str:
        return self.descriptor.name

    @property
    def T_world_object(self) -> np.ndarray:
        return self.descriptor.T_world_object.matrix()

    @property
    def size(self) -> np.ndarray:
        return np.asarray(self.descriptor.bbox_size, dtype=float)

    def footprint_edges(self) -> np.ndarray:
        """(2, 3) unit world directions of the footprint's sides (what a parallel gripper closing from
        above should line up with): the minimum-area rectangle's for a box, the hull's axes for a
        footprint that is no box (`tracking.footprint_axes`, as its frame): the rectangle around a
        knob's wing and round hub tilts 20 deg off the wing, and fingers closing at that slant turn
        the knob as they close."""
        _, edges, _ = footprint_axes(self.points[:, :2])
        return np.column_stack([edges, np.zeros(2)])


class PerceivedScene(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    objects: dict[str, PerceivedObject] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list, description="asked for, not seen")
    obstacles: np.ndarray = Field(default_factory=lambda: np.zeros((0, 3)), repr=False,
                                  description="world points of everything seen except the named objects and robot")
    obstacle_labels: np.ndarray = Field(default_factory=lambda: np.zeros(0, dtype=object), repr=False)
    table_z: float | None = None
    hidden_by_arm: list[str] = Field(default_factory=list,
                                     description="seen, but with the arm in front of part of the outline")
    cut_by_view: list[str] = Field(default_factory=list,
                                   description="seen, but reaching the image's edge: part may lie outside the view")
    seconds: float = 0.0

    def require(self, names: Sequence[str]) -> None:
        gone = [n for n in names if n not in self.objects]
        if gone:
            raise ObjectNotVisible(f"the camera does not see {', '.join(repr(n) for n in gone)}; "
                                   f"visible: {sorted(self.objects) or 'nothing'}")

    def cloud_without(self, exclude: Sequence[str] = ()) -> np.ndarray:
        """Obstacles plus every perceived object not in `exclude` (for collision checks)."""
        parts = [self.obstacles] + [o.points for n, o in self.objects.items() if n not in exclude]
        parts = [p for p in parts if len(p)]
        return np.vstack(parts) if parts else np.zeros((0, 3))


def perceive(
    frame: RGBDFrame,
    names: Sequence[str],
    segmenter: Segmenter,
    *,
    voxel: float = VOXEL_M,
    parents: dict[str, str] | None = None,
    all_objects: bool = False,
) -> PerceivedScene:
    """The named objects (descriptors in canonical frames + clouds) and an obstacle cloud.

    Names not visible are listed in `missing` (the caller decides whether that is fatal). `parents`
    (part -> fixed body, e.g. "drawer" -> "cabinet") is copied into the descriptors. `all_objects`:
    describe every labelled object in view, not only the named ones.
    """
    t0 = time.perf_counter()
    wanted = [n for n in dict.fromkeys(names) if n and n != HAND]
    # a labelled channel gives every label (named objects and obstacles); an open-vocabulary
    # segmenter is prompted with the step's objects and the table
    masks = segmenter.segment(frame, () if isinstance(segmenter, ChannelSegmenter) else [*wanted, "table"])
    if all_objects:  # every labelled object gets a frame too (not only the named ones)
        wanted += [n for n in masks if n not in wanted and n not in ROBOT_LABELS and n != "table"]
    scene = PerceivedScene()
    for n in wanted:
        m = masks.get(n)
        pts = np.zeros((0, 3)) if m is None else voxel_downsample(cloud_from_mask(frame, m, stride=2), voxel)
        if len(pts) < MIN_OBJECT_POINTS:
            scene.missing.append(n)
            continue
        pts = remove_outliers(pts)
        cut = meets_image_edge(m)
        if cut:
            scene.cut_by_view.append(n)
        T, size = canonical_frame(pts, whole_outline=not cut)
        colour = frame.rgb[m].reshape(-1, 3).mean(axis=0)
        scene.objects[n] = PerceivedObject(
            descriptor=ObjectDescriptor(
                name=n, T_world_object=Pose.from_matrix(T), bbox_size=tuple(float(v) for v in size),
                color_rgb=tuple(float(v) for v in colour), parent=(parents or {}).get(n), n_points=len(pts),
            ),
            points=pts,
        )
    scene.hidden_by_arm = [n for n in scene.objects if hidden_by_arm(frame, masks, n)]
    obs, labels = [], []
    for n, m in masks.items():
        if n in scene.objects or n in ROBOT_LABELS:
            continue
        pts = voxel_downsample(cloud_from_mask(frame, m, stride=3), OBSTACLE_VOXEL_M)
        if n == "table" and len(pts):
            scene.table_z = float(np.median(pts[:, 2]))
        if len(pts):
            obs.append(pts)
            labels += [n] * len(pts)
    if obs:
        scene.obstacles = np.vstack(obs)
        scene.obstacle_labels = np.asarray(labels, dtype=object)
    scene.seconds = time.perf_counter() - t0
    return scene


def hidden_by_arm(frame: RGBDFrame, masks: dict[str, np.ndarray], name: str,
                  min_pixels: int = HIDDEN_OUTLINE_PX) -> bool:
    """Is part of `name` cut off by the robot in front of it? Its outline (the pixels just outside its
    mask) runs along the arm's or hand's mask, nearer the camera than the object, for at least
    `min_pixels`: the arm in its working pose hides the top of an upright brush from a camera behind
    it, and the bbox fitted to what shows is centimetres short (a grasp placed by its fractions puts
    the palm into the brush). Only where the segmenter gives the robot's masks (a labelled channel);
    False otherwise."""
    from scipy.ndimage import binary_dilation

    m = masks.get(name)
    arm = [masks[k] for k in ARM_LABELS if k in masks]
    valid = frame.depth > 0
    if m is None or not arm or not (m & valid).any():
        return False
    outline = binary_dilation(m, iterations=2) & ~m & np.logical_or.reduce(arm) & valid
    depth_obj = float(np.median(frame.depth[m & valid]))
    return int(np.sum(frame.depth[outline] < depth_obj)) >= min_pixels
