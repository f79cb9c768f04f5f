"""Kitchen things for the brushing and washing tasks: pan, brush, sink and dish rack.

Same conventions as sim.tasks.objects (table top z = 0, one body per segmentation label).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from sim.tasks.objects import (
    BOX,
    CAPSULE,
    COLOURS,
    CYLINDER,
    _ring,
    _wxyz,
    add_fixed_body,
    add_free_body,
    add_geom,
)

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
