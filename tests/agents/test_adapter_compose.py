"""Geometry of the adapter's composition: the shifts tried for a put-down at a free place."""

from __future__ import annotations

import numpy as np

from agents.adapter_compose import FREE_PLACE_MIN_M, free_place_shifts


def test_free_place_shifts_head_for_the_arm_nearest_first_within_the_demos_spread() -> None:
    end = np.array([0.85, -0.05, 0.2])  # a place past the arm's reach
    shifts = free_place_shifts(end, spread_m=0.10)
    lengths = [float(np.linalg.norm(s)) for s in shifts]
    assert lengths == sorted(lengths) and max(lengths) <= 0.10 + 1e-9
    assert all(abs(s[2]) < 1e-12 for s in shifts)  # on the same surface: horizontal only
    # every shift brings the place nearer the base (the world origin)
    assert all(np.linalg.norm((end + s)[:2]) < np.linalg.norm(end[:2]) for s in shifts)
    straight = shifts[0] / np.linalg.norm(shifts[0])
    assert np.allclose(straight[:2], -end[:2] / np.linalg.norm(end[:2]))


def test_a_tight_spread_still_allows_a_few_centimetres_and_no_place_at_the_base_gets_none() -> None:
    shifts = free_place_shifts(np.array([0.8, 0.0, 0.1]), spread_m=0.01)
    assert shifts and max(float(np.linalg.norm(s)) for s in shifts) <= FREE_PLACE_MIN_M + 1e-9
    assert free_place_shifts(np.zeros(3), spread_m=0.1) == []
