"""A `waypoints` program fitted from n keypoints is compared with the demos at its own vertices.

A demonstrated path that wiggles (scrubbing inside a pan) between long straight stretches (carrying the
brush there and back) has keypoints at equal path fractions whose chords differ a lot in length; the
polyline through them, resampled at equal fractions of its own length, would put its keypoints between
its points and report centimetres of error for a program that passes exactly through every keypoint."""

from __future__ import annotations

import numpy as np

from tools.constraints.fit import N_KEYPOINTS, fit_family, keypoints


def _scrub_demo(seed: int) -> np.ndarray:
    """(T, 4, 4): up and over 30 cm, a dense zigzag of small strokes, back again; small per-demo noise."""
    rng = np.random.default_rng(seed)
    out = [np.array([0.3, 0.0, 0.05]) + np.array([-0.3, 0.0, 0.1]) * s for s in np.linspace(0, 1, 60)]
    for k in range(200):
        out.append(np.array([0.0, 0.04 * np.sin(k * 0.15), 0.15 - 0.1 * min(k, 20) / 20]))
    out += [out[-1] + (np.array([0.3, 0.0, 0.05]) - out[-1]) * s for s in np.linspace(0, 1, 60)]
    mats = np.tile(np.eye(4), (len(out), 1, 1))
    mats[:, :3, 3] = np.array(out) + rng.normal(0.0, 0.001, (len(out), 3))
    return mats


def test_waypoints_program_through_the_mean_keypoints_fits_within_millimetres() -> None:
    demos = [_scrub_demo(s) for s in range(3)]
    sizes = [{"master": (0.3, 0.2, 0.05), "slave": (0.05, 0.07, 0.1)}] * 3
    fit = fit_family("waypoints", demos, sizes)
    assert fit is not None
    assert fit.report.n_keypoints == N_KEYPOINTS
    assert fit.report.median_m < 0.005  # the demos agree to a few mm: so must the program's keypoints


def test_a_waypoints_program_that_misses_a_keypoint_is_still_measured() -> None:
    demos = [_scrub_demo(s) for s in range(3)]
    sizes = [{"master": (0.3, 0.2, 0.05), "slave": (0.05, 0.07, 0.1)}] * 3
    fit = fit_family("waypoints", demos, sizes)
    assert fit is not None
    pts = list(fit.program.steps[0].points)
    pts[4] = tuple(float(v) + 0.05 if not isinstance(v, str) else f"({v})+0.05" for v in pts[4])
    bad = fit.program.model_copy(update={"steps": [fit.program.steps[0].model_copy(update={"points": pts})]})
    from tools.constraints.fit import fit_error

    report = fit_error(bad, [keypoints(d) for d in demos], sizes, keypoints_given=True, anchored=True)
    assert report.max_m > 0.07  # 5 cm in each of x, y, z at that keypoint
