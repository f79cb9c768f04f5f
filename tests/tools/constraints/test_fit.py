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


def test_a_free_end_fit_matches_the_shape_a_fixed_end_fit_cannot():
    from core.program import Waypoints
    from tools.constraints.fit import end_spread, fit_family

    rng = np.random.default_rng(11)
    trajs = []
    for _ in range(5):  # put back at a freely chosen place beside the master: lift, carry level, lower
        start = (rng.uniform(-0.08, 0.0), rng.uniform(-0.03, 0.05), 0.055)
        place = (rng.uniform(-0.1, 0.2), rng.uniform(0.16, 0.26), 0.035)
        prog = TrajectoryProgram(start=StartPose(position=start), steps=[
            Line(direction=(0, 0, 1), distance=0.085), Waypoints(points=[(place[0], place[1], 0.14), place])])
        trajs.append(matrices_at(prog, {"master": (0.33, 0.21, 0.046)}, np.linspace(0, 1, 90)))
    sizes = [{"master": (0.33, 0.21, 0.046), "slave": (0.07, 0.05, 0.13)}] * 5
    assert end_spread(trajs) > 0.05
    fixed = fit_family("transport", trajs, sizes)
    free = fit_family("transport", trajs, sizes, free_end=True)
    assert fixed is not None and free is not None and free.report.free_end
    shape_of_fixed = fit_error(fixed.program, trajs, sizes, anchored=True, free_end=True).median_m
    assert free.report.median_m < 0.003 and free.report.median_m < 0.7 * shape_of_fixed
    # it ends at the demos' mean place
    mean_end = np.mean([t[-1, :3, 3] for t in trajs], axis=0)
    end = matrices_at(free.program, sizes[0], np.array([1.0]))[0, :3, 3]
    assert np.linalg.norm(end - mean_end) < 0.02


def test_a_held_object_s_heights_follow_both_heights_so_a_tall_source_stays_above_a_short_target():
    from core.program import Waypoints
    from tools.constraints.fit import symbolise

    master, cup = (0.08, 0.08, 0.06), (0.07, 0.07, 0.10)
    # over the target: the source's underside 1.5 cm above the target's top (origins at the boxes' centres)
    over = 0.5 * master[2] + 0.5 * cup[2] + 0.015
    prog = TrajectoryProgram(start=StartPose(position=(0.2, 0.0, -0.5 * master[2] + 0.5 * cup[2])),
                             steps=[Waypoints(points=[(0.0, 0.0, over)])])
    sym = symbolise(prog, master, cup)
    height = sym.steps[0].points[0][2]
    assert "slave.z" in height and "master.z*0.5" in height
    assert "master.z*-0.5" in sym.start.position[2]  # the start beside the target: on the table
    for tall in (0.10, 0.25):  # a taller source (and a shorter target) keeps the clearance
        sizes = {"master": (0.08, 0.08, 0.03), "slave": (0.07, 0.07, tall)}
        z = matrices_at(sym, sizes, np.array([0.0, 1.0]))[:, 2, 3]
        assert z[1] - 0.5 * tall - 0.5 * 0.03 == pytest.approx(0.015, abs=1e-4)
        assert z[0] - 0.5 * tall == pytest.approx(-0.015, abs=1e-4)  # standing on the target's table
    # tilted 90 degrees, the source's extent along up is its width
    tilted = prog.model_copy(update={"steps": [Waypoints(points=[(0.0, 0.0, over)],
                                                         quaternions=[(0.7071068, 0.0, 0.0, 0.7071068)])]})
    assert "slave.y*0.5" in symbolise(tilted, master, cup).steps[0].points[0][2]
    # held beside the target's centre with its rim over the target (a pour): still over the target's top
    beside = prog.model_copy(update={"steps": [Waypoints(points=[(0.0, 0.07, over)])]})
    assert symbolise(beside, master, cup).steps[0].points[0][2].startswith("master.z*0.5+")


def test_no_length_is_written_as_many_times_a_thin_master_s_extent():
    import re

    from core.program import Arc, Spiral, Tilt, Waypoints
    from tools.constraints.fit import MAX_SIZE_MULTIPLE, fit_family, symbolise

    box = (0.3, 0.2, 0.009)  # a button box 9 mm thick
    prog = TrajectoryProgram(start=StartPose(position=(0.02, -0.01, 0.2655)), steps=[
        Waypoints(points=[(0.0, 0.0, 0.05), (1.2, 0.9, 0.004)]), Line(direction=(0, 0, -1), distance=0.2),
        Line(direction=(1, 0, 0), distance=1.5), Arc(axis=(0, 0, 1), pivot=(1.0, 0.7, 0.12), angle_deg=30),
        Tilt(axis=(1, 0, 0), angle_deg=40), Spiral(axis=(0, 0, 1), center=(0.0, 0.0, 0.1), turns=1, pitch=0.05),
        Zigzag(direction=(0, 0, 1), across=(1, 0, 0), length=0.2, amplitude=0.05, cycles=2)])

    def multiples(p):
        return [abs(float(m)) for m in re.findall(r"master\.[xyz]\*(-?[0-9.]+)", p.model_dump_json())]

    for slave in (None, (0.08, 0.02, 0.1)):
        sym = symbolise(prog, box, slave)
        assert multiples(sym) and max(multiples(sym)) <= MAX_SIZE_MULTIPLE
        assert matrices_at(sym, {"master": box, "slave": slave or (0.08, 0.02, 0.1)}, np.array([0.0]))[0, 2, 3] \
            == pytest.approx(0.2655, abs=1e-4)
    # a finger's approach onto the box from 26 cm above, fitted: metres, not 29.5 box thicknesses
    rng = np.random.default_rng(5)
    trajs = [matrices_at(TrajectoryProgram(
        start=StartPose(position=(rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), 0.2655)),
        steps=[Waypoints(points=[(0.0, 0.0, 0.03), (0.0, 0.0, 0.006)])]), {"master": box}, np.linspace(0, 1, 60))
        for _ in range(4)]
    fit = fit_family("reach", trajs, [{"master": box, "slave": (0.08, 0.02, 0.1)}] * 4)
    assert fit is not None and fit.report.median_m < 0.005
    assert max(multiples(fit.program), default=0.0) <= MAX_SIZE_MULTIPLE


def test_a_scrub_high_over_a_thin_master_keeps_its_height_in_metres():
    from tools.constraints.sweep import _program, _Shape

    basis = (np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0]))
    shape = _Shape(basis, 4, False, True)
    th = np.array([0.0, 0.0, 0.12, 0.0, 0.1, 0.05])
    kps = [np.tile(np.eye(4), (5, 1, 1))]
    prog = _program(th, shape, kps, (0.3, 0.2, 0.005), (0.07, 0.05, 0.13))
    heights = [p[2] for p in prog.steps[0].points]
    assert all("master.z" not in h for h in heights)
    z = matrices_at(prog, {"master": (0.3, 0.2, 0.005), "slave": (0.07, 0.05, 0.13)}, np.array([0.5]))[0, 2, 3]
    assert z == pytest.approx(0.12, abs=1e-3)


def _carries(turn_to_deg: float | None, seed: int = 5) -> tuple[list[np.ndarray], list[dict]]:
    """Five pick-and-place carries from different starts (and start headings) to one place; with
    `turn_to_deg` the object turns on the way to that heading in the master frame, else keeps its own."""
    from scipy.spatial.transform import Rotation as Rot

    from core.program import Waypoints

    rng = np.random.default_rng(seed)
    trajs = []
    for _ in range(5):
        start = (rng.uniform(0.15, 0.3), rng.uniform(-0.1, 0.1), 0.03)
        heading = Rot.from_euler("z", rng.uniform(-60, 60), degrees=True).as_quat()
        end_q = None if turn_to_deg is None else \
            [tuple(Rot.from_euler("z", turn_to_deg, degrees=True).as_quat())] * 2
        prog = TrajectoryProgram(start=StartPose(position=start, quaternion=tuple(heading)), steps=[
            Line(direction=(0, 0, 1), distance=0.12),
            Waypoints(points=[(0.0, 0.0, 0.15), (0.0, 0.0, 0.04)], quaternions=end_q)])
        trajs.append(matrices_at(prog, {"master": (0.3, 0.2, 0.05)}, np.linspace(0, 1, 90)))
    return trajs, [{"master": (0.3, 0.2, 0.05), "slave": (0.07, 0.05, 0.13)}] * 5


def test_a_carry_that_turns_the_object_to_a_heading_on_the_target_fits_a_turning_transport():
    from core.program import Waypoints

    trajs, sizes = _carries(turn_to_deg=90.0)
    best, fits = fit_best(trajs, sizes, held_slave=True)
    assert best.program.family == "transport", [(f.program.family, f.report.median_m) for f in fits]
    carry = best.program.steps[-1]
    assert isinstance(carry, Waypoints) and carry.quaternions is not None
    assert best.report.median_m < 0.005 and best.report.median_deg < 3.0
    # whatever the heading it starts with, the object ends turned to the demonstrated one
    end = matrices_at(best.program.model_copy(update={"start": StartPose(position=(0.2, 0.05, 0.03))}), sizes[0],
                      np.array([1.0]))[0]
    assert np.degrees(np.arctan2(end[1, 0], end[0, 0])) == pytest.approx(90.0, abs=3.0)


def test_a_carry_that_keeps_the_object_s_heading_fits_a_transport_that_keeps_it():
    trajs, sizes = _carries(turn_to_deg=None)
    best, _ = fit_best(trajs, sizes, held_slave=True)
    assert best.program.family == "transport"
    assert best.program.steps[-1].quaternions is None  # no turn the demos never made
    assert best.report.median_m < 0.005 and best.report.median_deg < 1.0
