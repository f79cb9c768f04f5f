"""Parsing and labelling helpers of the grounder (agents/grounder.py, steps 4-6).

`_parse` finds hand intervals, contact events, raw segments and parents; `fixed_objects` the
landmarks; `_segment_question` builds a segment's question for the reasoner; `_render_raw` its
image; `_interaction` the grasp / manipulation interaction of a labelled segment.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from agents.grounding_frames import _Frame0
from core.geometry import Pose, invert_transform, rotation_angle
from core.grounding import (
    ContactEvent,
    GraspInteraction,
    Interaction,
    ManipulationInteraction,
    ObjectDescriptor,
    Phase,
    Segment,
    SegmentQuestion,
)
from tools.perception import labelling, renders
from tools.perception.contacts import CONTACT_THRESHOLD_M, TABLE, contact_events
from tools.perception.hands import GripperTrack
from tools.perception.parsing import (
    HAND,
    DistanceRecorder,
    HandInterval,
    RawSegment,
    find_grasps,
    hand_events,
    pair_key,
    segment_video,
)

FIXED_M = 0.02  # an object that never moves this far (nor turns FIXED_DEG) in the demo is a landmark
FIXED_DEG = 10.0


def _parse(
    rec: DistanceRecorder, poses: dict[str, np.ndarray], gripper: GripperTrack, times: np.ndarray, n: int,
    first: _Frame0,
) -> tuple[list[HandInterval], list[ContactEvent], list[RawSegment], dict[str, str]]:
    """Hand intervals, contact events, raw segments and parents; sets the descriptors' parents."""
    objects = sorted(first.descriptors)
    hand_iv = find_grasps(rec, poses, width=gripper.width)
    # events: object-object (and object-table) 2 cm contacts, begun where they touch (settle or blocked
    # approach: contacts.contact_events), plus the hand's refined grasp/push spans
    events = [e for e in contact_events(rec, times, poses=poses) if HAND not in (e.a, e.b)]
    events += hand_events(hand_iv, times)
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
