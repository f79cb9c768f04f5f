"""Put the mango on the plate: a pick-and-place of a fruit onto a plate.

Seen: a mango-like ellipsoid (about 9 x 6 x 5.5 cm) and a round white plate, mango on the right,
plate on the left. Unseen: the fruit may be a sphere, cube or upright cylinder, sizes +-30 % (the
grasp width stays under 6.6 cm), the plate may be square, other colours, both placed anywhere in
the workspace, plus 1-3 distractors.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from core.geometry import Pose
from sim.script import Script, Wait
from sim.tasks.base import SceneParams, Task, Variant
from sim.tasks.common import (
    KeepOut,
    add_distractors,
    add_views,
    human_duration,
    jitter_pose,
    sample_color,
    sample_scale,
)
from sim.tasks.objects import (
    COLOURS,
    FRUIT_SHAPES,
    PLATE_THICKNESS,
    add_fruit,
    add_plate,
    fruit_height,
)
from sim.tasks.queries import (
    body_pose,
    body_speed,
    in_contact,
    pick_place_steps,
    sample_xy,
    top_down_gripper,
    wrap_half_turn,
)

if TYPE_CHECKING:
    from sim.world import SimWorld

MAX_GRASP_HALF = 0.033


class PutFruitOnPlate(Task):
    name = "put_fruit_on_plate"
    goal_text = "put the mango on the plate"
    paraphrases = ("place the mango onto the plate", "move the mango to the plate", "set the fruit on the plate")
    object_labels = ("mango", "plate")
    camera_names = ("cam_front", "cam_left", "cam_right", "cam_top")
    episode_seconds = 20.0

    def build(self, spec: mujoco.MjSpec, variant: Variant, rng: np.random.Generator) -> SceneParams:
        unseen = variant == Variant.unseen
        shape = str(rng.choice(FRUIT_SHAPES)) if unseen else "ellipsoid"
        sc = sample_scale(rng, variant)
        if shape == "ellipsoid":
            size = [0.045 * sc, min(0.031 * sc, MAX_GRASP_HALF), min(0.027 * sc, 0.032)]
        elif shape == "cube":
            a = min(0.028 * sc, MAX_GRASP_HALF)
            size = [a, a, a * 0.9]
        elif shape == "cylinder":
            a = min(0.028 * sc, MAX_GRASP_HALF)
            size = [a, a, 0.035 * sc]
        else:
            a = min(0.03 * sc, MAX_GRASP_HALF)
            size = [a, a, a]
        plate_shape = str(rng.choice(["round", "square"])) if unseen else "round"
        plate_r = 0.1 * sample_scale(rng, variant) * (0.9 if plate_shape == "square" else 1.0)
        if unseen:
            plate_xy = sample_xy(rng, (0.42, 0.62), (-0.28, 0.28), radius=plate_r)
            fruit_xy = sample_xy(rng, (0.38, 0.65), (-0.3, 0.3), [(*plate_xy, plate_r)], radius=0.08)
        else:
            plate_xy = sample_xy(rng, (0.45, 0.58), (0.1, 0.2), radius=plate_r)
            fruit_xy = sample_xy(rng, (0.42, 0.56), (-0.2, -0.1), [(*plate_xy, plate_r)], radius=0.06)
        fruit_yaw = float(rng.uniform(-math.pi / 2, math.pi / 2)) if unseen else float(rng.uniform(-0.5, 0.5))
        plate_yaw = float(rng.uniform(-math.pi, math.pi))
        fruit_rgba = COLOURS["mango"] if not unseen else sample_color(rng, variant, "orange")
        plate_rgba = sample_color(rng, variant, "white")
        add_fruit(spec, "mango", shape, size, fruit_xy, fruit_yaw, fruit_rgba)
        add_plate(spec, "plate", plate_shape, plate_r, plate_xy, plate_yaw, plate_rgba)
        distractors: list[str] = []
        if unseen:
            keep = [KeepOut(*fruit_xy, 0.07), KeepOut(*plate_xy, plate_r + 0.02)]
            distractors = add_distractors(spec, rng, keep, avoid_colors=("orange", "white"))
        focus = [(fruit_xy[0] + plate_xy[0]) / 2.0, (fruit_xy[1] + plate_xy[1]) / 2.0, 0.05]
        add_views(spec, focus, rng, variant)
        return SceneParams(
            task=self.name, variant=variant, seed=0,
            values={"fruit_shape": shape, "fruit_size": size, "plate_shape": plate_shape, "plate_radius": plate_r,
                    "fruit_xy": list(fruit_xy), "plate_xy": list(plate_xy)},
            distractors=distractors,
        )

    # -------------------------------------------------------------- judging

    def fruit_on_plate(self, world: SimWorld, params: SceneParams) -> bool:
        fruit = body_pose(world, "mango")
        plate = body_pose(world, "plate")
        local = plate.inverse().apply(fruit.translation[None, :])[0]
        r = float(params.values["plate_radius"])
        if params.values["plate_shape"] == "round":
            inside = math.hypot(local[0], local[1]) < r
        else:
            inside = abs(local[0]) < r and abs(local[1]) < r
        h = fruit_height(params.values["fruit_shape"], params.values["fruit_size"])
        resting_low = local[2] < PLATE_THICKNESS / 2.0 + h  # not held up in the air
        return bool(inside and resting_low and in_contact(world, "mango", "plate"))

    def success(self, world: SimWorld, params: SceneParams) -> bool:
        return self.fruit_on_plate(world, params) and body_speed(world, "mango") < 0.05

    # -------------------------------------------------------------- scripts

    def _grasp(self, world: SimWorld, params: SceneParams, along: float = 0.0, yaw_offset: float = 0.0) -> Pose:
        fruit = body_pose(world, "mango")
        shape = params.values["fruit_shape"]
        x_axis = fruit.rotation.as_matrix()[:, 0]
        yaw = math.atan2(x_axis[1], x_axis[0]) if shape in ("ellipsoid", "cube") else 0.0
        h = fruit_height(shape, params.values["fruit_size"])
        p = fruit.translation.copy()
        p[2] = max(h * 0.5, 0.02)
        p[:2] += along * x_axis[:2]
        return top_down_gripper(p, wrap_half_turn(yaw + yaw_offset))

    def _place(self, world: SimWorld, params: SceneParams, grasp: Pose, offset: np.ndarray | None = None) -> Pose:
        plate = body_pose(world, "plate")
        p = plate.translation.copy()
        if offset is not None:
            p[:2] += offset
        lift_above_bottom = grasp.translation[2]  # TCP height above the fruit's bottom (table) at the grasp
        p[2] = PLATE_THICKNESS + lift_above_bottom + 0.012
        return Pose.from_rotation(grasp.rotation, p)

    def _width(self, params: SceneParams) -> float:
        return 2.0 * float(params.values["fruit_size"][1])

    def solution(self, world: SimWorld, params: SceneParams) -> Script:
        grasp = self._grasp(world, params)
        place = self._place(world, params, grasp)
        steps = pick_place_steps(grasp, place, "mango", self._width(params))
        return Script(steps=[*steps, Wait(duration=0.5)])

    def demonstration(self, world: SimWorld, params: SceneParams, rng: np.random.Generator) -> Script:
        along = float(rng.uniform(-0.01, 0.01)) if params.values["fruit_shape"] == "ellipsoid" else 0.0
        grasp = self._grasp(world, params, along=along, yaw_offset=float(rng.normal(0.0, 0.12)))
        place = self._place(world, params, grasp, offset=rng.uniform(-0.02, 0.02, 2))
        mid = (grasp.translation + place.translation) / 2.0 + np.array([0.0, 0.0, float(rng.uniform(0.12, 0.2))])
        via = [jitter_pose(Pose.from_rotation(grasp.rotation, mid), rng, 0.02, 0.08)]
        pauses = {k: float(rng.uniform(0.2, 0.7)) for k in ("approach", "lower") if rng.random() < 0.6}
        speed = 1.0 / human_duration(rng, 1.0)
        steps = pick_place_steps(grasp, place, "mango", self._width(params), via=via, speed=speed, pauses=pauses,
                                 lift=float(rng.uniform(0.08, 0.14)))
        return Script(steps=[*steps, Wait(duration=0.5)])
