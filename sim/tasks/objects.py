"""Kitchen objects composed from MuJoCo primitives, for any task to reuse.

Every builder adds one body named after its segmentation label (see sim.tasks.base) and returns it;
free objects get a free joint, fixtures (sink, rack) are welded to the world. Hollow objects (cup,
pan, sink) are rings of boxes around a floor, because MuJoCo collides convex shapes only.
Conventions: the table top is z = 0; `pos` is the (x, y) of the object's centre on the table;
`yaw` rotates the object about the world z axis; sizes are metres, masses kilograms.

Graspable parts are sized for the Panda hand (at most 7 cm across where the fingers close, handles
1.5-3 cm thick) and use torsional friction (condim 4) so that a physical grasp can hold them; the
robot never attaches an object kinematically.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from core.geometry import Pose
from sim.tasks.common import PALETTE

# Named colours (RGBA); tasks pick from these so that colour words in goals stay meaningful.
COLOURS: dict[str, tuple[float, float, float, float]] = {
    **PALETTE,
    "steel": (0.7, 0.72, 0.75, 1.0),
    "mango": (0.98, 0.65, 0.15, 1.0),
    "cream": (0.95, 0.9, 0.78, 1.0),
}

GRASP_FRICTION = (1.2, 0.01, 0.0001)  # sliding, torsional (m), rolling (m)
BOX = mujoco.mjtGeom.mjGEOM_BOX
CYLINDER = mujoco.mjtGeom.mjGEOM_CYLINDER
SPHERE = mujoco.mjtGeom.mjGEOM_SPHERE
CAPSULE = mujoco.mjtGeom.mjGEOM_CAPSULE
ELLIPSOID = mujoco.mjtGeom.mjGEOM_ELLIPSOID


def yaw_quat(yaw: float) -> list[float]:
    """MuJoCo (w, x, y, z) quaternion for a rotation about world z."""
    return [math.cos(yaw / 2.0), 0.0, 0.0, math.sin(yaw / 2.0)]


def _wxyz(rot: Rotation) -> list[float]:
    x, y, z, w = rot.as_quat()
    return [float(w), float(x), float(y), float(z)]


def add_geom(
    body: mujoco.MjsBody,
    gtype: mujoco.mjtGeom,
    size: Sequence[float],
    pos: Sequence[float] = (0.0, 0.0, 0.0),
    *,
    rgba: Sequence[float] = COLOURS["grey"],
    mass: float | None = None,
    quat: Sequence[float] | None = None,
    friction: Sequence[float] | None = GRASP_FRICTION,
    condim: int = 4,
    name: str = "",
) -> mujoco.MjsGeom:
    """One collision + visual geom; `quat` is MuJoCo's (w, x, y, z)."""
    sz = list(size) + [0.0] * (3 - len(size))
    g = body.add_geom(type=gtype, size=sz, pos=list(pos), rgba=list(rgba), name=name)
    if quat is not None:
        g.quat = list(quat)
    if mass is not None:
        g.mass = float(mass)
    if friction is not None:
        g.friction = list(friction)
    g.condim = condim
    return g


def add_free_body(spec: mujoco.MjSpec, name: str, pos3: Sequence[float], yaw: float = 0.0) -> mujoco.MjsBody:
    body = spec.worldbody.add_body(name=name, pos=list(pos3), quat=yaw_quat(yaw))
    body.add_freejoint(name=f"{name}_free")
    return body


def add_fixed_body(spec: mujoco.MjSpec, name: str, pos3: Sequence[float], yaw: float = 0.0) -> mujoco.MjsBody:
    return spec.worldbody.add_body(name=name, pos=list(pos3), quat=yaw_quat(yaw))


def _ring(
    body: mujoco.MjsBody,
    *,
    radius: float,
    wall: float,
    z0: float,
    height: float,
    rgba: Sequence[float],
    mass: float,
    n: int,
    square: bool = False,
) -> None:
    """A wall of n boxes around the body's z axis, inner radius `radius`, from z0 to z0 + height."""
    if square:
        for k in range(4):
            a = k * math.pi / 2.0
            c = np.array([math.cos(a), math.sin(a)]) * (radius + wall / 2.0)
            add_geom(body, BOX, [wall / 2.0, radius + wall, height / 2.0], [c[0], c[1], z0 + height / 2.0],
                     rgba=rgba, mass=mass / 4.0, quat=yaw_quat(a))
        return
    r_mid = radius + wall / 2.0
    half_len = r_mid * math.tan(math.pi / n) + wall / 2.0
    for k in range(n):
        a = 2.0 * math.pi * k / n
        add_geom(body, BOX, [wall / 2.0, half_len, height / 2.0],
                 [r_mid * math.cos(a), r_mid * math.sin(a), z0 + height / 2.0],
                 rgba=rgba, mass=mass / n, quat=yaw_quat(a))


# ---------------------------------------------------------------- small free objects


def add_block(
    spec: mujoco.MjSpec, name: str, edge: float, xy: Sequence[float], yaw: float,
    rgba: Sequence[float], mass: float = 0.08,
) -> mujoco.MjsBody:
    """A cube of edge `edge` resting on the table."""
    body = add_free_body(spec, name, [xy[0], xy[1], edge / 2.0], yaw)
    add_geom(body, BOX, [edge / 2.0] * 3, rgba=rgba, mass=mass)
    return body


FRUIT_SHAPES = ("ellipsoid", "sphere", "cube", "cylinder")


def fruit_height(shape: str, size: Sequence[float]) -> float:
    """Resting height of a fruit built by add_fruit (size = half-extents x, y, z)."""
    if shape not in FRUIT_SHAPES:
        raise ValueError(f"unknown fruit shape {shape!r}; expected one of {FRUIT_SHAPES}")
    return 2.0 * float(size[2])


def add_fruit(
    spec: mujoco.MjSpec, name: str, shape: str, size: Sequence[float], xy: Sequence[float], yaw: float,
    rgba: Sequence[float], mass: float = 0.15,
) -> mujoco.MjsBody:
    """A fruit-like object; `size` are half-extents (x long axis, y across the grasp, z height).

    ellipsoid: mango-like, slightly flattened so it does not roll; sphere uses size[0];
    cube: box; cylinder: upright, radius size[0], half-height size[2].
    """
    h = fruit_height(shape, size)
    body = add_free_body(spec, name, [xy[0], xy[1], h / 2.0], yaw)
    if shape == "ellipsoid":
        add_geom(body, ELLIPSOID, size, rgba=rgba, mass=mass)
    elif shape == "sphere":
        r = float(size[2])  # a fruit is no billiard ball: rolling friction lets it come to rest
        add_geom(body, SPHERE, [r], rgba=rgba, mass=mass, friction=(1.2, 0.01, 0.003), condim=6)
    elif shape == "cube":
        add_geom(body, BOX, size, rgba=rgba, mass=mass)
    else:
        add_geom(body, CYLINDER, [size[0], size[2]], rgba=rgba, mass=mass)
    # A short dark stem on top makes the fruit read as fruit in images.
    add_geom(body, CYLINDER, [0.004, 0.006], [0.0, 0.0, h / 2.0 + 0.004], rgba=COLOURS["brown"], mass=0.002)
    return body


PLATE_THICKNESS = 0.014


def add_plate(
    spec: mujoco.MjSpec, name: str, shape: str, radius: float, xy: Sequence[float], yaw: float,
    rgba: Sequence[float], mass: float = 0.4,
) -> mujoco.MjsBody:
    """A flat plate (round disc or square slab of half-width `radius`) with a low rim."""
    if shape not in ("round", "square"):
        raise ValueError(f"unknown plate shape {shape!r}; expected 'round' or 'square'")
    t = PLATE_THICKNESS
    body = add_free_body(spec, name, [xy[0], xy[1], t / 2.0], yaw)
    if shape == "round":
        add_geom(body, CYLINDER, [radius, t / 2.0], rgba=rgba, mass=mass * 0.8)
        _ring(body, radius=radius - 0.006, wall=0.006, z0=t / 2.0, height=0.006, rgba=rgba, mass=mass * 0.2, n=20)
    else:
        add_geom(body, BOX, [radius, radius, t / 2.0], rgba=rgba, mass=mass * 0.8)
        _ring(body, radius=radius - 0.006, wall=0.006, z0=t / 2.0, height=0.006, rgba=rgba, mass=mass * 0.2,
              n=4, square=True)
    return body


# ---------------------------------------------------------------- cups and liquid

CUP_WALL = 0.006
CUP_FLOOR = 0.014


def add_cup(
    spec: mujoco.MjSpec, name: str, radius: float, height: float, xy: Sequence[float], yaw: float,
    rgba: Sequence[float], mass: float = 0.12, n_walls: int = 16,
) -> mujoco.MjsBody:
    """An open cup: floor disc plus a ring of walls; `radius` is the outer radius (<= 3.5 cm to grasp)."""
    body = add_free_body(spec, name, [xy[0], xy[1], 0.0], yaw)
    add_geom(body, CYLINDER, [radius, CUP_FLOOR / 2.0], [0.0, 0.0, CUP_FLOOR / 2.0], rgba=rgba, mass=mass * 0.4)
    _ring(body, radius=radius - CUP_WALL, wall=CUP_WALL, z0=CUP_FLOOR, height=height - CUP_FLOOR,
          rgba=rgba, mass=mass * 0.6, n=n_walls)
    return body


def liquid_names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}_{i:02d}" for i in range(n)]


def add_liquid(
    spec: mujoco.MjSpec, prefix: str, cup_xy: Sequence[float], inner_radius: float, n: int,
    ball_radius: float = 0.0055, rgba: Sequence[float] = (0.25, 0.5, 0.95, 1.0),
) -> list[str]:
    """`n` small free spheres stacked in layers inside a cup standing at `cup_xy`; returns their names."""
    names = liquid_names(prefix, n)
    # positions on a hexagonal-ish grid inside the inner circle, layer by layer
    spots: list[tuple[float, float]] = []
    step = 2.15 * ball_radius
    lim = inner_radius - ball_radius - 0.001
    for i in range(-6, 7):
        for j in range(-6, 7):
            x = step * (i + 0.5 * (j % 2))
            y = step * j * 0.87
            if math.hypot(x, y) <= lim:
                spots.append((x, y))
    spots.sort(key=lambda p: math.hypot(*p))
    if not spots:
        raise ValueError(f"cup inner radius {inner_radius:.3f} m is too small for liquid balls of {ball_radius} m")
    for k, nm in enumerate(names):
        layer, idx = divmod(k, len(spots))
        x, y = spots[idx]
        z = CUP_FLOOR + ball_radius + 0.001 + layer * 2.05 * ball_radius
        body = spec.worldbody.add_body(name=nm, pos=[cup_xy[0] + x, cup_xy[1] + y, z])
        body.add_freejoint(name=f"{nm}_free")
        g = add_geom(body, SPHERE, [ball_radius], rgba=rgba, mass=0.002, friction=(0.05, 0.001, 0.0001), condim=1)
        g.priority = 1  # frictionless contacts with everything (cheap, and liquid-like) ...
        g.solref = [0.005, 1.0]  # ... and stiff, so that falling balls cannot tunnel through a cup's floor
    return names


# ---------------------------------------------------------------- pan and brush

HANDLE_TYPES = ("bar", "round", "flat")


@dataclass(frozen=True)
class PanGeometry:
    """Where a pan built by add_pan has its parts, in the pan's body frame (handle along +x)."""

    radius: float  # inner radius of the cooking surface
    wall_height: float
    floor: float  # floor thickness: the inner surface is at z = floor
    handle_type: str
    handle_start: float  # x where the handle leaves the wall
    handle_length: float
    handle_z: float  # handle centre height (at the rim, so the handle clears a sink's low wall)
    handle_width: float  # across y (what the fingers close on for a top grasp)
    handle_height: float  # along z

    def handle_point(self, fraction: float) -> np.ndarray:
        """A point on the handle's axis, `fraction` of its length from the wall (pan frame)."""
        return np.array([self.handle_start + fraction * self.handle_length, 0.0, self.handle_z])


def pan_geometry(
    radius: float, handle_type: str, handle_length: float = 0.13, wall_height: float = 0.04
) -> PanGeometry:
    if handle_type not in HANDLE_TYPES:
        raise ValueError(f"unknown handle type {handle_type!r}; expected one of {HANDLE_TYPES}")
    width, height = {"bar": (0.02, 0.024), "round": (0.022, 0.022), "flat": (0.028, 0.015)}[handle_type]
    wall = 0.005
    return PanGeometry(
        radius=radius, wall_height=wall_height, floor=0.006, handle_type=handle_type,
        handle_start=radius + wall, handle_length=handle_length, handle_z=wall_height,
        handle_width=width, handle_height=height,
    )


def add_pan(
    spec: mujoco.MjSpec, name: str, geo: PanGeometry, xy: Sequence[float], yaw: float,
    rgba: Sequence[float], handle_rgba: Sequence[float] = COLOURS["black"], mass: float = 0.3,
    z: float = 0.0,
) -> mujoco.MjsBody:
    """A frying pan standing on its floor, handle along the body's +x; see PanGeometry."""
    body = add_free_body(spec, name, [xy[0], xy[1], z], yaw)
    wall = 0.005
    add_geom(body, CYLINDER, [geo.radius + wall, geo.floor / 2.0], [0.0, 0.0, geo.floor / 2.0], rgba=rgba,
             mass=mass * 0.5, name=f"{name}_floor")
    _ring(body, radius=geo.radius, wall=wall, z0=geo.floor, height=geo.wall_height - geo.floor, rgba=rgba,
          mass=mass * 0.3, n=20)
    c = geo.handle_point(0.5)
    hl = geo.handle_length / 2.0 + 0.004
    if geo.handle_type == "round":
        add_geom(body, CAPSULE, [geo.handle_width / 2.0, hl - geo.handle_width / 2.0], c, rgba=handle_rgba,
                 mass=mass * 0.2, quat=_wxyz(Rotation.from_euler("y", 90, degrees=True)))
    else:
        add_geom(body, BOX, [hl, geo.handle_width / 2.0, geo.handle_height / 2.0], c, rgba=handle_rgba,
                 mass=mass * 0.2)
    return body


BRUSH_HANDLES = ("bar", "round", "flat")


@dataclass(frozen=True)
class BrushGeometry:
    """A scrubbing brush standing on its bristles: a bristle block with a vertical handle on top.

    In the brush's body frame the bristles' bottom is z = 0, the block's long side is x, and the
    handle rises along z from the block's top (what the fingers close on, across body y).
    """

    head_half: tuple[float, float, float]  # half-extents of the bristle block
    handle_type: str
    handle_width: float  # across body y
    handle_depth: float  # across body x
    handle_length: float

    @property
    def head_top(self) -> float:
        return 2.0 * self.head_half[2]

    def handle_point(self, fraction: float) -> np.ndarray:
        """A point on the handle's axis, `fraction` of its length above the block (brush frame)."""
        return np.array([0.0, 0.0, self.head_top + fraction * self.handle_length])


def brush_geometry(scale: float = 1.0, handle_type: str = "bar") -> BrushGeometry:
    if handle_type not in BRUSH_HANDLES:
        raise ValueError(f"unknown brush handle {handle_type!r}; expected one of {BRUSH_HANDLES}")
    width, depth = {"bar": (0.02, 0.02), "round": (0.022, 0.022), "flat": (0.016, 0.03)}[handle_type]
    return BrushGeometry(head_half=(0.035 * scale, 0.025 * scale, 0.015), handle_type=handle_type,
                         handle_width=width, handle_depth=depth, handle_length=0.1)


def add_brush(
    spec: mujoco.MjSpec, name: str, geo: BrushGeometry, xy: Sequence[float], yaw: float,
    rgba: Sequence[float], bristle_rgba: Sequence[float] = COLOURS["cream"], mass: float = 0.15,
) -> mujoco.MjsBody:
    """A brush standing on its bristle block (geom `<name>_head`), handle pointing up."""
    body = add_free_body(spec, name, [xy[0], xy[1], 0.0], yaw)
    hx, hy, hz = geo.head_half
    head = add_geom(body, BOX, [hx, hy, hz * 0.6], [0.0, 0.0, hz * 0.6], rgba=bristle_rgba, mass=mass * 0.35,
                    friction=(0.3, 0.005, 0.0001), name=f"{name}_head")
    head.priority = 1  # the bristles' low friction wins over grippy pans (MuJoCo takes the higher priority's)
    add_geom(body, BOX, [hx, hy, hz * 0.4], [0.0, 0.0, hz * 1.6], rgba=rgba, mass=mass * 0.35)
    c = geo.handle_point(0.5)
    if geo.handle_type == "round":
        add_geom(body, CYLINDER, [geo.handle_width / 2.0, geo.handle_length / 2.0], c, rgba=rgba, mass=mass * 0.3)
    else:
        add_geom(body, BOX, [geo.handle_depth / 2.0, geo.handle_width / 2.0, geo.handle_length / 2.0], c,
                 rgba=rgba, mass=mass * 0.3)
    return body


# ---------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class SinkGeometry:
    half_x: float  # inner half-extents of the basin
    half_y: float
    depth: float  # inner depth (basin floor at z = floor, rim at z = depth)
    floor: float = 0.01
    wall: float = 0.012


def add_sink(spec: mujoco.MjSpec, name: str, geo: SinkGeometry, xy: Sequence[float], yaw: float,
             rgba: Sequence[float] = COLOURS["steel"]) -> mujoco.MjsBody:
    """A basin fixed on the table: floor plate and four walls (a low box rim the arm can reach over)."""
    body = add_fixed_body(spec, name, [xy[0], xy[1], 0.0], yaw)
    w, f = geo.wall, geo.floor
    add_geom(body, BOX, [geo.half_x + w, geo.half_y + w, f / 2.0], [0.0, 0.0, f / 2.0], rgba=rgba,
             friction=(1.0, 0.005, 0.0001), condim=3)
    hz = (geo.depth - f) / 2.0
    for sx in (-1, 1):
        add_geom(body, BOX, [w / 2.0, geo.half_y + w, hz], [sx * (geo.half_x + w / 2.0), 0.0, f + hz], rgba=rgba,
                 friction=None, condim=3)
    for sy in (-1, 1):
        add_geom(body, BOX, [geo.half_x, w / 2.0, hz], [0.0, sy * (geo.half_y + w / 2.0), f + hz], rgba=rgba,
                 friction=None, condim=3)
    return body


@dataclass(frozen=True)
class RackGeometry:
    half_x: float
    half_y: float
    base: float = 0.012  # the slatted deck's top is at z = base
    post_height: float = 0.05


def add_rack(spec: mujoco.MjSpec, name: str, geo: RackGeometry, xy: Sequence[float], yaw: float,
             rgba: Sequence[float] = COLOURS["white"]) -> mujoco.MjsBody:
    """A low dish rack fixed on the table: slats as a deck plus four corner posts."""
    body = add_fixed_body(spec, name, [xy[0], xy[1], 0.0], yaw)
    n = 5
    for k in range(n):
        y = -geo.half_y + (k + 0.5) * 2.0 * geo.half_y / n
        add_geom(body, BOX, [geo.half_x, geo.half_y / n * 0.7, geo.base / 2.0], [0.0, y, geo.base / 2.0],
                 rgba=rgba, friction=None, condim=3)
    for sx in (-1, 1):
        for sy in (-1, 1):
            add_geom(body, CYLINDER, [0.005, geo.post_height / 2.0],
                     [sx * (geo.half_x - 0.005), sy * (geo.half_y - 0.005), geo.post_height / 2.0],
                     rgba=rgba, friction=None, condim=3)
    return body


# ---------------------------------------------------------------- generic helpers


def pose_from_matrix(T: np.ndarray) -> Pose:
    return Pose.from_matrix(T)


def top_down_gripper(position: Sequence[float], yaw: float) -> Pose:
    """Gripper pose pointing straight down (z = -world z), closing axis y at angle `yaw` in the table plane."""
    R = Rotation.from_euler("z", yaw) * Rotation.from_euler("x", math.pi)
    return Pose.from_rotation(R, position)


def wrap_half_turn(yaw: float) -> float:
    """A top-down grasp is symmetric under a half turn: map yaw into (-pi/2, pi/2]."""
    y = (yaw + math.pi / 2.0) % math.pi - math.pi / 2.0
    return math.pi / 2.0 if math.isclose(y, -math.pi / 2.0) else y


def sample_xy(
    rng: np.random.Generator, x: tuple[float, float], y: tuple[float, float],
    keep_out: Sequence[tuple[float, float, float]] = (), radius: float = 0.05, tries: int = 200,
) -> tuple[float, float]:
    """A uniformly sampled (x, y) in the box, at least `radius` + r from every (px, py, r) in keep_out."""
    for _ in range(tries):
        px = float(rng.uniform(*x))
        py = float(rng.uniform(*y))
        if all(math.hypot(px - a, py - b) > radius + r for a, b, r in keep_out):
            return px, py
    raise ValueError(f"could not place an object of radius {radius} m in x={x}, y={y} after {tries} tries")


# ---------------------------------------------------------------- simulator-state queries


def _model_data(world: object) -> tuple[mujoco.MjModel, mujoco.MjData]:
    return world.model, world.data  # type: ignore[attr-defined]


def body_id(world: object, name: str) -> int:
    model, _ = _model_data(world)
    i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
    if i < 0:
        raise KeyError(f"no body named {name!r} in this world")
    return int(i)


def body_pose(world: object, name: str) -> Pose:
    """T_world_body from the current simulator state."""
    model, data = _model_data(world)
    i = body_id(world, name)
    x, q = data.xpos[i], data.xquat[i]
    return Pose(position=tuple(map(float, x)), quaternion=(float(q[1]), float(q[2]), float(q[3]), float(q[0])))


def in_contact(world: object, a: str, b: str | Sequence[str]) -> bool:
    """Whether body `a` touches body `b` (or any of the bodies `b`) now."""
    model, data = _model_data(world)
    ia = body_id(world, a)
    others = {body_id(world, n) for n in ([b] if isinstance(b, str) else b)}
    for k in range(data.ncon):
        c = data.contact[k]
        ba, bb = int(model.geom_bodyid[c.geom1]), int(model.geom_bodyid[c.geom2])
        if (ba == ia and bb in others) or (bb == ia and ba in others):
            return True
    return False


def body_speed(world: object, name: str) -> float:
    """Linear speed (m/s) of a body's centre of mass."""
    model, data = _model_data(world)
    vel = np.zeros(6)
    mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, body_id(world, name), vel, 0)
    return float(np.linalg.norm(vel[3:]))


# ---------------------------------------------------------------- scripted pick and place


def lifted(p: Pose, dz: float) -> Pose:
    return Pose.from_rotation(p.rotation, p.translation + np.array([0.0, 0.0, dz]))


def pick_place_steps(
    grasp: Pose,
    place: Pose,
    target: str,
    width: float,
    *,
    lift: float = 0.12,
    pre: float = 0.1,
    speed: float = 1.0,
    via: Sequence[Pose] = (),
    pauses: dict[str, float] | None = None,
    release: bool = True,
) -> list:
    """Reach, grasp `target` at `grasp`, lift, carry (through `via`) and set it down at `place`.

    `speed` scales every duration (a human demo passes its own); `pauses` maps a step label
    ("reach", "approach", "lift", "transport", "lower", "retreat") to a Wait after it.
    """
    from sim.script import Grasp, Move, Release, Wait

    pauses = pauses or {}
    top = max(grasp.translation[2], place.translation[2]) + lift

    def move(path: list[Pose], duration: float, label: str) -> list:
        out: list = [Move(path=path, duration=duration / speed, label=label)]
        if pauses.get(label, 0.0) > 0.0:
            out.append(Wait(duration=pauses[label]))
        return out

    above_grasp = lifted(grasp, pre)
    carry_from = Pose.from_rotation(grasp.rotation, [*grasp.translation[:2], top])
    carry_to = Pose.from_rotation(place.rotation, [*place.translation[:2], top])
    steps: list = [Release(width=0.08)]
    steps += move([above_grasp], 2.5, "reach")
    steps += move([grasp], 1.2, "approach")
    steps.append(Grasp(target=target, width=width))
    steps += move([carry_from], 1.2, "lift")
    steps += move([*via, carry_to], 2.5, "transport")
    steps += move([place], 1.5, "lower")
    if release:
        steps.append(Release(width=0.08))
        steps += move([lifted(place, pre)], 1.0, "retreat")
    return steps


# ---------------------------------------------------------------- brushing coverage


class CoverageTracker:
    """Which cells of a pan's inner floor a brush's bristles have touched, observed step by step.

    The floor disc (radius `inner_radius` - `margin`) is cut into square cells of `cell` metres;
    whenever the bristle geom touches the pan's floor geom, every cell whose centre lies under the
    bristle block (in the pan's frame) counts as brushed. Install with world.add_step_callback.
    """

    def __init__(
        self, world: object, pan: str, brush_head_geom: str, inner_radius: float,
        head_half: Sequence[float], cell: float = 0.02, margin: float = 0.01, every: int = 5,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        model, _ = _model_data(world)
        self.pan_body = body_id(world, pan)
        self.floor_geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f"{pan}_floor")
        self.head_geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, brush_head_geom)
        if self.floor_geom < 0 or self.head_geom < 0:
            raise KeyError(f"coverage needs geoms {pan}_floor and {brush_head_geom}")
        r = inner_radius - margin
        ticks = np.arange(-r + cell / 2.0, r, cell)
        gx, gy = np.meshgrid(ticks, ticks)
        keep = np.hypot(gx, gy) <= r
        self.cells = np.column_stack([gx[keep], gy[keep]])
        self.touched = np.zeros(len(self.cells), dtype=bool)
        self.head_half = np.asarray(head_half[:2], dtype=float)
        self.every = max(1, int(every))
        self.gate = gate  # brushing counts only while this says so (e.g. after earlier subgoals)
        self._n = 0

    def _touching(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        for c in data.contact[: data.ncon]:
            if {int(c.geom1), int(c.geom2)} == {self.floor_geom, self.head_geom}:
                return True
        return False

    def __call__(self, world: object) -> None:
        self._n += 1
        if self._n % self.every:
            return
        if self.gate is not None and not self.gate():
            return
        model, data = _model_data(world)
        if not self._touching(model, data):
            return
        R_pan = data.xmat[self.pan_body].reshape(3, 3)
        p_pan = data.xpos[self.pan_body]
        R_head = data.geom_xmat[self.head_geom].reshape(3, 3)
        p_head = data.geom_xpos[self.head_geom]
        # cell centres (on the floor plane, pan frame) -> world -> head frame
        cells_world = p_pan + np.column_stack([self.cells, np.zeros(len(self.cells))]) @ R_pan.T
        local = (cells_world - p_head) @ R_head
        under = (np.abs(local[:, 0]) <= self.head_half[0]) & (np.abs(local[:, 1]) <= self.head_half[1])
        self.touched |= under

    @property
    def coverage(self) -> float:
        return float(self.touched.mean()) if len(self.touched) else 0.0
