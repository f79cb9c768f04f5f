"""Scrubbing demos differ in stroke count and pace: their fit is measured and fitted phase-free."""

from __future__ import annotations

import numpy as np
import pytest

from core.program import Line, StartPose, TrajectoryProgram, Zigzag
from tests.tools.constraints.scrubs import BRUSH, FLOOR, PAN, scrub
from tools.constraints.fit import (
    fit_best,
    fit_error,
    fit_family,
    keypoints,
    keypoints_for,
    oscillates,
    program_keypoints,
    sweep_error,
)
from tools.constraints.instantiate import matrices_at
from tools.constraints.sweep import reversals


def _sizes(n: int, pan=PAN) -> list[dict]:
    return [{"master": pan, "slave": BRUSH}] * n


def _strokes(program: TrajectoryProgram) -> float:
    """Strokes of a fitted zigzag: twice its cycles (sine), or its rows (stroke ends as waypoints)."""
    step = program.steps[1] if isinstance(program.steps[1:2] and program.steps[1], Zigzag) else program.steps[0]
    return 2 * float(step.cycles) if isinstance(step, Zigzag) else len(step.points) / 2


STROKES = (4, 5, 6, 5, 4)
FRAMES = (80, 620, 300, 150, 450)


@pytest.fixture(scope="module")
def scrubs() -> list[np.ndarray]:
    return [scrub(s, f, seed) for seed, (s, f) in enumerate(zip(STROKES, FRAMES, strict=True))]


@pytest.fixture(scope="module")
def zigzag_fit(scrubs):
    fit = fit_family("zigzag", scrubs, _sizes(len(scrubs)))
    assert fit is not None
    return fit


def test_scrubs_with_different_stroke_counts_and_paces_fit_a_zigzag_within_a_centimetre(zigzag_fit):
    assert zigzag_fit.report.measure == "sweep"
    assert zigzag_fit.report.n_keypoints == 40
    assert zigzag_fit.report.median_m <= 0.01
    assert max(zigzag_fit.report.per_demo_median_m) <= 0.012
    assert 3 <= _strokes(zigzag_fit.program) <= 8  # an integer count near the demonstrated ones


def test_keypoints_at_equal_path_fractions_would_refuse_the_same_program(zigzag_fit, scrubs):
    """The problem the sweep measure solves: the phase of the strokes decides the old error."""
    prog = zigzag_fit.program
    errs = []
    for m in scrubs:
        kd = keypoints(m, 10)
        kp = program_keypoints(prog.model_copy(update={"start": StartPose(position=tuple(kd[0, :3, 3]))}),
                               _sizes(1)[0], 10)
        errs.append(np.linalg.norm(kd[:, :3, 3] - kp[:, :3, 3], axis=1))
    assert float(np.median(np.concatenate(errs))) > 0.02


def test_a_straight_line_does_not_fit_a_scrub(scrubs, zigzag_fit):
    sizes = _sizes(len(scrubs))
    line = TrajectoryProgram(family="line", start=StartPose(position=(-0.11, -0.06, 0.042)),
                             steps=[Line(direction=(1, 0, 0), distance=0.12)])
    as_zigzag = line.model_copy(update={"family": "zigzag"})  # same path, measured phase-free
    assert sweep_error(as_zigzag, scrubs, sizes).median_m > 0.02
    best, fits = fit_best(scrubs, sizes)
    assert best.program.family == "zigzag"
    fitted_line = next(f for f in fits if f.program.family == "line")
    assert fitted_line.report.median_m > 3 * zigzag_fit.report.median_m


def test_sweep_error_ignores_pace_but_not_place(scrubs):
    sizes = _sizes(1)
    slow, fast = scrub(5, 600, 11), scrub(5, 90, 12)
    prog = fit_family("zigzag", [slow], sizes).program
    assert fit_error(prog, [fast], sizes).median_m < 0.004
    between = fast.copy()
    between[:, 1, 3] += 0.015  # the same strokes, each half-way between two fitted rows
    assert fit_error(prog, [between], sizes).median_m > 0.008
    beside = fast.copy()
    beside[:, 0, 3] += 0.10  # the same strokes beside the fitted region
    assert fit_error(prog, [beside], sizes).median_m > 0.03


def test_the_scrub_stays_on_the_floor_and_scales_with_the_pan(zigzag_fit):
    big_pan, big_brush = (0.39, 0.27, 0.06), (0.084, 0.06, 0.156)
    m = matrices_at(zigzag_fit.program, {"master": big_pan, "slave": big_brush}, np.linspace(0.05, 1, 200))
    floor = FLOOR * big_pan[2] / PAN[2]
    # the brush's underside stays on the bigger pan's floor (a taller brush, a deeper pan)
    assert np.abs(m[:, 2, 3] - big_brush[2] / 2 - floor).max() < 0.004
    small = matrices_at(zigzag_fit.program, {"master": PAN, "slave": BRUSH}, np.linspace(0.05, 1, 200))
    ratio = np.ptp(m[:, :2, 3], axis=0) / np.ptp(small[:, :2, 3], axis=0)
    assert ratio == pytest.approx(np.array(big_pan[:2]) / PAN[:2], rel=0.1)


def test_only_motions_that_turn_back_and_forth_count_as_oscillating(scrubs):
    line = TrajectoryProgram(start=StartPose(position=(0, 0, 0)), steps=[Line(direction=(1, 0, 0.3), distance=0.3)])
    straight = matrices_at(line, {"master": (1, 1, 1)}, np.linspace(0, 1, 120))
    assert all(oscillates(m) for m in scrubs)
    assert not oscillates(straight)
    assert len(keypoints_for(scrubs[0])) == 40 and len(keypoints_for(straight)) == 10
    assert fit_family("zigzag", [straight] * 3, _sizes(3)) is None
    # a pour: over there and back, tilting the cup 100 degrees there and back, which swings its origin
    pour = np.tile(np.eye(4), (150, 1, 1))
    t = np.linspace(0, 1, 150)
    tilt = np.radians(100) * np.sin(np.pi * np.clip((t - 0.3) / 0.4, 0, 1))
    pour[:, 0, 3] = 0.2 * np.sin(np.pi * t) + 0.05 * np.sin(tilt)
    pour[:, 2, 3] = 0.1 + 0.05 * np.cos(tilt)
    pour[:, 0, 0], pour[:, 0, 2], pour[:, 2, 0], pour[:, 2, 2] = np.cos(tilt), np.sin(tilt), -np.sin(tilt), np.cos(tilt)
    assert reversals(pour[:, :3, 3]) >= 2 and not oscillates(pour)  # back and forth, but turning
    assert fit_family("zigzag", [pour] * 3, _sizes(3)) is None


def _region_x(program: TrajectoryProgram, master: tuple[float, float, float]) -> tuple[float, float]:
    """(centre, extent) along the master's x of the scrubbed region (the rows and the once around)."""
    m = matrices_at(program, {"master": master, "slave": BRUSH}, np.linspace(0.1, 1, 300))
    x = m[:, 0, 3]
    return float((x.max() + x.min()) / 2), float(np.ptp(x))


def _footprint_reach(program: TrajectoryProgram, master: tuple, brush: tuple) -> float:
    """How far the brush's footprint reaches from the centre of the scrubbed region: the path's farthest
    point from the centre of its extent plus half the brush's footprint diagonal."""
    xy = matrices_at(program, {"master": master, "slave": brush}, np.linspace(0.1, 1, 300))[:, :2, 3]
    c = (xy.max(axis=0) + xy.min(axis=0)) / 2
    return float(np.max(np.linalg.norm(xy - c, axis=1))) + 0.5 * float(np.hypot(brush[0], brush[1]))


def test_a_scrub_keeps_to_the_bowl_of_a_pan_with_the_same_handle_and_a_smaller_bowl(zigzag_fit):
    # the demos' pan: a 21 cm bowl and a 9 cm handle along x; the scene's: a 15 cm bowl and the same handle.
    # As fractions of the whole length the scrub would keep 0.8 of its size and drift towards the handle;
    # it belongs to the bowl, which is 0.71 the size with its centre the same fraction of its width from
    # the pan's far end, and the same brush's footprint reaches as far into it, as a share of its width
    small = (0.15 + 0.09, 0.15, 0.046)
    c0, w0 = _region_x(zigzag_fit.program, PAN)
    c1, w1 = _region_x(zigzag_fit.program, small)
    end0, end1 = -PAN[0] / 2, -small[0] / 2
    assert (c1 - end1) / small[1] == pytest.approx((c0 - end0) / PAN[1], abs=0.01)
    reach0 = _footprint_reach(zigzag_fit.program, PAN, BRUSH)
    reach1 = _footprint_reach(zigzag_fit.program, small, BRUSH)
    assert reach1 / small[1] == pytest.approx(reach0 / PAN[1], rel=0.03)
    assert w1 / w0 < small[1] / PAN[1] - 0.05  # the path shrinks more than the bowl: the brush did not


def test_a_bigger_brush_sweeps_a_smaller_path_so_its_bristles_keep_off_the_wall(zigzag_fit):
    # brush_pan unseen seed 8: a 1.1x brush in a 16 cm pan; scaled with the pan alone, its corner ran 1 cm
    # into the wall on the first stroke and tipped the pan
    pan = (0.16 + 0.09, 0.16, 0.046)
    big = tuple(1.12 * v for v in BRUSH)
    reach_demo = _footprint_reach(zigzag_fit.program, PAN, BRUSH) / PAN[1]
    for brush in (BRUSH, big, tuple(0.85 * v for v in BRUSH)):
        assert _footprint_reach(zigzag_fit.program, pan, brush) / pan[1] == pytest.approx(reach_demo, rel=0.03)
    # a brush nearly as wide as the bowl still scrubs (a small path), never a mirrored one
    huge = (0.15, 0.12, 0.13)
    m = matrices_at(zigzag_fit.program, {"master": pan, "slave": huge}, np.linspace(0.1, 1, 300))
    assert 0.005 < np.ptp(m[:, 1, 3]) < 0.5 * np.ptp(
        matrices_at(zigzag_fit.program, {"master": pan, "slave": BRUSH}, np.linspace(0.1, 1, 300))[:, 1, 3])


def test_a_scrub_in_the_middle_of_a_long_master_keeps_its_fractions(scrubs):
    # the same rows, centred on a long tray: no end to measure from; the region scales with the tray's length
    centred = [m.copy() for m in scrubs]
    for m in centred:
        m[:, 0, 3] += 0.05
    fit = fit_family("zigzag", centred, _sizes(len(centred)))
    assert fit is not None
    longer = (PAN[0] * 1.5, PAN[1], PAN[2])
    c0, w0 = _region_x(fit.program, PAN)
    c1, w1 = _region_x(fit.program, longer)
    assert w1 / w0 == pytest.approx(1.5, rel=0.03)
    assert c1 == pytest.approx(1.5 * c0, abs=0.003)
