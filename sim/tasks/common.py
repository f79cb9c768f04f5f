"""Scene helpers shared by the simulated tasks.

Conventions (all in the world frame = robot base frame, table top at z = 0, robot facing +x):
- Articulated objects are built in an *object frame* whose -x axis is the object's front (the side
  facing the robot when yaw = 0); `yaw` rotates the object about world z.
- Gripper orientations follow sim.script: z = approach direction, y = finger closing axis, x = y x z.
- Every random choice comes from the `np.random.Generator` passed in; `variant` chooses between the
  demo distribution (seen) and the harder one (unseen: sizes +-30 %, other colours and handle types,
  other poses, 1-3 distractor objects).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from core.geometry import Pose
from sim.script import Move, Release
from sim.tasks.base import SceneParams, Task, Variant

if TYPE_CHECKING:
    from sim.world import SimWorld

# MuJoCo (w, x, y, z) quaternions that lay a cylinder (axis along its z) along x or y.
CYLINDER_Z_TO_X = [math.sqrt(0.5), 0.0, math.sqrt(0.5), 0.0]
CYLINDER_Z_TO_Y = [math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0]

# Workspace the Panda reaches comfortably (matches sim.world's documented workspace).
WORKSPACE_X = (0.3, 0.75)
WORKSPACE_Y = (-0.4, 0.4)

# The Panda's fingertips end this far beyond the TCP along the approach axis (pads of the
# gymnasium-robotics hand: TCP at the pad centre, pad half length 9.5 mm).
FINGERTIP_BEYOND_TCP = 0.0095

# Friction for handles and parts the gripper holds: (sliding, torsional, rolling).
HANDLE_FRICTION = (1.2, 0.01, 0.001)

# Named colours (RGBA). Seen scenes draw object colours near their canonical colour; unseen scenes
# draw from the whole palette (so colour is not a cue that transfers by accident).
PALETTE: dict[str, tuple[float, float, float, float]] = {
    "red": (0.80, 0.15, 0.15, 1.0),
    "green": (0.20, 0.65, 0.25, 1.0),
    "blue": (0.15, 0.30, 0.80, 1.0),
    "yellow": (0.90, 0.80, 0.15, 1.0),
    "orange": (0.95, 0.50, 0.10, 1.0),
    "purple": (0.55, 0.25, 0.70, 1.0),
    "white": (0.92, 0.92, 0.92, 1.0),
    "grey": (0.55, 0.55, 0.57, 1.0),
    "black": (0.12, 0.12, 0.13, 1.0),
    "brown": (0.50, 0.33, 0.18, 1.0),
    "teal": (0.10, 0.55, 0.55, 1.0),
    "pink": (0.90, 0.50, 0.65, 1.0),
}


def sample_color(rng: np.random.Generator, variant: Variant, seen: str, jitter: float = 0.04) -> list[float]:
    """An RGBA colour: `seen` (jittered) for the seen variant, any other palette colour for unseen."""
    if variant == Variant.seen:
        name = seen
    else:
        others = [n for n in PALETTE if n != seen]
        name = others[int(rng.integers(len(others)))]
    rgb = np.clip(np.asarray(PALETTE[name][:3]) + rng.uniform(-jitter, jitter, 3), 0.0, 1.0)
    return [*map(float, rgb), 1.0]


def sample_scale(rng: np.random.Generator, variant: Variant) -> float:
    """Size factor: about 1 for seen scenes; 0.7-0.85 or 1.15-1.3 for unseen ones."""
    if variant == Variant.seen:
        return float(rng.uniform(0.96, 1.04))
    magnitude = float(rng.uniform(0.15, 0.30))
    return 1.0 + magnitude if rng.random() < 0.5 else 1.0 - magnitude


def sample_choice(rng: np.random.Generator, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


@dataclass(frozen=True)
class Placement:
    """Where an object stands: (x, y) on the table and yaw about world z (rad)."""

    x: float
    y: float
    yaw: float

    def rotation(self) -> Rotation:
        return Rotation.from_euler("z", self.yaw)

    def quat_wxyz(self) -> list[float]:
        x, y, z, w = self.rotation().as_quat()
        return [float(w), float(x), float(y), float(z)]

    def to_world(self, local: Sequence[float], z0: float = 0.0) -> np.ndarray:
        """A point given in the object frame (origin on the table under the object) in the world."""
        p = self.rotation().apply(np.asarray(local, dtype=float))
        return p + np.array([self.x, self.y, z0])


def sample_placement(
    rng: np.random.Generator,
    variant: Variant,
    seen_xy: tuple[tuple[float, float], tuple[float, float]],
    unseen_xy: tuple[tuple[float, float], tuple[float, float]],
    seen_yaw: float,
    unseen_yaw: float,
) -> Placement:
    """Uniform position in a box ((x_lo, x_hi), (y_lo, y_hi)) and yaw in [-max, max] per variant."""
    (xlo, xhi), (ylo, yhi) = seen_xy if variant == Variant.seen else unseen_xy
    yaw_max = seen_yaw if variant == Variant.seen else unseen_yaw
    return Placement(float(rng.uniform(xlo, xhi)), float(rng.uniform(ylo, yhi)), float(rng.uniform(-yaw_max, yaw_max)))


# --- geometry building -------------------------------------------------------------------------


_GEOM_TYPES = {
    "box": mujoco.mjtGeom.mjGEOM_BOX,
    "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
}


def add_geom(
    body: mujoco.MjsBody,
    shape: str,
    size: Sequence[float],
    pos: Sequence[float] = (0.0, 0.0, 0.0),
    rgba: Sequence[float] = (0.7, 0.7, 0.7, 1.0),
    quat: Sequence[float] | None = None,
    mass: float | None = None,
    friction: Sequence[float] | None = None,
    name: str = "",
) -> mujoco.MjsGeom:
    """A collidable geom on `body` (quat is MuJoCo's w, x, y, z). `mass` overrides density."""
    if shape not in _GEOM_TYPES:
        raise ValueError(f"unknown geom shape {shape!r}; expected one of {sorted(_GEOM_TYPES)}")
    geom = body.add_geom(type=_GEOM_TYPES[shape], size=list(size) + [0.0] * (3 - len(size)), pos=list(pos))
    geom.rgba = list(rgba)
    if name:
        geom.name = name
    if quat is not None:
        geom.quat = list(quat)
    if mass is not None:
        geom.mass = float(mass)
    if friction is not None:
        geom.friction = list(friction)
    return geom


def exclude_contacts(spec: mujoco.MjSpec, body_a: str, body_b: str) -> None:
    """No contacts between two bodies (a moving part and the fixed body it is jointed to: MuJoCo
    filters parent-child contacts only when the parent is not welded to the world)."""
    spec.add_exclude(bodyname1=body_a, bodyname2=body_b)


def add_free_body(
    spec: mujoco.MjSpec,
    name: str,
    shape: str,
    size: Sequence[float],
    pos: Sequence[float],
    rgba: Sequence[float],
    yaw: float = 0.0,
    mass: float = 0.2,
    friction: Sequence[float] = (1.0, 0.01, 0.001),
) -> mujoco.MjsBody:
    """A labelled loose object (free joint) with one geom; `pos` is its centre."""
    x, y, z, w = Rotation.from_euler("z", yaw).as_quat()
    body = spec.worldbody.add_body(name=name, pos=list(pos), quat=[w, x, y, z])
    body.add_freejoint(name=f"{name}_free")
    add_geom(body, shape, size, rgba=rgba, mass=mass, friction=friction)
    return body


def resting_height(shape: str, size: Sequence[float]) -> float:
    """Height of a geom's centre above the table when it stands upright on it."""
    if shape == "sphere":
        return float(size[0])
    if shape == "capsule":
        return float(size[0] + size[1])
    return float(size[-1] if shape == "box" else size[1])


# --- distractors -------------------------------------------------------------------------------

_DISTRACTOR_SHAPES = ("box", "cylinder", "sphere")
_SHAPE_WORD = {"box": "block", "cylinder": "can", "sphere": "ball"}


@dataclass(frozen=True)
class KeepOut:
    """A disc on the table that distractors must not overlap (task object, the arm's path)."""

    x: float
    y: float
    radius: float


def keepout_segment(a: Sequence[float], b: Sequence[float], radius: float, n: int = 5) -> list[KeepOut]:
    """Discs covering the segment a -> b on the table (e.g. a drawer's travel, a door's sweep)."""
    pa, pb = np.asarray(a[:2], dtype=float), np.asarray(b[:2], dtype=float)
    return [KeepOut(*map(float, pa + (pb - pa) * s), radius) for s in np.linspace(0.0, 1.0, n)]


def add_distractors(
    spec: mujoco.MjSpec,
    rng: np.random.Generator,
    keepouts: Sequence[KeepOut],
    count: int | None = None,
    avoid_colors: Sequence[str] = (),
) -> list[str]:
    """Put 1-3 (or `count`) small loose objects on free table space; returns their labels.

    Labels read like what a person would call them ("green_block", "red_can", "blue_ball") so a
    reasoner can tell them apart from the task's objects. Positions avoid the `keepouts`, the robot
    base and each other; if the table is too crowded, fewer objects are placed.
    """
    n = int(rng.integers(1, 4)) if count is None else int(count)
    placed: list[KeepOut] = []
    names: list[str] = []
    colors = [c for c in PALETTE if c not in avoid_colors]
    for _ in range(n):
        shape = _DISTRACTOR_SHAPES[int(rng.integers(len(_DISTRACTOR_SHAPES)))]
        color = colors[int(rng.integers(len(colors)))]
        if shape == "box":
            half = float(rng.uniform(0.02, 0.03))
            size: list[float] = [half, half * float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.02, 0.035))]
            radius = math.hypot(size[0], size[1])
        elif shape == "cylinder":
            size = [float(rng.uniform(0.02, 0.03)), float(rng.uniform(0.03, 0.05))]
            radius = size[0]
        else:
            size = [float(rng.uniform(0.02, 0.03))]
            radius = size[0]
        for _attempt in range(60):
            x = float(rng.uniform(WORKSPACE_X[0] + 0.02, WORKSPACE_X[1]))
            y = float(rng.uniform(WORKSPACE_Y[0], WORKSPACE_Y[1]))
            if math.hypot(x, y) < 0.35:  # the robot base and the arm's first links
                continue
            if any(math.hypot(x - k.x, y - k.y) < k.radius + radius + 0.02 for k in [*keepouts, *placed]):
                continue
            break
        else:
            continue
        name = f"{color}_{_SHAPE_WORD[shape]}"
        suffix = 2
        while name in names:
            name = f"{color}_{_SHAPE_WORD[shape]}_{suffix}"
            suffix += 1
        rgba = [*PALETTE[color][:3], 1.0]
        add_free_body(
            spec, name, shape, size, (x, y, resting_height(shape, size) + 0.001), rgba,
            yaw=float(rng.uniform(-math.pi, math.pi)), mass=float(rng.uniform(0.05, 0.2)),
        )
        placed.append(KeepOut(x, y, radius))
        names.append(name)
    return names


# --- cameras -----------------------------------------------------------------------------------

# Eye offsets (m) from the scene's focus point for the standard viewpoints; the robot stands at -x.
# The robot stands at -x and its arm hides what is right in front of its base, so the front view
# looks from above the arm's left shoulder, and the side views look in from either side.
VIEW_OFFSETS: dict[str, tuple[float, float, float]] = {
    "cam_front": (-0.22, 0.32, 0.62),
    "cam_left": (-0.25, 0.65, 0.38),
    "cam_right": (-0.25, -0.65, 0.38),
    "cam_top": (-0.10, -0.10, 0.85),
}


def add_camera(
    spec: mujoco.MjSpec, name: str, eye: Sequence[float], target: Sequence[float], fovy: float = 58.0
) -> mujoco.MjsCamera:
    """A fixed camera at `eye` looking at `target` (sim.world.add_camera: re-aims an existing one)."""
    from sim.world import add_camera as world_add_camera

    return world_add_camera(spec, name, eye, target, fovy)


def add_views(
    spec: mujoco.MjSpec,
    focus: Sequence[float],
    rng: np.random.Generator,
    variant: Variant,
    names: Sequence[str] = ("cam_front", "cam_left", "cam_right", "cam_top"),
    distance: float = 1.0,
) -> dict[str, list[float]]:
    """The standard viewpoints around `focus`, `distance` times the standard offsets away (larger
    objects: > 1), jittered by a few cm (more in unseen scenes)."""
    jitter = 0.02 if variant == Variant.seen else 0.05
    eyes: dict[str, list[float]] = {}
    for name in names:
        offset = np.asarray(VIEW_OFFSETS[name]) * distance
        eye = np.asarray(focus, dtype=float) + offset + rng.uniform(-jitter, jitter, 3)
        add_camera(spec, name, eye, focus)
        eyes[name] = [float(v) for v in eye]
    return eyes


# --- gripper poses and paths ---------------------------------------------------------------------


def gripper_rotation(approach: Sequence[float], closing: Sequence[float]) -> Rotation:
    """Gripper orientation with z along `approach` and y along `closing` (made orthogonal to z)."""
    z = np.asarray(approach, dtype=float)
    z = z / np.linalg.norm(z)
    y = np.asarray(closing, dtype=float)
    y = y - np.dot(y, z) * z
    if np.linalg.norm(y) < 1e-9:
        raise ValueError("closing axis is parallel to the approach direction")
    y = y / np.linalg.norm(y)
    x = np.cross(y, z)
    return Rotation.from_matrix(np.column_stack([x, y, z]))


def pose(rotation: Rotation, position: Sequence[float]) -> Pose:
    return Pose.from_rotation(rotation, [float(v) for v in position])


def offset_along_approach(p: Pose, distance: float) -> Pose:
    """The same orientation, moved `distance` backwards along the approach axis (pre-grasp pose)."""
    z = p.rotation.as_matrix()[:, 2]
    return Pose.from_rotation(p.rotation, p.translation - distance * z)


def linear_path(start: Pose, delta: Sequence[float], n: int) -> list[Pose]:
    """`n` poses after `start`, translating by `delta` in total (orientation kept)."""
    d = np.asarray(delta, dtype=float)
    return [Pose.from_rotation(start.rotation, start.translation + d * s) for s in np.linspace(0, 1, n + 1)[1:]]


def arc_path(start: Pose, pivot: Sequence[float], axis: Sequence[float], angle: float, n: int) -> list[Pose]:
    """`n` poses after `start`, rotating it rigidly by `angle` (rad) about the line (pivot, axis)."""
    c = np.asarray(pivot, dtype=float)
    u = np.asarray(axis, dtype=float)
    u = u / np.linalg.norm(u)
    out = []
    for s in np.linspace(0.0, 1.0, n + 1)[1:]:
        R = Rotation.from_rotvec(u * angle * s)
        out.append(Pose.from_rotation(R * start.rotation, c + R.apply(start.translation - c)))
    return out


def retreat(
    p: Pose, distance: float, duration: float, lift: float = 0.05, label: str = "retreat"
) -> list[Move | Release]:
    """Open the hand, then back off along the approach axis and up by `lift`."""
    back = offset_along_approach(p, distance)
    up = Pose.from_rotation(back.rotation, back.translation + np.array([0.0, 0.0, lift]))
    return [Release(width=0.08), Move(path=[back, up] if lift > 0 else [back], duration=duration, label=label)]


def jitter_pose(p: Pose, rng: np.random.Generator, pos_sigma: float, rot_sigma: float) -> Pose:
    """A human-like perturbation of a via-point (normal noise on position and orientation)."""
    dR = Rotation.from_rotvec(rng.normal(0.0, rot_sigma, 3))
    return Pose.from_rotation(dR * p.rotation, p.translation + rng.normal(0.0, pos_sigma, 3))


def human_duration(rng: np.random.Generator, nominal: float) -> float:
    """A person's timing: the nominal duration scaled by 0.75-1.35."""
    return float(nominal * rng.uniform(0.75, 1.35))


# --- articulated tasks -------------------------------------------------------------------------


def joint_value(world: SimWorld, joint: str) -> float:
    """A 1-DoF (slide or hinge) joint's position (m or rad) from the simulator."""
    j = world.joint_id(joint)
    return float(world.data.qpos[world.model.jnt_qposadr[j]])


def set_joint_value(world: SimWorld, joint: str, value: float) -> None:
    """Teleport a 1-DoF joint (velocity zeroed); for tests and renders of a solved state."""
    import mujoco as mj

    j = world.joint_id(joint)
    world.data.qpos[world.model.jnt_qposadr[j]] = float(value)
    world.data.qvel[world.model.jnt_dofadr[j]] = 0.0
    mj.mj_forward(world.model, world.data)


class ArticulatedTask(Task):
    """A task that is solved by moving one joint of an articulated object past a threshold.

    `build` must record in `SceneParams.values`: "joint" (the joint's name), "threshold" (the joint
    value at and beyond which the task counts as solved) and "open_value" (a value well past the
    threshold, used by tests and renders to show the solved state).
    """

    def progress(self, world: SimWorld, params: SceneParams) -> float:
        """The joint's current value (0 at reset)."""
        return joint_value(world, str(params.values["joint"]))

    def success(self, world: SimWorld, params: SceneParams) -> bool:
        return self.progress(world, params) >= float(params.values["threshold"])

    def solved_state(self, world: SimWorld, params: SceneParams) -> None:
        """Put the articulation into a solved configuration directly (tests, renders; not the robot)."""
        set_joint_value(world, str(params.values["joint"]), float(params.values["open_value"]))
