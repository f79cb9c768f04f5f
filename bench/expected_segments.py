"""The segments a right grounding of a demo has, from the simulator's ground truth (bench only).

Segments expected from GT, the same structure the grounder cuts (DESIGN §1.1):
per hand grasp of X, a grasping segment (master X), then
* X articulated (it never leaves its fixed body's vicinity): one manipulation, master = that body;
* X a tool used on an object O (a GT contact X-O that begins > 3 frames after the grasp and ends
  > 3 frames before the release, >= 15 frames from its first begin to its last end, X travelling
  >= 10 cm meanwhile): "to" (grasp .. first begin), "on" (first begin .. last end), both master
  O, then "away" (last end .. release) with the put-down master below; "to"/"away" parts along
  which X travels < 10 cm are not expected (the grounder drops short hand paths);
* else one manipulation up to the release; put-down master: the object X touches at the release
  (a contact begun while held), else -- set down on the bare table -- the nearest landmark: the
  labelled object that never moved >= 2 cm or >= 10 deg in the demo and is not a moving part
  (a label with a GT joint), nearest by true surface distance at the release (MuJoCo geom
  distances in the demo's scene rebuilt from its seed, bodies posed as in GT).
A hand contact that is not a scripted grasp (GT "grasps": none of that object between the
contact's begin and end) is a push: when the object moved (> 3 mm or > 2 deg), one manipulation
with slave "hand" and master the pushed object (the grounder's push rule), from the previous cut
to the end of the contact or, if later, the end of the object's motion (its last frame moving
> 0.5 mm from the previous one, looked for up to 6 frames after the end: a box still sliding); the
next segment starts there. Per object moved without any hand contact, a push (slave "hand", master
the object) over its motion, unless it was only jostled (< 2 cm, < 10 deg) by a held object
touching it (the pan under the brush). A segment is right when a detected segment overlaps its
window (IoU >= 0.5) with the same phase, master and slave.
"""

from __future__ import annotations

import numpy as np

from agents.grounding_segments import FIXED_DEG, FIXED_M
from core.geometry import Pose, rotation_angle
from core.grounding import GroundedDemo
from tools.perception.parsing import MIN_HAND_PATH_M, TOOL_MIN_FRAMES

TOL_FRAMES = 3
# the expected segments follow the grounder's own cuts, with its thresholds: a tool use's length, the
# shortest hand path kept (the held object's path stands in for the hand's), and how far a landmark
# never moves in the demo
MIN_PATH_M = MIN_HAND_PATH_M


def gt_pose(frame: dict, name: str) -> np.ndarray:
    b = frame["bodies"][name]
    return Pose(position=tuple(b["position"]), quaternion=tuple(b["quaternion"])).matrix()


def expected_segments(gt: dict, landmark_distances: LandmarkDistances | None = None) -> list[dict]:
    """The segments a right grounding has, from GT contacts and poses (see the module docstring)."""
    frames = gt["frames"]
    labels = gt["labels"]
    n = len(frames)
    poses = {lab: np.stack([gt_pose(f, lab) for f in frames]) for lab in labels}

    def moved(lab: str, s: int = 0, e: int | None = None) -> bool:
        P = poses[lab][s:e]
        return bool(
            np.max(np.linalg.norm(P[:, :3, 3] - P[0, :3, 3], axis=1)) > 0.003
            or max(rotation_angle(P[0, :3, :3], T[:3, :3]) for T in P) > np.deg2rad(2)
        )

    def clearly_moved(lab: str) -> bool:
        P = poses[lab]
        return bool(
            np.max(np.linalg.norm(P[:, :3, 3] - P[0, :3, 3], axis=1)) >= FIXED_M
            or max(rotation_angle(P[0, :3, :3], T[:3, :3]) for T in P[:: max(1, len(P) // 200)])
            >= np.deg2rad(FIXED_DEG)
        )

    def path(lab: str, s: int, e: int) -> float:
        return float(np.sum(np.linalg.norm(np.diff(poses[lab][s : e + 1, :3, 3], axis=0), axis=1)))

    hand = [e for e in gt["contacts"] if "hand" in (e["a"], e["b"])]
    begins = [e for e in hand if e["kind"] == "begin"]
    ends = [e for e in hand if e["kind"] == "end"]
    out = []
    prev = 0
    obj_contacts = [e for e in gt["contacts"] if "hand" not in (e["a"], e["b"])]
    touched = {e["b"] if e["a"] == "hand" else e["a"] for e in begins}
    grasped = {e["b"] if e["a"] == "hand" else e["a"] for e in begins if is_grasp(gt, e, ends)}
    parts = set(gt_moving_parts(gt))
    fixed = [lab for lab in labels if lab not in parts and not clearly_moved(lab)]
    dist = landmark_distances or LandmarkDistances(gt)
    for b in begins:
        x = b["b"] if b["a"] == "hand" else b["a"]
        end = next((e["frame"] for e in ends if e["frame"] > b["frame"] and x in (e["a"], e["b"])), n - 1)
        if not is_grasp(gt, b, ends):
            if moved(x):  # a push: one segment from the previous cut to the end of the contact / the motion
                P = poses[x]
                go = np.nonzero(np.linalg.norm(np.diff(P[:, :3, 3], axis=0), axis=1) > 0.0005)[0] + 1
                stop = max([end, *[int(f) for f in go if f <= end + 2 * TOL_FRAMES]])
                out.append({"phase": "manipulation", "master": x, "slave": "hand", "start": prev, "end": stop})
                prev = stop
            continue
        out.append({"phase": "grasping", "master": x, "slave": None, "start": prev, "end": b["frame"]})
        prev = end
        # parent: a fixed label that X touches at the start (articulated) -- else where X ends up
        still = [lab for lab in labels if lab != x and not moved(lab)]
        # an articulated part: its path is constrained, it never leaves the fixed body's vicinity
        articulated = (
            len(gt.get("joints", [])) > 0
            and any(np.linalg.norm(poses[x][0, :3, 3] - poses[f][0, :3, 3]) < 0.5 for f in still)
            and not _lifted(poses[x])
        )
        if articulated:
            master = min(still, key=lambda f: float(np.linalg.norm(poses[x][0, :3, 3] - poses[f][0, :3, 3])))
            out.append({"phase": "manipulation", "master": master, "slave": x, "start": b["frame"], "end": end})
            continue
        start = b["frame"]
        use = _tool_use(obj_contacts, x, b["frame"], end)
        if use is not None and use[2] - use[1] >= TOOL_MIN_FRAMES and path(x, use[1], use[2]) >= MIN_PATH_M:
            o, ub, ue = use
            if path(x, start, ub) >= MIN_PATH_M:
                out.append({"phase": "manipulation", "master": o, "slave": x, "start": start, "end": ub, "part": "to"})
            out.append({"phase": "manipulation", "master": o, "slave": x, "start": ub, "end": ue, "part": "on"})
            start = ue
            if path(x, start, end) < MIN_PATH_M:
                continue
        touching = _active_pairs(obj_contacts, end)
        cands = [o for o in labels if o != x and tuple(sorted((o, x))) in touching]
        # where X was put: prefer contacts that began while it was held
        new = {tuple(sorted((e["a"], e["b"]))) for e in obj_contacts
               if e["kind"] == "begin" and start <= e["frame"] <= end + TOL_FRAMES}
        cands = [o for o in cands if tuple(sorted((o, x))) in new] or cands
        landmarks = [f for f in fixed if f != x]
        if cands:
            master = cands[0]
        elif landmarks:  # put down on the bare table: the nearest landmark
            d = dist.at(x, min(end, n - 1), landmarks)
            master = min(landmarks, key=lambda o: d[o])
        else:
            master = min(
                (o for o in labels if o != x),
                key=lambda o: float(np.linalg.norm(poses[x][end - 1, :3, 3] - poses[o][end - 1, :3, 3])),
            )
        out.append({"phase": "manipulation", "master": master, "slave": x, "start": start, "end": end})
    held_touched = {e["a"] if e["b"] in grasped else e["b"] for e in obj_contacts if grasped & {e["a"], e["b"]}}
    for lab in labels:
        if lab in touched or not moved(lab) or (lab in held_touched and not clearly_moved(lab)):
            continue  # an object only jostled by a held tool (the pan under the brush) was not pushed
        P = poses[lab]
        d = np.linalg.norm(P[:, :3, 3] - P[0, :3, 3], axis=1)
        mv = np.nonzero(d > 0.001)[0]
        out.append({"phase": "manipulation", "master": lab, "slave": "hand", "start": 0, "end": int(mv[-1])})
    return out


def is_grasp(gt: dict, begin: dict, hand_events: list[dict]) -> bool:
    """Whether a GT hand contact `begin` is one of the scripted grasps (ground_truth.json "grasps").

    A grasp of the same object scripted between the contact's begin (less the tolerance) and its end
    makes it a grasp; any other hand contact is a push (a button pressed, a box shoved). GT without a
    "grasps" list (older recordings) counts every hand contact as a grasp.
    """
    if "grasps" not in gt:
        return True
    x = begin["b"] if begin["a"] == "hand" else begin["a"]
    end = next((e["frame"] for e in hand_events if e["kind"] == "end" and e["frame"] > begin["frame"]
                and x in (e["a"], e["b"])), len(gt["frames"]))
    return any(g.get("target") == x and begin["frame"] - TOL_FRAMES <= int(g["frame"]) <= end for g in gt["grasps"])


def _tool_use(contacts: list[dict], x: str, start: int, end: int, margin: int = 3) -> tuple[str, int, int] | None:
    """(object, first begin, last end) of X's longest contact that begins and ends inside its hold."""
    spans: dict[str, list[int]] = {}
    last_begin: dict[str, int] = {}
    for e in sorted(contacts, key=lambda e: e["frame"]):
        if x not in (e["a"], e["b"]) or not start + margin < e["frame"] < end:
            continue
        o = e["b"] if e["a"] == x else e["a"]
        sp = spans.setdefault(o, [-1, -1])
        if e["kind"] == "begin":
            last_begin[o] = e["frame"]
            if sp[0] < 0:
                sp[0] = e["frame"]
        elif sp[0] >= 0 and e["frame"] < end - margin:
            sp[1] = e["frame"]
    done = {o: sp for o, sp in spans.items() if sp[0] >= 0 and sp[1] > last_begin.get(o, -1)}
    if not done:
        return None
    o = max(sorted(done), key=lambda k: done[k][1] - done[k][0])
    return o, done[o][0], done[o][1]


def gt_moving_parts(gt: dict) -> list[str]:
    """Labels that sit on a hinge or slide joint (GT joint names start with their label)."""
    return [lab for lab in gt["labels"] if any(j.startswith(lab + "_") for j in gt.get("joints", []))]


class LandmarkDistances:
    """GT surface distances: the simulator scene of the demo's seed, labelled bodies posed as in a GT frame.

    Distance between two labels = smallest MuJoCo geom-geom distance between their own geoms
    (a label's subtree less other labels' subtrees).
    """

    def __init__(self, gt: dict) -> None:
        self.gt = gt
        self._world = None

    def at(self, x: str, frame: int, others: list[str]) -> dict[str, float]:
        import mujoco

        if self._world is None:
            import sim.render  # noqa: F401  (MUJOCO_GL before mujoco renders anything)
            from sim.show import build_scene

            _, self._world, _ = build_scene(self.gt["task"], self.gt["variant"], int(self.gt["seed"]),
                                            with_robot=False, render=False)
        w = self._world
        m, d = w.model, w.data
        f = self.gt["frames"][frame]
        for lab, b in f["bodies"].items():
            try:
                w.set_free_body_pose(lab, Pose(position=tuple(b["position"]), quaternion=tuple(b["quaternion"])))
            except Exception:  # noqa: BLE001 -- fixed bodies and moving parts keep their model pose
                pass
        mujoco.mj_forward(m, d)
        ids = {lab: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, lab) for lab in self.gt["labels"]}

        def own(lab: str) -> list[int]:
            out = []
            for g in range(m.ngeom):
                body = int(m.geom_bodyid[g])
                while body > 0 and body not in ids.values():
                    body = int(m.body_parentid[body])
                if body == ids[lab]:
                    out.append(g)
            return out

        gx = own(x)
        fromto = np.zeros(6)
        res = {}
        for o in others:
            res[o] = min((float(mujoco.mj_geomDistance(m, d, g1, g2, 1.0, fromto)) for g1 in gx for g2 in own(o)),
                         default=float("inf"))
        return res


def _lifted(P: np.ndarray) -> bool:
    return bool(np.max(P[:, 2, 3] - P[0, 2, 3]) > 0.02)


def _active_pairs(events: list[dict], frame: int) -> set[tuple[str, str]]:
    state: dict[tuple[str, str], bool] = {}
    for e in sorted(events, key=lambda e: e["frame"]):
        if e["frame"] > frame + TOL_FRAMES:
            break
        state[tuple(sorted((e["a"], e["b"])))] = e["kind"] == "begin"
    return {p for p, v in state.items() if v}


def segment_matches(gd: GroundedDemo, expected: list[dict]) -> list[dict]:
    out = []
    for ex in expected:
        best, best_iou = None, 0.0
        for s in gd.segments:
            inter = max(0, min(s.end_frame, ex["end"]) - max(s.start_frame, ex["start"]))
            union = max(s.end_frame, ex["end"]) - min(s.start_frame, ex["start"])
            iou = inter / union if union > 0 else 0.0
            if iou > best_iou:
                best, best_iou = s, iou
        ok = (
            best is not None
            and best_iou >= 0.5
            and best.phase.value == ex["phase"]
            and best.master == ex["master"]
            and best.slave == ex["slave"]
        )
        out.append(
            {
                **ex,
                "ok": ok,
                "iou": round(best_iou, 3),
                "detected": None
                if best is None
                else {
                    "phase": best.phase.value,
                    "master": best.master,
                    "slave": best.slave,
                    "start": best.start_frame,
                    "end": best.end_frame,
                    "text": best.text,
                },
            }
        )
    return out
