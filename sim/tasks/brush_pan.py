"""Brush the pan: grasp a scrubbing brush and scrub the pan's inner surface.

Seen: a 20 cm frying pan (bar handle) and an upright scrubbing brush (7 x 5 cm bristle block,
2 cm square handle). Unseen: pan radius +-30 %, round or flat handles, brush size +-20 % with
another handle type, other colours, poses, and 1-3 distractors. Success: the bristles have
touched at least 60 % of the cells of a 2 cm grid over the pan's inner floor (CoverageTracker,
observed every 10 ms from the moment the task is attached to the world).
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from core.geometry import Pose
from sim.script import Grasp, Move, Release, Script, Wait
from sim.tasks.base import SceneParams, Task, Variant
from sim.tasks.common import KeepOut, add_distractors, add_views, human_duration, sample_color, sample_scale
from sim.tasks.kitchen import (
    BRUSH_HANDLES,
    HANDLE_TYPES,
    BrushGeometry,
    PanGeometry,
    add_brush,
    add_pan,
    brush_geometry,
    pan_geometry,
)
from sim.tasks.queries import (
    CoverageTracker,
    body_pose,
    sample_xy,
    top_down_gripper,
    wrap_half_turn,
)

if TYPE_CHECKING:
    from sim.world import SimWorld

SUCCESS_COVERAGE = 0.6
PRESS = 0.003  # how far below the floor surface the bristles are commanded (a light press)


def _yaw_of(p: Pose) -> float:
    x = p.rotation.as_matrix()[:, 0]
    return math.atan2(x[1], x[0])


def pan_from_values(values: dict) -> PanGeometry:
    return pan_geometry(float(values["pan_radius"]), str(values["pan_handle"]))


def brush_from_values(values: dict) -> BrushGeometry:
    return brush_geometry(float(values["brush_scale"]), str(values["brush_handle"]))


def brushing_steps(
    world: SimWorld, pan: PanGeometry, brush: BrushGeometry, *, rng: np.random.Generator | None = None,
    speed: float = 1.0, put_back: Pose | None = None, pan_name: str = "pan", brush_name: str = "brush",
    scrub_pace: float = 0.9,
) -> list:
    """Grasp the upright brush by its handle, scrub the pan's floor in rows, lift it out again and
    (if `put_back` is given) stand it at that gripper pose. With `rng`, a person's variation.
    `scrub_pace`: seconds per scrubbing via point at speed 1."""
    b = body_pose(world, brush_name)
    frac = 0.6 if rng is None else float(rng.uniform(0.55, 0.7))
    grasp_p = b.apply(brush.handle_point(frac)[None, :])[0]
    grasp = top_down_gripper(grasp_p, wrap_half_turn(_yaw_of(b)))
    T_grip_brush = grasp.inverse() @ b
    pan_pose = body_pose(world, pan_name)
    hx, hy, _ = brush.head_half
    # Rows run along the gripper's closing axis (the brush's y): the drag of the bristles then pushes
    # the handle against the finger pads instead of twisting it about the closing axis; the block's
    # long side (x) lies across the rows and sweeps a wide swath. The pan is round, so the rows can
    # keep the brush's heading from the grasp and the wrist need not turn at all.
    R_brush = _rz(_yaw_of(b))
    row_yaw = _yaw_of(b) + math.pi / 2.0
    along, across = hy, hx  # half extents of the block along and across the rows (pan frame x, y)
    r_ok = pan.radius - 0.008
    row_gap = 1.5 * across
    y_max = max(r_ok - across, 0.0)
    n_rows = max(2, int(math.ceil(2.0 * y_max / row_gap)) + 1)
    ys = np.linspace(-y_max, y_max, n_rows)
    if rng is not None:
        ys = ys + rng.normal(0.0, 0.003, len(ys))
    floor_z = pan.floor - PRESS
    path_local: list[np.ndarray] = []
    for i, y in enumerate(ys):
        x_max = max(math.sqrt(max(r_ok**2 - (abs(y) + across) ** 2, 0.0)) - along, 0.005)
        xs = (-x_max, x_max) if i % 2 == 0 else (x_max, -x_max)
        for x in xs:
            path_local.append(np.array([x, y, floor_z]))
    # then once around, close to the wall, for the rim the rows cannot reach
    rc = r_ok - math.hypot(along, across)
    if rc > 0.005:
        a0 = math.atan2(path_local[-1][1], path_local[-1][0])
        for a in a0 + np.linspace(0.0, 2.0 * math.pi, 25):
            path_local.append(np.array([rc * math.cos(a), rc * math.sin(a), floor_z]))
    T_world_pan_flat = Pose.from_rotation(_rz(row_yaw), pan_pose.translation)

    def grip_for(local: np.ndarray) -> Pose:
        p_world = T_world_pan_flat.apply(local[None, :])[0]
        return Pose.from_rotation(R_brush, p_world) @ T_grip_brush.inverse()

    scrub = [grip_for(p) for p in path_local]
    above_first = grip_for(path_local[0] + np.array([0.0, 0.0, 0.08]))
    above_last = grip_for(path_local[-1] + np.array([0.0, 0.0, 0.1]))
    lift_z = 0.12
    pre = Pose.from_rotation(grasp.rotation, grasp.translation + np.array([0.0, 0.0, 0.1]))
    lifted = Pose.from_rotation(grasp.rotation, grasp.translation + np.array([0.0, 0.0, lift_z]))

    steps: list = [Release(width=0.08)]

    def move(path: list[Pose], duration: float, label: str) -> None:
        steps.append(Move(path=path, duration=duration / speed, label=label))
        if rng is not None and rng.random() < 0.4:
            steps.append(Wait(duration=float(rng.uniform(0.2, 0.6))))

    move([pre], 2.5, "reach")
    move([grasp], 1.2, "approach")
    steps.append(Grasp(target=brush_name, width=brush.handle_width, force=70.0))
    move([lifted], 1.2, "lift")
    move([above_first], 2.5, "transport")
    move([scrub[0]], 1.2, "lower")
    move(scrub[1:], scrub_pace * len(scrub), "scrub")
    move([above_last], 1.0, "lift_out")
    if put_back is not None:
        down = put_back
        up = Pose.from_rotation(down.rotation, down.translation + np.array([0.0, 0.0, 0.1]))
        move([up], 2.5, "return")
        move([down], 1.2, "put_down")
        steps.append(Release(width=0.08))
        move([up], 1.0, "retreat")
    return steps


def _rz(yaw: float):
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("z", yaw)


class BrushPan(Task):
    name = "brush_pan"
    goal_text = "brush the pan"
    paraphrases = ("scrub the pan with the brush", "clean the inside of the pan with the brush",
                   "use the brush to scrub the frying pan")
    object_labels = ("pan", "brush")
    camera_names = ("cam_front", "cam_left", "cam_right", "cam_top")
    episode_seconds = 45.0

    def __init__(self) -> None:
        self._trackers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def build(self, spec: mujoco.MjSpec, variant: Variant, rng: np.random.Generator) -> SceneParams:
        unseen = variant == Variant.unseen
        radius = float(np.clip(0.1 * sample_scale(rng, variant), 0.075, 0.125))
        handle = str(rng.choice(HANDLE_TYPES)) if unseen else "bar"
        brush_scale = float(rng.uniform(0.8, 1.2)) if unseen else float(rng.uniform(0.97, 1.03))
        brush_handle = str(rng.choice(BRUSH_HANDLES)) if unseen else "bar"
        pan = pan_geometry(radius, handle)
        brush = brush_geometry(brush_scale, brush_handle)
        if unseen:
            pan_xy = sample_xy(rng, (0.48, 0.6), (-0.05, 0.25), radius=radius)
            brush_xy = sample_xy(rng, (0.38, 0.62), (-0.3, 0.3), [(*pan_xy, radius + 0.14)], radius=0.05)
            pan_yaw = float(rng.uniform(-math.pi, math.pi))
            brush_yaw = float(rng.uniform(-math.pi / 2, math.pi / 2))
        else:
            pan_xy = sample_xy(rng, (0.5, 0.56), (0.06, 0.12), radius=radius)
            brush_xy = sample_xy(rng, (0.44, 0.5), (-0.2, -0.14), radius=0.05)
            pan_yaw = float(math.pi + rng.uniform(-0.3, 0.3))  # handle towards the robot's side
            brush_yaw = float(rng.uniform(-0.3, 0.3))
        add_pan(spec, "pan", pan, pan_xy, pan_yaw, sample_color(rng, variant, "grey"), mass=0.6)
        add_brush(spec, "brush", brush, brush_xy, brush_yaw, sample_color(rng, variant, "blue"))
        distractors: list[str] = []
        if unseen:
            keep = [KeepOut(*pan_xy, radius + 0.16), KeepOut(*brush_xy, 0.07)]
            distractors = add_distractors(spec, rng, keep)
        focus = [(pan_xy[0] + brush_xy[0]) / 2.0, (pan_xy[1] + brush_xy[1]) / 2.0, 0.04]
        add_views(spec, focus, rng, variant)
        return SceneParams(task=self.name, variant=variant, seed=0,
                           values={"pan_radius": radius, "pan_handle": handle, "brush_scale": brush_scale,
                                   "brush_handle": brush_handle, "pan_xy": list(pan_xy), "brush_xy": list(brush_xy)},
                           distractors=distractors)

    # -------------------------------------------------------------- judging

    def tracker(self, world: SimWorld, params: SceneParams) -> CoverageTracker:
        """The coverage observer of this world (installed on first use)."""
        tr = self._trackers.get(world)
        if tr is None:
            brush = brush_from_values(params.values)
            tr = CoverageTracker(world, "pan", "brush_head", float(params.values["pan_radius"]), brush.head_half)
            world.add_step_callback(tr)
            self._trackers[world] = tr
        return tr

    def attach(self, world: SimWorld, params: SceneParams) -> None:
        self.tracker(world, params)

    def coverage(self, world: SimWorld, params: SceneParams) -> float:
        return self.tracker(world, params).coverage

    def success(self, world: SimWorld, params: SceneParams) -> bool:
        upright = body_pose(world, "pan").rotation.as_matrix()[2, 2] > 0.95
        return bool(upright and self.coverage(world, params) >= SUCCESS_COVERAGE)

    # -------------------------------------------------------------- scripts

    def _put_back(self, world: SimWorld, params: SceneParams) -> Pose:
        brush = brush_from_values(params.values)
        b = body_pose(world, "brush")
        p = b.apply(brush.handle_point(0.6)[None, :])[0] + np.array([0.0, 0.0, 0.004])
        return top_down_gripper(p, wrap_half_turn(_yaw_of(b)))

    def solution(self, world: SimWorld, params: SceneParams) -> Script:
        self.tracker(world, params)
        steps = brushing_steps(world, pan_from_values(params.values), brush_from_values(params.values),
                               put_back=self._put_back(world, params))
        return Script(steps=[*steps, Wait(duration=0.5)])

    def demonstration(self, world: SimWorld, params: SceneParams, rng: np.random.Generator) -> Script:
        self.tracker(world, params)
        steps = brushing_steps(world, pan_from_values(params.values), brush_from_values(params.values), rng=rng,
                               speed=1.0 / human_duration(rng, 1.0), put_back=self._put_back(world, params))
        return Script(steps=[*steps, Wait(duration=0.5)])
