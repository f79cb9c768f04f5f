"""press_button: push a latching button on a box down with the closed fingers.

Scene: a fixed box ("button_box") on the table with a button ("button") on its top face, on a
vertical slide joint ("button_slide", positive = pressed in). The button latches: joint friction
holds it where it was pushed (like a latching push switch), so a press is visible in the final
state. Seen: round red button; unseen: round or square, other colours/sizes, rotated box,
distractors. Success: the button is pushed in by at least 60 % of its travel.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from core.geometry import Pose
from sim.script import Move, Release, Script, Wait
from sim.tasks.base import SceneParams, Variant
from sim.tasks.common import (
    FINGERTIP_BEYOND_TCP,
    ArticulatedTask,
    KeepOut,
    add_distractors,
    add_geom,
    add_views,
    exclude_contacts,
    gripper_rotation,
    human_duration,
    jitter_pose,
    pose,
    sample_choice,
    sample_color,
    sample_placement,
    sample_scale,
)

if TYPE_CHECKING:
    from sim.world import SimWorld

TRAVEL = 0.012  # how far the button can be pushed in, m
PROTRUSION = 0.016  # how far the released button stands out of the box top


class PressButton(ArticulatedTask):
    name = "press_button"
    goal_text = "press the button"
    paraphrases = ("push the button", "push the button down", "press down on the button")
    object_labels = ("button_box", "button")
    camera_names = ("cam_front", "cam_left", "cam_right", "cam_top")
    episode_seconds = 15.0

    def build(self, spec: mujoco.MjSpec, variant: Variant, rng: np.random.Generator) -> SceneParams:
        s = sample_scale(rng, variant)
        bx, by = 0.13 * s, 0.11 * s  # box footprint (x, y)
        bh = float(np.clip(0.06 * s, 0.04, 0.08))  # box height
        place = sample_placement(
            rng, variant, ((0.50, 0.58), (-0.12, 0.12)), ((0.42, 0.66), (-0.30, 0.30)), 0.25, math.pi
        )
        shape = "round" if variant == Variant.seen else sample_choice(rng, ("round", "square"))
        radius = float(np.clip(0.024 * s, 0.018, 0.032))  # button radius / half side
        box_rgba = sample_color(rng, variant, "grey")
        button_rgba = sample_color(rng, variant, "red")

        box = spec.worldbody.add_body(name="button_box", pos=[place.x, place.y, 0.0], quat=place.quat_wxyz())
        add_geom(box, "box", [bx / 2, by / 2, bh / 2], [0, 0, bh / 2], box_rgba, mass=1.0)
        # A collar around the button (part of the box) makes the pressable region obvious.
        add_geom(box, "cylinder", [radius + 0.006, 0.002], [0, 0, bh + 0.002], [0.15, 0.15, 0.15, 1.0], mass=0.01)
        half_h = 0.012  # the button's half height (part of it sits inside the box)
        button = box.add_body(name="button", pos=[0.0, 0.0, bh + PROTRUSION - half_h])
        button.add_joint(
            name="button_slide", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0.0, 0.0, -1.0], range=[0.0, TRAVEL],
            damping=[5.0, 0.0, 0.0], frictionloss=2.0, armature=0.01,
        )
        if shape == "round":
            add_geom(button, "cylinder", [radius, half_h], [0, 0, 0], button_rgba, mass=0.02)
        else:
            add_geom(button, "box", [radius, radius, half_h], [0, 0, 0], button_rgba, mass=0.02)

        top = place.to_world([0.0, 0.0, bh + PROTRUSION])
        keepouts = [KeepOut(place.x, place.y, math.hypot(bx, by) / 2 + 0.05)]
        exclude_contacts(spec, "button_box", "button")
        distractors = add_distractors(spec, rng, keepouts) if variant == Variant.unseen else []
        add_views(spec, [place.x, place.y, bh], rng, variant, self.camera_names)
        return SceneParams(
            task=self.name,
            variant=variant,
            seed=0,
            values={
                "joint": "button_slide",
                "travel": TRAVEL,
                "threshold": 0.6 * TRAVEL,
                "open_value": TRAVEL,
                "shape": shape,
                "button_radius": radius,
                "button_top": [float(v) for v in top],
                "yaw": place.yaw,
                "scale": s,
                "box_size": [bx, by, bh],
                "pose": [place.x, place.y, place.yaw],
            },
            distractors=distractors,
        )

    # --- scripts -------------------------------------------------------------------------------

    def _press_pose(self, params: SceneParams, height: float, offset: tuple[float, float] = (0.0, 0.0)) -> Pose:
        """Closed hand pointing down, fingertips `height` above the released button's top face."""
        v = params.values
        # Keep the hand's yaw near the Panda's home yaw (fingers closing along -y): a button is
        # round or square, so the wrist need not follow the box's yaw.
        R = gripper_rotation([0.0, 0.0, -1.0], [0.0, -1.0, 0.0])
        top = np.asarray(v["button_top"])
        return pose(R, top + np.array([offset[0], offset[1], height + FINGERTIP_BEYOND_TCP]))

    def solution(self, world: SimWorld, params: SceneParams) -> Script:
        depth = float(params.values["travel"]) + 0.002  # 2 mm into the end stop
        above = self._press_pose(params, 0.10)
        return Script(steps=[
            Release(width=0.0),  # close the fingers: press with the fingertips together
            Move(path=[above], duration=2.5, label="approach"),
            Move(path=[self._press_pose(params, 0.02)], duration=1.0, label="reach"),
            Move(path=[self._press_pose(params, -depth)], duration=1.5, label="press"),
            Wait(duration=0.3),
            Move(path=[self._press_pose(params, 0.08)], duration=1.2, label="retreat"),
        ])

    def demonstration(self, world: SimWorld, params: SceneParams, rng: np.random.Generator) -> Script:
        v = params.values
        r = float(v["button_radius"]) * 0.3
        offset = (float(rng.uniform(-r, r)), float(rng.uniform(-r, r)))
        depth = float(v["travel"]) + float(rng.uniform(0.0, 0.004))
        via = jitter_pose(self._press_pose(params, float(rng.uniform(0.08, 0.14)), offset), rng, 0.015, 0.08)
        steps: list = [
            Move(path=[via], duration=human_duration(rng, 1.5), label="approach"),
            Move(path=[self._press_pose(params, 0.015, offset)], duration=human_duration(rng, 0.8), label="reach"),
        ]
        if rng.random() < 0.5:
            steps.append(Wait(duration=float(rng.uniform(0.1, 0.4))))
        steps += [
            Move(path=[self._press_pose(params, -depth, offset)], duration=human_duration(rng, 0.7), label="press"),
            Wait(duration=float(rng.uniform(0.15, 0.5))),
            Move(path=[jitter_pose(self._press_pose(params, float(rng.uniform(0.06, 0.1)), offset), rng, 0.01, 0.05)],
                 duration=human_duration(rng, 0.9), label="retreat"),
        ]
        return Script(steps=steps)
