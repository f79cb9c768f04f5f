"""How much a container holds, measured from RGB-D (the contents' surface, not their label).

    measure_contents(views, T_world_object, bbox_size) -> core.contents.ContentsReading

The container's interior footprint is its bbox footprint's inscribed ellipse, inset from the walls by
`inset_m` (so wall and rim points never count; a bbox fitted to a partial view is off by millimetres).
Every depth point inside that footprint, between just below the bbox bottom and the rim, is the floor
or the contents: nothing else can be there once the arm is out of view. The points do not need the
container's label -- a perfect segmenter leaves the contents unlabelled, a learned one may include them
in the container's mask -- so only masks of things that are *not* contents are excluded (the hand, the
robot, other named objects: `exclude` per view).

The footprint is cut into `CELL_M` cells; each seen cell's height is its highest point (the surface);
`level_m` is the mean over seen cells. Several views (a front and a top camera) merge per cell, the
highest point winning. An oblique camera sees only the far part of a deep, narrow cup's inside: when
less than `MIN_COVERAGE` of the footprint's cells is seen, the level is None (unknown), never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.contents import ContentsReading
from core.sensing import RGBDFrame

CELL_M = 0.005
MIN_COVERAGE = 0.1  # share of the interior footprint's cells that must be seen for a level
INSET_MIN_M = 0.01  # walls (~6 mm) plus the bbox's fitting error
INSET_SHARE = 0.15  # of the half-width, for big containers whose walls are thicker
BELOW_BOTTOM_M = 0.01  # a bbox fitted to a partial view may sit a little above the true bottom
STRIDE = 2  # pixels: the level is a mean over 5 mm cells, a full-resolution cloud adds nothing


def interior_half_axes(bbox_size: Sequence[float], inset_m: float | None = None) -> tuple[float, float]:
    """Half-axes (m) of the interior footprint's ellipse along the object's x and y."""
    out = []
    for half in (0.5 * float(bbox_size[0]), 0.5 * float(bbox_size[1])):
        inset = inset_m if inset_m is not None else max(INSET_MIN_M, INSET_SHARE * half)
        out.append(max(half - inset, 0.0))
    return out[0], out[1]


def _points(frame: RGBDFrame, exclude: np.ndarray | None) -> np.ndarray:
    valid = frame.depth > 0
    grid = np.zeros_like(valid)
    grid[::STRIDE, ::STRIDE] = True
    valid &= grid
    if exclude is not None:
        valid &= ~exclude
    return frame.points_world(valid)


def measure_contents(
    views: Sequence[tuple[RGBDFrame, np.ndarray | None]],
    T_world_object: np.ndarray,
    bbox_size: Sequence[float],
    *,
    inset_m: float | None = None,
) -> ContentsReading:
    """The contents of the container at `T_world_object` (canonical frame, bbox centre) seen in `views`.

    `views`: (frame, exclude mask or None) per camera; the mask marks pixels that are not contents (hand,
    robot, other objects). Returns a reading whose level is None when the inside is not seen enough.
    """
    T = np.asarray(T_world_object, dtype=float)
    size = np.asarray(bbox_size, dtype=float)
    ax, ay = interior_half_axes(size, inset_m)
    if ax <= CELL_M or ay <= CELL_M:
        return ContentsReading()  # too small to hold anything we could see
    bottom, top = -0.5 * size[2], 0.5 * size[2]
    nx, ny = int(np.ceil(2 * ax / CELL_M)), int(np.ceil(2 * ay / CELL_M))
    cx = (np.arange(nx) + 0.5) * CELL_M - ax
    cy = (np.arange(ny) + 0.5) * CELL_M - ay
    in_ellipse = (cx[:, None] / ax) ** 2 + (cy[None, :] / ay) ** 2 <= 1.0
    surface = np.full((nx, ny), -np.inf)
    n_points = 0
    for frame, exclude in views:
        pts = _points(frame, exclude)
        if not len(pts):
            continue
        p = (pts - T[:3, 3]) @ T[:3, :3]  # object frame
        keep = ((p[:, 0] / ax) ** 2 + (p[:, 1] / ay) ** 2 <= 1.0) & (p[:, 2] <= top) \
            & (p[:, 2] >= bottom - BELOW_BOTTOM_M)
        p = p[keep]
        n_points += len(p)
        if not len(p):
            continue
        i = np.clip(((p[:, 0] + ax) / CELL_M).astype(int), 0, nx - 1)
        j = np.clip(((p[:, 1] + ay) / CELL_M).astype(int), 0, ny - 1)
        np.maximum.at(surface, (i, j), p[:, 2] - bottom)
    seen = np.isfinite(surface) & in_ellipse
    coverage = float(seen.sum() / max(int(in_ellipse.sum()), 1))
    if coverage < MIN_COVERAGE:
        return ContentsReading(coverage=round(coverage, 4), n_points=n_points)
    level = float(np.clip(surface[seen], 0.0, None).mean())
    area = float(np.pi * ax * ay)
    return ContentsReading(level_m=round(level, 5), fill=round(level / max(float(size[2]), 1e-6), 4),
                           volume_m3=float(f"{level * area:.4g}"), coverage=round(coverage, 4), n_points=n_points)


def not_contents(masks: dict[str, np.ndarray], container: str) -> np.ndarray | None:
    """Pixels that cannot be the container's contents: every mask but the container's own.

    The container's own mask stays in (a learned segmenter may paint the contents with it); pixels
    with no label stay in (a perfect segmenter leaves the contents unlabelled)."""
    others = [m for n, m in masks.items() if n != container]
    if not others:
        return None
    out = np.zeros_like(others[0], dtype=bool)
    for m in others:
        out |= m
    return out
