"""Simulator-state queries and scripted-motion helpers shared by the tasks: poses, contacts, speeds,
top-down grasps, pick-and-place steps and the brushing coverage tracker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from core.geometry import Pose

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
