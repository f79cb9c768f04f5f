"""Oscillating motions (scrubbing, wiping, stirring): a phase-free fit error and the zigzag's fit.

Keypoints at equal path fractions compare "where the slave is at 30 % of its path". For an oscillating
motion that is the wrong question: two scrubs of the same pan with 3 or 5 strokes, or at another pace,
put their 30 % keypoints at different phases of the oscillation, so even the program that sweeps exactly
the demonstrated region in exactly the demonstrated pattern reports centimetres of error. What matters
for scrubbing is the region swept and the pattern, so for these families the error is a symmetric
Chamfer (coverage) distance: the median distance of the demo's keypoints (`N_SWEEP_KEYPOINTS`, denser
than the paper's 10, which cannot even sample the strokes) to the program's dense path, and that of
the program's keypoints to the demo's dense path, the larger of the two. A program that misses part
of the demonstrated region, or sweeps where the demo never went, is penalised; which stroke falls
where is not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation as Rot

from core.program import Spiral, StartPose, TrajectoryProgram, Waypoints, Zigzag
from tools.constraints.instantiate import sample_matrices
from tools.constraints.keypoints import MAX_SIZE_MULTIPLE, FitReport, Sizes, resample, smooth

OSCILLATING = ("zigzag", "spiral")
N_SWEEP_KEYPOINTS = 40
SWEEP_SIGMA_FRAMES = 1.5  # light smoothing only: the strokes' turns are the pattern
DENSE_SWEEP = 400  # program samples for the distance to its path
MIN_REVERSAL_M = 0.01  # a turn back counts once the path retreats this far from its last extreme
OSCILLATION_REVERSALS = 2  # this many turns back along one axis make a motion oscillating (3 strokes)
MAX_TURN_DEG = 30.0  # ... if it keeps the slave's orientation this closely (the zigzag holds it)
STROKES = range(1, 13)  # strokes (half cycles) searched for the zigzag
N_ANGLES = 12  # stroke directions tried in the plane before refining
N_REFINED = 4  # best grid candidates (distinct shape, stroke count, once around) refined by least squares
PLANE_SNAP_DEG = 20.0  # a scrub plane this close to horizontal is taken as horizontal (z up)


def is_oscillating_program(program: TrajectoryProgram) -> bool:
    """Whether a program's fit error is measured phase-free (a zigzag or spiral family or step)."""
    return program.family in OSCILLATING or any(isinstance(s, Zigzag | Spiral) for s in program.steps)


def reversals(positions: np.ndarray, min_m: float = MIN_REVERSAL_M) -> int:
    """Most turns back along one of the path's two principal directions (hysteresis `min_m`)."""
    p = np.asarray(positions, float)
    if len(p) < 3:
        return 0
    c = p - p.mean(axis=0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    best = 0
    for axis in vt[:2]:
        x = c @ axis
        n, direction, extreme = 0, 0, x[0]
        for v in x[1:]:
            if direction == 0:
                if abs(v - extreme) >= min_m:
                    direction, extreme = (1 if v > extreme else -1), v
            elif (v - extreme) * direction > 0:
                extreme = v
            elif abs(v - extreme) >= min_m:
                n, direction, extreme = n + 1, -direction, v
        best = max(best, n)
    return best


def turn_deg(mats: np.ndarray) -> float:
    """The largest rotation of the slave away from its first orientation along the motion, degrees."""
    R = np.asarray(mats, float)[:, :3, :3]
    return float(_angle_deg(np.broadcast_to(R[0], R.shape), R).max()) if len(R) else 0.0


def is_oscillating_motion(mats: np.ndarray) -> bool:
    """Turns back and forth while keeping its orientation (a scrub, a wipe, a stir; not a pour, whose
    tilt there and back also moves the slave's origin back and forth)."""
    return reversals(mats[:, :3, 3]) >= OSCILLATION_REVERSALS and turn_deg(mats) <= MAX_TURN_DEG


def oscillates(mats: np.ndarray) -> bool:
    """A demonstrated motion that turns back and forth (scrubbing): its fit needs the sweep measure."""
    return is_oscillating_motion(smooth(np.asarray(mats, float), SWEEP_SIGMA_FRAMES))


def sweep_keypoints(mats: np.ndarray, n: int = N_SWEEP_KEYPOINTS) -> np.ndarray:
    """n keypoints at equal path fractions of the lightly smoothed trajectory (the strokes' turns kept)."""
    return resample(smooth(np.asarray(mats, float), SWEEP_SIGMA_FRAMES), np.linspace(0.0, 1.0, n))


def polyline_distance(points: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Distance from each of (n, 3) points to the polyline through (m, 3) path points."""
    points = np.asarray(points, float)
    path = np.asarray(path, float)
    if len(path) == 1:
        return np.linalg.norm(points - path[0], axis=1)
    a, ab = path[:-1], np.diff(path, axis=0)
    l2 = np.maximum((ab**2).sum(axis=1), 1e-18)
    t = np.clip(np.einsum("nmk,mk->nm", points[:, None, :] - a[None], ab) / l2, 0.0, 1.0)
    proj = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(points[:, None, :] - proj, axis=2).min(axis=1)


def _angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    rel = np.einsum("tji,tjk->tik", Ra, Rb)
    return np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))


def sweep_error(
    program: TrajectoryProgram,
    demos: Sequence[np.ndarray],
    sizes: Sequence[Sizes],
    n: int = N_SWEEP_KEYPOINTS,
    *,
    keypoints_given: bool = False,
    anchored: bool = False,
) -> FitReport:
    """Phase-free (Chamfer) error of `program` against each demo: demo keypoints to the program's dense
    path and the program's keypoints to the demo's path (with `keypoints_given`, the polyline through
    the given keypoints), the larger of the two medians; orientation against the nearest program pose."""
    pos, rot, per = [], [], []
    for mats, sz in zip(demos, sizes, strict=True):
        mats = np.asarray(mats, float)
        kd = mats if keypoints_given else sweep_keypoints(mats, n)
        n = len(kd)
        demo_path = kd[:, :3, 3] if keypoints_given else smooth(mats, SWEEP_SIGMA_FRAMES)[:, :3, 3]
        prog = program
        if anchored:
            prog = program.model_copy(update={"start": StartPose(
                position=tuple(float(v) for v in kd[0, :3, 3]),
                quaternion=tuple(float(v) for v in Rot.from_matrix(kd[0, :3, :3]).as_quat()))})
        dense = sample_matrices(prog, sz, DENSE_SWEEP)
        kp = resample(dense, np.linspace(0.0, 1.0, n))
        covered = polyline_distance(kd[:, :3, 3], dense[:, :3, 3])  # is the demo's region swept?
        inside = polyline_distance(kp[:, :3, 3], demo_path)  # does the program stay where the demo went?
        nearest = cKDTree(dense[:, :3, 3]).query(kd[:, :3, 3])[1]
        pos.append((covered, inside))
        rot.append(_angle_deg(kd[:, :3, :3], dense[nearest, :3, :3]))
        per.append(max(float(np.median(covered)), float(np.median(inside))))
    median = max(float(np.median(np.concatenate([c for c, _ in pos]))),
                 float(np.median(np.concatenate([i for _, i in pos]))))
    p = np.concatenate([np.concatenate(ci) for ci in pos])
    return FitReport(family=program.family, anchored=anchored, median_m=median, max_m=float(p.max()),
                     median_deg=float(np.median(np.concatenate(rot))), per_demo_median_m=per, n_keypoints=n,
                     measure="sweep")


# --- the zigzag fitted against the sweep measure -------------------------------------------------


def _plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, normal): an orthonormal basis of the scrub plane; horizontal when it nearly is."""
    _, _, vt = np.linalg.svd(points - points.mean(axis=0), full_matrices=False)
    nrm = vt[2] if vt[2][2] >= 0 else -vt[2]
    if np.degrees(np.arccos(min(1.0, abs(float(nrm[2]))))) <= PLANE_SNAP_DEG:
        nrm = np.array([0.0, 0.0, 1.0])
    u = np.array([1.0, 0.0, 0.0]) - nrm * nrm[0]
    if np.linalg.norm(u) < 1e-6:
        u = np.array([0.0, 1.0, 0.0]) - nrm * nrm[1]
    u /= np.linalg.norm(u)
    return u, np.cross(nrm, u), nrm


class _Shape:
    """The zigzag's path in numbers: `k` strokes, then optionally once around.

    `rows`: straight strokes with sharp turns (a boustrophedon: the brush rows of a person scrubbing a
    pan), written as waypoints; else a sine (the `zigzag` step of the vocabulary: wiping)."""

    def __init__(self, basis: tuple[np.ndarray, np.ndarray, np.ndarray], strokes: int, circle: bool, rows: bool,
                 samples: int = 300) -> None:
        self.u, self.v, self.nrm = basis
        self.k = strokes
        self.circle = circle
        self.rows = rows
        self.s = np.linspace(0.0, 1.0, samples)

    def frame(self, th: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centre, travel direction, stroke direction)."""
        cu, cv, h, ang = th[:4]
        d = np.cos(ang) * self.u + np.sin(ang) * self.v
        return cu * self.u + cv * self.v + h * self.nrm, d, np.cross(self.nrm, d)

    def corners(self, th: np.ndarray) -> np.ndarray:
        """(2k, 3) stroke ends of the rows."""
        c, d, a = self.frame(th)
        length, amp = th[4], th[5]
        ys = np.linspace(-0.5, 0.5, self.k) * length if self.k > 1 else np.zeros(1)
        pts = []
        for i, y in enumerate(ys):
            sgn = 1.0 if i % 2 == 0 else -1.0
            pts += [c + y * d - sgn * amp * a, c + y * d + sgn * amp * a]
        return np.array(pts)

    def strokes(self, th: np.ndarray) -> np.ndarray:
        if self.rows:
            return _equal_fractions(self.corners(th), len(self.s))
        c, d, a = self.frame(th)
        s = self.s[:, None]
        return c - 0.5 * th[4] * d + s * th[4] * d + np.sin(np.pi * self.k * s) * th[5] * a

    def path(self, th: np.ndarray) -> np.ndarray:
        zig = self.strokes(th)
        if not self.circle:
            return zig
        c, d, a = self.frame(th)
        r0 = zig[-1] - c
        r0 = r0 - self.nrm * float(r0 @ self.nrm)
        radius0 = float(np.linalg.norm(r0))
        e = r0 / radius0 if radius0 > 1e-9 else d
        ang = 2 * np.pi * self.s[:, None]
        radius = radius0 + th[6] * self.s[:, None]
        circle = c + self.nrm * float((zig[-1] - c) @ self.nrm) + radius * (
            np.cos(ang) * e + np.sin(ang) * np.cross(self.nrm, e))
        return np.vstack([zig, circle])


def _equal_fractions(path: np.ndarray, n: int) -> np.ndarray:
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] < 1e-12:
        return np.repeat(path[:1], n, axis=0)
    cum = cum / cum[-1] + np.arange(len(cum)) * 1e-12
    f = np.linspace(0.0, 1.0, n)
    return np.column_stack([np.interp(f, cum, path[:, j]) for j in range(3)])


def _densify(path: np.ndarray, step_m: float = 0.002) -> np.ndarray:
    out = [path[:1]]
    for a, b in zip(path[:-1], path[1:], strict=True):
        k = max(1, int(np.ceil(np.linalg.norm(b - a) / step_m)))
        out.append(a + (b - a) * np.linspace(0.0, 1.0, k + 1)[1:, None])
    return np.vstack(out)


def fit_zigzag_sweep(
    kps: Sequence[np.ndarray],
    paths: Sequence[np.ndarray],
    master_size: Sequence[float],
    slave_size: Sequence[float],
) -> tuple[TrajectoryProgram, int] | None:
    """The zigzag program (and its number of parameters) that best sweeps the demonstrated region.

    `kps`: per demo (n, 4, 4) keypoints; `paths`: per demo (m, 3) dense positions. The program is
    absolute in the master frame (where a scrub happens on the pan matters, not where the brush
    happened to enter it): a short leg to the first stroke's start, `k` strokes of half-width
    `amplitude` while travelling `length` across them, either straight rows with sharp turns (stored
    as waypoints) or half sine cycles (a `zigzag` step), and optionally once around at the end (a
    `spiral` step of one turn). Centre, height, direction, travel and amplitude are least-squares
    fitted against the sweep measure (robust loss) from the best candidates of a grid over stroke
    shape, stroke count (`STROKES`) and direction; the lowest error wins, with a small charge per
    parameter. Positions and lengths become fractions of the master's bbox (fit.symbolise) and the
    height that of the slave's underside on the master, so the scrub stays on another pan's floor.
    The orientation is held (the brush keeps its heading while scrubbing)."""
    pts = np.concatenate([k[:, :3, 3] for k in kps])
    if np.ptp(pts, axis=0).max() < 0.01:
        return None
    basis = _plane(pts)
    u, v, nrm = basis
    trees = [cKDTree(_densify(np.asarray(p, float))) for p in paths]
    n = len(kps[0])
    centre = pts.mean(axis=0)
    h0 = float(np.median(pts @ nrm))

    def distances(th: np.ndarray, shape: _Shape) -> tuple[np.ndarray, np.ndarray]:
        path = shape.path(th)
        tree = cKDTree(path)
        kp = _equal_fractions(path, n)
        return (np.concatenate([tree.query(k[:, :3, 3])[0] for k in kps]),
                np.concatenate([t.query(kp)[0] for t in trees]))

    def residuals(th: np.ndarray, shape: _Shape) -> np.ndarray:
        return np.concatenate(distances(th, shape))

    def score(th: np.ndarray, shape: _Shape) -> float:
        return max(float(np.median(e)) for e in distances(th, shape))

    # a coarse grid over shape, direction and stroke count (extents from the points), then refine the best
    cands = []
    for rows in (True, False):
        for circle in (False, True):
            for k in STROKES:
                if rows and k < 2:
                    continue
                shape = _Shape(basis, k, circle, rows, samples=150)
                for ang in np.linspace(0.0, np.pi, N_ANGLES, endpoint=False):
                    d = np.cos(ang) * u + np.sin(ang) * v
                    a = np.cross(nrm, d)
                    xd, xa = (pts - centre) @ d, (pts - centre) @ a
                    c = centre + d * (xd.max() + xd.min()) / 2 + a * (xa.max() + xa.min()) / 2
                    length = float(np.ptp(xd)) * (0.8 if circle else 1.0)
                    amp = float(np.ptp(xa)) / 2 * (0.8 if circle else 1.0)
                    th = np.array([float(c @ u), float(c @ v), h0, ang, length, amp] + ([0.0] if circle else []))
                    cands.append((score(th, shape), k, circle, rows, th))
    cands.sort(key=lambda c: c[0])
    best: tuple[float, TrajectoryProgram, int] | None = None
    tried: set[tuple[int, bool, bool]] = set()
    for _, k, circle, rows, th0 in cands:
        if len(tried) >= N_REFINED:
            break
        if (k, circle, rows) in tried:
            continue
        tried.add((k, circle, rows))
        shape = _Shape(basis, k, circle, rows)
        sol = least_squares(residuals, th0, args=(shape,), loss="soft_l1", f_scale=0.005, max_nfev=60,
                            x_scale=np.array([0.01, 0.01, 0.01, 0.1, 0.01, 0.01] + ([0.01] if circle else [])))
        n_params = len(sol.x) + 1
        err = score(sol.x, shape) + 0.0003 * n_params
        if best is None or err < best[0]:
            best = (err, _program(sol.x, shape, kps, master_size, slave_size), n_params)
    return None if best is None else (best[1], best[2])


def _program(th: np.ndarray, shape: _Shape, kps: Sequence[np.ndarray], master_size: Sequence[float],
             slave_size: Sequence[float]) -> TrajectoryProgram:
    c, d, a = shape.frame(th)
    length, amp = float(th[4]), float(th[5])
    zig = shape.strokes(th)
    starts = np.stack([k[0] for k in kps])
    p0 = starts[:, :3, 3].mean(axis=0)
    q0 = Rot.from_matrix(starts[:, :3, :3]).mean()

    def point(p: np.ndarray) -> tuple:
        # the scrub's height: where the slave's underside meets the master, a function of both sizes
        out: tuple = tuple(float(x) for x in p)
        if abs(float(shape.nrm[2])) > 0.999:
            up = q0.as_matrix().T @ np.array([0.0, 0.0, 1.0])  # the master's up in the slave frame
            ax = int(np.argmax(np.abs(up)))
            rest = float(p[2]) - 0.5 * float(slave_size[ax])
            if abs(rest) > MAX_SIZE_MULTIPLE * float(master_size[2]):  # no multiple of a thin master's height
                out = (out[0], out[1], f"slave.{'xyz'[ax]}*0.5{round(rest, 5):+.5g}")
            else:
                beta = rest / max(float(master_size[2]), 1e-6)
                out = (out[0], out[1], f"master.z*{beta:.4g}+slave.{'xyz'[ax]}*0.5")
        return out

    def plen(p: np.ndarray) -> float:
        return max(float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()), 0.005)

    lead = max(float(np.linalg.norm(zig[0] - p0)), 0.005)
    steps: list = []
    if shape.rows:
        corners = shape.corners(th)
        steps.append(Waypoints(points=[point(p) for p in corners], weight=lead + plen(corners)))
    else:
        if length < 0:
            d, length = -d, -length
        steps += [Waypoints(points=[point(zig[0])], weight=lead),
                  Zigzag(direction=tuple(float(x) for x in d), across=tuple(float(x) for x in a), length=length,
                         amplitude=amp, cycles=shape.k / 2.0, weight=plen(zig))]
    if shape.circle:
        full = shape.path(th)
        steps.append(Spiral(axis=tuple(float(x) for x in shape.nrm), center=tuple(float(x) for x in c), turns=1.0,
                            growth=float(th[6]), weight=plen(full[len(zig):])))
    return TrajectoryProgram(
        family="zigzag",
        start=StartPose(position=tuple(float(x) for x in p0), quaternion=tuple(float(x) for x in q0.as_quat())),
        steps=steps,
    )
