"""Video parsing (DESIGN §1 step 1): contact distances -> contact events -> segments.

- Distances: per frame, the smallest point-to-point distance between the hand's cloud and each
  object's cloud, and between every pair of objects (KD-trees on voxel-downsampled clouds); the
  distance of an object to the table is its lowest point's height above the table top. The
  models of objects resting on the table are closed down to it (`support_completed`): the camera
  never sees their undersides.
- Contact events (`tools.perception.contacts`): a pair is in contact while its distance is below 2 cm,
  stamped where the pair touches.
- Hand intervals: a hand-object contact during which the object moves (>= 5 mm or >= 3 deg) is a
  grasp when the hand closes on it (begin = closed, end = opening again; the closing may happen just
  before the 2 cm contact and the hold lasts while the closed hand stays within `HOLD_NEAR_M`:
  `_grasp_span`), else a push (begin = the
  last frame before the object starts moving, end = the hand leaving the touch band: `push_span`); their
  begin/end frames cut the video. Between two cuts the hand either reaches for an
  object (ends at a grasp: a candidate *grasping* segment) or holds one (a *manipulation*
  segment); a push is one segment from the previous cut to its end (the hand is the slave); the
  rest (e.g. the final retreat) holds no interaction and is not a segment.
  Segments whose hand path is under 10 cm (`MIN_HAND_PATH_M`) are dropped, unless the hand held or
  pushed an object that clearly moved (>= 2 cm or >= 10 deg): short real manipulations (a lever) stay.
- Tool use (`split_hold`): a hold during which the held object touches another object for a while
  and acts on it -- the contact begins and ends inside the hold, lasts >= `TOOL_MIN_FRAMES` frames,
  and the hand travels >= `MIN_HAND_PATH_M` meanwhile (a brush scrubbing a pan) -- is cut in three:
  carry the tool to the object (part "to"), use it on the object (part "on": from the first begin
  to the last end of that pair's contact inside the hold, so brief lift-offs while scrubbing stay
  one segment) and carry it away and put it down (part "away"). A contact still on at the release
  is a placement (the cup set on the plate) and does not cut; neither does a brush-past (too short,
  or the hand hardly moves while in contact) nor hovering close without touching (the pouring cup
  over the other: median in-contact distance >= `TOOL_TOUCH_M`). With several candidates, the longest contact is used.
  Each part is a "hold" RawSegment carrying its `part` and the `partner` object.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
from pydantic import BaseModel
from scipy.spatial import cKDTree

from core.geometry import rotation_angle
from core.grounding import ContactEvent
from tools.perception.contacts import (  # re-exported: the contact-event half of video parsing
    CONTACT_THRESHOLD_M,
    MODEL_VOXEL_M,
    TABLE,
    TOUCH_BAND_M,
    contact_states,
    intervals,
)

MIN_HAND_PATH_M = 0.10
MOVED_M = 0.005
TOOL_MIN_FRAMES = 15  # a held object's contact with another object this long (and moving) is a tool use
TOOL_TOUCH_M = 0.01  # ... if it really touches: median in-contact distance under this (not hovering near)
SUPPORT_GAP_M = 0.03  # an object whose lowest visible point is at most this above the table rests on it
CLOSE_M = 0.01  # the hand closing by this much on an object makes a contact a grasp
HOLD_NEAR_M = 0.05  # a closed hand this close to an object (its model) still holds it / is closing on it
PUSH_ONSET_M = 0.002  # a pushed object starts moving (push begin) when it is this far from its pose at the 2 cm
PUSH_ONSET_RAD = np.deg2rad(2.0)  # ... crossing, or turned this much
MOVED_RAD = np.deg2rad(3.0)
HAND = "hand"


class RawSegment(BaseModel):
    start_frame: int
    end_frame: int
    kind: str  # reach | hold | push
    target: str  # the object reached for / held
    hand_path_m: float
    keyframes: list[int]
    part: str | None = None  # a hold split at a tool use: to | on | away (see split_hold); None = whole hold
    partner: str | None = None  # the object the held tool is used on (split holds only)


def pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class DistanceRecorder:
    """Per-frame pairwise distances; NaN where a cloud or pose is missing.

    Objects are represented by their tracked model clouds (first-frame cloud at the current pose),
    so an object hidden behind the hand still has its full surface; each model's KD-tree is built
    once, in the object's frame, and other clouds are moved into that frame to be queried.
    """

    def __init__(
        self, models: dict[str, np.ndarray], n_frames: int, table_z: float | None = None,
        coarse: float = MODEL_VOXEL_M,
    ) -> None:
        self.objects = sorted(models)
        self.voxel = coarse  # the models' resolution: a distance under it cannot be told from a touch
        self.n = n_frames
        self.table_z = table_z
        self.models = {o: _thin(models[o], coarse) for o in self.objects}
        self.trees = {o: cKDTree(self.models[o]) for o in self.objects}
        pairs = [pair_key(HAND, o) for o in self.objects] + [pair_key(a, b) for a, b in combinations(self.objects, 2)]
        if table_z is not None:
            pairs += [pair_key(TABLE, o) for o in self.objects]
        self.d: dict[tuple[str, str], np.ndarray] = {p: np.full(n_frames, np.nan) for p in pairs}

    def _query(self, o: str, T_world_o: np.ndarray, pts_world: np.ndarray) -> float:
        R, t = T_world_o[:3, :3], T_world_o[:3, 3]
        local = (pts_world - t) @ R
        lo, hi = self.models[o].min(0), self.models[o].max(0)
        gap = np.maximum(0.0, np.maximum(lo - local, local - hi))
        g = float(np.min(np.linalg.norm(gap, axis=1)))
        if g > 0.1:  # far apart: the box gap is a good enough lower bound, skip the tree
            return g
        d, _ = self.trees[o].query(local, k=1, distance_upper_bound=0.2)
        return float(np.min(np.where(np.isfinite(d), d, 0.2)))

    def record(self, i: int, poses: dict[str, np.ndarray], hand: np.ndarray | None) -> None:
        posed = {o: self.models[o] @ poses[o][:3, :3].T + poses[o][:3, 3] for o in self.objects if o in poses}
        for a, b in self.d:
            if TABLE in (a, b):
                o = b if a == TABLE else a
                if o in posed:
                    self.d[(a, b)][i] = float(np.min(posed[o][:, 2]) - self.table_z)  # type: ignore[operator]
            elif HAND in (a, b):
                o = b if a == HAND else a
                if o in posed and hand is not None and len(hand):
                    self.d[(a, b)][i] = self._query(o, poses[o], hand)
            elif a in posed and b in posed:
                small, big = (a, b) if len(posed[a]) <= len(posed[b]) else (b, a)
                self.d[(a, b)][i] = self._query(big, poses[big], posed[small])

    def series(self, a: str, b: str) -> np.ndarray:
        return self.d[pair_key(a, b)]


def support_completed(
    model: np.ndarray, T_world_object: np.ndarray, table_z: float | None, max_gap: float = SUPPORT_GAP_M,
    step: float = 0.005, slice_m: float = 0.005,
) -> np.ndarray:
    """An object model (object frame) with its hidden underside closed down to the table.

    A camera sees a resting object from above: its first-frame cloud stops short of its bottom (a
    mango's lowest visible point is ~2 cm above the table). For an object resting on the table
    (lowest visible point 3 mm .. `max_gap` above it) the lowest `slice_m` of the cloud is copied
    straight down every `step` onto the table plane, so distances to what it is later set on (a
    plate) are measured from its real bottom, not from its lowest visible point.
    """
    if table_z is None or len(model) == 0:
        return model
    world = model @ T_world_object[:3, :3].T + T_world_object[:3, 3]
    low = float(np.min(world[:, 2]))
    gap = low - table_z
    if not 0.003 < gap <= max_gap:
        return model
    base = world[world[:, 2] <= low + slice_m]
    layers = [base - [0.0, 0.0, dz] for dz in np.append(np.arange(step, gap, step), gap)]
    extra = np.vstack(layers)
    extra_obj = (extra - T_world_object[:3, 3]) @ T_world_object[:3, :3]
    return np.vstack([model, extra_obj])


def _thin(points: np.ndarray, voxel: float) -> np.ndarray:
    from tools.perception.pointcloud import voxel_downsample

    return voxel_downsample(points, voxel) if len(points) > 50 else np.asarray(points, dtype=float)


def moved(poses: np.ndarray, start: int, end: int) -> tuple[float, float]:
    """Largest displacement (m) and rotation (rad) of an object in [start, end) relative to `start`."""
    seg = poses[start:max(end, start + 1)]
    dt = float(np.max(np.linalg.norm(seg[:, :3, 3] - seg[0, :3, 3], axis=1)))
    dr = max(rotation_angle(seg[0, :3, :3], T[:3, :3]) for T in seg)
    return dt, dr


def path_length(points: np.ndarray) -> float:
    if len(points) < 2:
        return 0.0
    return float(np.sum(np.linalg.norm(np.diff(points, axis=0), axis=1)))


class HandInterval(BaseModel):
    """The hand acting on one object: holding it (grasp) or pushing it without closing (push)."""

    start: int
    end: int  # exclusive: the first frame after release
    object: str
    kind: str  # grasp | push


def find_grasps(
    rec: DistanceRecorder,
    object_poses: dict[str, np.ndarray],
    threshold: float = CONTACT_THRESHOLD_M,
    width: np.ndarray | None = None,
    merge_gap: int = 3,
) -> list[HandInterval]:
    """Every hand contact during which the object moved, in time order.

    With the gripper opening `width`: a contact during which the hand closes by >= 1 cm is a
    grasp, its begin refined to the frame the hand finishes closing (width within 3 mm of its
    minimum) and its end to the frame it starts opening again; otherwise it is a push, refined to the
    frames it really touches (`push_span`: from the object starting to move). Contacts of
    one object separated by <= `merge_gap` frames are merged.
    """
    found: list[HandInterval] = []
    for o in rec.objects:
        d = rec.series(HAND, o)
        if np.all(np.isnan(d)):
            continue
        spans: list[list[int]] = []
        for s, e in intervals(contact_states(d, threshold)):
            if spans and s - spans[-1][1] <= merge_gap:
                spans[-1][1] = e
            else:
                spans.append([s, e])
        for s, e in spans:
            kind = "grasp"
            if width is not None and e > s:
                s, e, kind = _grasp_span(d, np.asarray(width, dtype=float), s, e)
            dt, dr = moved(object_poses[o], s, e)
            if dt >= MOVED_M or dr >= MOVED_RAD:
                if kind == "push":
                    s, e = push_span(d, object_poses[o], s, e)
                found.append(HandInterval(start=s, end=e, object=o, kind=kind))
    found.sort(key=lambda h: (h.start, h.end))
    # one hold seen as several 2 cm contacts (a hand closed on a handle hovering at 2-4 cm): merge
    merged: list[HandInterval] = []
    for h in found:
        same = [k for k, p in enumerate(merged) if p.object == h.object and p.kind == h.kind == "grasp"
                and h.start < p.end]
        if same:
            p = merged[same[-1]]
            merged[same[-1]] = p.model_copy(update={"end": max(p.end, h.end)})
            continue
        merged.append(h)
    found = merged
    # overlapping intervals (the hand touches two moving objects): keep the one that moved most
    out: list[HandInterval] = []
    for h in found:
        if out and h.start < out[-1].end:
            p = out[-1]
            if moved(object_poses[h.object], h.start, h.end)[0] > moved(object_poses[p.object], p.start, p.end)[0]:
                out[-1] = h
            continue
        out.append(h)
    return out


def _grasp_span(d: np.ndarray, width: np.ndarray, s: int, e: int, near: float = HOLD_NEAR_M,
                lead: int = 5) -> tuple[int, int, str]:
    """(begin, end, "grasp" | "push") of the hand's 2 cm contact [s, e) with an object, given its opening.

    The hand closing by >= `CLOSE_M` makes it a grasp. The closing is looked for from `lead` frames
    before the hand came within `near` of the object (contiguous frames under `near` or unseen, back
    from `s`): a hand closed on a handle may measure 2-4 cm from the object's model, so the 2 cm
    contact can begin only after the closing (and the opening the hand had while unseen is unreliable:
    the minimum is taken over the whole stay within `near`). Begin: the first frame of the closed run
    (width within 3 mm of that minimum) that reaches into the contact; end: the first frame after
    that run, followed on while the hand stays within `near` (or unseen) -- a closed hand holds the
    object until it opens, however its distance to the model hovers around 2 cm meanwhile.
    """
    n = len(d)

    def near_at(i: int) -> bool:
        return bool(np.isnan(d[i]) or d[i] < near)

    lo, hi = s, e
    while lo > 0 and near_at(lo - 1):
        lo -= 1
    while hi < n and near_at(hi):
        hi += 1
    w_min = float(np.min(width[s:hi]))
    before = float(np.max(width[max(0, lo - lead) : s + 1]))
    if before - w_min < CLOSE_M:
        return s, e, "push"
    closed = width <= w_min + 0.003
    b = s + int(np.nonzero(closed[s:hi])[0][0])  # may follow this contact: the hand closes while still near
    while b > lo and closed[b - 1]:
        b -= 1
    end = b
    while end < hi and closed[end]:
        end += 1
    return b, end, "grasp"


def push_span(
    dist: np.ndarray, poses: np.ndarray, start: int, end: int, touch: float = TOUCH_BAND_M,
    onset_m: float = PUSH_ONSET_M, onset_rad: float = PUSH_ONSET_RAD,
) -> tuple[int, int]:
    """The frames a push really touches its object, within its 2 cm contact [start, end).

    The hand comes within 2 cm (and, its final approach being slow, within a few millimetres)
    well before it touches: the begin is the last frame before the pushed object starts to move
    (>= `onset_m` or `onset_rad` from its pose at `start`; `start` if no motion is seen). The end
    is the first frame after the hand-object distance leaves the band `touch` above its minimum
    over the contact (the hand lifting off), never before the begin.
    """
    P = poses[start:end]
    dt = np.linalg.norm(P[:, :3, 3] - P[0, :3, 3], axis=1)
    dr = np.array([rotation_angle(P[0, :3, :3], T[:3, :3]) for T in P])
    go = np.nonzero((dt >= onset_m) | (dr >= onset_rad))[0]
    s2 = start + max(0, int(go[0]) - 1) if len(go) else start
    seg = np.asarray(dist[start:end], dtype=float)
    finite = np.isfinite(seg)
    e2 = end
    if finite.any():
        band = np.nonzero(finite & (seg <= np.min(seg[finite]) + touch))[0]
        e2 = max(start + int(band[-1]) + 1, s2 + 1)
    return s2, min(e2, end)


def segment_video(
    hand: list[HandInterval],
    hand_points: np.ndarray,
    n_frames: int,
    events: Sequence[ContactEvent] = (),
    min_hand_path: float = MIN_HAND_PATH_M,
    n_keyframes: int = 5,
    object_poses: dict[str, np.ndarray] | None = None,
    distances: dict[tuple[str, str], np.ndarray] | None = None,
) -> list[RawSegment]:
    """Reach + hold segments per grasp (a hold split at a tool use), one push segment per push.

    Short hand paths are dropped.

    Exception to the 10 cm rule: a hold or push during which the object clearly moved (>= 2 cm or
    >= 10 deg, given `object_poses`) is a real manipulation even with a short hand path (a faucet
    lever turns with a few centimetres of hand travel) and is kept.
    """
    raw: list[RawSegment] = []
    prev_end = 0
    for h in hand:
        end = min(h.end, n_frames - 1)
        if h.kind == "push":
            raw.append(_raw(prev_end, end, "push", h.object, hand_points, events, n_keyframes))
        else:
            raw.append(_raw(prev_end, h.start, "reach", h.object, hand_points, events, n_keyframes))
            for s, e, part, partner in split_hold(h.start, end, h.object, events, hand_points, min_hand_path,
                                                  distances=distances):
                r = _raw(s, e, "hold", h.object, hand_points, events, n_keyframes)
                raw.append(r.model_copy(update={"part": part, "partner": partner}))
        prev_end = end
    def effective(r: RawSegment) -> bool:
        if r.kind == "reach" or object_poses is None or r.target not in object_poses:
            return False
        dt, dr = moved(object_poses[r.target], r.start_frame, r.end_frame + 1)
        return dt >= 0.02 or dr >= np.deg2rad(10.0)

    return [r for r in raw if r.end_frame > r.start_frame and (r.hand_path_m >= min_hand_path or effective(r))]


def split_hold(
    start: int, end: int, held: str, events: Sequence[ContactEvent], hand_points: np.ndarray,
    min_path: float = MIN_HAND_PATH_M, min_frames: int = TOOL_MIN_FRAMES, margin: int = 3,
    distances: dict[tuple[str, str], np.ndarray] | None = None,
) -> list[tuple[int, int, str | None, str | None]]:
    """The hold [start, end] of `held`, cut at a tool use: [(start, end, part, partner)].

    A tool use is a contact of `held` with another object (not the hand, not the table) that begins
    more than `margin` frames after the grasp and ends more than `margin` frames before the release,
    spans >= `min_frames` frames from its first begin to its last end inside the hold, and during
    which the hand travels >= `min_path`; given the pair `distances` (keyed by `pair_key`), the
    objects must also really touch: the median of the distances under the contact threshold in
    that span is under `TOOL_TOUCH_M` (a cup held just over another while pouring hovers at
    1.5-2 cm, a brush on a pan measures 1-2 mm). Returns [(start, b, "to", o), (b, e, "on", o),
    (e, end, "away", o)] for the longest such contact (b = first begin, e = last end), else
    [(start, end, None, None)]. A contact still on at the release (a placement) never cuts.
    """
    spans: dict[str, list[int]] = {}
    for ev in events:
        if held not in (ev.a, ev.b) or HAND in (ev.a, ev.b) or TABLE in (ev.a, ev.b):
            continue
        if not start + margin < ev.frame < end - margin:
            continue
        other = ev.b if ev.a == held else ev.a
        sp = spans.setdefault(other, [-1, -1])
        if ev.kind == "begin" and sp[0] < 0:
            sp[0] = ev.frame
        elif ev.kind == "end" and sp[0] >= 0:
            sp[1] = ev.frame
    # a begin after the last end means the contact is on at the release (placement): no cut at it
    last_begin = {o: max((ev.frame for ev in events if ev.kind == "begin" and {held, o} == {ev.a, ev.b}
                          and start + margin < ev.frame < end), default=-1) for o in spans}
    def touching(o: str, b: int, e: int) -> bool:
        if distances is None or pair_key(held, o) not in distances:
            return True
        d = np.asarray(distances[pair_key(held, o)][b:e], dtype=float)
        d = d[np.isfinite(d) & (d < CONTACT_THRESHOLD_M)]
        return bool(len(d)) and float(np.median(d)) < TOOL_TOUCH_M

    used = {
        o: sp for o, sp in spans.items()
        if sp[0] >= 0 and sp[1] > last_begin[o] and sp[1] - sp[0] >= min_frames
        and path_length(hand_points[sp[0] : sp[1] + 1]) >= min_path and touching(o, sp[0], sp[1])
    }
    if not used:
        return [(start, end, None, None)]
    o = max(sorted(used), key=lambda k: used[k][1] - used[k][0])
    b, e = used[o]
    return [(start, b, "to", o), (b, e, "on", o), (e, end, "away", o)]


def hand_events(hand: list[HandInterval], times: np.ndarray) -> list[ContactEvent]:
    """Begin/end events of the hand intervals (the refined grasp and release frames)."""
    out = []
    for h in hand:
        a, b = pair_key(HAND, h.object)
        out.append(ContactEvent(frame=h.start, time=float(times[h.start]), kind="begin", a=a, b=b))
        if h.end < len(times):
            out.append(ContactEvent(frame=h.end, time=float(times[h.end]), kind="end", a=a, b=b))
    return out


def _raw(s: int, e: int, kind: str, target: str, hand_points: np.ndarray, events: Sequence[ContactEvent],
         n_keyframes: int) -> RawSegment:
    inner = [ev.frame for ev in events if s < ev.frame < e and HAND not in (ev.a, ev.b) and TABLE not in (ev.a, ev.b)]
    even = np.linspace(s, e, n_keyframes).round().astype(int).tolist() if e > s else [s]
    keys = sorted({s, e, *even, *inner})
    return RawSegment(start_frame=s, end_frame=e, kind=kind, target=target,
                      hand_path_m=path_length(hand_points[s : e + 1]), keyframes=keys)
