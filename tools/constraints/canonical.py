"""Canonical form of a fitted program: unit axes, snapped to a frame axis within a few degrees, and arc
pivots moved along their axis to the start's level (the parametrisation's null directions removed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.program import Arc, Line, Rotation, Spiral, Tilt, TrajectoryProgram, Zigzag


def unit_vector(v: np.ndarray) -> np.ndarray:
    """v normalised (a degenerate vector: world up)."""
    n = np.linalg.norm(v)
    return v / n if n > 1e-9 else np.array([0.0, 0.0, 1.0])


def _snap_axis(v: Sequence[float], tol_deg: float = 3.0) -> np.ndarray:
    u = unit_vector(np.asarray(v, float))
    i = int(np.argmax(np.abs(u)))
    if np.degrees(np.arccos(min(1.0, abs(u[i])))) <= tol_deg:
        e = np.zeros(3)
        e[i] = np.sign(u[i])
        return e
    return u


def canonical(program: TrajectoryProgram, snap: bool = True) -> TrajectoryProgram:
    """Unit axes (snapped to a frame axis within 3 degrees), arc pivots moved along the axis to the start's level."""
    p0 = np.asarray([float(v) for v in program.start.position]) if all(
        not isinstance(v, str) for v in program.start.position) else None
    steps = []
    for st in program.steps:
        if isinstance(st, Arc) and not any(isinstance(v, str) for v in (*st.axis, *st.pivot)):
            a = _snap_axis(st.axis) if snap else unit_vector(np.asarray(st.axis, float))
            piv = np.asarray(st.pivot, float)
            if p0 is not None:
                piv = piv + a * float((p0 - piv) @ a)
            st = st.model_copy(update={"axis": tuple(a), "pivot": tuple(piv)})
        elif isinstance(st, Rotation | Tilt | Spiral) and not any(isinstance(v, str) for v in st.axis):
            axis = _snap_axis(st.axis) if snap else unit_vector(np.asarray(st.axis, float))
            st = st.model_copy(update={"axis": tuple(axis)})
        elif isinstance(st, Line | Zigzag) and not any(isinstance(v, str) for v in st.direction):
            st = st.model_copy(update={"direction": tuple(unit_vector(np.asarray(st.direction, float)))})
        steps.append(st)
    return program.model_copy(update={"steps": steps})
