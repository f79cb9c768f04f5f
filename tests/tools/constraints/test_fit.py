import numpy as np
import pytest

from core.program import Line, Rotation, StartPose, TrajectoryProgram, Zigzag
from tests.agents.synthetic import door_demo, pan_demo
from tools.constraints.fit import fit_best, fit_error, keypoints
from tools.constraints.instantiate import matrices_at


def _demos(make, master, slave):
    ds = [make(i) for i in range(5)]
    trajs = [d.manipulations()[0].matrices() for d in ds]
    sizes = [{"master": d.object(master).bbox_size, "slave": d.object(slave).bbox_size} for d in ds]
    return trajs, sizes


def test_keypoints_are_spread_along_the_path_not_the_clock():
    prog = TrajectoryProgram(start=StartPose(position=(0, 0, 0)), steps=[Line(direction=(1, 0, 0), distance=0.3)])
    t = np.linspace(0, 1, 100)
    m = matrices_at(prog, {"master": (1, 1, 1)}, 10 * t**3 - 15 * t**4 + 6 * t**5)  # slow start and end
    k = keypoints(m, 10)
    assert np.allclose(np.diff(k[:, 0, 3]), 0.3 / 9, atol=2e-3)


def test_door_demos_fit_an_arc_about_the_hinge_within_a_centimetre():
    trajs, sizes = _demos(door_demo, "cabinet", "cabinet_door")
    best, fits = fit_best(trajs, sizes)
    assert best.program.family == "arc"
    assert best.report.median_m < 0.01
    arc = best.program.steps[0]
    assert arc.pivot[:2] == ("master.x*0.5", "master.y*-0.5")  # snapped to the hinge edge
    assert abs(abs(float(arc.angle_deg)) - 70) < 3
    # a straight line cannot explain a door swing
    line = next(f for f in fits if f.program.family == "line")
    assert line.report.median_m > 3 * best.report.median_m


def test_wiping_demos_fit_a_zigzag():
    trajs, sizes = _demos(pan_demo, "pan", "sponge")
    best, _ = fit_best(trajs, sizes)
    assert best.program.family == "zigzag"
    assert best.report.median_m < 0.01
    zig = next(s for s in best.program.steps if isinstance(s, Zigzag))
    assert float(zig.cycles) == pytest.approx(1.5, abs=0.15)


def test_fitted_program_transfers_to_a_bigger_master():
    trajs, sizes = _demos(door_demo, "cabinet", "cabinet_door")
    best, _ = fit_best(trajs, sizes)
    big = {"master": tuple(2 * np.asarray(sizes[0]["master"])), "slave": sizes[0]["slave"]}
    m = matrices_at(best.program, big, np.linspace(0, 1, 20))
    pivot = np.array([big["master"][0] / 2, -big["master"][1] / 2])
    r = np.linalg.norm(m[:, :2, 3] - pivot, axis=1)
    assert np.ptp(r) < 0.005 and r.mean() == pytest.approx(big["master"][1] / 2, abs=0.02)


def test_pure_turn_fits_a_rotation():
    prog = TrajectoryProgram(start=StartPose(position=(0.0, 0.0, 0.1)), steps=[Rotation(axis=(0, 0, 1), angle_deg=120)])
    rng = np.random.default_rng(0)
    trajs = []
    for _ in range(3):
        m = matrices_at(prog, {"master": (0.1, 0.1, 0.1)}, np.linspace(0, 1, 50))
        m[:, :3, 3] += rng.normal(0, 0.0005, (50, 3))
        trajs.append(m)
    best, _ = fit_best(trajs, [{"master": (0.1, 0.1, 0.1), "slave": (0.03, 0.03, 0.03)}] * 3)
    assert best.program.family == "rotation"
    assert abs(float(best.program.steps[0].angle_deg)) == pytest.approx(120, abs=3)


def test_fit_error_measures_a_wrong_program():
    trajs, sizes = _demos(door_demo, "cabinet", "cabinet_door")
    wrong = TrajectoryProgram(start=StartPose(position=(0.2, 0, 0)), steps=[Line(direction=(1, 0, 0), distance=0.3)])
    assert fit_error(wrong, trajs, sizes).median_m > 0.03


def test_a_lift_over_a_thin_plate_is_kept_in_metres_not_plate_thicknesses():
    from core.program import Waypoints
    from tools.constraints.fit import fit_family

    rng = np.random.default_rng(3)
    trajs, sizes = [], []
    for _ in range(5):  # pick-ups at different places, the same lift, carry and placing on the plate
        start = (rng.uniform(0.05, 0.18), rng.uniform(0.22, 0.32), 0.025)
        demo = TrajectoryProgram(start=StartPose(position=start), steps=[
            Line(direction=(0, 0, 1), distance=0.13), Waypoints(points=[(-0.01, 0.01, 0.17), (-0.01, 0.0, 0.035)])])
        trajs.append(matrices_at(demo, {"master": (0.2, 0.2, 0.007)}, np.linspace(0, 1, 80)))
        # the plate's measured thickness varies by millimetres between demos
        sizes.append({"master": (0.2, 0.2, float(rng.uniform(0.006, 0.008))), "slave": (0.09, 0.06, 0.055)})
    fit = fit_family("transport", trajs, sizes)
    assert fit is not None and fit.report.anchored and fit.report.median_m < 0.005
    lift = fit.program.steps[0]
    assert isinstance(lift.distance, float) and lift.distance == pytest.approx(0.13, abs=0.01)
    assert not any("master.z" in str(p[2]) for p in fit.program.steps[1].points)
    # on a thicker plate the lift stays a lift, not 19 plate thicknesses
    thick = matrices_at(fit.program, {"master": (0.2, 0.2, 0.03), "slave": sizes[0]["slave"]}, np.linspace(0, 1, 40))
    assert thick[:, 2, 3].max() < 0.25
