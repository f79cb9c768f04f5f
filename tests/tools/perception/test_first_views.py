"""Completing frame 0's object clouds from later views of untouched objects."""

from __future__ import annotations

import numpy as np

from tools.perception.first_views import completed_clouds, untouched_until, view_frames
from tools.perception.tracking import canonical_frame

VOXEL = 0.004


def _box(lo: tuple[float, float, float], hi: tuple[float, float, float], step: float = VOXEL) -> np.ndarray:
    axes = [np.arange(a, b + 1e-9, step) for a, b in zip(lo, hi, strict=True)]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return g


# a brush: a 7x5x3 cm block with a 2x2x10 cm handle standing on it (13 cm tall)
BLOCK = _box((0.50, 0.00, 0.0), (0.57, 0.05, 0.03))
HANDLE = _box((0.525, 0.015, 0.03), (0.545, 0.035, 0.13))
FAR_HAND = np.full((30, 21, 3), [0.0, 0.5, 0.5])


def test_a_handle_hidden_in_frame_0_is_restored_by_a_later_view() -> None:
    out = completed_clouds({"brush": BLOCK}, [(5, {"brush": np.vstack([BLOCK, HANDLE])})], FAR_HAND, VOXEL)
    _, size = canonical_frame(out["brush"])
    assert abs(size[2] - 0.13) < 0.005
    _, size0 = canonical_frame(BLOCK)
    assert size0[2] < 0.035  # what frame 0 alone would have measured


def test_views_after_the_hand_came_near_add_nothing() -> None:
    hand = FAR_HAND.copy()
    hand[3:, 0] = [0.53, 0.02, 0.06]  # the hand reaches the brush at frame 3
    assert untouched_until(BLOCK, hand) == 3
    out = completed_clouds({"brush": BLOCK}, [(5, {"brush": np.vstack([BLOCK, HANDLE])})], hand, VOXEL)
    assert len(out["brush"]) == len(BLOCK)


def test_a_view_that_does_not_overlap_the_object_is_not_trusted() -> None:
    moved = np.vstack([BLOCK, HANDLE]) + [0.2, 0.0, 0.0]  # something else, or the object moved by other means
    out = completed_clouds({"brush": BLOCK}, [(5, {"brush": moved})], FAR_HAND, VOXEL)
    assert len(out["brush"]) == len(BLOCK)


def test_objects_unseen_in_frame_0_are_not_invented() -> None:
    out = completed_clouds({"brush": BLOCK}, [(5, {"cup": HANDLE})], FAR_HAND, VOXEL)
    assert set(out) == {"brush"}


def test_views_are_sampled_over_the_first_seconds() -> None:
    times = np.arange(150) / 15.0
    frames = view_frames(times)
    assert frames[0] > 0 and frames == sorted(set(frames))
    assert times[frames[-1]] <= 3.0 + 1e-9 and len(frames) >= 10
    assert view_frames(np.array([0.0])) == []
