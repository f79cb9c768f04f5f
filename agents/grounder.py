"""The grounder (DESIGN §1 step 1): one demo folder -> `core.grounding.GroundedDemo`.

    ground(demo_dir, reasoner=None) -> GroundedDemo     (also written to <demo_dir>/grounded/)

Pipeline, one pass over the frames:
1. hand keypoints (HandTracker) -> gripper pose and opening per frame (tools.perception.hands);
2. per frame: masks (Segmenter) -> voxel-downsampled world clouds of the hand and every object;
   first frame: canonical object frames, sizes, colours, crops; trackers initialised;
3. per frame: 6-D pose of every object by ICP (prior carried by the hand while it touches the
   object), and pairwise hand-object / object-object distances;
4. contact events (2 cm), grasps (hand contacts that move the object), segments (short hand paths
   dropped; a hold cut at a tool use, tools.perception.parsing.split_hold), parents of moving
   parts, first-frame relations, landmarks (objects that never moved: `fixed_objects`);
5. the reasoner answers the typed questions: the task (TaskQuestion -> TaskRecognition) and each
   segment's phase, master, slave and text (SegmentQuestion -> SegmentLabel);
6. interactions: T_object_gripper for grasps, T_master_slave(t) (+ T_slave_gripper) for manipulations.

Round objects (footprint aspect < tracking.ROUND_ASPECT) not held: ICP may spin them about the
vertical (unobservable for a round shape; a pressed button half hidden by the finger), so a
translation-only fit from the previous pose is preferred unless full ICP fits clearly better.

A held object's pose follows the hand while the hand is closed on it; once the hand opens
(`OPENING_M` wider than its grip) ICP tracks it again, so the last millimetres of a set-down (the
pan dropping into the sink at the release) are seen at the release, not when the hand leaves.

The output carries `GROUNDER_VERSION`; `is_current(folder)` tells whether a grounded/ folder was
written by this version and `load_or_ground(demo)` re-grounds stale ones.

The grounder never opens the demo's ground_truth.json (a test enforces it). The default reasoner
is `OfflineGroundingReasoner`, the deterministic geometric rules of tools/perception/labelling.py.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.spatial import cKDTree

from core.errors import DemoFormatError
from core.geometry import Pose, invert_transform, rotation_angle
from core.grounding import (
    GROUNDED_DIR,
    GROUNDED_JSON,
    ContactEvent,
    GraspInteraction,
    GroundedDemo,
    Interaction,
    ManipulationInteraction,
    ObjectDescriptor,
    Phase,
    Segment,
    SegmentLabel,
    SegmentQuestion,
    TaskQuestion,
    TaskRecognition,
    Tracks,
)
from core.settings import PerceptionSettings, load_settings
from tools.perception import labelling, renders
from tools.perception.first_views import completed_clouds, view_frames
from tools.perception.hands import GripperTrack, HandTracker, gripper_from_hand, make_hand_tracker
from tools.perception.parsing import (
    CLOSE_M,
    CONTACT_THRESHOLD_M,
    HAND,
    HOLD_NEAR_M,
    TABLE,
    DistanceRecorder,
    HandInterval,
    RawSegment,
    contact_events,
    find_grasps,
    hand_events,
    pair_key,
    segment_video,
    support_completed,
)
from tools.perception.pointcloud import cloud_from_mask, remove_outliers, voxel_downsample
from tools.perception.readers import open_demo
from tools.perception.segmenters import NON_OBJECT_LABELS, ChannelSegmenter, Segmenter, make_segmenter
from tools.perception.tracking import ROUND_ASPECT, ObjectTracker, TrackStep, canonical_frame

MIN_OBJECT_POINTS = 30
HAND_VOXEL_M = 0.006
HELD_ICP_GAIN = 0.05  # inlier-fraction gain ICP needs to override the hand-carried pose of a held object
HAND_CARRY_M = 0.03  # the hand's motion carries an object's pose prior while closer than this
OPENING_M = 0.004  # a closed hand this much wider than its grip is letting go of the object
FIXED_M = 0.02  # an object that never moves this far (nor turns FIXED_DEG) in the demo is a landmark
FIXED_DEG = 10.0
# Stamped into grounded/grounded.json; bump it whenever grounding output changes so stale folders
# are re-grounded (is_current). 2: tool-use split of holds, landmark master for table put-downs.
# 3: push spans refined to the touch (parsing.push_span), round objects tracked translation-first.
# 4: a closed hand holds its object while within HOLD_NEAR_M (grasps found when the hand closes before
#    the 2 cm contact; holds not lost when the hand hovers 2-4 cm from the model); canonical x = long side.
# 5: canonical x back to the edge pointing at the robot base (4 without the long-side rule).
# 6: a push's hand trajectory in the pushed object's frame at the start of the push.
GROUNDER_VERSION = "9"


@runtime_checkable
class GroundingReasoner(Protocol):
    """The two grounding questions; agents.reasoning's Reasoner implementations satisfy this."""

    def recognise_task(self, q: TaskQuestion) -> TaskRecognition: ...

    def label_segment(self, q: SegmentQuestion) -> SegmentLabel: ...


class OfflineGroundingReasoner:
    """Deterministic answers from geometry (tools/perception/labelling.py)."""

    name = "offline geometric rules"

    def recognise_task(self, q: TaskQuestion) -> TaskRecognition:
        return labelling.recognise_task(q)

    def label_segment(self, q: SegmentQuestion) -> SegmentLabel:
        return labelling.label_segment(q)


_STOP = {"the", "a", "an", "on", "in", "into", "onto", "to", "of", "with", "and", "from", "put", "place", "open",
         "close", "pick", "up", "wash", "pour", "turn", "move", "take", "push", "pull", "stack", "it", "out"}


def _prompts_from_text(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z_]+", text.lower()) if w not in _STOP]


class _Frame0:
    """What the first frame establishes."""

    def __init__(self) -> None:
        self.descriptors: dict[str, ObjectDescriptor] = {}
        self.clouds: dict[str, np.ndarray] = {}
        self.crops: dict[str, bytes] = {}
        self.table_z: float | None = None


def ground(
    demo_dir: Path,
    reasoner: GroundingReasoner | None = None,
    *,
    settings: PerceptionSettings | None = None,
    segmenter: Segmenter | None = None,
    hand_tracker: HandTracker | None = None,
    save: bool = True,
    workers: int = 2,
) -> GroundedDemo:
    """Ground one demo; writes <demo_dir>/grounded/ atomically when `save` (nothing on error)."""
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    settings = settings or load_settings().perception
    reasoner = reasoner or OfflineGroundingReasoner()
    source = open_demo(Path(demo_dir))
    meta = source.meta
    n = len(source)
    times = source.times
    segmenter = segmenter or make_segmenter(settings, source=str(source.dir))
    hand_tracker = hand_tracker or make_hand_tracker(settings)
    voxel = settings.voxel_size_m

    t0 = time.perf_counter()
    gripper = gripper_from_hand(hand_tracker.track(source), source=str(source.dir))
    if len(gripper.visible) != n:
        raise DemoFormatError(f"{source.dir}: hand track has {len(gripper.visible)} frames, the demo {n}")
    timings["hands"] = time.perf_counter() - t0

    # Which objects: the segmentation's labels, or names from the task text for a learned segmenter.
    if isinstance(segmenter, ChannelSegmenter):
        prompts = sorted({v for v in (meta.labels or {}).values() if v not in NON_OBJECT_LABELS})
    else:
        rec0 = reasoner.recognise_task(TaskQuestion(task_hint=meta.task, objects=[]))
        prompts = rec0.objects or _prompts_from_text(meta.task)
    if not prompts:
        raise DemoFormatError(f"{source.dir}: no objects to ground (no segmentation labels and no task text)")
    segmenter.reset()

    t0 = time.perf_counter()
    views = _first_views(source, segmenter, prompts, voxel)
    segmenter.reset()
    timings["first_views"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    first = _Frame0()
    trackers: dict[str, ObjectTracker] = {}
    poses = {o: np.tile(np.eye(4), (n, 1, 1)) for o in prompts}
    valid = {o: np.zeros(n, bool) for o in prompts}
    rec: DistanceRecorder | None = None
    anchors: dict[str, np.ndarray | None] = {}
    hold = HoldState()
    prev_clouds: dict[str, np.ndarray] = {}
    first_frame = None
    cam_pos = source.T_world_camera[:3, 3]
    for i, frame in source.frames(workers=workers):
        masks = segmenter.segment(frame, [*prompts, HAND, TABLE])
        clouds = _object_clouds(frame, masks, prompts, voxel)
        hand_pts = None
        if HAND in masks:
            hand_pts = voxel_downsample(cloud_from_mask(frame, masks[HAND], stride=2), HAND_VOXEL_M)
        if gripper.visible[i]:  # keypoints count as hand surface (fingertips hidden behind an object)
            kp = gripper.hand_points[i]
            hand_pts = kp if hand_pts is None or not len(hand_pts) else np.vstack([hand_pts, kp])
        if i == 0:
            first_frame = frame
            # the frame-0 clouds completed by the next seconds' views of untouched objects (a hand in
            # front of an object in frame 0 would otherwise shrink its bbox: tools/perception/first_views)
            whole = completed_clouds(clouds, views, gripper.hand_points, voxel)
            _init_first_frame(first, frame, masks, whole, prompts, cam_pos, str(source.dir))
            for o, d in first.descriptors.items():
                trackers[o] = ObjectTracker(o, first.clouds[o], d.T_world_object.matrix(), voxel=voxel,
                                            viewpoint=cam_pos)
                poses[o][0] = d.T_world_object.matrix()
                valid[o][0] = True
            rec = DistanceRecorder(
                {o: support_completed(tr.model, poses[o][0], first.table_z) for o, tr in trackers.items()}, n,
                table_z=first.table_z,
            )
        else:
            assert rec is not None
            for o, tr in trackers.items():
                pts = clouds.get(o, np.zeros((0, 3)))
                prior_static = tr.T
                hand_near, closed, holding = hold.step(
                    o, float(rec.series(HAND, o)[i - 1]), float(gripper.width[i - 1]), float(gripper.width[i]),
                    bool(gripper.visible[i - 1]), bool(gripper.visible[i]),
                )
                if not hand_near or (closed and not holding):
                    anchors[o] = None
                if holding:
                    # The hand closed on the object: its pose relative to the hand at that moment carries
                    # the prior (anchored, so ICP slips along symmetric shapes -- a cup about its axis --
                    # do not accumulate); the static pose competes in case the closing missed.
                    if anchors.get(o) is None:
                        anchors[o] = invert_transform(gripper.poses[i - 1]) @ prior_static
                    carried = gripper.poses[i] @ anchors[o]
                    step = _best_of(tr, pts, carried, prior_static)
                elif _unchanged(pts, prev_clouds.get(o), voxel):
                    # the visible surface did not change since the last frame: the object did not move
                    # (checked frame to frame, so surfaces missing from the first-frame model -- a door's
                    # inside once it is open -- cannot pull ICP off a resting object)
                    step = TrackStep(T_world_object=prior_static.copy(), tracked=True, icp=False, rmse=0.0,
                                     n_points=len(pts))
                else:
                    step = tr.step(pts, prior_static)
                    if step.icp and _round(tr):
                        step = _round_step(tr, pts, prior_static, step)
                poses[o][i] = step.T_world_object
                valid[o][i] = step.tracked
        assert rec is not None
        rec.record(i, {o: poses[o][i] for o in trackers}, hand_pts)
        prev_clouds = clouds
    timings["frames"] = time.perf_counter() - t0
    assert rec is not None and first_frame is not None

    t0 = time.perf_counter()
    objects = sorted(first.descriptors)
    hand_iv, events, raw, parents = _parse(rec, poses, gripper, times, n, first)
    descriptors = [first.descriptors[o] for o in objects]
    relations = labelling.spatial_relations(descriptors, first.clouds)
    recognition = reasoner.recognise_task(TaskQuestion(task_hint=meta.task, objects=descriptors, relations=relations))
    fixed = fixed_objects(poses, objects, parents)
    timings["parsing"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    segments: list[Segment] = []
    interactions: list[Interaction] = []
    files: dict[str, bytes] = {f"crops/{o}.png": b for o, b in first.crops.items()}
    need = sorted({r.end_frame for r in raw} | {r.start_frame for r in raw})
    key_frames = {i: source.frame(i) for i in need}
    with tempfile.TemporaryDirectory(prefix="vlmimic-ground-") as tmp:
        for k, r in enumerate(raw):
            q = _segment_question(k, r, recognition.task, descriptors, parents, hand_iv, poses, events, first,
                                  rec=rec, fixed=fixed)
            img_name = f"renders/segment_{k:02d}.png"
            png = _render_raw(r, key_frames, gripper, poses)
            (Path(tmp) / f"segment_{k:02d}.png").write_bytes(png)
            q.image_paths = [str(Path(tmp) / f"segment_{k:02d}.png")]
            label = reasoner.label_segment(q)
            files[img_name] = png
            seg = Segment(
                index=k, start_frame=r.start_frame, end_frame=r.end_frame,
                start_time=float(times[r.start_frame]), end_time=float(times[r.end_frame]),
                phase=label.phase, master=label.master, slave=label.slave, text=label.text,
                keyframes=r.keyframes, hand_path_m=r.hand_path_m,
            )
            segments.append(seg)
            inter = _interaction(seg, r, hand_iv, poses, gripper, times)
            if inter is not None:
                interactions.append(inter)
    timings["labelling"] = time.perf_counter() - t0

    sources = {
        "segmenter": segmenter.name,
        "hand_tracker": getattr(hand_tracker, "name", type(hand_tracker).__name__),
        "reasoner": getattr(reasoner, "name", type(reasoner).__name__),
        "tracker": "point-to-plane ICP against the first-frame cloud, hand-carried prior",
    }
    timings["total"] = time.perf_counter() - t_start
    gd = GroundedDemo(
        demo_id=meta.demo_id,
        demo_dir=str(source.dir),
        task=recognition.task,
        fps=meta.fps,
        n_frames=n,
        objects=descriptors,
        recognition=recognition,
        segments=segments,
        interactions=interactions,
        events=events,
        sources=sources,
        timings_s={k: round(v, 4) for k, v in timings.items()},
        grounder_version=GROUNDER_VERSION,
        tracks=Tracks(
            times=times,
            object_poses={o: poses[o] for o in objects},
            object_valid={o: valid[o] for o in objects},
            gripper_poses=gripper.poses,
            gripper_width=gripper.width,
            hand_visible=gripper.visible,
        ),
    )
    if save:
        gd.save(source.dir, extra_files=files)
    return gd


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


def _parse(
    rec: DistanceRecorder, poses: dict[str, np.ndarray], gripper: GripperTrack, times: np.ndarray, n: int,
    first: _Frame0,
) -> tuple[list[HandInterval], list[ContactEvent], list[RawSegment], dict[str, str]]:
    """Hand intervals, contact events, raw segments and parents; sets the descriptors' parents."""
    objects = sorted(first.descriptors)
    hand_iv = find_grasps(rec, poses, width=gripper.width)
    # events: object-object (and object-table) 2 cm crossings, plus the hand's refined grasp/push spans
    events = [e for e in contact_events(rec, times) if HAND not in (e.a, e.b)] + hand_events(hand_iv, times)
    events.sort(key=lambda e: (e.frame, e.a, e.b))
    raw = segment_video(hand_iv, gripper.grasp_point, n, events, object_poses=poses, distances=rec.d)
    parents = labelling.find_parents([first.descriptors[o] for o in objects], first.clouds)
    for part, parent in parents.items():
        first.descriptors[part] = first.descriptors[part].model_copy(update={"parent": parent})
    return hand_iv, events, raw, parents


def fixed_objects(poses: dict[str, np.ndarray], objects: list[str], parents: dict[str, str]) -> list[str]:
    """Objects that stayed put over the whole demo (< `FIXED_M` and < `FIXED_DEG` from frame 0), parts excluded.

    These are the landmarks a free object put down on the bare table is placed relative to.
    """
    out = []
    for o in objects:
        if o in parents or o not in poses:
            continue
        P = poses[o]
        dt = float(np.max(np.linalg.norm(P[:, :3, 3] - P[0, :3, 3], axis=1)))
        dr = max(rotation_angle(P[0, :3, :3], T[:3, :3]) for T in P[:: max(1, len(P) // 200)])
        if dt < FIXED_M and dr < np.deg2rad(FIXED_DEG):
            out.append(o)
    return out


def is_current(grounded_dir: Path) -> bool:
    """True when `grounded_dir` (a demo folder or its grounded/ folder) was written by this grounder version.

    A missing or different `grounder_version` stamp (or no/unreadable grounded.json) means the folder
    is stale: ground the demo again rather than reuse it.
    """
    p = Path(grounded_dir)
    js = p / GROUNDED_JSON if (p / GROUNDED_JSON).is_file() else p / GROUNDED_DIR / GROUNDED_JSON
    try:
        data = json.loads(js.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("grounder_version") == GROUNDER_VERSION


def load_or_ground(demo_dir: Path, reasoner: GroundingReasoner | None = None) -> GroundedDemo:
    """The demo's grounded/ folder when it is current (`is_current`), else a fresh grounding (saved)."""
    if is_current(demo_dir):
        return GroundedDemo.load(demo_dir)
    return ground(Path(demo_dir), reasoner)


def _best_of(tr: ObjectTracker, pts: np.ndarray, carried: np.ndarray, static: np.ndarray) -> TrackStep:
    """Pose of a held object: the hand-carried prior unless ICP fits the visible cloud clearly better.

    Candidates: the carried prior as is, ICP from it, ICP from the static pose (in case the closing
    missed the object). A candidate replaces the carried prior only with an inlier fraction higher
    by `HELD_ICP_GAIN`: for symmetric or flat objects (a cup about its axis, a door seen edge-on)
    ICP fits many poses equally well and the hand knows better.
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
        inl = tr.residual(pts, step.T_world_object)[1]
        if step.tracked and inl > best_inl + HELD_ICP_GAIN:
            best, best_inl = step, inl
    tr.T = best.T_world_object.copy()
    return best


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


def _unchanged(pts: np.ndarray, prev: np.ndarray | None, voxel: float) -> bool:
    if prev is None or len(pts) < 10 or len(prev) < 10:
        return False
    if len(pts) > 300:
        pts = pts[:: len(pts) // 300 + 1]
    d, _ = cKDTree(prev).query(pts, k=1, distance_upper_bound=0.05)
    d = np.where(np.isfinite(d), d, 0.05)
    return float(np.median(d)) < 0.3 * voxel and float(np.mean(d < 2 * voxel)) > 0.6


def _object_clouds(frame, masks: dict[str, np.ndarray], prompts: list[str], voxel: float) -> dict[str, np.ndarray]:  # noqa: ANN001
    clouds: dict[str, np.ndarray] = {}
    for name in prompts:
        if name in masks:
            pts = voxel_downsample(cloud_from_mask(frame, masks[name], stride=2), voxel)
            if len(pts):
                clouds[name] = pts
    return clouds


def _first_views(source, segmenter: Segmenter, prompts: list[str], voxel: float) -> list[tuple[int, dict]]:  # noqa: ANN001
    """Object clouds of the frames sampled for completing frame 0's (first_views.view_frames)."""
    out = []
    for i in view_frames(source.times):
        frame = source.frame(i)
        out.append((i, _object_clouds(frame, segmenter.segment(frame, [*prompts, HAND, TABLE]), prompts, voxel)))
    return out


def _init_first_frame(first: _Frame0, frame, masks, clouds, prompts, cam_pos, where: str) -> None:  # noqa: ANN001
    if TABLE in masks:
        tz = frame.points_world(masks[TABLE] & _grid(masks[TABLE].shape, 4))
        if len(tz):
            first.table_z = float(np.median(tz[:, 2]))
    for o in prompts:
        if o not in clouds or len(clouds[o]) < MIN_OBJECT_POINTS:
            continue
        pts = remove_outliers(clouds[o])
        T, size = canonical_frame(pts)
        colour = frame.rgb[masks[o]].reshape(-1, 3).mean(axis=0)
        first.descriptors[o] = ObjectDescriptor(
            name=o, T_world_object=Pose.from_matrix(T), bbox_size=tuple(float(v) for v in size),
            color_rgb=tuple(float(v) for v in colour), crop_path=f"crops/{o}.png", n_points=len(pts),
        )
        first.clouds[o] = pts
        first.crops[o] = renders.object_crop(frame, masks[o])
    if not first.descriptors:
        raise DemoFormatError(f"{where}: none of the objects {list(prompts)} is visible in frame 0")


def _grid(shape: tuple[int, int], stride: int) -> np.ndarray:
    g = np.zeros(shape, bool)
    g[::stride, ::stride] = True
    return g


def _segment_question(
    k: int, r: RawSegment, task: str, descriptors: list[ObjectDescriptor], parents: dict[str, str],
    hand_iv: list[HandInterval], poses: dict[str, np.ndarray], events: list[ContactEvent], first: _Frame0,
    rec: DistanceRecorder | None = None, fixed: list[str] | None = None,
) -> SegmentQuestion:
    s, e = r.start_frame, r.end_frame

    def held(f: int) -> str | None:
        for h in hand_iv:
            if h.kind == "grasp" and h.start <= f < h.end:
                return h.object
        return None

    names = [d.name for d in descriptors]
    moved_m = {o: float(np.linalg.norm(poses[o][e, :3, 3] - poses[o][s, :3, 3])) for o in names}
    rotated = {o: float(np.rad2deg(rotation_angle(poses[o][s, :3, :3], poses[o][e, :3, :3]))) for o in names}
    q = SegmentQuestion(
        task=task, segment_index=k, start_frame=s, end_frame=e, objects=descriptors,
        moved_m=moved_m, rotated_deg=rotated, parents=parents, fixed_objects=list(fixed or []),
    )
    if r.kind == "reach":
        q.grasped_at_end = r.target
        q.held_before = held(s) if s > 0 else None
        q.approach_target = r.target
        return q
    if r.kind == "push":
        q.pushed = r.target
        q.approach_target = r.target
        return q
    obj = r.target
    q.held_before = obj
    q.held_after = held(e)
    q.hold_part = r.part  # type: ignore[assignment]
    q.hold_partner = r.partner
    if q.held_after is None and rec is not None and pair_key(TABLE, obj) in rec.d:
        dz = rec.series(TABLE, obj)[max(0, e - 2) : e + 3]
        q.released_on_table = bool(np.isfinite(dz).any() and float(np.nanmedian(dz)) < CONTACT_THRESHOLD_M)
    by = {d.name: d for d in descriptors}
    # where the held object ends up relative to every other object (poses carried from frame 0)
    cloud_o = _posed_cloud(first, obj, poses[obj][0], poses[obj][e])
    nearest, nearest_d = None, np.inf
    for other in names:
        if other == obj:
            continue
        cloud_b = _posed_cloud(first, other, poses[other][0], poses[other][e])
        Ta = poses[obj][e] @ invert_transform(poses[obj][0]) @ by[obj].T_world_object.matrix()
        Tb = poses[other][e] @ invert_transform(poses[other][0]) @ by[other].T_world_object.matrix()
        rel = labelling.relation(by[obj], by[other], cloud_o, cloud_b, Ta, Tb)
        if rel is not None:
            q.end_relations[other] = rel
        d = float(np.min(cKDTree(cloud_b).query(cloud_o, k=1)[0])) if len(cloud_o) and len(cloud_b) else np.inf
        if np.isfinite(d):
            q.end_distances_m[other] = round(d, 4)
        if d < nearest_d:
            nearest, nearest_d = other, d
    q.approach_target = nearest
    for ev in events:
        if ev.kind == "begin" and s <= ev.frame <= e and obj in (ev.a, ev.b):
            other = ev.b if ev.a == obj else ev.a
            if other not in (HAND, TABLE):
                q.contact_counts[other] = q.contact_counts.get(other, 0) + 1
    parent = parents.get(obj)
    if parent is not None:
        c_parent_s = poses[parent][s, :3, 3]
        c_parent_e = poses[parent][e, :3, 3]
        q.part_opening_m = float(
            np.linalg.norm(poses[obj][e, :3, 3] - c_parent_e) - np.linalg.norm(poses[obj][s, :3, 3] - c_parent_s)
        )
    return q


def _posed_cloud(first: _Frame0, name: str, T0: np.ndarray, Tt: np.ndarray) -> np.ndarray:
    pts = first.clouds.get(name, np.zeros((0, 3)))
    M = Tt @ invert_transform(T0)
    return pts @ M[:3, :3].T + M[:3, 3]


def _render_raw(r: RawSegment, frames: dict, gripper: GripperTrack, poses: dict[str, np.ndarray]) -> bytes:
    if r.kind == "reach":
        f = r.end_frame
        return renders.render_grasp(frames[f], gripper.poses[f], float(gripper.width[f]), f"grasp: {r.target}")
    path = poses[r.target][r.start_frame : r.end_frame + 1, :3, 3]
    return renders.render_trajectory(frames[r.end_frame], path, f"move: {r.target}")


def _median_pose(Ts: np.ndarray) -> Pose:
    """Robust mean of rigid transforms: median translation, chordal mean rotation."""
    from scipy.spatial.transform import Rotation

    t = np.median(Ts[:, :3, 3], axis=0)
    R = Rotation.from_matrix(Ts[:, :3, :3]).mean()
    return Pose.from_rotation(R, t)


def _interaction(
    seg: Segment, r: RawSegment, hand_iv: list[HandInterval], poses: dict[str, np.ndarray],
    gripper: GripperTrack, times: np.ndarray,
) -> Interaction | None:
    if seg.phase == Phase.grasping:
        obj = seg.master
        if obj not in poses:
            return None
        hold = next(((h.start, h.end) for h in hand_iv if h.object == obj and h.start == r.end_frame), None)
        f = r.end_frame
        if hold is None:  # no hold follows (a reach the reasoner called a grasp): use the contact frame
            frames = np.array([f])
        else:
            frames = np.arange(hold[0], max(hold[1], hold[0] + 1))
            frames = frames[(frames < len(times)) & gripper.visible[frames]] if len(frames) else np.array([f])
            if len(frames) == 0:
                frames = np.array([f])
        rel = np.stack([invert_transform(poses[obj][i]) @ gripper.poses[i] for i in frames])
        return GraspInteraction(
            segment=seg.index, object=obj, T_object_gripper=_median_pose(rel),
            width=float(np.median(gripper.width[frames])), frame=int(f), time=float(times[f]),
        )
    slave, master = seg.slave, seg.master

    def pose(name: str, i: int) -> np.ndarray:
        return gripper.poses[i] if name == HAND else poses[name][i]

    if slave is None or (slave != HAND and slave not in poses) or master not in poses:
        return None
    frames = list(range(r.start_frame, r.end_frame + 1))
    # A push moves its master: the hand's motion is what matters, in the object's frame before it moved
    # (where the robot will find it). In the moving frame a press would barely go below the button's top.
    T_master = [poses[master][frames[0] if slave == HAND else i] for i in frames]
    traj = [Pose.from_matrix(invert_transform(T) @ pose(slave, i)) for T, i in zip(T_master, frames, strict=True)]
    rel = np.stack([invert_transform(pose(slave, i)) @ gripper.poses[i] for i in frames if gripper.visible[i]]
                   or [invert_transform(pose(slave, frames[0])) @ gripper.poses[frames[0]]])
    return ManipulationInteraction(
        segment=seg.index, master=master, slave=slave, frames=frames, times=[float(times[i]) for i in frames],
        trajectory=traj, T_slave_gripper=_median_pose(rel),
    )
