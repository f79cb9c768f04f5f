"""Pour from the cup into the other cup: "liquid" is 20-40 small balls in the source cup.

Seen: a 6 cm wide, 9 cm tall source cup holding 30 balls, and a wider (9 cm) target cup beside it.
Unseen: cup sizes +-30 % (the source stays graspable, at most 6.8 cm wide), 20-40 balls, other
colours, anywhere in the workspace, plus 1-3 distractors. Success: at least 60 % of the balls end
inside the target cup.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from core.geometry import Pose
from sim.script import Grasp, Move, Release, Script, Wait
from sim.tasks.base import SceneParams, Task, Variant
from sim.tasks.common import (
    KeepOut,
    add_distractors,
    add_views,
    human_duration,
    sample_color,
    sample_scale,
)
from sim.tasks.objects import (
    CUP_FLOOR,
    CUP_WALL,
    add_cup,
    add_liquid,
    liquid_names,
)
from sim.tasks.queries import (
    body_pose,
    lifted,
    sample_xy,
    top_down_gripper,
    wrap_half_turn,
)

if TYPE_CHECKING:
    from sim.world import SimWorld

SUCCESS_SHARE = 0.6
BALL_RADIUS = 0.0055
# the pour tilts quickly up to TRICKLE_FROM_DEG, then in TRICKLE_STEP_DEG steps with a pause after each
TRICKLE_FROM_DEG = 60.0
TRICKLE_STEP_DEG = 6.0


class PourCupToCup(Task):
    name = "pour_cup_to_cup"
    goal_text = "pour from the cup into the other cup"
    paraphrases = ("pour the water into the other cup", "empty the cup into the second cup",
                   "pour the liquid from one cup to the other")
    object_labels = ("cup_source", "cup_target")
    camera_names = ("cam_front", "cam_left", "cam_right", "cam_top")
    episode_seconds = 25.0

    def build(self, spec: mujoco.MjSpec, variant: Variant, rng: np.random.Generator) -> SceneParams:
        unseen = variant == Variant.unseen
        # sizes +-30 %, kept where the scripted pour still lands (a taller source throws the balls
        # further): the source 4.8-6.4 cm wide and 7-9.5 cm tall, the target's opening at least 7.2 cm
        src_r = float(np.clip(0.03 * sample_scale(rng, variant), 0.024, 0.032))
        src_h = float(np.clip(0.09 * sample_scale(rng, variant), 0.07, 0.095))
        tgt_r = float(np.clip(0.045 * sample_scale(rng, variant), 0.042, 0.058))
        tgt_h = float(np.clip(0.08 * sample_scale(rng, variant), 0.06, 0.095))
        n_balls = int(rng.integers(20, 41)) if unseen else 30
        # the target stands beside the source, to its left or right as the robot sees it
        if unseen:
            src_xy = sample_xy(rng, (0.42, 0.6), (-0.3, 0.3), radius=0.05)
            side = 1.0 if src_xy[1] < 0.0 else -1.0
            tgt_xy = (src_xy[0] + float(rng.uniform(-0.08, 0.08)), src_xy[1] + side * float(rng.uniform(0.2, 0.28)))
        else:
            src_xy = sample_xy(rng, (0.47, 0.53), (-0.16, -0.12), radius=0.04)
            tgt_xy = (src_xy[0] + float(rng.uniform(-0.02, 0.02)), src_xy[1] + float(rng.uniform(0.23, 0.27)))
        add_cup(spec, "cup_source", src_r, src_h, src_xy, 0.0, sample_color(rng, variant, "white"))
        add_cup(spec, "cup_target", tgt_r, tgt_h, tgt_xy, 0.0, sample_color(rng, variant, "green"), mass=0.3)
        add_liquid(spec, "liquid", src_xy, src_r - CUP_WALL, n_balls, BALL_RADIUS)
        # ~30 free balls make the dense constraint Jacobian the bottleneck; sparse gives the same physics faster
        spec.option.jacobian = mujoco.mjtJacobian.mjJAC_SPARSE
        distractors: list[str] = []
        if unseen:
            # clear of the cups and of where the tilted wrist swings during the pour
            keep = [KeepOut(*src_xy, 0.12), KeepOut(*tgt_xy, tgt_r + 0.09),
                    KeepOut((src_xy[0] + tgt_xy[0]) / 2, (src_xy[1] + tgt_xy[1]) / 2, 0.13)]
            distractors = add_distractors(spec, rng, keep)
        focus = [(src_xy[0] + tgt_xy[0]) / 2.0, (src_xy[1] + tgt_xy[1]) / 2.0, 0.06]
        add_views(spec, focus, rng, variant)
        return SceneParams(task=self.name, variant=variant, seed=0,
                           values={"source_radius": src_r, "source_height": src_h, "target_radius": tgt_r,
                                   "target_height": tgt_h, "n_balls": n_balls, "source_xy": list(src_xy),
                                   "target_xy": list(tgt_xy)},
                           distractors=distractors)

    # -------------------------------------------------------------- judging

    def balls_in(self, world: SimWorld, params: SceneParams, cup: str) -> int:
        key = "target" if cup == "cup_target" else "source"
        r_in = float(params.values[f"{key}_radius"]) - CUP_WALL
        h = float(params.values[f"{key}_height"])
        T_cup_world = body_pose(world, cup).inverse()
        n = 0
        for name in liquid_names("liquid", int(params.values["n_balls"])):
            p = T_cup_world.apply(body_pose(world, name).translation[None, :])[0]
            if math.hypot(p[0], p[1]) < r_in and CUP_FLOOR - 0.002 < p[2] < h + 0.01:
                n += 1
        return n

    def poured_share(self, world: SimWorld, params: SceneParams) -> float:
        return self.balls_in(world, params, "cup_target") / int(params.values["n_balls"])

    def success(self, world: SimWorld, params: SceneParams) -> bool:
        return self.poured_share(world, params) >= SUCCESS_SHARE

    # -------------------------------------------------------------- scripts

    def _script(self, world: SimWorld, params: SceneParams, *, grip_depth: float = 0.025, tilt_deg: float = 130.0,
                lip_shift: float = 0.8, speed: float = 1.0, trickle_wait: float = 0.3,
                pauses: dict[str, float] | None = None) -> Script:
        pauses = pauses or {}
        src = body_pose(world, "cup_source").translation
        tgt = body_pose(world, "cup_target").translation
        r_src, h_src = float(params.values["source_radius"]), float(params.values["source_height"])
        r_tgt, h_tgt = float(params.values["target_radius"]), float(params.values["target_height"])
        r_in = r_src - CUP_WALL
        # tilt the cup's top towards the target, about a horizontal axis; the fingers close along
        # that axis (a top grasp around the cup below its rim), so the pouring lip is free
        t_hat = np.array([tgt[0] - src[0], tgt[1] - src[1], 0.0])
        t_hat /= np.linalg.norm(t_hat)
        axis = np.cross([0.0, 0.0, 1.0], t_hat)
        g = h_src - grip_depth
        # upright pre-pour pose: cup bottom above the target's rim, its lip short of the target's centre
        lip_world = np.array([tgt[0], tgt[1], 0.0]) - min(lip_shift * r_tgt, r_tgt - CUP_WALL - 0.004) * t_hat
        lip_world[2] = max(h_tgt + 0.015 + h_src, 0.17)  # high enough that the tilted wrist clears the table
        lip_in_cup = np.array([*(t_hat[:2] * r_in), h_src])
        carry_z = h_tgt + 0.03 + g

        def pour_angles(tilt: float) -> tuple[list[float], list[float]]:
            """Tilt angles of the quick part of the pour (steps of an eighth of the tilt) and of the slow one."""
            start = min(math.radians(TRICKLE_FROM_DEG), 0.5 * tilt)
            quick = np.linspace(0.0, start, max(1, math.ceil(start / (tilt / 8.0))) + 1)[1:]
            n = max(1, math.ceil((tilt - start) / math.radians(TRICKLE_STEP_DEG)))
            return [float(a) for a in quick], [float(a) for a in np.linspace(start, tilt, n + 1)[1:]]

        def plan(yaw: float, tilt: float) -> dict[str, list[Pose]]:
            grasp = top_down_gripper([src[0], src[1], g], yaw)
            T_grip_cup = grasp.inverse() @ Pose(position=(src[0], src[1], 0.0))

            def grip_at(theta: float) -> Pose:
                R = Rotation.from_rotvec(axis * theta)
                centre = lip_world + R.apply(-lip_in_cup)
                return Pose.from_rotation(R, centre) @ T_grip_cup

            upright = grip_at(0.0)
            lifted_src = Pose.from_rotation(grasp.rotation, [src[0], src[1], carry_z])
            return {
                "pre": [lifted(grasp, 0.1)], "grasp": [grasp], "lift": [lifted_src],
                "transport": [Pose.from_rotation(upright.rotation, upright.translation + np.array([0.0, 0.0, 0.03])),
                              upright],
                # the quick part of the pour, up to where the balls start to spill, then the slow one
                "pour": [grip_at(a) for a in pour_angles(tilt)[0]],
                "trickle": [grip_at(a) for a in pour_angles(tilt)[1]],
                "untilt": [grip_at(tilt * s) for s in np.linspace(1.0, 0.0, 5)[1:]],
                "put_back": [lifted_src, Pose.from_rotation(grasp.rotation, [src[0], src[1], g + 0.004])],
            }

        # a top grasp looks the same turned half a turn; take the first plan the arm can follow
        base_yaw = wrap_half_turn(math.atan2(axis[0], -axis[1]))
        tilt = math.radians(tilt_deg)
        options = [plan(y, a) for a in (tilt, tilt - math.radians(15.0))
                   for y in (base_yaw, base_yaw - math.copysign(math.pi, base_yaw))]
        poses = next((o for o in options if _followable(o)), options[0])

        steps: list = [Release(width=0.08)]

        def move(path: list[Pose], duration: float, label: str) -> None:
            steps.append(Move(path=path, duration=duration / speed, label=label))
            if pauses.get(label, 0.0) > 0.0:
                steps.append(Wait(duration=pauses[label]))

        move(poses["pre"], 2.5, "reach")
        move(poses["grasp"], 1.5, "approach")
        steps.append(Grasp(target="cup_source", width=2.0 * r_src, force=60.0))
        move(poses["lift"], 1.5, "lift")
        move(poses["transport"], 2.5, "transport")
        # people pour slowly; the robot paces itself. A quick tilt up to where the balls start to spill,
        # then small steps with a pause after each, so the balls trickle over the lip and drop nearly
        # straight down instead of avalanching down a steep wall and flying past the target (a wide,
        # tall source over a narrow target throws them furthest).
        move(poses["pour"], 1.5, "pour")
        for pose in poses["trickle"]:
            move([pose], 3.5 / len(poses["trickle"]), "pour")
            steps.append(Wait(duration=trickle_wait))
        steps.append(Wait(duration=1.5))
        move(poses["untilt"], 1.5, "untilt")
        move(poses["put_back"], 3.0, "put_back")
        steps.append(Release(width=0.08))
        move([lifted(poses["put_back"][-1], 0.1)], 1.2, "retreat")
        steps.append(Wait(duration=1.0))
        return Script(steps=steps)

    def solution(self, world: SimWorld, params: SceneParams) -> Script:
        return self._script(world, params)

    def demonstration(self, world: SimWorld, params: SceneParams, rng: np.random.Generator) -> Script:
        pauses = {k: float(rng.uniform(0.2, 0.7)) for k in ("approach", "transport") if rng.random() < 0.6}
        return self._script(world, params, grip_depth=float(rng.uniform(0.02, 0.035)),
                            tilt_deg=float(rng.uniform(115.0, 140.0)), lip_shift=float(rng.uniform(0.6, 0.9)),
                            speed=1.0 / human_duration(rng, 1.0), pauses=pauses)


def _followable(plan: dict[str, list[Pose]]) -> bool:
    """Whether the Panda's IK can follow the plan from its home pose up to the end of the pour."""
    from core.motion import PANDA_HOME_Q
    from tools.robot.ik import panda_model
    from tools.robot.trajectory import cartesian_to_joint_path

    path = [p for k in ("pre", "grasp", "lift", "transport", "pour", "trickle") for p in plan[k]]
    return cartesian_to_joint_path(panda_model(), path, PANDA_HOME_Q).reachable
