"""Deterministic geometric answers to the grounding questions (the offline "VLM").

The offline reasoner answers `TaskQuestion` and `SegmentQuestion` (core.grounding) with these
functions; an LLM reasoner answers the same typed questions from text and images. Rules:

- parents: a label "<parent>_<part>" whose "<parent>" is also a label is a moving part of it;
  otherwise an object with at least 70 % of its first-frame points inside a larger object's box
  (grown by 2 cm) is a part of that object (a drawer in its cabinet, a door on its microwave).
- relations (first frame): part_of (parents), on (a's bottom within 2 cm of b's top and a's centre
  over b's footprint), in (a's centre inside b's box), near (clouds closer than 10 cm).
- phase: a segment ending when the hand takes an object is *grasping* (master = that object);
  a segment during which the hand holds an object is *manipulation* (slave = the held object;
  master = its parent for a moving part, else the object it ends on/in, else the object it
  touched most, else the nearest object); a push (the hand moves an object without closing on
  it) is *manipulation* with slave "hand" and master the pushed object.
- tool use (a hold cut by tools.perception.parsing.split_hold): "move the <tool> to the <object>"
  (part "to") and "use the <tool> on the <object>" (part "on"), both with master the object used on.
- put down on the bare table (let go resting on the table, on/in nothing labelled): master = the
  landmark, the nearest object that stayed put during the whole demo (`fixed_objects`: not a
  moving part, not the held object); text "put the <held> down by the <landmark>". The trajectory
  is then the held object in the landmark's frame, which transfers to another scene.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
from scipy.spatial import cKDTree

from core.geometry import invert_transform, transform_points
from core.grounding import (
    HAND,
    ObjectDescriptor,
    Phase,
    SegmentLabel,
    SegmentQuestion,
    SpatialRelation,
    TaskQuestion,
    TaskRecognition,
)
from tools.perception.parsing import TABLE

PART_INSIDE_FRACTION = 0.7
BOX_MARGIN_M = 0.02
NEAR_M = 0.10


def pretty(name: str) -> str:
    return name.replace("_", " ")


def find_parents(objects: list[ObjectDescriptor], clouds: dict[str, np.ndarray]) -> dict[str, str]:
    """Moving part -> parent body, by name prefix, else by containment in a larger object's box."""
    names = [o.name for o in objects]
    parents: dict[str, str] = {}
    for n in names:
        for p in names:
            if p != n and n.startswith(p + "_"):
                parents[n] = p
    vol = {o.name: float(np.prod(o.bbox_size)) for o in objects}
    for o in objects:
        if o.name in parents or o.name not in clouds:
            continue
        best, best_frac = None, 0.0
        for p in objects:
            if p.name == o.name or vol[p.name] <= vol[o.name] or parents.get(p.name) == o.name:
                continue
            frac = inside_fraction(clouds[o.name], p, BOX_MARGIN_M)
            if frac >= PART_INSIDE_FRACTION and frac > best_frac:
                best, best_frac = p.name, frac
        if best is not None:
            parents[o.name] = best
    return parents


def inside_fraction(
    points: np.ndarray, box: ObjectDescriptor, margin: float, T_world_box: np.ndarray | None = None
) -> float:
    T = box.T_world_object.matrix() if T_world_box is None else T_world_box
    local = transform_points(invert_transform(T), points)
    half = np.asarray(box.bbox_size) / 2 + margin
    return float(np.mean(np.all(np.abs(local) <= half, axis=1))) if len(local) else 0.0


def relation(
    a: ObjectDescriptor, b: ObjectDescriptor, cloud_a: np.ndarray, cloud_b: np.ndarray,
    T_a: np.ndarray | None = None, T_b: np.ndarray | None = None,
) -> str | None:
    """on | in | near | None for a relative to b (poses default to the descriptors' first-frame ones)."""
    Ta = a.T_world_object.matrix() if T_a is None else T_a
    Tb = b.T_world_object.matrix() if T_b is None else T_b
    if len(cloud_a) == 0 or len(cloud_b) == 0:
        return None
    ca = Ta[:3, 3]
    ca_in_b = transform_points(invert_transform(Tb), ca[None])[0]
    half_b = np.asarray(b.bbox_size) / 2
    over = bool(np.all(np.abs(ca_in_b[:2]) <= half_b[:2] + 0.01))
    bottom_a = float(cloud_a[:, 2].min())
    top_b = float(cloud_b[:, 2].max())
    if over and abs(bottom_a - top_b) <= BOX_MARGIN_M + 0.01 and ca[2] > Tb[2, 3]:
        return "on"
    if over and abs(ca_in_b[2]) <= half_b[2]:
        return "in"
    d, _ = cKDTree(cloud_b).query(cloud_a, k=1)
    if float(np.min(d)) < NEAR_M:
        return "near"
    return None


def spatial_relations(
    objects: list[ObjectDescriptor], clouds: dict[str, np.ndarray]
) -> list[SpatialRelation]:
    rels = [SpatialRelation(subject=o.name, relation="part_of", object=o.parent) for o in objects if o.parent]
    by = {o.name: o for o in objects}
    for a, b in permutations(by, 2):
        if by[a].parent == b or by[b].parent == a or a not in clouds or b not in clouds:
            continue
        r = relation(by[a], by[b], clouds[a], clouds[b])
        if r == "near" and a > b:
            continue  # near is symmetric: state it once
        if r is not None:
            rels.append(SpatialRelation(subject=a, relation=r, object=b))
    return rels


def recognise_task(question: TaskQuestion) -> TaskRecognition:
    """The task text is the demo's own when it has one, else a description of the objects."""
    names = [o.name for o in question.objects]
    task = question.task_hint.strip()
    if not task:
        movable = [o.name for o in question.objects if not o.parent]
        task = "manipulate the " + " and the ".join(pretty(n) for n in (movable or names))
    return TaskRecognition(task=task, objects=names, relations=list(question.relations))


def label_segment(question: SegmentQuestion) -> SegmentLabel:
    q = question
    if q.grasped_at_end is not None:
        target = q.grasped_at_end
        parent = q.parents.get(target)
        text = f"grasp the {pretty(target)}" + (f" of the {pretty(parent)}" if parent else "")
        return SegmentLabel(text=text, phase=Phase.grasping, master=target, slave=None)
    if q.pushed is not None:
        target = q.pushed
        parent = q.parents.get(target)
        small = q.moved_m.get(target, 0.0) < 0.03
        text = f"{'press' if small else 'push'} the {pretty(target)}" + (f" of the {pretty(parent)}" if parent else "")
        return SegmentLabel(text=text, phase=Phase.manipulation, master=target, slave=HAND)
    held = q.held_before or q.held_after
    if held is None:
        target = q.approach_target or (q.objects[0].name if q.objects else TABLE)
        return SegmentLabel(text=f"reach the {pretty(target)}", phase=Phase.grasping, master=target, slave=None)
    parent = q.parents.get(held)
    if parent is not None:
        rot = q.rotated_deg.get(held, 0.0)
        opening = q.part_opening_m or 0.0
        if opening >= 0.02:
            verb = "open"
        elif opening <= -0.02:
            verb = "close"
        else:
            verb = "turn" if rot >= 10.0 else "move"
        return SegmentLabel(text=f"{verb} the {pretty(held)} of the {pretty(parent)}", phase=Phase.manipulation,
                            master=parent, slave=held)
    others = [o.name for o in q.objects if o.name != held and q.parents.get(o.name) != held]
    partner = q.hold_partner if q.hold_partner in others else None
    if q.hold_part in ("to", "on") and partner is not None:
        text = (f"move the {pretty(held)} to the {pretty(partner)}" if q.hold_part == "to"
                else f"use the {pretty(held)} on the {pretty(partner)}")
        return SegmentLabel(text=text, phase=Phase.manipulation, master=partner, slave=held)
    master = None
    for rel in ("on", "in"):
        cands = [o for o in others if q.end_relations.get(o) == rel]
        if cands:
            master = cands[0]
            text = f"{'place' if rel == 'on' else 'put'} the {pretty(held)} {rel} the {pretty(master)}"
            break
    if master is None and q.released_on_table:
        landmark = nearest_landmark(q, held)
        if landmark is not None:
            return SegmentLabel(text=f"put the {pretty(held)} down by the {pretty(landmark)}",
                                phase=Phase.manipulation, master=landmark, slave=held)
    if master is None:
        counts = {o: c for o, c in q.contact_counts.items() if o in others and c > 0}
        if counts:
            master = max(sorted(counts), key=lambda o: counts[o])
            text = f"use the {pretty(held)} on the {pretty(master)}"
        else:
            master = q.approach_target if q.approach_target in others else (others[0] if others else TABLE)
            text = f"move the {pretty(held)} to the {pretty(master)}"
    # the master of a free object is the fixed body, not a moving part of it
    master = q.parents.get(master, master) if q.end_relations.get(master) not in ("on", "in") else master
    return SegmentLabel(text=text, phase=Phase.manipulation, master=master, slave=held)


def nearest_landmark(q: SegmentQuestion, held: str) -> str | None:
    """The fixed object nearest to the held one at the segment end (None without fixed objects).

    Candidates: `q.fixed_objects` less the held object, its parts and any moving part; distance:
    `q.end_distances_m` (objects without a distance come last, in name order).
    """
    cands = [o for o in q.fixed_objects if o != held and o not in q.parents and q.parents.get(o) != held]
    if not cands:
        return None
    return min(sorted(cands), key=lambda o: q.end_distances_m.get(o, float("inf")))
