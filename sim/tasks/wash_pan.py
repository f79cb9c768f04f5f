"""Wash the pan: a long-horizon task with six ordered subgoals (PAPER_NUMBERS.md, Table 3).

Scene (robot at the origin facing +x): a shallow sink ("sink") on the left with a faucet
("faucet", lever "faucet_handle" from sim.tasks.turn_faucet.add_faucet) behind it, a frying pan
("pan") on the table in the middle, a dish rack ("rack") on the right and an upright scrubbing
brush ("brush") near the robot. Seen: a 20 cm pan with a bar handle, lever faucet. Unseen: pan
radius +-25 %, round/flat handles, a knob faucet, other colours, fixtures shifted and turned a
little, 1-3 distractors.

Subgoals, in this order (success only if every one is met in order, and the pan ends on the rack):
pan_in_sink, faucet_on, faucet_off, pan_on_table, pan_brushed, pan_on_rack. "faucet_off" and
"pan_on_table" already hold at reset; they count only after their predecessors (SubgoalTracker).
Brushing counts towards "pan_brushed" only once "pan_on_table" was met in order.

The scripted robot solution is one script computed from the initial state: the robot sets the pan
down gently at planned poses (in the sink, back where it stood, on the rack), so later grasps are
planned from those poses; the 2 cm handle leaves centimetres of slack for where the pan settles.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from core.geometry import Pose
from sim.script import Grasp, Move, Release, Script, Wait
from sim.subgoals import SubgoalTracker
from sim.tasks.base import SceneParams, Task, Variant
from sim.tasks.brush_pan import brushing_steps
from sim.tasks.common import KeepOut, add_distractors, add_views, arc_path, human_duration, sample_color, sample_scale
from sim.tasks.kitchen import (
    BRUSH_HANDLES,
    HANDLE_TYPES,
    PanGeometry,
    RackGeometry,
    SinkGeometry,
    add_brush,
    add_pan,
    add_rack,
    add_sink,
    brush_geometry,
    pan_geometry,
)
from sim.tasks.queries import (
    CoverageTracker,
    body_pose,
    in_contact,
    lifted,
    top_down_gripper,
    wrap_half_turn,
)
from sim.tasks.turn_faucet import FaucetParts, add_faucet, faucet_grasp_pose

if TYPE_CHECKING:
    from sim.world import SimWorld

SUBGOALS = ("pan_in_sink", "faucet_on", "faucet_off", "pan_on_table", "pan_brushed", "pan_on_rack")
OFF_ANGLE = math.radians(15.0)
BRUSHED_COVERAGE = 0.6
SUBGOAL_PERIOD_S = 0.1
CARRY_Z = 0.2  # TCP height while carrying the pan (its bottom clears the sink, rack and brush)
# A person washing up moves briskly: the demonstration runs DEMO_TEMPO times faster than the robot
# solution's nominal timing and scrubs at DEMO_SCRUB_PACE s per via point (the robot: 0.9 s), so a
# demo lasts about a minute instead of two (its recording and grounding cost is per frame).
DEMO_TEMPO = 1.5
DEMO_SCRUB_PACE = 0.6


def _yaw_of(p: Pose) -> float:
    x = p.rotation.as_matrix()[:, 0]
    return math.atan2(x[1], x[0])


def _flat(x: float, y: float, z: float, yaw: float) -> Pose:
    return Pose(position=(x, y, z), quaternion=(0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)))


def handle_grasp(pan_pose: Pose, pan: PanGeometry, fraction: float) -> Pose:
    """Top-down pinch across the pan's handle, `fraction` of its length from the rim."""
    p = pan_pose.apply(pan.handle_point(fraction)[None, :])[0]
    hdir = pan_pose.rotation.as_matrix()[:, 0]
    closing = np.cross([0.0, 0.0, 1.0], hdir)
    return top_down_gripper(p, wrap_half_turn(math.atan2(closing[0], -closing[1])))


class _WashObserver:
    """Per world: the gated brushing coverage and the ordered subgoal tracker, sampled every 0.1 s."""

    def __init__(self, task: WashPan, world: SimWorld, params: SceneParams) -> None:
        self.task, self.params = task, params
        self.tracker = SubgoalTracker(SUBGOALS)
        brush = brush_geometry(float(params.values["brush_scale"]), str(params.values["brush_handle"]))
        self.coverage = CoverageTracker(world, "pan", "brush_head", float(params.values["pan_radius"]),
                                        brush.head_half, gate=lambda: self.tracker.n_met >= 4)
        self.period = max(1, int(round(SUBGOAL_PERIOD_S / world.timestep)))
        self._n = 0

    def __call__(self, world: SimWorld) -> None:
        self.coverage(world)
        self._n += 1
        if self._n % self.period == 0:
            self.tracker.update(world.time, self.task.subgoals(world, self.params))


class WashPan(Task):
    name = "wash_pan"
    goal_text = "wash the pan"
    paraphrases = ("clean the frying pan", "wash and scrub the pan, then put it on the rack",
                   "do the washing up for the pan")
    object_labels = ("pan", "sink", "faucet", "faucet_handle", "brush", "rack")
    camera_names = ("cam_front", "cam_left", "cam_right", "cam_top")
    subgoal_names = SUBGOALS
    episode_seconds = 150.0

    def __init__(self) -> None:
        self._observers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # -------------------------------------------------------------- scene

    def build(self, spec: mujoco.MjSpec, variant: Variant, rng: np.random.Generator) -> SceneParams:
        unseen = variant == Variant.unseen
        j = 0.03 if unseen else 0.01
        radius = float(np.clip(0.1 * sample_scale(rng, variant), 0.078, 0.11))
        handle = str(rng.choice(HANDLE_TYPES)) if unseen else "bar"
        pan = pan_geometry(radius, handle)
        sink = SinkGeometry(half_x=radius + 0.05, half_y=radius + 0.03, depth=0.025, floor=0.008)
        rack = RackGeometry(half_x=radius + 0.025, half_y=radius + 0.025)
        if unseen:  # shifted, but never so far back that the faucet's handle leaves the arm's reach
            sink_x = min(0.52 + float(rng.uniform(-j, 0.0)), 0.71 - (radius + 0.05) - sink.wall - 0.05)
            sink_xy = (sink_x, 0.25 + float(rng.uniform(-j, j)))
        else:
            sink_xy = (0.52 + float(rng.uniform(-j, j)), 0.25 + float(rng.uniform(-j, j)))
        pan_xy = (0.5 + float(rng.uniform(-j, j)),
                  sink_xy[1] - sink.half_y - sink.wall - radius - 0.045 - float(rng.uniform(0.0, j)))
        rack_xy = (0.6 + float(rng.uniform(-j, j)), pan_xy[1] - radius - 0.04 - rack.half_y)
        if unseen:  # clear of the wrist when it comes down to a turned pan's handle
            brush_xy = (0.34 + float(rng.uniform(-0.015, 0.015)), -0.29 + float(rng.uniform(-0.015, 0.015)))
        else:
            brush_xy = (0.34 + float(rng.uniform(-j, j) * 0.5), -0.25 + float(rng.uniform(-j, j)))
        pan_yaw = math.pi + float(rng.uniform(-0.45, 0.45) if unseen else rng.uniform(-0.2, 0.2))
        brush_scale = float(rng.uniform(0.85, 1.15)) if unseen else float(rng.uniform(0.97, 1.03))
        brush_handle = str(rng.choice(BRUSH_HANDLES)) if unseen else "bar"
        faucet_handle = str(rng.choice(["lever", "knob"])) if unseen else "lever"
        faucet_yaw = float(rng.uniform(-0.15, 0.15)) if unseen else 0.0
        faucet_x = sink_xy[0] + sink.half_x + sink.wall + (0.05 if unseen else 0.06)

        add_sink(spec, "sink", sink, sink_xy, 0.0, sample_color(rng, variant, "grey"))
        parts = add_faucet(spec, (faucet_x, sink_xy[1], 0.0), faucet_yaw, handle=faucet_handle,
                           scale=float(rng.uniform(0.95, 1.05)), thickness=0.02,
                           body_rgba=sample_color(rng, variant, "white"),
                           handle_rgba=sample_color(rng, variant, "grey"))
        add_rack(spec, "rack", rack, rack_xy, 0.0, sample_color(rng, variant, "white"))
        add_pan(spec, "pan", pan, pan_xy, pan_yaw, sample_color(rng, variant, "black"),
                handle_rgba=sample_color(rng, variant, "brown"), mass=0.3)
        add_brush(spec, "brush", brush_geometry(brush_scale, brush_handle), brush_xy, float(rng.uniform(-0.3, 0.3)),
                  sample_color(rng, variant, "blue"))
        distractors: list[str] = []
        if unseen:
            keep = [KeepOut(*sink_xy, sink.half_x + 0.05), KeepOut(faucet_x, sink_xy[1], 0.08),
                    KeepOut(*pan_xy, radius + 0.05), KeepOut(*rack_xy, rack.half_x * 1.45),
                    KeepOut(pan_xy[0] + math.cos(pan_yaw) * (radius + 0.08),
                            pan_xy[1] + math.sin(pan_yaw) * (radius + 0.08), 0.1),
                    KeepOut(*brush_xy, 0.08)]
            # the table is crowded: small objects in what room is left (at least one, at most three)
            distractors = add_distractors(spec, rng, keep, count=int(rng.integers(1, 4)))
        add_views(spec, [0.52, 0.0, 0.05], rng, variant)
        return SceneParams(
            task=self.name, variant=variant, seed=0,
            values={
                "pan_radius": radius, "pan_handle": handle, "brush_scale": brush_scale, "brush_handle": brush_handle,
                "sink_xy": list(sink_xy), "sink_half": [sink.half_x, sink.half_y], "sink_depth": sink.depth,
                "sink_floor": sink.floor, "rack_xy": list(rack_xy), "rack_half": [rack.half_x, rack.half_y],
                "rack_base": rack.base, "pan_xy": list(pan_xy), "pan_yaw": pan_yaw,
                "faucet": {k: (list(v) if isinstance(v, tuple) else v) for k, v in parts.__dict__.items()},
            },
            distractors=distractors,
        )

    @staticmethod
    def _faucet(params: SceneParams) -> FaucetParts:
        d = dict(params.values["faucet"])
        return FaucetParts(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    @staticmethod
    def _pan(params: SceneParams) -> PanGeometry:
        return pan_geometry(float(params.values["pan_radius"]), str(params.values["pan_handle"]))

    # -------------------------------------------------------------- judging

    def observer(self, world: SimWorld, params: SceneParams) -> _WashObserver:
        """This world's observer (installed on first use; run_solution and attach() install it early)."""
        obs = self._observers.get(world)
        if obs is None:
            obs = _WashObserver(self, world, params)
            world.add_step_callback(obs)
            self._observers[world] = obs
        return obs

    def attach(self, world: SimWorld, params: SceneParams) -> None:
        self.observer(world, params)

    def _pan_upright(self, world: SimWorld) -> bool:
        return bool(body_pose(world, "pan").rotation.as_matrix()[2, 2] > 0.95)

    def _pan_in(self, world: SimWorld, params: SceneParams, where: str) -> bool:
        """Pan's centre over the fixture's footprint (sink: inner basin; rack: deck), resting low on it."""
        pan = body_pose(world, "pan").translation
        cx, cy = params.values[f"{where}_xy"]
        hx, hy = params.values[f"{where}_half"]
        inside = abs(pan[0] - cx) < hx and abs(pan[1] - cy) < hy
        top = float(params.values["sink_depth"] if where == "sink" else params.values["rack_base"] + 0.015)
        return bool(inside and pan[2] < top and self._pan_upright(world) and in_contact(world, "pan", where))

    def subgoals(self, world: SimWorld, params: SceneParams) -> dict[str, bool]:
        obs = self.observer(world, params)
        angle = float(world.joint_qpos(self._faucet(params).joint))
        on_table = (self._pan_upright(world) and in_contact(world, "pan", "table")
                    and not in_contact(world, "pan", ["sink", "rack"]))
        return {
            "pan_in_sink": self._pan_in(world, params, "sink"),
            "faucet_on": angle >= self._faucet(params).on_angle,
            "faucet_off": angle <= OFF_ANGLE,
            "pan_on_table": bool(on_table),
            "pan_brushed": obs.coverage.coverage >= BRUSHED_COVERAGE,
            "pan_on_rack": self._pan_in(world, params, "rack"),
        }

    def success(self, world: SimWorld, params: SceneParams) -> bool:
        obs = self.observer(world, params)
        state = self.subgoals(world, params)
        if world.time >= obs.tracker._last_t:
            obs.tracker.update(world.time, state)
        return bool(obs.tracker.all_met and state["pan_on_rack"])

    # -------------------------------------------------------------- scripts

    def _script(self, world: SimWorld, params: SceneParams, rng: np.random.Generator | None = None) -> Script:
        self.observer(world, params)
        pan = self._pan(params)
        parts = self._faucet(params)
        speed = 1.0 if rng is None else DEMO_TEMPO / human_duration(rng, 1.0)

        def u(lo: float, hi: float, nominal: float) -> float:
            return nominal if rng is None else float(rng.uniform(lo, hi))

        steps: list = [Release(width=0.08)]

        def move(path: list[Pose], duration: float, label: str) -> None:
            steps.append(Move(path=path, duration=duration / speed, label=label))
            if rng is not None and rng.random() < 0.3:
                steps.append(Wait(duration=float(rng.uniform(0.2, 0.6))))

        def carry_pan(src: Pose, dst: Pose, frac: float, label: str) -> None:
            """Pick the pan standing at `src` by its handle and set it down at `dst` (flat poses of its bottom)."""
            grasp = handle_grasp(src, pan, frac)
            T_pan_grip = src.inverse() @ grasp
            place = dst @ T_pan_grip
            place = Pose.from_rotation(place.rotation, place.translation + np.array([0.0, 0.0, 0.006]))
            move([lifted(grasp, 0.1)], 2.5, f"reach_{label}")
            move([grasp], 1.2, f"approach_{label}")
            steps.append(Grasp(target="pan", width=pan.handle_width, force=70.0))
            move([Pose.from_rotation(grasp.rotation, [*grasp.translation[:2], CARRY_Z])], 1.5, f"lift_{label}")
            move([Pose.from_rotation(place.rotation, [*place.translation[:2], CARRY_Z])], 3.0, f"carry_{label}")
            move([place], 2.0, f"lower_{label}")
            steps.append(Release(width=0.08))
            move([lifted(place, 0.12)], 1.2, f"retreat_{label}")

        start = body_pose(world, "pan")
        home = _flat(float(start.translation[0]), float(start.translation[1]), 0.0, _yaw_of(start))
        sx, sy = params.values["sink_xy"]
        in_sink = _flat(sx - 0.03 + u(-0.01, 0.01, 0.0), sy + u(-0.01, 0.01, 0.0), float(params.values["sink_floor"]),
                        math.pi + u(-0.15, 0.15, 0.0))
        rx, ry = params.values["rack_xy"]
        on_rack = _flat(rx + u(-0.01, 0.01, 0.0), ry + u(-0.01, 0.01, 0.0), float(params.values["rack_base"]),
                        math.pi + u(-0.15, 0.15, 0.0))

        # 1. the pan into the sink
        carry_pan(home, in_sink, u(0.35, 0.5, 0.42), "to_sink")
        # 2-3. faucet on, let it run, faucet off (holding the handle throughout)
        g = faucet_grasp_pose(parts)
        move([lifted(g, 0.1)], 2.5, "reach_faucet")
        move([g], 1.2, "approach_faucet")
        steps.append(Grasp(target=parts.handle, width=parts.handle_thickness))
        on = arc_path(g, parts.pivot, parts.axis, math.radians(u(70.0, 85.0, 75.0)), 10)
        move(on, 2.5, "faucet_on")
        steps.append(Wait(duration=u(1.0, 2.5, 1.5)))
        off = arc_path(on[-1], parts.pivot, parts.axis, -_angle_between(g, on[-1]) + math.radians(3.0), 10)
        move(off, 2.5, "faucet_off")
        steps.append(Release(width=0.08))
        move([lifted(off[-1], 0.1)], 1.2, "retreat_faucet")
        # 4. the pan back onto the table, where it stood
        carry_pan(in_sink, home, u(0.35, 0.5, 0.42), "to_table")
        # 5. scrub it with the brush, then stand the brush back
        b = body_pose(world, "brush")
        brush = brush_geometry(float(params.values["brush_scale"]), str(params.values["brush_handle"]))
        back = top_down_gripper(b.apply(brush.handle_point(0.6)[None, :])[0] + np.array([0.0, 0.0, 0.004]),
                                wrap_half_turn(_yaw_of(b)))
        steps += brushing_steps(world, pan, brush, rng=rng, speed=speed, put_back=back,
                                scrub_pace=0.9 if rng is None else DEMO_SCRUB_PACE)
        # 6. the pan onto the rack
        carry_pan(home, on_rack, u(0.35, 0.5, 0.42), "to_rack")
        steps.append(Wait(duration=0.5))
        return Script(steps=steps)

    def solution(self, world: SimWorld, params: SceneParams) -> Script:
        return self._script(world, params)

    def demonstration(self, world: SimWorld, params: SceneParams, rng: np.random.Generator) -> Script:
        return self._script(world, params, rng)


def _angle_between(a: Pose, b: Pose) -> float:
    """Signed rotation about world z from a's orientation to b's."""
    d = _yaw_of(b) - _yaw_of(a)
    return (d + math.pi) % (2.0 * math.pi) - math.pi
