"""turn_faucet: turn a faucet on by rotating its handle a quarter turn.

Scene: a faucet ("faucet": base plate, column, spout) standing on the table with its spout towards
the robot (object frame -x). Its handle ("faucet_handle") sits on top of the column on a vertical
hinge ("faucet_handle_hinge"; positive = towards "on", counter-clockwise seen from above). Seen: a
lever pointing towards the robot, grasped from above near its end and swung about the column's
axis; unseen: a lever or a winged knob (turned in place), other sizes, colours and poses, plus
distractors. Success: the handle is turned by at least 50 deg.

`add_faucet` builds the faucet alone, for reuse by other tasks (wash_pan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from core.geometry import Pose
from sim.script import Grasp, Move, Release, Script, Wait
from sim.tasks.base import SceneParams, Variant
from sim.tasks.common import (
    CYLINDER_Z_TO_X,
    HANDLE_FRICTION,
    ArticulatedTask,
    KeepOut,
    Placement,
    add_distractors,
    add_geom,
    add_views,
    arc_path,
    exclude_contacts,
    gripper_rotation,
    human_duration,
    jitter_pose,
    offset_along_approach,
    pose,
    retreat,
    sample_choice,
    sample_color,
    sample_placement,
    sample_scale,
)

if TYPE_CHECKING:
    from sim.world import SimWorld

ON_ANGLE = math.radians(50.0)  # turned at least this far counts as "on"
MAX_ANGLE = math.radians(95.0)  # the handle's end stop
TURN_ANGLE = math.radians(75.0)  # how far the scripted solution turns it


@dataclass(frozen=True)
class FaucetParts:
    """Names and world geometry of a faucet built by `add_faucet` (all positions in the world)."""

    body: str  # fixed part: base, column, spout
    handle: str  # the moving handle (lever or winged knob)
    joint: str  # the handle's hinge; 0 = off, positive = turned on
    handle_kind: str  # "lever" | "knob"
    pivot: tuple[float, float, float]  # a point on the hinge axis at the handle's height
    axis: tuple[float, float, float]  # the hinge axis (world +z)
    rest_dir: tuple[float, float, float]  # unit vector from the axis along the lever/wing when off
    grasp_point: tuple[float, float, float]  # the nominal place to pinch the handle
    grasp_radius: float  # distance of grasp_point from the axis (0 for a knob)
    handle_thickness: float  # width the fingers close on, m
    handle_length: float  # lever length from the axis (knob: wing half length), m
    spout_tip: tuple[float, float, float]  # where the water would come out
    on_angle: float = ON_ANGLE
    max_angle: float = MAX_ANGLE


def add_faucet(
    spec: mujoco.MjSpec,
    pos: tuple[float, float, float],
    yaw: float = 0.0,
    *,
    handle: str = "lever",
    scale: float = 1.0,
    thickness: float = 0.02,
    body_rgba: tuple[float, ...] | list[float] = (0.75, 0.76, 0.78, 1.0),
    handle_rgba: tuple[float, ...] | list[float] = (0.85, 0.86, 0.88, 1.0),
    name: str = "faucet",
    parent: mujoco.MjsBody | None = None,
) -> FaucetParts:
    """Add a faucet standing at `pos` (its base on the surface at height pos[2]) turned by `yaw`.

    The spout points along the faucet's -x (towards the robot at yaw 0), the handle's rest
    direction too. `handle` is "lever" (a bar swung about the column axis) or "knob" (a hub with a
    flat wing on top, turned in place). `thickness` (1.5-3 cm) is what the fingers close on. Bodies
    are named `name` and `name + "_handle"`, the hinge `name + "_handle_hinge"`; contacts between the
    handle and the fixed part are excluded. `parent` (default: the world) lets a sink or counter
    carry the faucet; `pos`/`yaw` are then in the parent's frame and the returned world geometry
    assumes that frame is the world's (true for a fixed parent at the origin without rotation).
    """
    if handle not in ("lever", "knob"):
        raise ValueError(f"faucet handle must be 'lever' or 'knob', got {handle!r}")
    if not 0.015 <= thickness <= 0.03:
        raise ValueError(f"faucet handle thickness must be 0.015-0.03 m (graspable), got {thickness}")
    place = Placement(float(pos[0]), float(pos[1]), float(yaw))
    z0 = float(pos[2])
    root = parent if parent is not None else spec.worldbody
    s = float(scale)
    col_r = 0.018 * s
    col_h = float(np.clip(0.17 * s, 0.13, 0.22))
    spout_len = 0.12 * s
    spout_z = col_h - 0.06
    body = root.add_body(name=name, pos=[place.x, place.y, z0], quat=place.quat_wxyz())
    add_geom(body, "cylinder", [0.04 * s, 0.005], [0, 0, 0.005], body_rgba, mass=0.5)
    add_geom(body, "cylinder", [col_r, col_h / 2], [0, 0, col_h / 2], body_rgba, mass=0.3)
    add_geom(body, "cylinder", [0.011, spout_len / 2], [-spout_len / 2, 0, spout_z], body_rgba, quat=CYLINDER_Z_TO_X,
             mass=0.1)
    add_geom(body, "cylinder", [0.011, 0.015], [-spout_len + 0.011, 0, spout_z - 0.015], body_rgba, mass=0.02)

    hub_h = 0.014
    lever_z = col_h + hub_h  # height of the handle's centre above the faucet's base
    hbody = body.add_body(name=f"{name}_handle", pos=[0.0, 0.0, lever_z])
    hbody.add_joint(
        name=f"{name}_handle_hinge", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0.0, 0.0, 1.0],
        range=[0.0, MAX_ANGLE], damping=[0.05, 0.0, 0.0], frictionloss=0.03, armature=0.002,
    )
    add_geom(hbody, "cylinder", [col_r + 0.004, hub_h / 2], [0, 0, -hub_h / 2 + 0.002], handle_rgba, mass=0.03)
    if handle == "lever":
        length = float(np.clip(0.11 * s, 0.08, 0.14))
        add_geom(hbody, "box", [length / 2, thickness / 2, 0.007], [-length / 2, 0, 0.004], handle_rgba,
                 mass=0.05, friction=HANDLE_FRICTION)
        add_geom(hbody, "sphere", [thickness / 2 + 0.002], [-length, 0, 0.004], handle_rgba, mass=0.01)
        grasp_r = length - 0.03
    else:
        length = float(np.clip(0.035 * s, 0.03, 0.045))  # wing half length
        add_geom(hbody, "box", [length, thickness / 2, 0.014], [0, 0, 0.016], handle_rgba, mass=0.03,
                 friction=HANDLE_FRICTION)
        grasp_r = 0.0
    exclude_contacts(spec, name, f"{name}_handle")

    R = place.rotation()
    grip_z = 0.004 if handle == "lever" else 0.02  # centre of what the fingers close on
    pivot = place.to_world([0.0, 0.0, lever_z + grip_z], z0=z0)
    rest = R.apply([-1.0, 0.0, 0.0])
    grasp = pivot + rest * grasp_r
    tip = place.to_world([-spout_len + 0.011, 0.0, spout_z - 0.03], z0=z0)
    return FaucetParts(
        body=name, handle=f"{name}_handle", joint=f"{name}_handle_hinge", handle_kind=handle,
        pivot=tuple(map(float, pivot)), axis=(0.0, 0.0, 1.0), rest_dir=tuple(map(float, rest)),
        grasp_point=tuple(map(float, grasp)), grasp_radius=float(grasp_r), handle_thickness=float(thickness),
        handle_length=float(length), spout_tip=tuple(map(float, tip)),
    )


def faucet_grasp_pose(parts: FaucetParts, radius: float | None = None) -> Pose:
    """Top-down pinch across the lever (or wing) at `radius` from the axis (default: the nominal grasp)."""
    rest = np.asarray(parts.rest_dir)
    r = parts.grasp_radius if radius is None else float(radius)
    closing = np.cross([0.0, 0.0, 1.0], rest)
    closing = -closing if closing[1] > 0 else closing  # keep the wrist near the Panda's home angle
    return pose(gripper_rotation([0.0, 0.0, -1.0], closing), np.asarray(parts.pivot) + rest * r)


def faucet_turn_path(parts: FaucetParts, grasp: Pose, angle: float, n: int = 10) -> list[Pose]:
    """The held gripper's path while turning the handle by `angle` about its axis."""
    return arc_path(grasp, parts.pivot, parts.axis, angle, n)


class TurnFaucet(ArticulatedTask):
    name = "turn_faucet"
    goal_text = "turn on the faucet"
    paraphrases = ("turn the faucet on", "open the tap", "turn the tap handle to start the water")
    object_labels = ("faucet", "faucet_handle")
    camera_names = ("cam_front", "cam_left", "cam_right", "cam_top")
    episode_seconds = 15.0

    def build(self, spec: mujoco.MjSpec, variant: Variant, rng: np.random.Generator) -> SceneParams:
        s = sample_scale(rng, variant)
        place = sample_placement(
            rng, variant, ((0.52, 0.60), (-0.08, 0.08)), ((0.46, 0.64), (-0.22, 0.22)), 0.2, 0.5
        )
        handle = "lever" if variant == Variant.seen else sample_choice(rng, ("lever", "knob"))
        thick = 0.02 if variant == Variant.seen else float(rng.uniform(0.016, 0.028))
        parts = add_faucet(
            spec, (place.x, place.y, 0.0), place.yaw, handle=handle, scale=s, thickness=thick,
            body_rgba=sample_color(rng, variant, "grey"), handle_rgba=sample_color(rng, variant, "white"),
        )
        keepouts = [KeepOut(place.x, place.y, 0.06 * s + 0.12 * s)]
        distractors = add_distractors(spec, rng, keepouts) if variant == Variant.unseen else []
        add_views(spec, [place.x, place.y, parts.pivot[2] * 0.6], rng, variant, self.camera_names)
        return SceneParams(
            task=self.name,
            variant=variant,
            seed=0,
            values={
                "joint": parts.joint,
                "threshold": ON_ANGLE,
                "open_value": math.radians(80.0),
                "faucet": {k: (list(v) if isinstance(v, tuple) else v) for k, v in parts.__dict__.items()},
                "handle": handle,
                "handle_thickness": thick,
                "scale": s,
                "pose": [place.x, place.y, place.yaw],
            },
            distractors=distractors,
        )

    @staticmethod
    def _parts(params: SceneParams) -> FaucetParts:
        d = dict(params.values["faucet"])
        return FaucetParts(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    def solution(self, world: SimWorld, params: SceneParams) -> Script:
        parts = self._parts(params)
        g = faucet_grasp_pose(parts)
        turn = faucet_turn_path(parts, g, TURN_ANGLE, 10)
        return Script(steps=[
            Release(width=0.08),
            Move(path=[offset_along_approach(g, 0.10)], duration=2.5, label="approach"),
            Move(path=[g], duration=1.2, label="reach"),
            Grasp(target=parts.handle, width=parts.handle_thickness),
            Move(path=turn, duration=2.5, label="turn"),
            *retreat(turn[-1], 0.08, 1.2, lift=0.0),
        ])

    def demonstration(self, world: SimWorld, params: SceneParams, rng: np.random.Generator) -> Script:
        parts = self._parts(params)
        r = parts.grasp_radius
        radius = r + float(rng.uniform(-0.015, 0.02)) if r > 0 else 0.0
        g = jitter_pose(faucet_grasp_pose(parts, radius), rng, 0.002, 0.04)
        via = jitter_pose(offset_along_approach(g, float(rng.uniform(0.08, 0.14))), rng, 0.015, 0.08)
        angle = math.radians(float(rng.uniform(65.0, 85.0)))
        steps: list = [
            Move(path=[via], duration=human_duration(rng, 1.4), label="approach"),
            Move(path=[g], duration=human_duration(rng, 0.8), label="reach"),
        ]
        if rng.random() < 0.5:
            steps.append(Wait(duration=float(rng.uniform(0.1, 0.4))))
        steps += [
            Grasp(target=parts.handle, width=parts.handle_thickness),
            Move(path=faucet_turn_path(parts, g, angle, 10), duration=human_duration(rng, 1.5), label="turn"),
        ]
        if rng.random() < 0.4:
            steps.append(Wait(duration=float(rng.uniform(0.1, 0.3))))
        end = faucet_turn_path(parts, g, angle, 1)[-1]
        steps += retreat(end, float(rng.uniform(0.06, 0.1)), human_duration(rng, 0.9), lift=0.0)
        return Script(steps=steps)
