"""Numbers -> size expressions: a fitted trajectory program rewritten over its objects' bbox sizes.

Positions and lengths become fractions of the master's bbox (`master.x*0.5`), so the program transfers
to another master; lengths many times an extent stay in metres; a held object's heights are written over
both objects' heights (`_slave_height`). Used by the fits in tools.constraints.fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation as Rot

from core.expr import size_fraction
from core.program import Arc, Line, Rotation, Spiral, Tilt, TrajectoryProgram, Waypoints, Zigzag
from tools.constraints.keypoints import MAX_SIZE_MULTIPLE

AXES = ("x", "y", "z")
FOOTPRINT_MARGIN_M = 0.01  # a held object this close to the master's footprint counts as above it


def _fraction(value: float, extent: float, name: str) -> float | str:
    """A length as a fraction of a master extent, or in metres when it is many times that extent: a lift
    of 13 cm is no function of a 7 mm plate's thickness (as `plate.z*19` it would scale with the thickness'
    measurement noise, +-15 % between demos, and with any thicker plate)."""
    if abs(value) > MAX_SIZE_MULTIPLE * extent:
        return round(float(value), 5)
    return size_fraction(value, extent, name)


def _pos(v: Sequence[float | str], master: np.ndarray) -> tuple:
    return tuple(
        _fraction(float(x), float(master[i]), f"master.{AXES[i]}") if not isinstance(x, str) else x
        for i, x in enumerate(v)
    )


def _length(x: float | str, direction: Sequence[float | str], master: np.ndarray) -> float | str:
    if isinstance(x, str) or any(isinstance(d, str) for d in direction):
        return x
    i = int(np.argmax(np.abs(np.asarray(direction, float))))
    return _fraction(float(x), float(master[i]), f"master.{AXES[i]}")


def _round(v: Sequence[float | str], nd: int = 4) -> tuple:
    return tuple(round(float(x), nd) if not isinstance(x, str) else x for x in v)


def _slave_height(z: float, xy: Sequence[float], quat: Sequence[float], master: np.ndarray,
                  slave: np.ndarray) -> float | str:
    """The height of a held object's origin as `master.z*a + slave.x*bx + slave.y*by + slave.z*bz + metres`.

    The held object's half extent along the master's up (its orientation `quat` in the master frame; the
    bbox's projection, so a tilted cup counts with its tilted extent) rests on the master's top when its
    footprint overlaps the master's (a = 0.5: a source cup held beside the target's centre so that its
    lip is over the target), else on the surface the master stands on (a = -0.5); what remains is a
    clearance in metres. A tall source carried over a short target thus stays above it
    by the demonstrated clearance, whatever the two heights (as a multiple of the target's height alone
    it would sink into it)."""
    if not np.isfinite(z) or master[2] <= 1e-6:
        return round(float(z), 5)
    R = Rot.from_quat(quat).as_matrix()  # slave axes in the master frame (columns)
    half = 0.5 * np.abs(R[2])  # per slave axis, its share of the half extent along the master's up
    reach = 0.5 * np.abs(R[:2]) @ slave  # the held object's half extents along the master's x and y
    over = all(abs(float(xy[i])) <= 0.5 * master[i] + reach[i] + FOOTPRINT_MARGIN_M for i in (0, 1))
    a = 0.5 if over else -0.5
    terms = [f"master.z*{a:g}"]
    base = a * master[2]
    for i, b in enumerate(half):
        b = round(float(b), 3)
        if b >= 0.02:
            terms.append(f"slave.{AXES[i]}*{b:g}")
            base += b * slave[i]
    c = round(float(z - base), 5)
    return "+".join(terms) + (f"{c:+.5g}" if c != 0 else "")


def _held_pos(v: Sequence[float | str], quat: Sequence[float], master: np.ndarray, slave: np.ndarray) -> tuple:
    out = _pos(v, master)
    if isinstance(v[2], str):
        return out
    return (out[0], out[1], _slave_height(float(v[2]), [float(x) for x in v[:2]] if not any(
        isinstance(x, str) for x in v[:2]) else (0.0, 0.0), quat, master, slave))


def symbolise(program: TrajectoryProgram, master_size: Sequence[float],
              slave_size: Sequence[float] | None = None) -> TrajectoryProgram:
    """Rewrite positions and lengths as fractions of the master's bbox so the program transfers to new sizes.

    Lengths more than `MAX_SIZE_MULTIPLE` times the master's extent along their axis stay in metres, for
    every step kind and axis. With `slave_size` (a held object, not the hand), the heights of the slave's
    positions (start, waypoints) are written over both objects' heights (`_slave_height`)."""
    m = np.asarray(master_size, float)
    sl = None if slave_size is None else np.asarray(slave_size, float)
    q0 = tuple(float(v) for v in program.start.quaternion)
    steps = []
    for st in program.steps:
        if isinstance(st, Waypoints):
            if sl is None:
                pts = [_pos(p, m) for p in st.points]
            else:
                quats = st.quaternions or [q0] * len(st.points)
                pts = [_held_pos(p, q, m, sl) for p, q in zip(st.points, quats, strict=True)]
                if st.quaternions:
                    q0 = tuple(st.quaternions[-1])
            st = st.model_copy(update={"points": pts})
        elif isinstance(st, Line):
            dist = _length(st.distance, st.direction, m)
            st = st.model_copy(update={"direction": _round(st.direction), "distance": dist})
        elif isinstance(st, Arc):
            st = st.model_copy(update={"axis": _round(st.axis), "pivot": _pos(st.pivot, m),
                                       "angle_deg": round(float(st.angle_deg), 2)})
        elif isinstance(st, Rotation | Tilt):
            st = st.model_copy(update={"axis": _round(st.axis), "angle_deg": round(float(st.angle_deg), 2)})
        elif isinstance(st, Spiral):
            st = st.model_copy(update={"axis": _round(st.axis), "center": _pos(st.center, m),
                                       "turns": round(float(st.turns), 3),
                                       "pitch": _metres(st.pitch), "growth": _metres(st.growth)})
        elif isinstance(st, Zigzag):
            st = st.model_copy(update={
                "direction": _round(st.direction), "across": _round(st.across),
                "length": _length(st.length, st.direction, m), "amplitude": _length(st.amplitude, st.across, m),
                "cycles": round(float(st.cycles), 3)})
        steps.append(st)
    position = _pos(program.start.position, m) if sl is None else \
        _held_pos(program.start.position, program.start.quaternion, m, sl)
    start = program.start.model_copy(update={"position": position})
    return program.model_copy(update={"start": start, "steps": steps})


def _metres(x: float | str) -> float | str:
    return x if isinstance(x, str) else round(float(x), 5)
