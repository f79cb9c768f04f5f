"""Grasp regions in an object's canonical frame: normalisation, containment, candidate sampling.

Positions are bbox fractions: p_frac = p_object / bbox_size, so the object's box spans [-0.5, 0.5]^3.
Candidates are sampled on a 5x5 grid over a region's two widest axes (paper: 5x5 grid, 4 per round).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel
from scipy.spatial.transform import Rotation as Rot

from core.geometry import Pose
from core.skills import GraspConstraint, GraspRegion

GRID = 5


def to_fractions(positions: np.ndarray, bbox_size: Sequence[float]) -> np.ndarray:
    size = np.maximum(np.asarray(bbox_size, dtype=float), 1e-6)
    return np.asarray(positions, dtype=float) / size


def from_fractions(fractions: np.ndarray, bbox_size: Sequence[float]) -> np.ndarray:
    return np.asarray(fractions, dtype=float) * np.asarray(bbox_size, dtype=float)


def in_region(region: GraspRegion, fractions: np.ndarray, margin: float = 1e-9) -> np.ndarray:
    f = np.atleast_2d(np.asarray(fractions, dtype=float))
    half = np.asarray(region.extent) / 2 + margin
    return np.all(np.abs(f - np.asarray(region.center)) <= half, axis=1)


def containment(constraint: GraspConstraint, grasps: Sequence[Pose], bbox_size: Sequence[float]) -> float:
    """Share of grasps (T_object_gripper) whose position lies inside some region."""
    if not grasps:
        return 0.0
    f = to_fractions(np.array([g.position for g in grasps]), bbox_size)
    inside = np.zeros(len(f), dtype=bool)
    for r in constraint.regions:
        inside |= in_region(r, f)
    return float(inside.mean())


def mean_orientation(grasps: Sequence[Pose]) -> tuple[float, float, float, float]:
    q = Rot.from_quat([g.quaternion for g in grasps]).mean().as_quat()
    return tuple(float(v) for v in q)  # type: ignore[return-value]


class GraspCandidate(BaseModel):
    region: int
    cell: int  # 0..24, row-major over the region's grid
    T_object_gripper: Pose


def grid_axes(region: GraspRegion, approach: Sequence[float]) -> tuple[int, int]:
    """The two object axes a region's 5x5 grid spans: the widest ones, not the approach axis."""
    a = int(np.argmax(np.abs(approach)))
    ext = np.asarray(region.extent, dtype=float).copy()
    ext[a] = -1.0
    order = np.argsort(-ext)
    return int(order[0]), int(order[1])


def grid_cells(region: GraspRegion, approach: Sequence[float], n: int = GRID) -> np.ndarray:
    """(n*n, 3) bbox-fraction points of the region's grid, row-major (cell id = row*n + col)."""
    i, j = grid_axes(region, approach)
    c = np.asarray(region.center, dtype=float)
    lin = (np.arange(n) + 0.5) / n - 0.5
    pts = []
    for r in lin:
        for s in lin:
            p = c.copy()
            p[i] += r * region.extent[i]
            p[j] += s * region.extent[j]
            pts.append(p)
    return np.array(pts)


def sample_candidates(
    constraint: GraspConstraint,
    bbox_size: Sequence[float],
    *,
    n: int = 4,
    seed: int = 0,
    offset: Sequence[float] = (0.0, 0.0, 0.0),
    exclude: Sequence[tuple[int, int]] = (),
) -> list[GraspCandidate]:
    """Up to n grasp candidates on the regions' grids, regions by weight, cells nearest the centre first.

    `offset` (bbox fractions) shifts every candidate (a diagnose-and-revise correction); `exclude`
    lists (region, cell) pairs already tried. Ties are broken by a seeded shuffle.
    """
    rng = np.random.default_rng(seed)
    q = constraint.orientation
    out: list[GraspCandidate] = []
    order = sorted(range(len(constraint.regions)), key=lambda k: -constraint.regions[k].weight)
    for k in order:
        reg = constraint.regions[k]
        cells = grid_cells(reg, constraint.approach)
        d = np.linalg.norm((cells - np.asarray(reg.center)) / np.maximum(np.asarray(reg.extent), 1e-6), axis=1)
        ranking = np.lexsort((rng.random(len(cells)), np.round(d, 6)))
        for cell in ranking:
            if (k, int(cell)) in exclude:
                continue
            pos = from_fractions(cells[cell] + np.asarray(offset), bbox_size)
            pose = Pose(position=tuple(pos), quaternion=q)
            out.append(GraspCandidate(region=k, cell=int(cell), T_object_gripper=pose))
            if len(out) >= n:
                return out
    return out


def regions_from_labels(
    fractions: np.ndarray, labels: np.ndarray, *, margin: float = 0.04, min_extent: float = 0.08
) -> list[GraspRegion]:
    """One axis-aligned region per cluster label (>= 0), covering its points plus a margin."""
    regions = []
    total = max(int(np.sum(labels >= 0)), 1)
    for lab in sorted(set(int(v) for v in labels if v >= 0)):
        pts = fractions[labels == lab]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre = (lo + hi) / 2
        extent = np.maximum(hi - lo + 2 * margin, min_extent)
        regions.append(
            GraspRegion(
                center=tuple(float(v) for v in np.clip(centre, -1, 1)),
                extent=tuple(float(v) for v in np.clip(extent, 0, 2)),
                weight=len(pts) / total,
                label=describe_region(centre),
            )
        )
    return regions


def describe_region(centre: Sequence[float]) -> str:
    """Words for where a region sits on the box as seen from the robot, e.g. 'top, front-right'.

    Canonical frame: x towards the robot, z up, so +y is the robot's right."""
    x, y, z = (float(v) for v in centre)
    words = []
    words.append("top" if z > 0.25 else "bottom" if z < -0.25 else "middle height")
    horiz = []
    if abs(x) > 0.25:
        horiz.append("front" if x > 0 else "back")  # canonical x points towards the robot
    if abs(y) > 0.25:
        horiz.append("right" if y > 0 else "left")
    if horiz:
        words.append("-".join(horiz))
    else:
        words.append("centre")
    return ", ".join(words)
