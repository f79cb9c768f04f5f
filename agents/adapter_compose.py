"""Pure geometry of the adapter: a manipulation skill composed into world gripper poses
(compose_manipulation), the shifts tried for a put-down at a free place (free_place_shifts), and the
small helpers it and perception use (_within, _twist_like)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.adapter_state import N_SHAPE
from agents.reasoning.questions import Revision
from core.geometry import Pose, invert_transform
from core.skills import Skill
from tools.execution.candidates import is_round
from tools.execution.manipulation import (
    master_slave_trajectory,
    tilts_slave,
    world_trajectory,
    yaw_master_to_demo,
    yaw_slave_to_demo,
    yaw_slave_to_grip,
)
from tools.execution.verify import relation
from tools.perception.scene import PerceivedObject


@dataclass
class Composed:
    """A manipulation instantiated in the world: the master frame used, T_master_slave(t), the start,
    the slave-to-gripper transform (yaw of a round slave fixed) and the gripper poses."""

    T_wm: np.ndarray
    Ts: np.ndarray
    T_ms0: np.ndarray
    T_sg: np.ndarray
    poses: list[Pose]
    shape_ms: np.ndarray


def compose_manipulation(skill: Skill, T_wm: np.ndarray, master_size: tuple, T_ws: np.ndarray | None,
                         T_sg: np.ndarray, slave_size: tuple, rev: Revision, ee: np.ndarray, *,
                         slave_round: bool = False, T_ms_from: np.ndarray | None = None) -> Composed:
    """T_world_gripper(t) = T_world_master · T_master_slave(t) · T_slave_gripper for a skill, started
    from the slave's pose now (T_ws; None: the hand, from the program's own start). The yaw of a round
    master (or slave) cannot be seen, so the one that matches the demonstrated start is taken.
    `T_ms_from`: start the program from this relation instead of the slave's pose now (a part brought
    back to where its step began)."""
    assert skill.manipulation is not None
    sizes = {"master": master_size, "slave": slave_size}
    about = "start" if T_ws is not None else "contact"  # a free hand: stretch the approach, not the press
    shape = master_slave_trajectory(skill.manipulation, sizes, None, revision=rev,
                                    times=np.linspace(0.0, 1.0, N_SHAPE), scale_about=about)
    part = skill.slave is not None and bool(skill.slave.parent)  # a drawer, a door: frames fixed by the fixture
    if T_ws is not None and not part:
        if is_round(master_size, T_wm):
            T_wm = yaw_master_to_demo(T_wm, T_ws, shape[0])
        if slave_round:
            # its yaw cannot be seen: a tilt goes by the demonstrated grip (which way the fingers stand to
            # the tilt), anything else by the demonstrated start orientation (no wrist twist to make)
            Rz = None
            if tilts_slave(shape):
                Rz = yaw_slave_to_grip(relation(T_wm, T_ws), T_sg, shape[0],
                                       skill.manipulation.T_slave_gripper.matrix())
            if Rz is None:
                Rz = yaw_slave_to_demo(relation(T_wm, T_ws), shape[0])
            T_ws, T_sg = T_ws @ Rz, invert_transform(Rz) @ T_sg
    T_ms0 = relation(T_wm, T_ws) if T_ws is not None else None
    if T_ms_from is not None and T_ms0 is not None:
        T_ms0 = np.asarray(T_ms_from, dtype=float)
    Ts = master_slave_trajectory(skill.manipulation, sizes, T_ms0, revision=rev, scale_about=about,
                                 relative=part and T_ms0 is not None)
    if T_ws is None:
        Ts = _twist_like(Ts, invert_transform(T_wm) @ ee)
        T_ms0 = Ts[0]
    return Composed(T_wm=T_wm, Ts=Ts, T_ms0=T_ms0, T_sg=T_sg, poses=world_trajectory(T_wm, Ts, T_sg), shape_ms=shape)


def _within(points: np.ndarray, obj: PerceivedObject, margin: float = 0.015, share: float = 0.9) -> bool:
    """Do (at least `share` of) `points` lie inside obj's box (its frame and size, plus `margin`)?"""
    if len(points) == 0:
        return False
    T = invert_transform(obj.T_world_object)
    local = np.asarray(points, dtype=float) @ T[:3, :3].T + T[:3, 3]
    inside = np.all(np.abs(local) <= np.asarray(obj.size, dtype=float) / 2 + margin, axis=1)
    return float(np.mean(inside)) >= share


def _twist_like(Ts: np.ndarray, T_ref: np.ndarray) -> np.ndarray:
    """Turn each pose 180 deg about its own z when that brings its y nearer the reference's y (a
    parallel gripper is the same either way; the wrist is not)."""
    out = Ts.copy()
    if float(Ts[0][:3, 1] @ T_ref[:3, 1]) < 0:
        out[:, :3, :3] = Ts[:, :3, :3] @ np.diag([-1.0, -1.0, 1.0])
    return out


FREE_PLACE_STEPS_M = (0.03, 0.06, 0.09, 0.12)  # shifts tried for an unreachable free place, nearest first
FREE_PLACE_MIN_M = 0.06  # shifts this far are fine even when the demos' places spread less


def free_place_shifts(end_world: np.ndarray, spread_m: float) -> list[np.ndarray]:
    """World-frame shifts (horizontal) of a put-down's place towards the arm's base (the origin), straight
    and 45 degrees either side, nearest first, up to the demos' own spread of places (at least
    `FREE_PLACE_MIN_M`): a free place out of reach moved to one the arm can reach."""
    xy = -np.asarray(end_world, dtype=float)[:2]
    n = float(np.linalg.norm(xy))
    if n < 1e-6:
        return []
    home = xy / n
    reach = max(float(spread_m), FREE_PLACE_MIN_M)
    out = []
    for step in FREE_PLACE_STEPS_M:
        if step > reach + 1e-9:
            break
        for ang in (0.0, np.pi / 4, -np.pi / 4):
            c, s = np.cos(ang), np.sin(ang)
            d = np.array([c * home[0] - s * home[1], s * home[0] + c * home[1]])
            out.append(np.array([d[0] * step, d[1] * step, 0.0]))
    return out
