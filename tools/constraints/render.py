"""Renders the reasoner looks at: labelled grasps on the object box, a trajectory with numbered
keypoints, and a labelled 5x5 grid over a grasp surface. matplotlib (Agg) to PNG, atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tools.constraints.grasp import GRID


def _figure():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> Path:  # noqa: ANN001
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=80)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _box_edges(size: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    h = np.asarray(size, float) / 2
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * h
    edges = []
    for i in range(8):
        for j in range(i + 1, 8):
            if np.sum(np.abs(corners[i] - corners[j]) > 1e-12) == 1:
                edges.append((corners[i], corners[j]))
    return edges


def render_grasps(
    bbox_size: Sequence[float],
    positions: np.ndarray,
    approaches: np.ndarray,
    out: Path,
    *,
    title: str = "",
    groups: Sequence[int] | None = None,
) -> Path:
    """The object's box (canonical frame) with each grasp as a numbered dot and approach arrow."""
    plt = _figure()
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(projection="3d")
    for a, b in _box_edges(bbox_size):
        ax.plot(*zip(a, b, strict=True), color="0.5", lw=0.8)
    pos = np.atleast_2d(positions)
    app = np.atleast_2d(approaches)
    L = 0.3 * float(max(bbox_size))
    cmap = plt.get_cmap("tab10")
    for i, (p, d) in enumerate(zip(pos, app, strict=True)):
        c = cmap((groups[i] if groups is not None else 0) % 10)
        ax.scatter(*p, color=c, s=30)
        ax.plot(*zip(p - d * L, p, strict=True), color=c, lw=1)
        ax.text(*p, str(i), fontsize=8)
    ax.set_xlabel("x (to robot)")
    ax.set_ylabel("y")
    ax.set_zlabel("z (up)")
    ax.set_title(title, fontsize=9)
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def render_trajectory(
    master_size: Sequence[float],
    tracks: Sequence[np.ndarray],
    out: Path,
    *,
    title: str = "",
) -> Path:
    """The master's box with each demo's slave path (n, 3) and its numbered keypoints."""
    plt = _figure()
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(projection="3d")
    for a, b in _box_edges(master_size):
        ax.plot(*zip(a, b, strict=True), color="0.5", lw=0.8)
    for k, t in enumerate(tracks):
        t = np.asarray(t, float)
        ax.plot(t[:, 0], t[:, 1], t[:, 2], lw=1, label=f"demo {k}")
        ax.scatter(t[:, 0], t[:, 1], t[:, 2], s=12)
        if k == 0:
            for i, p in enumerate(t):
                ax.text(*p, str(i), fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def render_grid(region_extent: Sequence[float], out: Path, *, title: str = "", n: int = GRID) -> Path:
    """A labelled n x n grid (cell ids row-major) over a grasp surface of the given 2-D extent."""
    plt = _figure()
    w, h = float(region_extent[0]), float(region_extent[1])
    fig, ax = plt.subplots(figsize=(4, 4))
    for r in range(n):
        for c in range(n):
            ax.add_patch(plt.Rectangle((c * w / n, (n - 1 - r) * h / n), w / n, h / n, fill=False, lw=0.8))
            ax.text((c + 0.5) * w / n, (n - 1 - r + 0.5) * h / n, str(r * n + c), ha="center", va="center",
                    fontsize=8)
    ax.set_xlim(0, w)
    ax.set_ylim(0, h)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)
