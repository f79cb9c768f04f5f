"""The fit error of a trajectory program against demos, and least-squares fits of program families.

Keypoints (paper: 10 per trajectory; tools.constraints.keypoints) are taken at equal fractions of a
combined path length (translation plus rotation times `ROT_RADIUS_M`), and a program is compared with
a demo at the same fractions of its own path: for a door swing, a pour or a pick-and-place, *when*
along the path the slave is somewhere is part of the motion. Oscillating families (zigzag, spiral)
are the exception, measured and fitted phase-free (tools.constraints.sweep): demos of one scrub differ
in stroke count and pace, so keypoints at equal path fractions fall at different phases of the
oscillation and even the program that sweeps exactly the demonstrated region in the demonstrated
pattern would report centimetres; for scrubbing what matters is the region swept and the pattern, so
their error is a symmetric Chamfer distance between paths over 40 keypoints (the larger median of the
two directions), and the zigzag's centre, height, direction, extent, amplitude, stroke shape and
stroke count (an integer, searched) are fitted against it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation as Rot

from core.program import (
    Arc,
    Line,
    Rotation,
    Spiral,
    StartPose,
    Tilt,
    TrajectoryProgram,
    Waypoints,
)
from tools.constraints.canonical import canonical, unit_vector
from tools.constraints.instantiate import matrices_at
from tools.constraints.keypoints import (
    MAX_SIZE_MULTIPLE,
    N_KEYPOINTS,
    ROT_RADIUS_M,
    FitReport,
    Sizes,
    keypoints,
    path_fractions,
    program_keypoints,
    resample,
    smooth,
)
from tools.constraints.sweep import (
    N_SWEEP_KEYPOINTS,
    OSCILLATING,
    SWEEP_SIGMA_FRAMES,
    fit_zigzag_sweep,
    is_oscillating_motion,
    is_oscillating_program,
    oscillates,
    sweep_error,
    sweep_keypoints,
)
from tools.constraints.symbolise import symbolise

__all__ = [
    "FAMILIES", "FREE_PLACE_SPREAD_M", "MAX_SIZE_MULTIPLE", "N_KEYPOINTS", "N_SWEEP_KEYPOINTS", "OSCILLATING",
    "ROT_RADIUS_M", "FamilyFit", "FitReport", "canonical", "end_spread", "fit_best", "fit_error", "fit_family",
    "keypoints", "keypoints_for", "oscillates", "path_fractions", "program_keypoints", "resample", "smooth",
    "sweep_error", "symbolise",
]

MAX_NFEV = 40
DENSE = 48  # program samples per residual evaluation (then resampled at the keypoints' path fractions)
FAMILIES = ("line", "rotation", "tilt", "reach", "arc", "transport", "zigzag", "spiral", "waypoints")
# "transport": lift by a height from wherever the slave starts, then through a point above the target
# onto the target, both fixed in the master frame (pick-and-place); a line step and a waypoints step.
# It keeps the slave's orientation, or (its turning form, fitted alongside) turns the slave on the way to
# an orientation fixed in the master frame (a brush turned to scrub the pan along its rows).
# "reach": from wherever the slave starts, straight through 1-3 fitted points fixed in the master frame
# (an approach to a target, e.g. a finger onto a button); stored as a `waypoints` step.
FREE_PLACE_SPREAD_M = 0.02  # demos of a free object ending further apart than this (median) chose a free place
END_PULL = 0.1  # weight of each demo's end in a free-end fit: the program ends at their mean place


def end_spread(demos: Sequence[np.ndarray]) -> float:
    """Median distance of the demos' end positions (T_master_slave, (n, 4, 4) each) from their mean."""
    ends = np.array([np.asarray(m, float)[-1, :3, 3] for m in demos])
    return float(np.median(np.linalg.norm(ends - ends.mean(axis=0), axis=1)))


def fit_error(
    program: TrajectoryProgram,
    demos: Sequence[np.ndarray],
    sizes: Sequence[Sizes],
    n: int = N_KEYPOINTS,
    *,
    keypoints_given: bool = False,
    anchored: bool = False,
    free_end: bool = False,
) -> FitReport:
    """Keypoint errors of `program` (instantiated with each demo's sizes) against each demo trajectory.

    With `keypoints_given`, `demos` already are (n, 4, 4) keypoints (e.g. from a reasoner question).
    With `anchored`, the program starts from each demo's own first pose (as at execution, where the
    motion starts from the slave's current pose relative to the master): this measures the motion's
    shape; without it, the program's learned start pose counts too. With `free_end` as well, the
    program's path is also bent onto each demo's own end position (its offset blended in with the
    program's horizontal progress, so a lift stays a lift and the lowering onto the place moves with
    the place): the shape of a put-down whose place the demos choose freely, not the place itself.

    A zigzag or spiral program is measured phase-free instead (`sweep_error`, 40 keypoints unless
    given; module docstring); the report's `measure` says which."""
    if is_oscillating_program(program):
        return sweep_error(program, demos, sizes, n if keypoints_given or n != N_KEYPOINTS else N_SWEEP_KEYPOINTS,
                           keypoints_given=keypoints_given, anchored=anchored)
    pos, rot, per = [], [], []
    for mats, sz in zip(demos, sizes, strict=True):
        kd = np.asarray(mats, float) if keypoints_given else keypoints(mats, n)
        n = len(kd)
        prog = program.model_copy(update={"start": _start_of(kd)}) if anchored else program
        kp = program_keypoints(prog, sz, n)
        if free_end:
            kp[:, :3, 3] += np.outer(_horizontal_progress(kp[:, :3, 3]), kd[-1, :3, 3] - kp[-1, :3, 3])
        e = np.linalg.norm(kd[:, :3, 3] - kp[:, :3, 3], axis=1)
        rel = np.einsum("tji,tjk->tik", kd[:, :3, :3], kp[:, :3, :3])
        a = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
        pos.append(e)
        rot.append(a)
        per.append(float(np.median(e)))
    p = np.concatenate(pos)
    return FitReport(
        family=program.family,
        anchored=anchored,
        free_end=free_end,
        median_m=float(np.median(p)),
        max_m=float(p.max()),
        median_deg=float(np.median(np.concatenate(rot))),
        per_demo_median_m=per,
        n_keypoints=n,
    )


def _horizontal_progress(p: np.ndarray) -> np.ndarray:
    """0 -> 1 along a path by its travel in the master's horizontal plane (path fraction if it has none)."""
    d = np.linalg.norm(np.diff(p[:, :2], axis=0), axis=1)
    if d.sum() < 1e-6:
        return np.linspace(0.0, 1.0, len(p))
    return np.concatenate([[0.0], np.cumsum(d)]) / d.sum()


# --- least-squares fits of the families ---------------------------------------------------------


def _mean_start(kps: Sequence[np.ndarray]) -> StartPose:
    p = np.mean([k[0, :3, 3] for k in kps], axis=0)
    q = Rot.from_matrix(np.stack([k[0, :3, :3] for k in kps])).mean().as_quat()
    return StartPose(position=tuple(float(v) for v in p), quaternion=tuple(float(v) for v in q))


def _start_of(k: np.ndarray) -> StartPose:
    return StartPose(
        position=tuple(float(v) for v in k[0, :3, 3]),
        quaternion=tuple(float(v) for v in Rot.from_matrix(k[0, :3, :3]).as_quat()),
    )


def _fit_circle(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(centre, plane normal, radius) of the least-squares circle through 3-D points."""
    c0 = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - c0)
    u, v, nrm = vt[0], vt[1], vt[2]
    xy = np.column_stack([(points - c0) @ u, (points - c0) @ v])
    A = np.column_stack([2 * xy, np.ones(len(xy))])
    b = (xy**2).sum(axis=1)
    sol, *_ = np.linalg.lstsq(A, b, rcond=None)
    cx, cy = sol[0], sol[1]
    r = float(np.sqrt(max(sol[2] + cx**2 + cy**2, 0.0)))
    return c0 + cx * u + cy * v, nrm, r


Builder = Callable[[np.ndarray], list]
REGULARISERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {}


def _families(kps: Sequence[np.ndarray]) -> dict[str, tuple[Builder, np.ndarray]]:
    """For each family: a builder (params -> steps) and an initial parameter guess."""
    first = np.stack([k[0] for k in kps])
    last = np.stack([k[-1] for k in kps])
    disp = (last[:, :3, 3] - first[:, :3, 3]).mean(axis=0)
    rv_world = Rot.from_matrix(np.einsum("tij,tkj->tik", last[:, :3, :3], first[:, :3, :3])).mean().as_rotvec()
    rv_body = Rot.from_matrix(np.einsum("tji,tjk->tik", first[:, :3, :3], last[:, :3, :3])).mean().as_rotvec()
    out: dict[str, tuple[Builder, np.ndarray]] = {}

    for m in (1, 2, 3):
        idx = [int(round(x)) for x in np.linspace(0, len(kps[0]) - 1, m + 1)[1:]]
        x0 = np.concatenate([np.mean([k[i, :3, 3] for k in kps], axis=0) for i in idx])

        def reach(th, m=m):
            return [Waypoints(points=[tuple(float(v) for v in th[3 * j:3 * j + 3]) for j in range(m)])]

        out[f"reach{m}"] = (reach, x0)

    top = np.mean([float(np.max(k[:, 2, 3]) - k[0, 2, 3]) for k in kps])
    end_rv = Rot.from_matrix(last[:, :3, :3]).mean().as_rotvec()  # the demos' mean end orientation
    if top > 0.02:
        for m, fracs in ((2, (0.8, 1.0)), (3, (0.5, 0.8, 1.0))):
            idx = [int(round(f * (len(kps[0]) - 1))) for f in fracs]
            x0 = np.concatenate([[top], *[np.mean([k[i, :3, 3] for k in kps], axis=0) for i in idx]])

            def transport(th, m=m):
                return [Line(direction=(0.0, 0.0, 1.0), distance=float(th[0])),
                        Waypoints(points=[tuple(float(v) for v in th[1 + 3 * j:4 + 3 * j]) for j in range(m)])]

            def transport_turning(th, m=m):
                q = tuple(float(v) for v in Rot.from_rotvec(th[-3:]).as_quat())
                return [Line(direction=(0.0, 0.0, 1.0), distance=float(th[0])),
                        Waypoints(points=[tuple(float(v) for v in th[1 + 3 * j:4 + 3 * j]) for j in range(m)],
                                  quaternions=[q] * m)]

            out[f"transport{m}"] = (transport, x0)
            out[f"transport{m}turning"] = (transport_turning, np.concatenate([x0, end_rv]))

    out["line"] = (lambda th: [Line(direction=tuple(th), distance=float(np.linalg.norm(th)) or 1e-9)], disp + 1e-6)

    def _rot(cls):
        def b(th):
            ang = float(np.linalg.norm(th))
            return [cls(axis=tuple(unit_vector(th)), angle_deg=float(np.degrees(ang)))]

        return b

    out["rotation"] = (_rot(Rotation), rv_world + 1e-6)
    out["tilt"] = (_rot(Tilt), rv_body + 1e-6)

    pts = np.concatenate([k[:, :3, 3] for k in kps])
    circle = _fit_circle(pts) if np.ptp(pts, axis=0).max() > 0.01 else None
    if circle is not None and circle[2] < 2.0:
        centre, nrm, _ = circle
        # orient the normal with the rotation sense of the first demo
        a0 = kps[0][0, :3, 3] - centre
        a1 = kps[0][len(kps[0]) // 2, :3, 3] - centre
        if np.cross(a0, a1) @ nrm < 0:
            nrm = -nrm
        angs = []
        for k in kps:
            v0, v1 = k[0, :3, 3] - centre, k[-1, :3, 3] - centre
            angs.append(np.arctan2(np.cross(v0, v1) @ nrm, v0 @ v1))
        ang = float(np.degrees(np.mean(angs)))

        def arc(th):
            return [Arc(axis=tuple(th[0:3]), pivot=tuple(th[3:6]), angle_deg=float(th[6]))]

        level = np.mean([k[0, :3, 3] for k in kps], axis=0)

        def arc_reg(th):  # unit axis, pivot at the start's level: removes the parametrisation's null directions
            a = th[0:3]
            na = np.linalg.norm(a)
            return np.array([0.05 * (na - 1.0), 0.05 * float((th[3:6] - level) @ a) / max(na, 1e-9)])

        out["arc"] = (arc, np.concatenate([nrm, centre, [ang]]))
        REGULARISERS["arc"] = arc_reg

        # unwrapped angle about the circle for turns
        k = kps[0][:, :3, 3] - centre
        u = unit_vector(k[0] - nrm * (k[0] @ nrm))
        w = np.cross(nrm, u)
        unwrapped = np.unwrap(np.arctan2(k @ w, k @ u))
        turns = float(unwrapped[-1] / (2 * np.pi)) or 0.5
        pitch = float((kps[0][-1, :3, 3] - kps[0][0, :3, 3]) @ nrm / turns)

        def spiral(th):
            return [Spiral(axis=tuple(th[0:3]), center=tuple(th[3:6]), turns=float(th[6]), pitch=float(th[7]),
                           growth=float(th[8]))]

        out["spiral"] = (spiral, np.concatenate([nrm, centre, [turns, pitch, 0.0]]))
        REGULARISERS["spiral"] = arc_reg

    return out


def _residuals(steps_of: Builder, th: np.ndarray, kps: Sequence[np.ndarray], sizes: Sequence[Sizes],
               reg: Callable[[np.ndarray], np.ndarray] | None = None, free_end: bool = False) -> np.ndarray:
    """Keypoint residuals of the program built from `th` (from each demo's start); with `free_end` the
    path is bent onto each demo's own end as `fit_error(free_end=True)` measures it, plus a weak pull of
    the unbent end towards each demo's end (the program ends at their mean place)."""
    fr = np.linspace(0.0, 1.0, len(kps[0]))
    dense = np.linspace(0.0, 1.0, DENSE)
    res = []
    try:
        steps = steps_of(th)
    except Exception:  # noqa: BLE001 - an invalid intermediate parameter vector (zero axis ...)
        return np.full(sum(len(k) for k in kps) * (7 if free_end else 4) + (2 if reg else 0), 1.0)
    for k, sz in zip(kps, sizes, strict=True):
        prog = TrajectoryProgram(start=_start_of(k), steps=steps)
        try:
            m = resample(matrices_at(prog, sz, dense), fr)
        except Exception:  # noqa: BLE001
            return np.full(sum(len(k) for k in kps) * (7 if free_end else 4) + (2 if reg else 0), 1.0)
        pos = m[:, :3, 3]
        if free_end:
            off = k[-1, :3, 3] - pos[-1]
            res.append(np.tile(END_PULL * -off, len(k)))  # same length per keypoint keeps the shape fixed
            pos = pos + np.outer(_horizontal_progress(pos), off)
        res.append((pos - k[:, :3, 3]).ravel())
        rel = np.einsum("tji,tjk->tik", k[:, :3, :3], m[:, :3, :3])
        res.append(ROT_RADIUS_M * np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    if reg is not None:
        res.append(reg(th))
    return np.concatenate(res)


class FamilyFit(BaseModel):
    program: TrajectoryProgram
    report: FitReport
    n_params: int


def fit_family(
    family: str,
    demos: Sequence[np.ndarray],
    sizes: Sequence[Sizes],
    n: int = N_KEYPOINTS,
    *,
    keypoints_given: bool = False,
    anchored: bool = True,
    free_end: bool = False,
    held_slave: bool = False,
) -> FamilyFit | None:
    """Least-squares fit of one family to the demos' keypoints; None when the family does not apply.

    The fit matches the motion from each demo's own start (`anchored`, as executed); the program's
    start pose is the demos' mean start. With `free_end` (a free object put down at places the
    demonstrator chose, see `end_spread`) it matches the motion's shape with each demo's own end, as
    `fit_error(free_end=True)` measures it, and ends at the demos' mean place. With `held_slave` (the
    slave is an object in the hand, not the hand) its heights are written over both objects' sizes
    (`symbolise`)."""
    oscillating = family in OSCILLATING
    if keypoints_given:
        kps = [np.asarray(m, float) for m in demos]
    elif oscillating:
        kps = [sweep_keypoints(m, N_SWEEP_KEYPOINTS if n == N_KEYPOINTS else n) for m in demos]
    else:
        kps = [keypoints(m, n) for m in demos]
    master = np.mean([np.asarray(s["master"], float) for s in sizes], axis=0)
    if oscillating and not _oscillating_demos(kps):
        return None  # a door swing or a carry is no scrub, however well a zigzag covers its path
    if family == "zigzag":
        paths = [k[:, :3, 3] for k in kps] if keypoints_given else \
            [smooth(np.asarray(m, float), SWEEP_SIGMA_FRAMES)[:, :3, 3] for m in demos]
        slave = np.mean([np.asarray(s.get("slave", (0.0, 0.0, 0.0)), float) for s in sizes], axis=0)
        found = fit_zigzag_sweep(kps, paths, master, slave)
        if found is None:
            return None
        raw, n_params = found
        prog = symbolise(canonical(raw, snap=False), master, scrub=True, tool_size=slave)
        report = fit_error(prog, kps, sizes, len(kps[0]), keypoints_given=True, anchored=anchored)
        return FamilyFit(program=prog, report=report, n_params=n_params + 6)
    slave = np.mean([np.asarray(s.get("slave", (0.0, 0.0, 0.0)), float) for s in sizes], axis=0) \
        if held_slave else None
    # fitted on heights as at the mean slave size (a demo whose object was measured 4 cm shorter holds its
    # centre 2 cm lower): the symbolised heights give each demo its own back, and the report measures that
    kfit = kps if slave is None else [_at_mean_slave(k, s.get("slave", slave), slave) for k, s in zip(
        kps, sizes, strict=True)]
    if family == "waypoints":
        # each keypoint: the demos' mean offset from their start, bent towards their mean end with a free end
        rel = np.mean([k[1:, :3, 3] - k[0, :3, 3] for k in kfit], axis=0)
        if free_end:
            bent = []
            for k in kfit:
                p = k[:, :3, 3] - k[0, :3, 3]
                bent.append(p[1:] - np.outer(_horizontal_progress(p)[1:], p[-1] - rel[-1]))
            rel = np.mean(bent, axis=0)
        start = _mean_start(kps)
        pts = [tuple(np.asarray(_mean_start(kfit).position) + r) for r in rel]
        quats = [tuple(float(v) for v in Rot.from_matrix(np.stack([k[j, :3, :3] for k in kps])).mean().as_quat())
                 for j in range(1, len(kps[0]))]
        prog = TrajectoryProgram(family="waypoints", start=start, steps=[Waypoints(points=pts, quaternions=quats)])
        n_params = 3 * len(pts)
    else:
        REGULARISERS.clear()
        fams = _families(kfit)
        if family in ("reach", "transport"):  # the best number of points (and turning or not), counting parameters
            forms = [f"{family}{m}{turn}" for m in (1, 2, 3) for turn in ("", "turning")]
            fits = [f for form in forms if form in fams
                    and (f := _fit_one(form, fams, kps, sizes, master, anchored, free_end, slave, kfit))]
            return min(fits, key=lambda f: _score(f) + 0.0003 * f.n_params) if fits else None
        if family not in fams:
            return None
        return _fit_one(family, fams, kps, sizes, master, anchored, free_end, slave, kfit)
    prog = symbolise(prog, master, slave)
    report = fit_error(prog, kps, sizes, len(kps[0]), keypoints_given=True, anchored=anchored, free_end=free_end)
    return FamilyFit(program=prog, report=report, n_params=n_params + 6)


def _fit_one(family: str, fams: dict, kps: Sequence[np.ndarray], sizes: Sequence[Sizes], master: np.ndarray,
             anchored: bool, free_end: bool = False, slave: np.ndarray | None = None,
             kfit: Sequence[np.ndarray] | None = None) -> FamilyFit | None:
    builder, x0 = fams[family]
    reg = REGULARISERS.get(family)
    target = kps if kfit is None else kfit
    sol = least_squares(lambda th: _residuals(builder, th, target, sizes, reg, free_end), x0, method="trf",
                        max_nfev=MAX_NFEV)
    try:
        steps = builder(sol.x)
    except Exception:  # noqa: BLE001
        return None
    name = family.removesuffix("turning").rstrip("0123456789")
    raw = TrajectoryProgram(family=name, start=_mean_start(target), steps=steps)
    n_params = len(x0)
    # snapped axes only when they cost at most half a millimetre of keypoint error
    loose = symbolise(canonical(raw, snap=False), master, slave)
    snapped = symbolise(canonical(raw, snap=True), master, slave)
    r_loose = fit_error(loose, kps, sizes, len(kps[0]), keypoints_given=True, anchored=anchored, free_end=free_end)
    r_snap = fit_error(snapped, kps, sizes, len(kps[0]), keypoints_given=True, anchored=anchored, free_end=free_end)
    if r_snap.median_m <= r_loose.median_m + 5e-4:
        return FamilyFit(program=snapped, report=r_snap, n_params=n_params + 6)
    return FamilyFit(program=loose, report=r_loose, n_params=n_params + 6)


def fit_best(
    demos: Sequence[np.ndarray],
    sizes: Sequence[Sizes],
    *,
    families: Sequence[str] = FAMILIES,
    tolerance_m: float = 0.005,
    n: int = N_KEYPOINTS,
    keypoints_given: bool = False,
    anchored: bool = True,
    free_end: bool = False,
    held_slave: bool = False,
) -> tuple[FamilyFit, list[FamilyFit]]:
    """Fit every family; pick the simplest whose median error is within `tolerance_m` (else the best).

    Oscillating families are fitted and measured on `N_SWEEP_KEYPOINTS` phase-free keypoints (from
    raw demos), the others on `n`. `free_end`, `held_slave`: see `fit_family`."""
    fits = [f for fam in families
            if (f := fit_family(fam, demos, sizes, n, keypoints_given=keypoints_given, anchored=anchored,
                                free_end=free_end, held_slave=held_slave)) is not None]
    if not fits:
        raise ValueError("no trajectory family could be fitted")

    # adequate: within the tolerance, or (when nothing is) close to the best; the simplest adequate wins
    best_score = min(_score(f) for f in fits)
    ok = [f for f in fits if _score(f) <= max(tolerance_m, 1.15 * best_score + 0.001)]
    # simplest first; scores within 0.1 mm count as a tie, broken by the vocabulary's order
    order = {fam: i for i, fam in enumerate(FAMILIES)}
    best = min(ok, key=lambda f: (f.n_params, round(_score(f), 4), order.get(f.program.family, 99)))
    return best, fits


def _score(f: FamilyFit) -> float:
    """A fit's position error plus its orientation error as metres of path (ROT_RADIUS_M per radian)."""
    return f.report.median_m + ROT_RADIUS_M * np.radians(f.report.median_deg)


def _half_height(k: np.ndarray, slave: Sequence[float]) -> np.ndarray:
    """Per keypoint, the held object's half extent along the master's up (its bbox projected)."""
    return 0.5 * np.abs(k[:, 2, :3]) @ np.asarray(slave, float)


def _at_mean_slave(k: np.ndarray, slave: Sequence[float], mean_slave: np.ndarray) -> np.ndarray:
    """Keypoints with heights as a held object of the mean size would have them (its underside kept)."""
    out = np.array(k, float)
    out[:, 2, 3] += _half_height(out, mean_slave) - _half_height(out, slave)
    return out


def _oscillating_demos(kps: Sequence[np.ndarray]) -> bool:
    """Whether most demos turn back and forth (measured on their keypoints)."""
    return 2 * sum(is_oscillating_motion(k) for k in kps) > len(kps)


def keypoints_for(mats: np.ndarray) -> np.ndarray:
    """The keypoints a reasoner is shown for one demo: the paper's 10 at equal path fractions, or, for an
    oscillating motion (scrubbing), `N_SWEEP_KEYPOINTS` lightly smoothed ones (10 cannot sample the strokes)."""
    return sweep_keypoints(mats) if oscillates(mats) else keypoints(mats, N_KEYPOINTS)
