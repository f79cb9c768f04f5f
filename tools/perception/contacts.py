"""Contact events of video parsing (DESIGN §1 step 1; tools.perception.parsing has the rest): a pair of
clouds is in contact while its distance is below 2 cm (`CONTACT_THRESHOLD_M`), debounced over `min_frames`
frames (missing distances hold the previous state); each event is stamped where the pair touches: where
the distance settles within `TOUCH_BAND_M` of its minimum, or where the approach is first blocked
(`_blocked_touch`: the pair keeps moving relative to each other but the gap stops closing, within the
distance models' resolution).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.grounding import ContactEvent

if TYPE_CHECKING:
    from tools.perception.parsing import DistanceRecorder

CONTACT_THRESHOLD_M = 0.02
TOUCH_BAND_M = 0.004  # a contact's event is where its distance settles within this of its minimum
SLIDE_SPEED_M_S = 0.03  # ... or, earlier, where the pair keeps moving relative to each other at least this fast
SLIDE_CLOSING = 0.25  # ... while their gap closes by less than this fraction of that motion (blocked: touching)
SLIDE_FRAMES = 2  # ... for this many frames in a row, within MODEL_VOXEL_M and never beyond it until settling
MODEL_VOXEL_M = 0.006  # the distance models are thinned to one point per voxel this size: gaps under it are touches
TABLE = "table"


def contact_states(dist: np.ndarray, threshold: float = CONTACT_THRESHOLD_M, min_frames: int = 2) -> np.ndarray:
    """Debounced boolean contact per frame (missing distances hold the previous state)."""
    raw = np.where(np.isnan(dist), -1, (dist < threshold).astype(int))
    state = np.zeros(len(dist), bool)
    cur = bool(raw[0] == 1)
    i = 0
    n = len(dist)
    while i < n:
        r = raw[i]
        if r != -1 and bool(r) != cur:
            j = i
            while j < n and (raw[j] == r or raw[j] == -1) and j - i < min_frames:
                j += 1
            if j - i >= min_frames or j == n:
                cur = bool(r)
        state[i] = cur
        i += 1
    return state


def events_from_states(state: np.ndarray, times: np.ndarray, a: str, b: str) -> list[ContactEvent]:
    out = []
    if state[0]:
        out.append(ContactEvent(frame=0, time=float(times[0]), kind="begin", a=a, b=b))
    for i in np.nonzero(np.diff(state.astype(int)))[0] + 1:
        out.append(ContactEvent(frame=int(i), time=float(times[i]), kind="begin" if state[i] else "end", a=a, b=b))
    return out


def contact_events(
    rec: DistanceRecorder, times: np.ndarray, threshold: float = CONTACT_THRESHOLD_M, touch: float = TOUCH_BAND_M,
    poses: dict[str, np.ndarray] | None = None,
) -> list[ContactEvent]:
    """Begin/end of every pair's contact interval (distance under `threshold`).

    The 2 cm crossing happens while an object is still being lowered; the event is stamped where
    the pair actually touches: the first (last) frame of the interval whose distance is within
    `touch` of the interval's minimum, i.e. where the approach settles.

    Given the object `poses`, a begin is stamped earlier where the approach is blocked
    (`_blocked_touch`): a brush lowered into a pan meets the rim first and slides down over it, its
    distance to the pan steady a few millimetres above the floor's minimum while it keeps moving
    relative to the pan. A pause above the target (the pair not moving relative to each other) is
    no touch.
    """
    events: list[ContactEvent] = []
    for (a, b), d in rec.d.items():
        if np.all(np.isnan(d)):
            continue
        steps = relative_steps(poses, a, b) if poses is not None else None
        dts = np.append(np.diff(times), times[-1] - times[-2]) if len(times) > 1 else np.ones(len(times))
        for s, e in intervals(contact_states(d, threshold)):
            seg = d[s:e]
            finite = np.isfinite(seg)
            ok = np.nonzero(finite & (seg <= np.min(seg[finite]) + touch))[0] if finite.any() else [0, e - s - 1]
            s2 = s if s == 0 else s + int(ok[0])
            if s > 0 and steps is not None and finite.any():
                s2 = s + _blocked_touch(seg, steps[s:e], dts[s:e], int(ok[0]), reach=rec.voxel)
            e2 = e if e >= len(d) else s + int(ok[-1]) + 1
            events.append(ContactEvent(frame=int(s2), time=float(times[s2]), kind="begin", a=a, b=b))
            if e2 < len(d):
                events.append(ContactEvent(frame=int(e2), time=float(times[e2]), kind="end", a=a, b=b))
    return sorted(events, key=lambda e: (e.frame, e.a, e.b))


def relative_steps(poses: dict[str, np.ndarray], a: str, b: str) -> np.ndarray | None:
    """Per frame i, how far the pair moved relative to each other from frame i to i + 1 (m; last: 0).

    Two objects: the larger displacement of either one's origin in the other's frame; an object and
    the (fixed) table: the object's own displacement. None when a pose is missing (the hand).
    """
    if TABLE in (a, b):
        o = b if a == TABLE else a
        if o not in poses:
            return None
        p = np.asarray(poses[o])[:, :3, 3]
        return np.append(np.linalg.norm(np.diff(p, axis=0), axis=1), 0.0)
    if a not in poses or b not in poses:
        return None
    A, B = np.asarray(poses[a]), np.asarray(poses[b])
    b_in_a = np.einsum("nji,nj->ni", A[:, :3, :3], B[:, :3, 3] - A[:, :3, 3])
    a_in_b = np.einsum("nji,nj->ni", B[:, :3, :3], A[:, :3, 3] - B[:, :3, 3])
    step = np.maximum(np.linalg.norm(np.diff(b_in_a, axis=0), axis=1), np.linalg.norm(np.diff(a_in_b, axis=0), axis=1))
    return np.append(step, 0.0)


def _blocked_touch(
    seg: np.ndarray, steps: np.ndarray, dt: np.ndarray | None, settle: int, reach: float = MODEL_VOXEL_M,
    speed: float = SLIDE_SPEED_M_S, closing: float = SLIDE_CLOSING, frames: int = SLIDE_FRAMES,
) -> int:
    """Index in `seg` where a contact begins: where the approach is first blocked, else `settle`.

    `seg`: the pair's distance over its 2 cm contact; `steps`: their relative motion from each frame
    to the next (`relative_steps`); `dt`: the frame intervals (s; None: 15 fps); `settle`: the first
    index within the touch band of the minimum. Moving freely toward an object closes the gap by
    about as much as the mover travels toward it; a pair that keeps moving relative to each other
    (>= `speed`) while the gap stays (closes by less than `closing` of that motion) for `frames`
    frames in a row, within `reach` and never beyond it until it settles, is held apart by its
    surfaces: it touches and slides (a brush over a pan's rim, measured 5-6 mm off). `reach` is the
    distance models' resolution (`DistanceRecorder.voxel`): one point per 6 mm voxel cannot tell a
    smaller gap from a touch, while a larger one is a pass (a brush lowered past a pan's rim 8-10
    mm off, GT no contact, the gap also steady a few frames). A demonstrator pausing above the target
    does not move relative to it and is no touch, however close.
    """
    n = len(seg)
    dt = np.full(n, 1.0 / 15.0) if dt is None else np.asarray(dt, dtype=float)
    blocked = np.zeros(n, bool)
    for k in range(min(settle, n - 1)):
        d0, d1 = seg[k], seg[k + 1]
        if not (np.isfinite(d0) and np.isfinite(d1)) or d0 > reach or dt[k] <= 0:
            continue
        blocked[k] = steps[k] >= speed * dt[k] and d1 - d0 >= -closing * steps[k]
    for j in range(settle):
        if blocked[j : j + frames].all() and j + frames <= settle and np.all(seg[j : settle + 1] <= reach):
            return j
    return settle


def intervals(state: np.ndarray) -> list[tuple[int, int]]:
    """[start, end] frame intervals (inclusive start, exclusive end) where `state` is True."""
    out = []
    s = None
    for i, v in enumerate(state):
        if v and s is None:
            s = i
        elif not v and s is not None:
            out.append((s, i))
            s = None
    if s is not None:
        out.append((s, len(state)))
    return out
