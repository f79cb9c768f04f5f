"""Did it work? Grasp verification from the gripper, and the relation reached after a manipulation.

- `verify_grasp`: the gripper closed on something (width above a minimum, the grasp call reported an
  object between the fingers, and the opening stays where it closed), not on air.
- `relation`: the slave's pose in the master frame (what the demonstration's end state is written in).
- `judge_motion`: achieved vs planned motion of the slave in the master frame: displacement along the
  planned direction and rotation about the planned axis; and the end-state distance to the plan.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel
from scipy.spatial.transform import Rotation as Rot

from core.geometry import invert_transform

MIN_HELD_WIDTH_M = 0.002  # fingers closer than this closed on nothing
MAX_HELD_WIDTH_M = 0.078  # fingers this far apart never closed (the Panda hand opens to 80 mm)
END_ROTATION_TOL_DEG = 15.0  # an end pose this close in orientation (and position) is the planned one
PLACED_HEIGHT_TOL_M = 0.05  # an object let go this far above/below the planned height did not land as planned
ENOUGH_MOTION = 0.7  # share of the planned motion that counts as done (the diagnose rule's threshold)


class GraspVerdict(BaseModel):
    held: bool
    width: float
    message: str


def verify_grasp(reported_success: bool, width_after: float, is_grasping: bool | None = None,
                 expected_width: float | None = None, max_width: float = MAX_HELD_WIDTH_M) -> GraspVerdict:
    """Held iff the grasp reported success, the fingers stopped apart but closed some way (not still
    fully open: then they rest on the object's ends or outside it), and (when known) still grasp."""
    if width_after < MIN_HELD_WIDTH_M:
        return GraspVerdict(held=False, width=width_after,
                            message=f"fingers closed to {width_after * 1000:.1f} mm: nothing between them")
    if width_after > max_width:
        return GraspVerdict(held=False, width=width_after,
                            message=f"the fingers stayed open at {width_after * 1000:.1f} mm: the object is as wide "
                                    "as the open hand there (fingers on its ends), not held")
    if not reported_success:
        return GraspVerdict(held=False, width=width_after,
                            message=f"the gripper stopped at {width_after * 1000:.1f} mm without holding")
    if is_grasping is False:
        return GraspVerdict(held=False, width=width_after, message="the object slipped out of the fingers")
    note = "" if expected_width is None else f" (demonstrated {expected_width * 1000:.0f} mm)"
    return GraspVerdict(held=True, width=width_after, message=f"holding at {width_after * 1000:.1f} mm{note}")


def relation(T_world_master: np.ndarray, T_world_slave: np.ndarray) -> np.ndarray:
    """T_master_slave."""
    return invert_transform(np.asarray(T_world_master, dtype=float)) @ np.asarray(T_world_slave, dtype=float)


def placement_tolerance(master_size: Sequence[float], share: float = 0.25, floor_m: float = 0.025) -> float:
    """How far from the planned spot an object set down on/in a master may rest and still count as
    placed: a quarter of the master's smaller side (anywhere near the middle of a plate is on the
    plate; a block on a block must be nearly centred), never under 2.5 cm (perception's own error)."""
    s = np.asarray(master_size, dtype=float)
    return float(max(floor_m, share * float(np.min(s[:2]))))


def placed_height_tolerance(slave_size: Sequence[float] | None, master_size: Sequence[float] | None = None,
                            share: float = 0.5, floor_m: float = 0.02) -> float:
    """How far below or above its planned rest an object let go may lie and still count as placed: half
    its own height (a block 3 cm below the top of the block it was stacked on has slid off beside it,
    one 2 cm low has settled; a brush lying on its side is lower by half its length), and no more than
    half the master's height (a big block that slid off a small one drops by the small one's height, less
    than half its own); never under 2 cm (perception's error on a resting object's centre), never over
    `PLACED_HEIGHT_TOL_M`. Beside the master, the master's height tightens nothing that matters: an object
    resting on the table cannot lie lower than planned by more than perception's error."""
    if slave_size is None:
        return PLACED_HEIGHT_TOL_M
    tol = share * float(np.asarray(slave_size, dtype=float)[2])
    if master_size is not None:
        tol = min(tol, share * float(np.asarray(master_size, dtype=float)[2]))
    return float(np.clip(tol, floor_m, PLACED_HEIGHT_TOL_M))


class MotionJudgement(BaseModel):
    expected_motion_m: float
    achieved_motion_m: float
    expected_rotation_deg: float
    achieved_rotation_deg: float
    end_error_m: float
    enough: bool
    message: str


def returns_to_start(planned: Sequence[np.ndarray] | np.ndarray, start: np.ndarray | None = None) -> bool:
    """Does the planned T_master_slave(t) go somewhere (2 cm, 10 degrees) and come back to its start
    (within 2 cm, 10 degrees)? A faucet's handle turned on and off again; not a drawer pulled open."""
    P = np.asarray(planned, dtype=float)
    if len(P) == 0:
        return False
    s = P[0] if start is None else np.asarray(start, dtype=float)
    away_m = float(np.max(np.linalg.norm(P[:, :3, 3] - s[:3, 3], axis=1)))
    away_deg = float(np.rad2deg(np.max(Rot.from_matrix(P[:, :3, :3] @ s[:3, :3].T).magnitude())))
    end_m = float(np.linalg.norm(P[-1][:3, 3] - s[:3, 3]))
    end_deg = float(np.rad2deg(Rot.from_matrix(P[-1][:3, :3] @ s[:3, :3].T).magnitude()))
    return end_m < 0.02 and end_deg < 10.0 and (away_m >= 0.02 or away_deg >= 10.0)


def judge_motion(
    planned: Sequence[np.ndarray] | np.ndarray,
    start: np.ndarray,
    achieved: np.ndarray,
    *,
    end_tolerance_m: float = 0.03,
    placement: bool = False,
    height_tolerance_m: float = PLACED_HEIGHT_TOL_M,
    sweep: bool = False,
) -> MotionJudgement:
    """Compare the slave's achieved pose (master frame) with the planned T_master_slave(t).

    The motion counts as done when the displacement along the planned direction and the rotation
    about the planned axis reach ENOUGH_MOTION of the plan (articulations: a drawer out, a door
    swung), or when the end pose lies within `end_tolerance_m` of the planned end. For a `placement`
    (an object let go) only the end position counts: across the master's plane, its height within
    `height_tolerance_m` (see `placed_height_tolerance`). For a `sweep` (a scrub, which turns back and
    forth, so its start-to-end displacement says nothing) only reaching the planned end pose counts:
    a brush stopped short, or turned in the hand by the pan it pressed on, did not finish its strokes.
    So too for a motion there and back (a faucet's handle turned on and off again: it ends where it
    began, so the start-to-end measures are met by a handle left half open).
    """
    P = np.asarray(planned, dtype=float)
    s, a, e = np.asarray(start, dtype=float), np.asarray(achieved, dtype=float), P[-1]
    d_plan = e[:3, 3] - s[:3, 3]
    exp_m = float(np.linalg.norm(d_plan))
    d_ach = a[:3, 3] - s[:3, 3]
    ach_m = float(d_ach @ (d_plan / exp_m)) if exp_m > 1e-6 else float(np.linalg.norm(d_ach))
    rv_plan = Rot.from_matrix(e[:3, :3] @ s[:3, :3].T).as_rotvec()
    exp_deg = float(np.rad2deg(np.linalg.norm(rv_plan)))
    rv_ach = Rot.from_matrix(a[:3, :3] @ s[:3, :3].T).as_rotvec()
    if exp_deg > 1e-3:
        ach_deg = float(np.rad2deg(rv_ach @ (rv_plan / np.linalg.norm(rv_plan))))
    else:
        ach_deg = float(np.rad2deg(np.linalg.norm(rv_ach)))
    end_err = float(np.linalg.norm(a[:3, 3] - e[:3, 3]))
    rise = float(a[2, 3] - e[2, 3])
    if placement:
        # an object let go rests where its support holds it: where it lies across the master's plane
        # counts, its height only as a sanity check (not left hanging, not fallen off)
        end_err = float(np.linalg.norm(a[:2, 3] - e[:2, 3]))
    moved_ok = exp_m < 0.02 or ach_m >= ENOUGH_MOTION * exp_m
    turned_ok = exp_deg < 10.0 or ach_deg >= ENOUGH_MOTION * exp_deg
    there_and_back = returns_to_start(P, s)
    end_rot_deg = float(np.rad2deg(Rot.from_matrix(a[:3, :3] @ e[:3, :3].T).magnitude()))
    at_end = end_err <= end_tolerance_m and (abs(rise) <= height_tolerance_m if placement
                                              else end_rot_deg <= END_ROTATION_TOL_DEG)
    enough = at_end if placement or sweep or there_and_back else ((moved_ok and turned_ok) or at_end)
    msg = (f"moved {ach_m * 100:.1f}/{exp_m * 100:.1f} cm, turned {ach_deg:.0f}/{exp_deg:.0f} deg, "
           f"end {end_err * 100:.1f} cm from the plan" + (f" ({rise * 100:+.1f} cm in height)" if placement else ""))
    return MotionJudgement(expected_motion_m=exp_m, achieved_motion_m=ach_m, expected_rotation_deg=exp_deg,
                           achieved_rotation_deg=ach_deg, end_error_m=end_err, enough=enough, message=msg)
