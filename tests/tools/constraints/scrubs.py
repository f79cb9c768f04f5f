"""Synthetic scrubbing trajectories (brush poses in a pan's frame) for the sweep tests and the learner's."""

from __future__ import annotations

import numpy as np

PAN = (0.30, 0.21, 0.046)  # a pan with its handle along x; the bowl's centre at x = -0.05 in its box
BRUSH = (0.07, 0.05, 0.13)
FLOOR = -0.023  # the pan's floor, master frame (bbox centre)


def scrub(strokes: int, frames: int, seed: int, pan=PAN, brush=BRUSH) -> np.ndarray:
    """(frames, 4, 4) brush poses in the pan frame: `strokes` rows across the bowl (boustrophedon,
    rounded turns), paced unevenly (a person's speed-ups and pauses), with tracking noise."""
    rng = np.random.default_rng(seed)
    sx, sy = pan[0] / PAN[0], pan[1] / PAN[1]
    cx, half_x, half_y = -0.05 * sx, 0.06 * sx, 0.06 * sy
    ys = np.linspace(-half_y, half_y, strokes)
    via = []
    for i, y in enumerate(ys):
        xs = (-half_x, half_x) if i % 2 == 0 else (half_x, -half_x)
        via += [(cx + xs[0], y), (cx + xs[1], y)]
    via = np.array(via)
    seg = np.linalg.norm(np.diff(via, axis=0), axis=1)
    s_via = np.concatenate([[0.0], np.cumsum(seg)]) / seg.sum()
    t = np.linspace(0.0, 1.0, frames)
    warp = t + 0.08 * np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6)) * t * (1 - t) * 4
    warp = np.maximum.accumulate(np.clip(warp, 0, 1))
    xy = np.column_stack([np.interp(warp, s_via, via[:, j]) for j in range(2)])
    k = max(1, frames // 60)  # round the corners a little, as a hand does
    xy = np.array([xy[max(0, i - k):i + k + 1].mean(axis=0) for i in range(len(xy))])
    mats = np.tile(np.eye(4), (frames, 1, 1))
    mats[:, :2, 3] = xy + rng.normal(0.0, 0.001, (frames, 2))
    mats[:, 2, 3] = FLOOR * pan[2] / PAN[2] + brush[2] / 2 + rng.normal(0.0, 0.001, frames)
    return mats
