"""open_drawer: pull a drawer out of a cabinet by its handle.

Scene: a fixed cabinet ("cabinet") on the table, its front (object frame -x) facing the robot, with
one drawer ("drawer", a slide joint "drawer_slide" along the cabinet's -x) in its upper part. The
handle is part of the drawer body: a horizontal bar (seen; unseen: bar or mushroom knob, other
thickness/length). Success: the drawer is out by at least 60 % of its travel.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from core.geometry import Pose
from sim.script import Grasp, Move, Release, Script, Wait
from sim.tasks.base import SceneParams, Variant
from sim.tasks.common import (
    CYLINDER_Z_TO_X,
    CYLINDER_Z_TO_Y,
    HANDLE_FRICTION,
    ArticulatedTask,
    KeepOut,
    Placement,
    add_distractors,
    add_geom,
    add_views,
    exclude_contacts,
    gripper_rotation,
    human_duration,
    jitter_pose,
    keepout_segment,
    linear_path,
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

# The gripper approaches handles pitched down by this much (a horizontal approach at table height
# drives the Panda's wrist into its limits; 45 deg keeps the arm in a comfortable configuration).
APPROACH_PITCH = math.radians(45.0)


class OpenDrawer(ArticulatedTask):
    name = "open_drawer"
    goal_text = "open the drawer"
    paraphrases = ("pull the drawer open", "slide the drawer out of the cabinet", "pull out the drawer")
    object_labels = ("cabinet", "drawer")
    camera_names = ("cam_front", "cam_left", "cam_right", "cam_top")
    episode_seconds = 20.0

    def build(self, spec: mujoco.MjSpec, variant: Variant, rng: np.random.Generator) -> SceneParams:
        s = sample_scale(rng, variant)
        W, D = 0.40 * s, 0.30 * s  # cabinet width (y), depth (x)
        # The height does not scale with the rest: the handle must stay where a Panda standing on
        # the same table can hold it from the front (about 0.3-0.45 m above the table).
        H = float(rng.uniform(0.39, 0.43)) if variant == Variant.seen else float(rng.uniform(0.38, 0.48))
        t = 0.015  # wall thickness
        hd = 0.14 * s  # drawer cavity height
        zl = H - t - hd  # top of the closed lower part
        place = sample_placement(
            rng, variant, ((0.78, 0.82), (-0.08, 0.08)), ((0.76, 0.84), (-0.15, 0.15)), 0.12, 0.35
        )
        # Keep the front face where the arm pulls comfortably: x_front in [0.66, 0.74].
        x_front = float(place.to_world([-D / 2, 0.0, 0.0])[0])
        place = Placement(place.x + float(np.clip(0.70 - x_front, -0.06, 0.06)), place.y, place.yaw)
        handle = "bar" if variant == Variant.seen else sample_choice(rng, ("bar", "knob"))
        thick = 0.02 if variant == Variant.seen else float(rng.uniform(0.016, 0.028))
        bar_len = float(np.clip(0.12 * s, 0.08, 0.16))
        standoff = 0.045  # bar centre in front of the drawer face (room for the fingers)
        cab_rgba = sample_color(rng, variant, "brown")
        drawer_rgba = sample_color(rng, variant, "white")
        handle_rgba = sample_color(rng, variant, "grey")

        cab = spec.worldbody.add_body(name="cabinet", pos=[place.x, place.y, 0.0], quat=place.quat_wxyz())
        add_geom(cab, "box", [D / 2, W / 2, zl / 2], [0, 0, zl / 2], cab_rgba)  # closed lower part
        add_geom(cab, "box", [D / 2, W / 2, t / 2], [0, 0, H - t / 2], cab_rgba)  # top
        side_h = (hd + 0.002) / 2
        for sgn in (-1, 1):
            add_geom(cab, "box", [D / 2, t / 2, side_h], [0, sgn * (W / 2 - t / 2), zl + side_h], cab_rgba)
        add_geom(cab, "box", [t / 2, W / 2 - t, side_h], [D / 2 - t / 2, 0, zl + side_h], cab_rgba)  # back

        # The drawer body's origin is the centre of its front face, closed position.
        tf = 0.018  # front panel thickness
        wi = W / 2 - t - 0.003  # half inner width
        hh = hd / 2 - 0.003  # half drawer height
        depth = D - t - 0.01
        drawer = cab.add_body(name="drawer", pos=[-D / 2, 0.0, zl + hd / 2])
        travel = 0.7 * (depth - tf)
        drawer.add_joint(
            name="drawer_slide", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[-1.0, 0.0, 0.0], range=[0.0, travel],
            damping=[8.0, 0.0, 0.0], frictionloss=1.0, armature=0.05,
        )
        add_geom(drawer, "box", [tf / 2, wi, hh], [tf / 2, 0, 0], drawer_rgba, mass=0.35)  # front panel
        body_len = depth - tf
        add_geom(drawer, "box", [body_len / 2, wi - 0.01, 0.004], [tf + body_len / 2, 0, -hh + 0.004],
                 drawer_rgba, mass=0.2)  # bottom
        for sgn in (-1, 1):
            add_geom(drawer, "box", [body_len / 2, 0.005, hh * 0.8], [tf + body_len / 2, sgn * (wi - 0.005),
                                                                    -hh * 0.2], drawer_rgba, mass=0.1)
        add_geom(drawer, "box", [0.005, wi - 0.01, hh * 0.8], [depth - 0.005, 0, -hh * 0.2], drawer_rgba, mass=0.1)
        if handle == "bar":
            add_geom(drawer, "cylinder", [thick / 2, bar_len / 2], [-standoff, 0, 0], handle_rgba,
                     quat=CYLINDER_Z_TO_Y, mass=0.05, friction=HANDLE_FRICTION)
            post_len = standoff - thick / 2
            for sgn in (-1, 1):
                add_geom(drawer, "box", [post_len / 2, 0.006, 0.006], [-post_len / 2, sgn * (bar_len / 2 - 0.008), 0],
                         handle_rgba, mass=0.01)
            grasp_local = [-standoff, 0.0, 0.0]
            grasp_span = bar_len - 0.04  # where along the bar the fingers fit
        else:
            cap_r = thick / 2  # the fingers close across the cap: its diameter is the handle thickness
            cap_half = 0.012
            stem = standoff - cap_half
            add_geom(drawer, "cylinder", [0.005, stem / 2], [-stem / 2, 0, 0], handle_rgba, quat=CYLINDER_Z_TO_X,
                     mass=0.01)
            add_geom(drawer, "cylinder", [cap_r, cap_half], [-standoff, 0, 0], handle_rgba, quat=CYLINDER_Z_TO_X,
                     mass=0.03, friction=HANDLE_FRICTION)
            grasp_local = [-standoff, 0.0, 0.0]
            grasp_span = 0.0

        # World geometry the scripts need.
        z_handle = zl + hd / 2
        grasp_world = place.to_world([grasp_local[0] - D / 2, 0.0, z_handle])
        pull_dir = place.rotation().apply([-1.0, 0.0, 0.0])
        along = place.rotation().apply([0.0, 1.0, 0.0])
        front = place.to_world([-D / 2, 0, 0])
        keepouts = [KeepOut(place.x, place.y, math.hypot(D, W) / 2 + 0.03)]
        keepouts += keepout_segment(front, front + pull_dir * (travel + 0.15), W / 2 + 0.03)
        exclude_contacts(spec, "cabinet", "drawer")
        distractors = add_distractors(spec, rng, keepouts) if variant == Variant.unseen else []
        focus = [float(front[0]) - 0.05, float(front[1]), 0.6 * z_handle]
        add_views(spec, focus, rng, variant, self.camera_names, distance=1.25)
        return SceneParams(
            task=self.name,
            variant=variant,
            seed=0,
            values={
                "joint": "drawer_slide",
                "travel": travel,
                "threshold": 0.6 * travel,
                "open_value": 0.9 * travel,
                "handle": handle,
                "handle_thickness": thick,
                "grasp_span": grasp_span,
                "grasp_point": [float(v) for v in grasp_world],
                "pull_dir": [float(v) for v in pull_dir],
                "along": [float(v) for v in along],
                "scale": s,
                "cabinet_size": [D, W, H],
                "pose": [place.x, place.y, place.yaw],
            },
            distractors=distractors,
        )

    # --- scripts -------------------------------------------------------------------------------

    def _grasp_pose(self, params: SceneParams, offset_along: float = 0.0, pitch: float = APPROACH_PITCH) -> Pose:
        v = params.values
        pull = np.asarray(v["pull_dir"])
        along = np.asarray(v["along"])
        approach = -pull * math.cos(pitch) + np.array([0.0, 0.0, -math.sin(pitch)])
        closing = np.cross(approach, along) if v["handle"] == "bar" else -along
        return pose(gripper_rotation(approach, closing), np.asarray(v["grasp_point"]) + offset_along * along)

    def solution(self, world: SimWorld, params: SceneParams) -> Script:
        v = params.values
        g = self._grasp_pose(params)
        pull = np.asarray(v["pull_dir"]) * (0.8 * float(v["travel"]))
        opened = linear_path(g, pull, 8)[-1]
        return Script(steps=[
            Release(width=0.08),
            Move(path=[offset_along_approach(g, 0.12)], duration=3.0, label="approach"),
            Move(path=[offset_along_approach(g, 0.01), g], duration=1.5, label="reach"),
            Grasp(target="drawer", width=float(v["handle_thickness"])),
            Move(path=linear_path(g, pull, 8), duration=3.0, label="pull"),
            *retreat(opened, 0.06, 1.5),
        ])

    def demonstration(self, world: SimWorld, params: SceneParams, rng: np.random.Generator) -> Script:
        v = params.values
        span = float(v["grasp_span"])
        g = self._grasp_pose(params, float(rng.uniform(-0.35, 0.35)) * span)
        g = jitter_pose(g, rng, 0.002, 0.04)
        via = jitter_pose(offset_along_approach(g, float(rng.uniform(0.10, 0.16))), rng, 0.02, 0.08)
        frac = float(rng.uniform(0.72, 0.88))
        pull_dir = np.asarray(v["pull_dir"])
        pull = pull_dir * frac * float(v["travel"])
        # A slightly curved pull: people drift sideways a little mid-way.
        path = linear_path(g, pull, 8)
        drift = rng.normal(0.0, 0.004, 3) * np.array([1.0, 1.0, 0.5])
        path = [Pose.from_rotation(p.rotation, p.translation + drift * math.sin(math.pi * (i + 1) / len(path)))
                for i, p in enumerate(path)]
        steps: list = [
            Move(path=[via], duration=human_duration(rng, 1.6), label="approach"),
            Move(path=[offset_along_approach(g, 0.02), g], duration=human_duration(rng, 0.9), label="reach"),
        ]
        if rng.random() < 0.5:
            steps.append(Wait(duration=float(rng.uniform(0.15, 0.5))))
        steps += [
            Grasp(target="drawer", width=float(v["handle_thickness"])),
            Move(path=path, duration=human_duration(rng, 1.8), label="pull"),
        ]
        if rng.random() < 0.5:
            steps.append(Wait(duration=float(rng.uniform(0.1, 0.4))))
        end = path[-1]
        steps += retreat(jitter_pose(end, rng, 0.005, 0.03), float(rng.uniform(0.05, 0.08)),
                         human_duration(rng, 1.0), lift=float(rng.uniform(0.03, 0.08)))
        return Script(steps=steps)
