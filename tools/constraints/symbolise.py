"""Numbers -> size expressions: a fitted trajectory program rewritten over its objects' bbox sizes.

Positions and lengths become fractions of the master's bbox (`master.x*0.5`), so the program transfers
to another master; lengths many times an extent stay in metres; a held object's heights are written over
both objects' heights (`_slave_height`); a scrub towards one end of a long master is placed from that end
in the master's short extent (`_BodyEnd`), and with the tool's size known, inset by the tool's reach
(`_Reach`). Used by the fits in tools.constraints.fit.
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
BODY_RATIO = 1.3  # a master this much longer than wide is a body with a protrusion (a pan and its handle) ...
BODY_OFFSET = 0.1  # ... when a scrub's region lies this far (fraction of the long extent) towards one end
MIN_REACH_SHARE = 0.3  # a tool too big for the region still sweeps this share of the plainly scaled path


class _BodyEnd:
    """Where a scrub sits on a long master: along the long axis `i`, measured from the end `side` it lies
    towards, in the short extent `j`.

    A pan is its bowl (2r wide) at one end plus a handle: the bowl's centre lies r from that end and its
    floor is 2r across, whatever the handle's length. As fractions of the whole length, a scrub learned on
    a 20 cm pan keeps to 0.86 of its place and size on a 15 cm pan with the same handle (the brush runs
    into the wall) and grows only 1.11x on a 24 cm one (it leaves a rim unbrushed); from the bowl's end and
    in its width, it scales as the bowl does. A scrub in the middle of a long master (a tray, a table)
    keeps the plain fractions."""

    def __init__(self, i: int, side: int, master: np.ndarray) -> None:
        self.i, self.j, self.side = i, 1 - i, side
        self.master = master
        self.reach: _Reach | None = None

    def position(self, value: float, axis: int) -> str | float:
        """A position along an axis of the plane: from the end along the long one, a plain fraction of the
        short one (with a reach, both inset by the tool's reach)."""
        if self.reach is not None:
            return self.reach.position(value, axis)
        if axis != self.i:
            return _fraction(value, float(self.master[axis]), f"master.{AXES[axis]}")
        k = (value - self.side * 0.5 * self.master[self.i]) / self.master[self.j]
        return f"master.{AXES[self.i]}*{0.5 * self.side:g}{k:+.5g}*master.{AXES[self.j]}"

    def length(self, value: float) -> float | str:
        if self.reach is not None:
            return self.reach.length(value)
        return _fraction(value, float(self.master[self.j]), f"master.{AXES[self.j]}")


class _Reach:
    """A tool's sweep inside a region (a pan's bowl) that its footprint must stay in: the footprint's reach
    from the region's centre, not the tool's path, is what scales with the region.

    The path's farthest point from the centre (U) plus the tool's reach beyond its origin (d, half its
    footprint's diagonal) is the region's usable radius, rho times its width. On another region and
    tool the path's offsets from the centre scale to rho * width - d: a bigger brush in a smaller pan
    keeps its bristles off the wall (a path scaled with the pan alone put a 1.1x brush's corner 1 cm
    into a 16 cm pan's wall and tipped the pan), a smaller one reaches the rim of a bigger pan. The
    tool's diagonal is written as kd * (slave.x + slave.y), kd fixed at the demos' proportions. Where the
    tool is too big for the region the path keeps MIN_REACH_SHARE of its plainly scaled size."""

    def __init__(self, centre: tuple[float, float], far: float, slave: np.ndarray, body: _BodyEnd) -> None:
        m, j = body.master, body.j
        self.body = body
        self.centre = centre  # (along the long axis, along the short one), metres in the master frame
        self.far = far
        half_diag = 0.5 * float(np.hypot(slave[0], slave[1]))
        kd = half_diag / float(slave[0] + slave[1])
        rho = (far + half_diag) / float(m[j])
        w = f"master.{AXES[j]}"
        self.scale = (f"max({rho:.5g}*{w}-{kd:.4g}*(slave.x+slave.y),"
                      f"{MIN_REACH_SHARE * far / float(m[j]):.5g}*{w})")

    def position(self, value: float, axis: int) -> str:
        body = self.body
        m, i, j = body.master, body.i, body.j
        w = f"master.{AXES[j]}"
        if axis == i:
            c = self.centre[0]
            base = f"master.{AXES[i]}*{0.5 * body.side:g}{(c - body.side * 0.5 * m[i]) / m[j]:+.5g}*{w}"
        else:
            c = self.centre[1]
            base = f"{c / m[j]:.5g}*{w}"
        return f"{base}{(value - c) / self.far:+.5g}*{self.scale}"

    def length(self, value: float) -> str:
        return f"{value / self.far:.5g}*{self.scale}"


def _reach(program: TrajectoryProgram, body: _BodyEnd, slave: np.ndarray) -> _Reach | None:
    """The tool's reach in the region its scrub sweeps: the centre of the path's extent in the plane and
    its farthest point from there, from the program sampled at the demos' sizes."""
    from tools.constraints.instantiate import matrices_at

    if slave[0] <= 0 or slave[1] <= 0:
        return None
    xy = matrices_at(program, {"master": tuple(body.master), "slave": tuple(slave)},
                     np.linspace(0.0, 1.0, 400))[:, :2, 3]
    a, b = xy[:, body.i], xy[:, body.j]
    centre = ((float(a.max()) + float(a.min())) / 2.0, (float(b.max()) + float(b.min())) / 2.0)
    far = float(np.max(np.hypot(a - centre[0], b - centre[1])))
    if far < 0.01:
        return None
    return _Reach(centre, far, slave, body)


def _body_end(program: TrajectoryProgram, master: np.ndarray) -> _BodyEnd | None:
    i = 0 if master[0] >= master[1] else 1
    if master[i] < BODY_RATIO * master[1 - i]:
        return None
    along = [float(program.start.position[i])] if not isinstance(program.start.position[i], str) else []
    for st in program.steps:
        if isinstance(st, Waypoints):
            along += [float(p[i]) for p in st.points if not isinstance(p[i], str)]
        elif isinstance(st, Spiral) and not isinstance(st.center[i], str):
            along.append(float(st.center[i]))
    if not along:
        return None
    centre = (max(along) + min(along)) / 2.0
    if abs(centre) < BODY_OFFSET * float(master[i]):
        return None
    return _BodyEnd(i, 1 if centre > 0 else -1, master)


def _fraction(value: float, extent: float, name: str) -> float | str:
    """A length as a fraction of a master extent, or in metres when it is many times that extent: a lift
    of 13 cm is no function of a 7 mm plate's thickness (as `plate.z*19` it would scale with the thickness'
    measurement noise, +-15 % between demos, and with any thicker plate)."""
    if abs(value) > MAX_SIZE_MULTIPLE * extent:
        return round(float(value), 5)
    return size_fraction(value, extent, name)


def _pos(v: Sequence[float | str], master: np.ndarray, body: _BodyEnd | None = None) -> tuple:
    return tuple(
        x if isinstance(x, str) else body.position(float(x), i) if body is not None and i < 2
        else _fraction(float(x), float(master[i]), f"master.{AXES[i]}")
        for i, x in enumerate(v)
    )


def _length(x: float | str, direction: Sequence[float | str], master: np.ndarray,
            body: _BodyEnd | None = None) -> float | str:
    if isinstance(x, str) or any(isinstance(d, str) for d in direction):
        return x
    i = int(np.argmax(np.abs(np.asarray(direction, float))))
    if body is not None and (i == body.i or body.reach is not None and i == body.j):
        return body.length(float(x))
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


def _held_pos(v: Sequence[float | str], quat: Sequence[float], master: np.ndarray, slave: np.ndarray,
              body: _BodyEnd | None = None) -> tuple:
    out = _pos(v, master, body)
    if isinstance(v[2], str):
        return out
    return (out[0], out[1], _slave_height(float(v[2]), [float(x) for x in v[:2]] if not any(
        isinstance(x, str) for x in v[:2]) else (0.0, 0.0), quat, master, slave))


def symbolise(program: TrajectoryProgram, master_size: Sequence[float],
              slave_size: Sequence[float] | None = None, *, scrub: bool = False,
              tool_size: Sequence[float] | None = None) -> TrajectoryProgram:
    """Rewrite positions and lengths as fractions of the master's bbox so the program transfers to new sizes.

    Lengths more than `MAX_SIZE_MULTIPLE` times the master's extent along their axis stay in metres, for
    every step kind and axis. With `slave_size` (a held object, not the hand), the heights of the slave's
    positions (start, waypoints) are written over both objects' heights (`_slave_height`). With `scrub`
    (a scrub on the master's surface), a region towards one end of a long master is placed from that end
    and sized in the master's short extent (`_BodyEnd`); with `tool_size` (the scrubbing tool's bbox, its
    heights already written by the fit) its offsets there are inset by the tool's reach (`_Reach`)."""
    m = np.asarray(master_size, float)
    sl = None if slave_size is None else np.asarray(slave_size, float)
    body = _body_end(program, m) if scrub else None
    if body is not None and tool_size is not None:
        body.reach = _reach(program, body, np.asarray(tool_size, float))
    q0 = tuple(float(v) for v in program.start.quaternion)
    steps = []
    for st in program.steps:
        if isinstance(st, Waypoints):
            if sl is None:
                pts = [_pos(p, m, body) for p in st.points]
            else:
                quats = st.quaternions or [q0] * len(st.points)
                pts = [_held_pos(p, q, m, sl, body) for p, q in zip(st.points, quats, strict=True)]
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
            st = st.model_copy(update={"axis": _round(st.axis), "center": _pos(st.center, m, body),
                                       "turns": round(float(st.turns), 3),
                                       "pitch": _metres(st.pitch), "growth": _metres(st.growth)})
        elif isinstance(st, Zigzag):
            st = st.model_copy(update={
                "direction": _round(st.direction), "across": _round(st.across),
                "length": _length(st.length, st.direction, m, body),
                "amplitude": _length(st.amplitude, st.across, m, body),
                "cycles": round(float(st.cycles), 3)})
        steps.append(st)
    position = _pos(program.start.position, m, body) if sl is None else \
        _held_pos(program.start.position, program.start.quaternion, m, sl, body)
    start = program.start.model_copy(update={"position": position})
    return program.model_copy(update={"start": start, "steps": steps})


def _metres(x: float | str) -> float | str:
    return x if isinstance(x, str) else round(float(x), 5)
