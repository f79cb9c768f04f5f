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
6. interactions: T_object_gripper for grasps, T_master_slave(t) (+ T_slave_gripper) for manipulations;
   a manipulation segment's master and slave contents at its start and end (agents/grounding_contents.py).

Round objects (footprint aspect < tracking.ROUND_ASPECT) not held: ICP may spin them about the
vertical (unobservable for a round shape; a pressed button half hidden by the finger), so a
translation-only fit from the previous pose is preferred unless full ICP fits clearly better.

A held object's pose follows the hand while the hand is closed on it; once the hand opens
(`OPENING_M` wider than its grip) ICP tracks it again, so the last millimetres of a set-down (the
pan dropping into the sink at the release) are seen at the release, not when the hand leaves.

The output carries `GROUNDER_VERSION`; `is_current(folder)` tells whether a grounded/ folder was
written by this version and `load_or_ground(demo)` re-grounds stale ones.

Helpers live in agents/grounding_frames.py (first frame, object clouds), agents/grounding_tracking.py
(per-frame tracking: HoldState, held and round objects) and agents/grounding_segments.py (parsing,
segment questions, renders, interactions); the names other modules use stay importable from here.

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

from agents.grounding_contents import ContentsMeter
from agents.grounding_frames import MIN_OBJECT_POINTS as MIN_OBJECT_POINTS
from agents.grounding_frames import _first_views, _Frame0, _init_first_frame, _object_clouds
from agents.grounding_segments import FIXED_DEG as FIXED_DEG
from agents.grounding_segments import FIXED_M as FIXED_M
from agents.grounding_segments import _interaction, _parse, _render_raw, _segment_question, fixed_objects
from agents.grounding_tracking import BEGIN_OPENING_M, HoldState, _best_of, _free_step, _released_step, _unchanged
from agents.grounding_tracking import HAND_CARRY_M as HAND_CARRY_M
from agents.grounding_tracking import HELD_ICP_GAIN as HELD_ICP_GAIN
from agents.grounding_tracking import OPENING_M as OPENING_M
from core.errors import DemoFormatError
from core.geometry import invert_transform
from core.grounding import (
    GROUNDED_DIR,
    GROUNDED_JSON,
    GroundedDemo,
    Interaction,
    Phase,
    Segment,
    SegmentLabel,
    SegmentQuestion,
    TaskQuestion,
    TaskRecognition,
    Tracks,
)
from core.settings import PerceptionSettings, load_settings
from tools.perception import labelling
from tools.perception.first_views import completed_clouds
from tools.perception.hands import HandTracker, gripper_from_hand, make_hand_tracker
from tools.perception.parsing import HAND, TABLE, DistanceRecorder, support_completed
from tools.perception.pointcloud import cloud_from_mask, voxel_downsample
from tools.perception.readers import open_demo
from tools.perception.segmenters import NON_OBJECT_LABELS, ChannelSegmenter, Segmenter, make_segmenter
from tools.perception.tracking import ObjectTracker, TrackStep

HAND_VOXEL_M = 0.006
# Stamped into grounded/grounded.json; bump it whenever grounding output changes so stale folders
# are re-grounded (is_current). 2: tool-use split of holds, landmark master for table put-downs.
# 3: push spans refined to the touch (parsing.push_span), round objects tracked translation-first.
# 4: a closed hand holds its object while within HOLD_NEAR_M (grasps found when the hand closes before
#    the 2 cm contact; holds not lost when the hand hovers 2-4 cm from the model); canonical x = long side.
# 5: canonical x back to the edge pointing at the robot base (4 without the long-side rule).
# 6: a push's hand trajectory in the pushed object's frame at the start of the push.
# 8: halt rule for contact begins (reverted in 9: it took pauses above the target for touches).
# 10: a contact begins where the approach is first blocked (the pair still moving relative to each other,
#     the gap no longer closing, within the distance models' 6 mm voxel: a brush sliding over a pan's rim),
#     contacts._blocked_touch.
# 11: manipulation segments record their master's and slave's contents at start and end (a pour).
# 12: canonical frames of footprints that are no box (a pan: a disc with a handle) follow their convex
#     hull's principal axes (tracking.footprint_axes): the minimum-area rectangle tilted +-25 deg either
#     way from view to view, and a pan's place came out centimetres off where the tilt differed.
# 13: in the first frame after a release a surface unchanged since does not keep the carried pose
#     when a fresh one has the object fallen (an object let go above its target drops while the hand
#     still counts as holding it); an ICP step that fitted well but turned the object too far falls
#     back to its translation (objects not held, or held by a hand that has begun to open); also
#     session 10's square-footprint and cut-by-the-picture frame rules, which changed grounding output
#     without a bump.
GROUNDER_VERSION = "13"


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
    was_held: set[str] = set()  # objects the hand held in the last frame
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
                    opening = float(gripper.width[i]) > hold.hold_min.get(o, np.inf) + BEGIN_OPENING_M
                    step = _best_of(tr, pts, carried, prior_static, letting_go=opening)
                elif _unchanged(pts, prev_clouds.get(o), voxel):
                    # the visible surface did not change since the last frame: the object did not move
                    # (checked frame to frame, so surfaces missing from the first-frame model -- a door's
                    # inside once it is open -- cannot pull ICP off a resting object); unless the hand
                    # let go of it in that frame: it may have dropped while still counted as held
                    step = _released_step(tr, pts, prior_static) if o in was_held else TrackStep(
                        T_world_object=prior_static.copy(), tracked=True, icp=False, rmse=0.0, n_points=len(pts))
                else:
                    step = _free_step(tr, pts, prior_static)
                poses[o][i] = step.T_world_object
                valid[o][i] = step.tracked
                (was_held.add if holding else was_held.discard)(o)
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
    segmenter.reset()
    meter = ContentsMeter(key_frames, segmenter, prompts, poses, descriptors)
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
            if seg.phase == Phase.manipulation:  # a pour changes what the objects hold, not where they are
                seg.master_contents = meter.segment(seg.master, seg.start_frame, seg.end_frame)
                seg.slave_contents = meter.segment(seg.slave, seg.start_frame, seg.end_frame)
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
