"""Objects composed from MuJoCo primitives (blocks, fruit, plates, cups, liquid), for any task to reuse.

Every builder adds one body named after its segmentation label (see sim.tasks.base) and returns it;
free objects get a free joint, fixtures are welded to the world (the kitchen things: sim.tasks.kitchen;
shared state queries and scripted-motion helpers: sim.tasks.queries). Hollow objects (cup,
pan, sink) are rings of boxes around a floor, because MuJoCo collides convex shapes only.
Conventions: the table top is z = 0; `pos` is the (x, y) of the object's centre on the table;
`yaw` rotates the object about the world z axis; sizes are metres, masses kilograms.

Graspable parts are sized for the Panda hand (at most 7 cm across where the fingers close, handles
1.5-3 cm thick) and use torsional friction (condim 4) so that a physical grasp can hold them; the
robot never attaches an object kinematically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

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
