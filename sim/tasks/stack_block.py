"""Stack the red block on the blue block.

Seen: two 4.5 cm cubes, red and blue, side by side in front of the robot. Unseen: edges +-30 %
(3.2-5.8 cm), other shades of red and blue, anywhere in the workspace at any yaw, plus 1-3 other
blocks in other colours (block_green, block_yellow, ...) as distractors.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from core.geometry import Pose
from sim.script import Script, Wait
from sim.tasks.base import SceneParams, Task, Variant
from sim.tasks.common import PALETTE, add_views, human_duration, jitter_pose, sample_scale
from sim.tasks.objects import (
    add_block,
)
from sim.tasks.queries import (
    body_pose,
    body_speed,
    in_contact,
    pick_place_steps,
    sample_xy,
    top_down_gripper,
)

if TYPE_CHECKING:
    from sim.world import SimWorld

DISTRACTOR_COLOURS = ("green", "yellow", "purple", "orange", "white")


def _shade(rng: np.random.Generator, name: str, jitter: float) -> list[float]:
    rgb = np.clip(np.asarray(PALETTE[name][:3]) + rng.uniform(-jitter, jitter, 3), 0.0, 1.0)
    return [*map(float, rgb), 1.0]


def _yaw_of(p: Pose) -> float:
    x = p.rotation.as_matrix()[:, 0]
    return math.atan2(x[1], x[0])


def _quarter(yaw: float) -> float:
    """A cube looks the same every quarter turn: map yaw into [-pi/4, pi/4)."""
    return (yaw + math.pi / 4.0) % (math.pi / 2.0) - math.pi / 4.0


class StackBlock(Task):
    name = "stack_block"
    goal_text = "stack the red block on the blue block"
    paraphrases = ("put the red block on top of the blue block", "place the red cube onto the blue cube",
                   "stack red on blue")
    object_labels = ("block_red", "block_blue")
    camera_names = ("cam_front", "cam_left", "cam_right", "cam_top")
    episode_seconds = 20.0

    def build(self, spec: mujoco.MjSpec, variant: Variant, rng: np.random.Generator) -> SceneParams:
        unseen = variant == Variant.unseen
        red_edge = 0.045 * sample_scale(rng, variant)
        blue_edge = 0.045 * sample_scale(rng, variant)
        jitter = 0.04 if not unseen else 0.12
        if unseen:
            blue_xy = sample_xy(rng, (0.4, 0.65), (-0.3, 0.3), radius=0.05)
            red_xy = sample_xy(rng, (0.38, 0.66), (-0.32, 0.32), [(*blue_xy, 0.05)], radius=0.08)
            yaws = rng.uniform(-math.pi, math.pi, 2)
        else:
            blue_xy = sample_xy(rng, (0.48, 0.56), (0.05, 0.15), radius=0.04)
            red_xy = sample_xy(rng, (0.46, 0.56), (-0.15, -0.05), [(*blue_xy, 0.04)], radius=0.05)
            yaws = rng.uniform(-0.4, 0.4, 2)
        add_block(spec, "block_red", red_edge, red_xy, float(yaws[0]), _shade(rng, "red", jitter))
        add_block(spec, "block_blue", blue_edge, blue_xy, float(yaws[1]), _shade(rng, "blue", jitter))
        distractors: list[str] = []
        if unseen:
            keep = [(*red_xy, 0.06), (*blue_xy, 0.06)]
            n = int(rng.integers(1, 4))
            colours = list(rng.permutation(DISTRACTOR_COLOURS))[:n]
            for c in colours:
                try:
                    xy = sample_xy(rng, (0.35, 0.7), (-0.35, 0.35), keep, radius=0.05)
                except ValueError:
                    continue
                label = f"block_{c}"
                add_block(spec, label, 0.045 * sample_scale(rng, variant), xy, float(rng.uniform(-math.pi, math.pi)),
                          _shade(rng, str(c), 0.04))
                keep.append((*xy, 0.05))
                distractors.append(label)
        focus = [(red_xy[0] + blue_xy[0]) / 2.0, (red_xy[1] + blue_xy[1]) / 2.0, 0.03]
        add_views(spec, focus, rng, variant)
        return SceneParams(task=self.name, variant=variant, seed=0,
                           values={"red_edge": red_edge, "blue_edge": blue_edge,
                                   "red_xy": list(red_xy), "blue_xy": list(blue_xy)},
                           distractors=distractors)

    def success(self, world: SimWorld, params: SceneParams) -> bool:
        red = body_pose(world, "block_red")
        blue = body_pose(world, "block_blue")
        local = blue.inverse().apply(red.translation[None, :])[0]
        half_b = float(params.values["blue_edge"]) / 2.0
        half_r = float(params.values["red_edge"]) / 2.0
        on_top = abs(local[0]) < half_b and abs(local[1]) < half_b
        height_ok = abs(local[2] - (half_b + half_r)) < 0.012
        upright = abs(blue.rotation.as_matrix()[2, 2]) > 0.95
        return bool(on_top and height_ok and upright and in_contact(world, "block_red", "block_blue")
                    and body_speed(world, "block_red") < 0.05)

    def _grasp(self, world: SimWorld, params: SceneParams, yaw_offset: float = 0.0, dz: float = 0.0) -> Pose:
        red = body_pose(world, "block_red")
        edge = float(params.values["red_edge"])
        p = red.translation.copy()
        p[2] = max(edge * 0.5, 0.018) + dz
        return top_down_gripper(p, _quarter(_yaw_of(red) + yaw_offset))

    def _place(self, world: SimWorld, params: SceneParams, grasp: Pose, offset: np.ndarray | None = None) -> Pose:
        blue = body_pose(world, "block_blue")
        p = blue.translation.copy()
        if offset is not None:
            p[:2] += offset
        p[2] = float(params.values["blue_edge"]) + grasp.translation[2] + 0.006
        return top_down_gripper(p, _quarter(_yaw_of(blue)))

    def solution(self, world: SimWorld, params: SceneParams) -> Script:
        grasp = self._grasp(world, params)
        place = self._place(world, params, grasp)
        steps = pick_place_steps(grasp, place, "block_red", float(params.values["red_edge"]))
        return Script(steps=[*steps, Wait(duration=0.5)])

    def demonstration(self, world: SimWorld, params: SceneParams, rng: np.random.Generator) -> Script:
        yaw_offset, dz = float(rng.normal(0.0, 0.08)), float(rng.uniform(-0.003, 0.006))
        grasp = self._grasp(world, params, yaw_offset=yaw_offset, dz=dz)
        place = self._place(world, params, grasp, offset=rng.uniform(-0.004, 0.004, 2))
        mid = (grasp.translation + place.translation) / 2.0 + np.array([0.0, 0.0, float(rng.uniform(0.1, 0.18))])
        via = [jitter_pose(Pose.from_rotation(grasp.rotation, mid), rng, 0.02, 0.06)]
        pauses = {k: float(rng.uniform(0.2, 0.6)) for k in ("approach", "transport", "lower") if rng.random() < 0.5}
        steps = pick_place_steps(grasp, place, "block_red", float(params.values["red_edge"]), via=via,
                                 speed=1.0 / human_duration(rng, 1.0), pauses=pauses)
        return Script(steps=[*steps, Wait(duration=0.5)])
