"""Keypoints along a trajectory (paper: 10 per trajectory), and the report of a program's fit error.

Keypoints are taken at equal fractions of a combined path length that counts translation in metres
plus rotation in radians times `ROT_RADIUS_M`, so a pure turn of a knob still gets spread-out
keypoints. A program is compared at the same fractions of its own path (tools.constraints.fit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation as Rot
from scipy.spatial.transform import Slerp

from core.program import TrajectoryProgram, Waypoints
from tools.constraints.instantiate import _vec, matrices_at, sample_matrices

N_KEYPOINTS = 10
ROT_RADIUS_M = 0.05  # metres of path per radian of rotation when measuring path length
Sizes = Mapping[str, Sequence[float]]
MAX_SIZE_MULTIPLE = 3.0  # lengths beyond this many times the master's extent stay in metres (fit.symbolise)


def path_fractions(mats: np.ndarray) -> np.ndarray:
    """Cumulative combined path length of a (T, 4, 4) trajectory, normalised to [0, 1]."""
    mats = np.asarray(mats, dtype=float)
    if len(mats) < 2:
        return np.zeros(len(mats))
    dp = np.linalg.norm(np.diff(mats[:, :3, 3], axis=0), axis=1)
    rel = np.einsum("tji,tjk->tik", mats[:-1, :3, :3], mats[1:, :3, :3])
    dr = np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1))
    cum = np.concatenate([[0.0], np.cumsum(dp + ROT_RADIUS_M * dr)])
    if cum[-1] < 1e-9:
        return np.linspace(0.0, 1.0, len(mats))
    return cum / cum[-1]


def resample(mats: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Poses of a (T, 4, 4) trajectory at given path fractions (linear position, slerp rotation)."""
    mats = np.asarray(mats, dtype=float)
    s = path_fractions(mats)
    # Make s strictly increasing for interpolation.
    s = s + np.arange(len(s)) * 1e-12
    s = (s - s[0]) / (s[-1] - s[0]) if s[-1] > s[0] else np.linspace(0, 1, len(s))
    out = np.zeros((len(fractions), 4, 4))
    out[:, 3, 3] = 1.0
    for k in range(3):
        out[:, k, 3] = np.interp(fractions, s, mats[:, k, 3])
    slerp = Slerp(s, Rot.from_matrix(mats[:, :3, :3]))
    out[:, :3, :3] = slerp(np.clip(fractions, 0, 1)).as_matrix()
    return out


def smooth(mats: np.ndarray, sigma_frames: float | None = None) -> np.ndarray:
    """Gaussian-smoothed trajectory (tracking noise would otherwise dominate the path length)."""
    mats = np.asarray(mats, dtype=float)
    if len(mats) < 5:
        return mats
    sigma = sigma_frames if sigma_frames is not None else max(1.0, len(mats) / 40.0)
    out = mats.copy()
    out[:, :3, 3] = gaussian_filter1d(mats[:, :3, 3], sigma, axis=0, mode="nearest")
    q = Rot.from_matrix(mats[:, :3, :3]).as_quat()
    for i in range(1, len(q)):  # sign continuity before averaging
        if q[i] @ q[i - 1] < 0:
            q[i] = -q[i]
    q = gaussian_filter1d(q, sigma, axis=0, mode="nearest")
    out[:, :3, :3] = Rot.from_quat(q / np.linalg.norm(q, axis=1, keepdims=True)).as_matrix()
    return out


def keypoints(mats: np.ndarray, n: int = N_KEYPOINTS, *, denoise: bool = True) -> np.ndarray:
    """n keypoints (n, 4, 4) at equal combined path-length fractions of the (smoothed) trajectory."""
    return resample(smooth(mats) if denoise else mats, np.linspace(0.0, 1.0, n))


def program_keypoints(program: TrajectoryProgram, sizes: Sizes, n: int = N_KEYPOINTS, dense: int = 200) -> np.ndarray:
    """n keypoints of a program at equal fractions of its own path.

    A program that is one `waypoints` step through exactly n-1 points (the family fitted from n
    keypoints) is taken at its vertices instead: its legs are chords of the demonstrated path between
    consecutive keypoints and differ a lot in length where the path wiggles (scrubbing) and where it
    is straight (carrying), so equal fractions of the polyline would fall between its points, not on
    them, and report centimetres of error for a program through every keypoint."""
    wp = program.steps[0] if len(program.steps) == 1 else None
    if isinstance(wp, Waypoints) and len(wp.points) == n - 1:
        pts = np.vstack([_vec(program.start.position, sizes), *[_vec(p, sizes)[None, :] for p in wp.points]])
        legs = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        if legs.sum() > 1e-9:
            return matrices_at(program, sizes, np.concatenate([[0.0], np.cumsum(legs)]) / legs.sum())
    return keypoints(sample_matrices(program, sizes, dense), n, denoise=False)


class FitReport(BaseModel):
    """How well a program reproduces demonstrated trajectories, over keypoints of all demos."""

    family: str
    anchored: bool = Field(False, description="program started from each demo's own first pose")
    free_end: bool = Field(False, description="program also bent onto each demo's own end position")
    median_m: float = Field(description="median keypoint position error, m")
    max_m: float
    median_deg: float = Field(description="median keypoint orientation error, degrees")
    per_demo_median_m: list[float]
    n_keypoints: int
    measure: str = Field("keypoints", description="'keypoints': at equal path fractions; 'sweep': phase-free "
                         "(Chamfer) distance between paths, for oscillating motions (tools.constraints.sweep)")
