"""Per-frame object tracking helpers of the grounder (agents/grounder.py, pipeline step 3).

`HoldState` says whether the hand holds an object (so the hand carries its pose prior); `_best_of`
picks a held object's pose; `_free_step` one the hand does not hold (`_round` / `_round_step` /
`_translation_step`: round objects translation-first, and any object whose ICP step turned it too far
by its translation); `_released_step` the first frame after a release; `_unchanged` tells a resting
object whose visible surface did not change.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from tools.perception.parsing import CLOSE_M, HOLD_NEAR_M
from tools.perception.tracking import ROUND_ASPECT, ObjectTracker, TrackStep

HELD_ICP_GAIN = 0.05  # inlier-fraction gain ICP needs to override the hand-carried pose of a held object
HAND_CARRY_M = 0.03  # the hand's motion carries an object's pose prior while closer than this
OPENING_M = 0.004  # a closed hand this much wider than its grip is letting go of the object
BEGIN_OPENING_M = 0.001  # ... and this much wider has begun to open (the object may already fall)
# A pose found as an object is let go replaces the carried one when it lies at least this many voxels
# lower and fits at least as well: it fell. Measured on the release frames of the bench demos (4 mm
# voxels): a cube let go 5 mm up fell 5.5 mm, a block 6.1 mm, a brush 5.8 mm; a door, faucet handles and
# a mango let go where they rest moved -0.0 to +1.6 mm (ICP drift on their new view).
RELEASE_DROP_VOXELS = 0.5


class HoldState:
    """Per object, frame by frame: is the hand near it, closed on it, holding it (carrying its pose)?

    Near: within `HAND_CARRY_M` and seen. Closed: the hand's opening is `CLOSE_M` under what it was
    when it came near. Holding: closed and not opening again (wider than its narrowest grip by
    `OPENING_M`: letting go). A hand closed on an object stays near it while within `HOLD_NEAR_M`
    (or unseen): a hand holding a brush by its handle measures 2-4 cm from the brush's model, and a
    hold lost there would never come back (the hand, already closed, cannot close again).
    """

    def __init__(self) -> None:
        self.near_width: dict[str, float | None] = {}
        self.hold_min: dict[str, float] = {}  # the hand's narrowest opening while closed on an object

    def step(self, o: str, d_prev: float, w_prev: float, w_now: float, visible_prev: bool,
             visible_now: bool) -> tuple[bool, bool, bool]:
        """(near, closed, holding) of the hand and object `o` at a frame, given the previous frame's
        hand-object distance `d_prev` and opening `w_prev`, this frame's opening `w_now`."""
        still_held = o in self.hold_min and not d_prev >= HOLD_NEAR_M
        near = (d_prev < HAND_CARRY_M and visible_prev) or still_held
        if not near:
            self.near_width[o] = None
        elif self.near_width.get(o) is None:
            self.near_width[o] = w_prev
        nw = self.near_width.get(o)
        closed = nw is not None and w_prev <= nw - CLOSE_M and (visible_now or still_held)
        if closed:
            self.hold_min[o] = min(self.hold_min.get(o, np.inf), w_prev)
        else:
            self.hold_min.pop(o, None)
        holding = closed and w_now <= self.hold_min[o] + OPENING_M
        return near, closed, holding


def _best_of(tr: ObjectTracker, pts: np.ndarray, carried: np.ndarray, static: np.ndarray,
             letting_go: bool = False) -> TrackStep:
    """Pose of a held object: the hand-carried prior unless ICP fits the visible cloud clearly better.

    Candidates: the carried prior as is, ICP from it, ICP from the static pose (in case the closing
    missed the object); once the hand has begun to open (`letting_go`), an ICP step rejected for its
    turn is replaced by its translation-only fit when that has the object fall. A candidate replaces
    the carried prior only with an inlier fraction higher by `HELD_ICP_GAIN`: for symmetric or flat
    objects (a cup about its axis, a door seen edge-on) ICP fits many poses equally well and the hand
    knows better.
    """
    start = tr.T.copy()
    if len(pts) < tr.min_points:
        tr.T = carried.copy()
        return TrackStep(T_world_object=carried.copy(), tracked=False, icp=False, rmse=float("nan"), n_points=len(pts))
    best = TrackStep(T_world_object=carried.copy(), tracked=True, icp=False, rmse=0.0, n_points=len(pts))
    best_inl = tr.residual(pts, carried)[1]
    for prior in (carried, static):
        tr.T = start.copy()
        step = tr.step(pts, prior)
        if step.turned_too_far and letting_go:
            # ICP turned it too far (an ellipsoid spins freely about its axes): its translation alone
            # when the hand has begun to open and it falls out (a mango let go 14 mm above a plate);
            # not while the hand turns it (a cup tipped to pour: that fit would slide it instead)
            trans = _translation_step(tr, pts, prior)
            if trans is not None and trans.T_world_object[2, 3] - prior[2, 3] <= -RELEASE_DROP_VOXELS * tr.voxel:
                step = trans
        inl = tr.residual(pts, step.T_world_object)[1]
        if step.tracked and inl > best_inl + HELD_ICP_GAIN:
            best, best_inl = step, inl
    tr.T = best.T_world_object.copy()
    return best


def _free_step(tr: ObjectTracker, pts: np.ndarray, prior: np.ndarray) -> TrackStep:
    """Pose of an object the hand does not hold: ICP from `prior`; a round one's translation-first
    (`_round_step`); any other whose ICP step was rejected as a jump (a mango let go above a plate,
    its turn about its long axis unobservable, ICP spinning it by more than 20 deg) by its
    translation-only fit (`_translation_step`) when that fits: else the drop is only seen once the
    hand uncovers it, 13 frames late. Only a step that fitted well and turned too far: a poor fit
    (a door seen edge-on) is no sign that the object only slid."""
    step = tr.step(pts, prior)
    if step.icp and _round(tr):
        return _round_step(tr, pts, prior, step)
    if step.turned_too_far:
        return _translation_step(tr, pts, prior) or step
    return step


def _round(tr: ObjectTracker) -> bool:
    """Whether the object's footprint is round or square (its spin about the vertical is barely observable)."""
    ext = np.ptp(tr.model[:, :2], axis=0)
    return bool(min(ext) > 0 and max(ext) / min(ext) < ROUND_ASPECT)


def _round_step(tr: ObjectTracker, pts: np.ndarray, prior: np.ndarray, icp: TrackStep) -> TrackStep:
    """A round object's ICP step, or the translation-only fit (`_translation_step`) when that fits as well.

    Full ICP on a round object spins it about the vertical (rejected as a jump above 20 deg, else
    accepted with a spurious turn and slide); the translation-only fit is preferred unless ICP fits
    clearly better (inlier fraction > 0.05 higher, or median residual a quarter voxel lower): the
    object really turned or tilted.
    """
    T_icp = tr.T.copy()
    trans = _translation_step(tr, pts, prior)
    if trans is None:
        tr.T = T_icp
        return icp
    if icp.tracked:
        med_i, inl_i = tr.residual(pts, icp.T_world_object)
        med_t, inl_t = tr.residual(pts, trans.T_world_object)
        if inl_i > inl_t + 0.05 or med_i < med_t - 0.25 * tr.voxel:
            tr.T = T_icp
            return icp
    return trans


def _translation_step(tr: ObjectTracker, pts: np.ndarray, prior: np.ndarray, iters: int = 15) -> TrackStep | None:
    """A translation-only point-to-plane fit from `prior` (its rotation kept); None when it does not fit.

    ICP on a round object (a button pressed into its box, half hidden by the finger) is free to spin
    about the vertical and its step is then rejected as a jump, freezing the object where it was. Its
    translation is still well observed: this fit keeps the prior's rotation and moves the model along
    the surface normals only (damped, so directions the visible surface does not constrain stay put).
    Accepted when >= 80 % of the points lie within 2 voxels and the median residual is under a voxel.
    """
    R, t = prior[:3, :3], prior[:3, 3]
    local = (pts - t) @ R
    shift = np.zeros(3)
    for _ in range(iters):
        d, idx = tr.tree.query(local + shift, k=1, distance_upper_bound=4.0 * tr.voxel)
        ok = np.isfinite(d)
        if ok.sum() < tr.min_points:
            return None
        nrm = tr.normals[idx[ok]]
        r = np.sum(nrm * (local[ok] + shift - tr.model[idx[ok]]), axis=1)
        A = nrm.T @ nrm + 1e-3 * len(nrm) * np.eye(3)
        delta = -np.linalg.solve(A, nrm.T @ r)
        shift += delta
        if np.linalg.norm(delta) < 1e-5:
            break
    T = prior.copy()
    T[:3, 3] = t - R @ shift
    med, inl = tr.residual(pts, T)
    if inl < 0.8 or med > tr.voxel or float(np.linalg.norm(shift)) > 0.05:
        return None
    tr.T = T.copy()
    return TrackStep(T_world_object=T, tracked=True, icp=True, rmse=med, n_points=len(pts))


def _released_step(tr: ObjectTracker, pts: np.ndarray, prior: np.ndarray) -> TrackStep:
    """Pose of an object in the first frame after the hand let go of it, its visible surface unchanged
    since the last frame: registered afresh (`_free_step`) and that pose taken only when the object
    fell from the pose it was carried in (`RELEASE_DROP_VOXELS`), else the carried pose kept. A block
    let go 6 mm above another drops while the hand still counts as holding it, within the carried
    pose's inlier margin, and nothing changes after; a door let go where it was pulled to has not
    moved, and a fresh ICP on its new view drifts 2 mm."""
    step = _free_step(tr, pts, prior)
    if step.tracked and step.icp and len(pts) >= tr.min_points:
        fell = step.T_world_object[2, 3] - prior[2, 3] <= -RELEASE_DROP_VOXELS * tr.voxel
        if fell and tr.residual(pts, step.T_world_object)[1] >= tr.residual(pts, prior)[1]:
            return step
    tr.T = prior.copy()
    return TrackStep(T_world_object=prior.copy(), tracked=True, icp=False, rmse=0.0, n_points=len(pts))


def _unchanged(pts: np.ndarray, prev: np.ndarray | None, voxel: float) -> bool:
    if prev is None or len(pts) < 10 or len(prev) < 10:
        return False
    if len(pts) > 300:
        pts = pts[:: len(pts) // 300 + 1]
    d, _ = cKDTree(prev).query(pts, k=1, distance_upper_bound=0.05)
    d = np.where(np.isfinite(d), d, 0.05)
    return float(np.median(d)) < 0.3 * voxel and float(np.mean(d < 2 * voxel)) > 0.6
