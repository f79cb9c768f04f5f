"""Completing each object's first-frame cloud from the next seconds' views, before the hand reaches it.

A hand between the camera and an object in frame 0 hides part of it: in one wash_pan demo the
demonstrator's fingers hid a 13 cm brush's handle, so the brush was measured 6.7 cm tall. Its
canonical frame and bbox then disagree with every other demo of the task, and whatever a skill
expresses over the object's size (a scrub's height over the brush's underside) inherits the error.

Objects rest until the hand comes near them, so views from the first `WINDOW_S` seconds, taken
while the hand is still `UNTOUCHED_M` away from an object, show the same resting object; the points
they add (farther than `NEW_POINT_VOXELS` voxels from what was already seen) are merged into its
cloud. A view that overlaps what was seen by less than `MIN_OVERLAP` is not trusted (the object may
have been moved by something else, or the mask belongs to something else) and adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.spatial import cKDTree

from tools.perception.pointcloud import voxel_downsample

WINDOW_S = 3.0  # how long after frame 0 views are taken
STEP_S = 0.25  # one view every this many seconds
UNTOUCHED_M = 0.05  # the hand farther than this from an object since frame 0: the object has not moved
NEW_POINT_VOXELS = 1.5  # a view's point this many voxels from the cloud so far is new surface
MIN_OVERLAP = 0.3  # fraction of a view's points that must lie on the cloud so far for the view to count


def view_frames(times: np.ndarray) -> list[int]:
    """The frame indices (after frame 0) sampled for completing first-frame clouds."""
    t = np.asarray(times, float)
    if len(t) < 2:
        return []
    picks: list[int] = []
    for target in np.arange(STEP_S, WINDOW_S + 1e-9, STEP_S):
        i = int(np.searchsorted(t, t[0] + target))
        if i < len(t) and (not picks or i > picks[-1]):
            picks.append(i)
    return picks


def untouched_until(cloud: np.ndarray, hand_points: np.ndarray) -> int:
    """The first frame at which the hand comes within `UNTOUCHED_M` of `cloud` (len(hand_points) if never).

    `hand_points`: (T, K, 3) hand keypoints per frame (world)."""
    hp = np.asarray(hand_points, float)
    if not len(cloud) or not len(hp):
        return len(hp)
    d, _ = cKDTree(np.asarray(cloud, float)).query(hp.reshape(-1, 3), k=1)
    near = (d.reshape(hp.shape[0], -1) < UNTOUCHED_M).any(axis=1)
    hits = np.flatnonzero(near)
    return int(hits[0]) if len(hits) else len(hp)


def completed_clouds(
    first: dict[str, np.ndarray],
    views: Iterable[tuple[int, dict[str, np.ndarray]]],
    hand_points: np.ndarray,
    voxel: float,
) -> dict[str, np.ndarray]:
    """Each object's frame-0 world cloud merged with the surface later views add while it is untouched.

    `first`: name -> frame-0 cloud; `views`: (frame index, name -> cloud) in increasing frame order.
    Objects absent from frame 0 are not added (their frame is established where they first appear)."""
    out = {o: np.asarray(c, float) for o, c in first.items()}
    limit = {o: untouched_until(c, hand_points) for o, c in out.items()}
    for i, clouds in views:
        for o, pts in clouds.items():
            if o not in out or i >= limit[o] or len(pts) == 0:
                continue
            d, _ = cKDTree(out[o]).query(np.asarray(pts, float), k=1)
            if float(np.mean(d <= 2 * voxel)) < MIN_OVERLAP:
                continue
            new = pts[d > NEW_POINT_VOXELS * voxel]
            if len(new):
                out[o] = voxel_downsample(np.vstack([out[o], new]), voxel)
    return out
