"""Synthetic GroundedDemos for skill-learning tests: known grasps and known trajectories, with noise.

open_door: grasp the door handle (front face, right side, from the front), then swing the door about
its hinge (left edge) by `angle` degrees. wipe_pan: grasp the sponge from above, then wipe it back and
forth over the pan. Noise and sizes come from a seeded generator.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation as Rot

from core.geometry import Pose
from core.grounding import (
    GraspInteraction,
    GroundedDemo,
    ManipulationInteraction,
    ObjectDescriptor,
    Phase,
    Segment,
)
from core.program import Arc, StartPose, TrajectoryProgram, Zigzag
from tools.constraints.instantiate import matrices_at

# gripper approaching along -x of the object (from the robot side): z_gripper = -x_object
APPROACH_FRONT = Rot.from_matrix(np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]]))
APPROACH_TOP = Rot.from_euler("x", 180, degrees=True)

DOOR_PROGRAM = TrajectoryProgram(
    family="arc",
    start=StartPose(position=(0.0, 0.0, 0.0)),
    steps=[Arc(axis=(0, 0, 1), pivot=(0.0, "-master.y/2", 0.0), angle_deg=-70.0)],
)
PAN_PROGRAM = TrajectoryProgram(
    family="zigzag",
    start=StartPose(position=("-master.x*0.25", 0.0, "master.z/2 + slave.z/2")),
    steps=[Zigzag(direction=(1, 0, 0), across=(0, 1, 0), length="master.x/2", amplitude="master.y/4", cycles=1.5)],
)


def _obj(name: str, size, colour=(120, 120, 120), parent=None, pos=(0.5, 0.0, 0.1)) -> ObjectDescriptor:
    return ObjectDescriptor(name=name, T_world_object=Pose(position=pos), bbox_size=tuple(size),
                            color_rgb=colour, parent=parent)


def _traj(program: TrajectoryProgram, sizes, rng, n=60, noise=0.0015):
    t = np.linspace(0, 1, n)
    s = 10 * t**3 - 15 * t**4 + 6 * t**5  # minimum-jerk timing, like a human
    m = matrices_at(program, sizes, s)
    m[:, :3, 3] += rng.normal(0, noise, (n, 3))
    return m, t * 2.0


def door_demo(i: int, seed: int = 0, *, size_jitter: float = 0.01, outlier: bool = False) -> GroundedDemo:
    rng = np.random.default_rng(seed * 100 + i)
    door = np.array([0.02, 0.40, 0.45]) + rng.uniform(-size_jitter, size_jitter, 3) * [0, 1, 1]
    cab = np.array([0.40, 0.42, 0.47])
    handle_y = door[1] * 0.35 if not outlier else -door[1] * 0.4
    grasp_pos = np.array([door[0] / 2 + 0.01, handle_y, 0.0]) + rng.normal(0, 0.004, 3)
    grasp = Pose.from_rotation(APPROACH_FRONT, grasp_pos)
    sizes = {"master": tuple(cab), "slave": tuple(door)}
    prog = DOOR_PROGRAM.model_copy(update={"start": StartPose(position=(cab[0] / 2 + door[0] / 2, 0.0, 0.0))})
    prog = prog.model_copy(update={"steps": [Arc(axis=(0, 0, 1), pivot=(cab[0] / 2, -cab[1] / 2, 0.0),
                                                 angle_deg=-70.0 + rng.normal(0, 1.0))]})
    mats, times = _traj(prog, sizes, rng)
    objects = [_obj("cabinet", cab), _obj("cabinet_door", door, parent="cabinet")]
    segments = [
        Segment(index=0, start_frame=0, end_frame=10, start_time=0, end_time=1, phase=Phase.grasping,
                master="cabinet_door", text="grasp the cabinet door handle"),
        Segment(index=1, start_frame=10, end_frame=70, start_time=1, end_time=3, phase=Phase.manipulation,
                master="cabinet", slave="cabinet_door", text="swing the cabinet door open"),
    ]
    interactions = [
        GraspInteraction(segment=0, object="cabinet_door", T_object_gripper=grasp, width=0.02, frame=10, time=1.0),
        ManipulationInteraction(segment=1, master="cabinet", slave="cabinet_door", frames=list(range(10, 70)),
                                times=list(1 + times), trajectory=[Pose.from_matrix(T) for T in mats],
                                T_slave_gripper=grasp),
    ]
    return GroundedDemo(demo_id=f"door_{i:02d}", task="open_door", fps=30, n_frames=80, objects=objects,
                        segments=segments, interactions=interactions)


def pan_demo(i: int, seed: int = 0) -> GroundedDemo:
    rng = np.random.default_rng(seed * 100 + 50 + i)
    pan = np.array([0.26, 0.26, 0.05]) + rng.uniform(-0.01, 0.01, 3)
    sponge = np.array([0.08, 0.05, 0.03])
    grasp = Pose.from_rotation(APPROACH_TOP, np.array([0, 0, sponge[2] / 2]) + rng.normal(0, 0.003, 3))
    sizes = {"master": tuple(pan), "slave": tuple(sponge)}
    mats, times = _traj(PAN_PROGRAM, sizes, rng, n=90)
    objects = [_obj("pan", pan, (40, 40, 40)), _obj("sponge", sponge, (230, 200, 40), pos=(0.4, 0.2, 0.02))]
    segments = [
        Segment(index=0, start_frame=0, end_frame=10, start_time=0, end_time=1, phase=Phase.grasping,
                master="sponge", text="grasp the sponge"),
        Segment(index=1, start_frame=10, end_frame=100, start_time=1, end_time=4, phase=Phase.manipulation,
                master="pan", slave="sponge", text="wipe the pan with the sponge"),
    ]
    interactions = [
        GraspInteraction(segment=0, object="sponge", T_object_gripper=grasp, width=0.05, frame=10, time=1.0),
        ManipulationInteraction(segment=1, master="pan", slave="sponge", frames=list(range(10, 100)),
                                times=list(1 + times), trajectory=[Pose.from_matrix(T) for T in mats],
                                T_slave_gripper=grasp),
    ]
    return GroundedDemo(demo_id=f"pan_{i:02d}", task="wipe_pan", fps=30, n_frames=100, objects=objects,
                        segments=segments, interactions=interactions)
