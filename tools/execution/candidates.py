"""Grasp candidates (DESIGN §1.4).

Grasping: candidates are sampled on the 5x5 grids of the learned regions (tools.constraints.grasp),
turned into world poses T_world_object · T_object_gripper with an orientation built from the
approach constraint (gripper z = approach) and the object's shape (closing axis y: the learned one
projected off the approach, else the object's thinnest axis across the approach), the 180° twist
about the approach that is kinder to the wrist chosen, and framed by a pre-grasp and a retreat pose
along the approach.

The trajectories of a manipulation are in tools.execution.manipulation (they take the same Revision).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial.transform import Rotation as Rot

from core.geometry import Pose
from core.skills import GraspConstraint
from tools.constraints.grasp import in_region, sample_candidates, to_fractions

PREGRASP_M = 0.10  # pre-grasp stand-off along the approach
RETREAT_M = 0.10


class Revision(BaseModel):
    """The subset of agents.reasoning.questions.Revision the tools apply (duck-typed: tools never import agents)."""

    grasp_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    approach: tuple[float, float, float] | None = None
    trajectory_scale: float = 1.0
    angle_scale: float = 1.0
    lift_m: float = 0.0


def as_revision(r: object | None) -> Revision:
    if r is None:
        return Revision()
    if isinstance(r, Revision):
        return r
    return Revision(**{k: getattr(r, k) for k in Revision.model_fields if hasattr(r, k)})


class GraspPlan(BaseModel):
    """One grasp candidate in the world: approach path, grasp pose, retreat."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    region: int
    cell: int
    T_object_gripper: Pose
    grasp: Pose = Field(description="T_world_gripper at the grasp")
    pregrasp: Pose
    retreat: Pose
    width: float = Field(description="expected opening at contact, m")
    in_region: bool = True
    inside_object: bool = True

    def approach_path(self) -> list[Pose]:
        return [self.pregrasp, self.grasp]

    def waypoints(self) -> list[Pose]:
        return [self.pregrasp, self.grasp, self.retreat]


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


def grasp_rotation(
    approach: Sequence[float],
    learned: Sequence[float],
    bbox_size: Sequence[float],
    R_world_object: np.ndarray,
    prefer_y_world: Sequence[float] | None = None,
) -> np.ndarray:
    """Gripper rotation in the object frame: z = approach, y from the learned orientation (or shape).

    Of the two twists (y, -y) the one whose world y is nearest `prefer_y_world` (default: the home
    gripper's closing axis, world -y... any fixed reference keeps the wrist away from its limits) wins.
    """
    z = _unit(np.asarray(approach, dtype=float))
    y_learned = Rot.from_quat(learned).as_matrix()[:, 1]
    y = y_learned - z * float(y_learned @ z)
    if np.linalg.norm(y) < 0.3:  # learned closing axis along the approach: fall back to the shape
        size = np.asarray(bbox_size, dtype=float)
        axes = [i for i in range(3) if abs(z[i]) < 0.7]
        i = min(axes, key=lambda k: size[k]) if axes else int(np.argmin(np.abs(z)))
        y = np.eye(3)[i] - z * z[i]
    y = _unit(y)
    x = np.cross(y, z)
    R = np.column_stack([x, y, z])
    ref = np.asarray(prefer_y_world if prefer_y_world is not None else (0.0, -1.0, 0.0), dtype=float)
    if float((R_world_object @ y) @ ref) < 0:
        R = R @ np.diag([-1.0, -1.0, 1.0])  # twist 180° about the approach
    return R


def align_to_edges(R_og: np.ndarray, R_wo: np.ndarray, edges_world: np.ndarray, vertical: float = 0.8) -> np.ndarray:
    """For a grasp from above, turn the closing axis onto the nearest footprint edge direction (the
    fingers then close on two parallel faces of a box, not across its corners)."""
    R_wg = R_wo @ R_og
    z = R_wg[:, 2]
    if abs(float(z[2])) < vertical or len(edges_world) == 0:
        return R_og
    y = R_wg[:, 1]
    cands = np.concatenate([edges_world, -edges_world])
    cands = cands - np.outer(cands @ z, z)  # onto the plane across the approach
    cands = cands / np.maximum(np.linalg.norm(cands, axis=1, keepdims=True), 1e-9)
    y_new = cands[int(np.argmax(cands @ y))]
    x_new = np.cross(y_new, z)
    return R_wo.T @ np.column_stack([x_new, y_new, z])


def match_demo_frame(
    T_world_object: np.ndarray, bbox_size: Sequence[float], demo_size: Sequence[float], margin: float = 0.15,
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The object's frame turned 90° about its z when that makes its footprint correspond to the
    demonstrated object's (a canonical frame's x/y may fall either way on an object whose sides differ
    little, or on another instance): (T_world_object, bbox size) with x/y matching the demo's x/y.

    Sides are compared by |log ratio|; the turn is taken only when it is better by `margin`.
    """
    s = np.maximum(np.asarray(bbox_size, dtype=float), 1e-4)
    d = np.maximum(np.asarray(demo_size, dtype=float), 1e-4)
    keep = abs(np.log(s[0] / d[0])) + abs(np.log(s[1] / d[1]))
    turn = abs(np.log(s[1] / d[0])) + abs(np.log(s[0] / d[1]))
    T = np.asarray(T_world_object, dtype=float)
    if turn + margin >= keep:
        return T.copy(), (float(s[0]), float(s[1]), float(s[2]))
    out = T.copy()
    out[:3, 0], out[:3, 1] = T[:3, 1], -T[:3, 0]  # new x = old y, new y = -old x (right-handed)
    return out, (float(s[1]), float(s[0]), float(s[2]))


SUPPORT_RADIUS_M = 0.03  # the neighbourhood of a contact point whose fill tells a body from a handle
SUPPORT_HIT_M = 0.008  # a probe point counts as filled with a surface point this near (2 voxels)


def _support_probes(radius: float) -> np.ndarray:
    """19 horizontal offsets on a hexagonal pattern: the centre, 6 at half the radius, 12 at the radius."""
    rings = [np.zeros((1, 2))]
    for r, n in ((radius / 2.0, 6), (radius, 12)):
        a = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
        rings.append(np.column_stack([r * np.cos(a), r * np.sin(a)]))
    return np.vstack(rings)


def contact_support(surface_xy: np.ndarray, contacts_xy: np.ndarray, radius: float = SUPPORT_RADIUS_M,
                    hit: float = SUPPORT_HIT_M) -> float:
    """How much of an object's surface lies under contact points, seen from above, in [0, 1]: the mean
    share of a disc of `radius` around each contact that the surface fills. A point merely near some
    surface is not enough: over a pan's handle, 3 cm wide, a disc is half empty, over its floor full,
    so a scrub placed on the wrong end of the pan scores about half what it scores in the bowl."""
    pts = np.asarray(surface_xy, dtype=float).reshape(-1, 2)
    at = np.asarray(contacts_xy, dtype=float).reshape(-1, 2)
    if len(pts) == 0 or len(at) == 0:
        return 0.0
    from scipy.spatial import cKDTree

    probes = (at[:, None, :] + _support_probes(radius)[None, :, :]).reshape(-1, 2)
    d, _ = cKDTree(pts).query(probes)
    return float(np.mean(d <= hit))


def grasp_candidates(
    constraint: GraspConstraint,
    T_world_object: np.ndarray,
    bbox_size: Sequence[float],
    *,
    n: int = 4,
    seed: int = 0,
    revision: object | None = None,
    exclude: Sequence[tuple[int, int]] = (),
    prefer_y_world: Sequence[float] | None = None,
    edges_world: np.ndarray | None = None,
    pregrasp_m: float = PREGRASP_M,
    retreat_m: float = RETREAT_M,
    floor_z: float | None = None,
) -> list[GraspPlan]:
    """Up to n world-frame grasp plans inside the learned regions (best-weighted region, centre cells first).

    `floor_z`: the lowest the TCP may go (world z; the support under the object plus the fingertips'
    reach below the TCP and a margin): a grasp below it is raised to it, so the fingertips close on
    the object instead of dragging on the table.
    """
    rev = as_revision(revision)
    approach = np.asarray(rev.approach if rev.approach is not None else constraint.approach, dtype=float)
    R_wo = T_world_object[:3, :3]
    R_og = grasp_rotation(approach, constraint.orientation, bbox_size, R_wo, prefer_y_world)
    if edges_world is not None:
        R_og = align_to_edges(R_og, R_wo, np.asarray(edges_world, dtype=float))
    cands = sample_candidates(constraint, bbox_size, n=n, seed=seed, offset=rev.grasp_offset, exclude=exclude)
    out = []
    for c in cands:
        T_og = np.eye(4)
        T_og[:3, :3] = R_og
        T_og[:3, 3] = c.T_object_gripper.position
        T_wg = T_world_object @ T_og
        if floor_z is not None and T_wg[2, 3] < floor_z:
            T_wg[2, 3] = floor_z
            T_og = np.linalg.inv(T_world_object) @ T_wg
        z_w = T_wg[:3, 2]
        grasp = Pose.from_matrix(T_wg)
        pre = T_wg.copy()
        pre[:3, 3] = T_wg[:3, 3] - z_w * pregrasp_m
        pre[2, 3] += max(rev.lift_m, 0.0)
        ret = T_wg.copy()
        ret[:3, 3] = T_wg[:3, 3] - z_w * retreat_m
        ret[2, 3] += 0.03
        frac = to_fractions(T_og[:3, 3][None], bbox_size)[0]
        inside_reg = bool(any(in_region(r, frac[None], margin=0.02)[0] for r in constraint.regions))
        out.append(GraspPlan(
            region=c.region, cell=c.cell, T_object_gripper=Pose.from_matrix(T_og), grasp=grasp,
            pregrasp=Pose.from_matrix(pre), retreat=Pose.from_matrix(ret), width=constraint.width,
            in_region=inside_reg, inside_object=bool(np.all(np.abs(frac) <= 0.5 + 0.15)),
        ))
    return out


def centre_between_fingers(plan: GraspPlan, points: np.ndarray, *, finger_half_width: float = 0.012,
                           max_shift: float = 0.02, max_opening: float = 0.08, min_points: int = 20) -> GraspPlan:
    """Shift a grasp along its closing axis so that the fingers straddle the middle of the object's
    local cross-section: the perceived points in the slab the fingers sweep (within the finger width
    along the gripper's x, from the fingertips up), their extent along the closing axis y. A frame
    centred on the visible surface is biased towards the camera; an off-centre parallel grasp pushes
    a light object away before the second finger arrives. Unchanged when the slab holds too few
    points, is wider than the open hand, or the shift would exceed `max_shift`."""
    T = plan.grasp.matrix()
    x, y, z, o = T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3]
    rel = np.asarray(points, dtype=float) - o
    along_x, along_y, along_z = rel @ x, rel @ y, rel @ z
    slab = (np.abs(along_x) <= finger_half_width) & (along_z <= 0.01) & (np.abs(along_y) <= max_opening)
    if int(slab.sum()) < min_points:
        return plan
    lo, hi = float(along_y[slab].min()), float(along_y[slab].max())
    if hi - lo > max_opening:
        return plan
    shift = 0.5 * (lo + hi)
    if abs(shift) > max_shift or abs(shift) < 1e-4:
        return plan
    return _moved(plan, np.array([0.0, shift, 0.0]))


def _moved(plan: GraspPlan, d_gripper: np.ndarray) -> GraspPlan:
    """The plan with every pose moved by `d_gripper` (metres, in the gripper's frame at the grasp)."""
    d = plan.grasp.matrix()[:3, :3] @ d_gripper

    def moved(p: Pose) -> Pose:
        M = p.matrix()
        M[:3, 3] += d
        return Pose.from_matrix(M)

    T_og = plan.T_object_gripper.matrix()
    T_og[:3, 3] += T_og[:3, :3] @ d_gripper
    return plan.model_copy(update={"grasp": moved(plan.grasp), "pregrasp": moved(plan.pregrasp),
                                   "retreat": moved(plan.retreat), "T_object_gripper": Pose.from_matrix(T_og)})


def raise_onto_section(plan: GraspPlan, points: np.ndarray, width: float, *, step: float = 0.0025,
                       max_raise: float = 0.015, tolerance: float = 0.006, min_points: int = 20) -> GraspPlan:
    """Back a grasp off along its approach (in `step`s, at most `max_raise`) until the fingers close on a
    section no wider than the demonstrated opening `width` (+ `tolerance`), while they still have
    `min_points` of material between them. A grasp placed by a fraction of the bbox's height sits where
    the demonstrated part was taken (a lever's bar), and on another part (a knob's wing standing on a
    wider hub) the fingertips reach the hub: they close on 4 cm and turn the knob as they do.
    Unchanged when the section is already as demonstrated or no height within reach is."""
    if width <= 0:
        return plan
    _, extent = material_between_fingers(plan, points)
    if extent is None or extent <= width + tolerance:
        return plan
    for k in range(1, int(round(max_raise / step)) + 1):
        higher = _moved(plan, np.array([0.0, 0.0, -k * step]))
        n, extent = material_between_fingers(higher, points)
        if n < min_points:
            return plan
        if extent is not None and extent <= width + tolerance:
            return higher
    return plan


def slides_along_part(plan: GraspPlan, points: np.ndarray, width: float, *, step: float = 0.005,
                      max_slide: float = 0.03, radius: float = 0.03, tolerance: float = 0.006,
                      min_points: int = 20, elongation: float = 2.0) -> list[GraspPlan]:
    """The grasp slid along the part it closes on (a bar, a rail), nearest first, in `step`s up to
    `max_slide` either way: the positions where the fingers still have `min_points` of material between
    them, no wider than the demonstrated opening `width` (+ `tolerance`). The part's direction is the
    long principal axis of the perceived points within `radius` of the grasp, which must be
    `elongation` times the next one's spread (a round knob has no direction to slide along: none). The
    radius keeps the face the part stands on (a door 4.5 cm behind its bar) out of that estimate.
    A grasp placed by fractions of a bigger part's bbox sits lower on its bar than the demonstrated
    one did below the bar's end, and a pitched hand then meets the bar's end with its palm."""
    pts = np.asarray(points, dtype=float)
    if len(pts) == 0:
        return []
    o = plan.grasp.matrix()[:3, 3]
    near = pts[np.linalg.norm(pts - o, axis=1) <= radius]
    if len(near) < min_points:
        return []
    c = near - near.mean(axis=0)
    w, V = np.linalg.eigh(c.T @ c / len(c))
    if w[1] <= 1e-12 or w[2] / w[1] < elongation ** 2:
        return []
    u_world = V[:, 2]
    u = plan.grasp.matrix()[:3, :3].T @ u_world  # in the gripper's frame, as _moved takes it
    out: list[GraspPlan] = []
    for k in range(1, int(round(max_slide / step)) + 1):
        for sign in (1.0, -1.0):
            slid = _moved(plan, sign * k * step * u)
            n, extent = material_between_fingers(slid, pts)
            if n >= min_points and extent is not None and (width <= 0 or extent <= width + tolerance):
                out.append(slid)
    return out


def mirror_grasp_constraint(constraint: GraspConstraint, sx: float, sy: float) -> GraspConstraint:
    """The grasp constraint reflected through the object's x (sx = -1) and/or y (sy = -1) mid-plane.

    A canonical frame fitted to a footprint that is not a rectangle (a pan: a disc with a handle) can
    come out tilted either way, which puts the same part on the mirrored side of the frame; the regions,
    approach and orientation reflected with it describe the grasp in such a frame."""
    M = np.diag([float(sx), float(sy), 1.0])
    regions = [r.model_copy(update={"center": (sx * r.center[0], sy * r.center[1], r.center[2])})
               for r in constraint.regions]
    R = Rot.from_quat(constraint.orientation).as_matrix()
    q = Rot.from_matrix(M @ R @ M).as_quat()  # M R M is a proper rotation (det M^2 = 1)
    return constraint.model_copy(update={"regions": regions,
                                         "approach": tuple(float(v) for v in M @ np.asarray(constraint.approach)),
                                         "orientation": tuple(float(v) for v in q)})


def material_between_fingers(plan: GraspPlan, points: np.ndarray, *, finger_half_width: float = 0.012,
                             finger_length: float = 0.05, max_opening: float = 0.08) -> tuple[int, float | None]:
    """(number of perceived points, their extent along the closing axis) in the slab the fingers close
    on: within the finger width along the gripper's x, from 1 cm below the TCP to the fingers' length
    above it, inside the open hand. Few points: the fingers would close on nothing."""
    if len(points) == 0:
        return 0, None
    T = plan.grasp.matrix()
    x, y, z, o = T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3]
    rel = np.asarray(points, dtype=float) - o
    ax, ay, az = rel @ x, rel @ y, rel @ z
    slab = (np.abs(ax) <= finger_half_width) & (az <= 0.01) & (az >= -finger_length) & (np.abs(ay) <= max_opening)
    n = int(slab.sum())
    return n, (float(ay[slab].max() - ay[slab].min()) if n else None)


def close_across_section(plan: GraspPlan, points: np.ndarray, *, radius: float = 0.03, below: float = 0.01,
                         above: float = 0.05, min_points: int = 20, elongation: float = 2.0,
                         vertical: float = 0.8) -> GraspPlan:
    """For a grasp from above, turn the closing axis across the part the fingers close on: the
    perceived points within `radius` of the grasp (across the approach) and from `below` under to
    `above` over the TCP; when they are elongated (a handle, a bar: principal spreads differ by
    `elongation`), the closing axis goes along their narrow direction, the twist nearest the planned
    one. A canonical frame fitted to the whole object (a pan's disc and handle) may sit tilted to
    the handle, and fingers closing across a bar at a slant take it by its corners."""
    T = plan.grasp.matrix()
    x, y, z, o = T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3]
    if abs(float(z[2])) < vertical or len(points) == 0:
        return plan
    rel = np.asarray(points, dtype=float) - o
    ax, ay, az = rel @ x, rel @ y, rel @ z
    near = (ax ** 2 + ay ** 2 <= radius ** 2) & (az <= below) & (az >= -above)
    if int(near.sum()) < min_points:
        return plan
    xy = np.column_stack([ax[near], ay[near]])
    xy = xy - xy.mean(axis=0)
    w, V = np.linalg.eigh(xy.T @ xy / len(xy))
    if w[0] <= 1e-12 or w[1] / w[0] < elongation ** 2:
        return plan
    narrow = V[:, 0]  # in the gripper's (x, y) plane
    if narrow[1] < 0:
        narrow = -narrow  # the twist nearest the planned closing axis
    angle = float(np.arctan2(-narrow[0], narrow[1]))  # rotation about z taking y onto `narrow`
    if abs(angle) < np.deg2rad(2.0):
        return plan
    return twist_grasp(plan, angle)


def twist_grasp(plan: GraspPlan, angle: float) -> GraspPlan:
    """The same grasp turned by `angle` (rad) about the gripper's approach axis (for an object that is
    the same all round, a cup: the twist is free and decides what the wrist can do afterwards)."""
    c, s_ = np.cos(angle), np.sin(angle)
    Rz = np.eye(4)
    Rz[:2, :2] = [[c, -s_], [s_, c]]

    def turned(p: Pose) -> Pose:
        return Pose.from_matrix(p.matrix() @ Rz)

    return plan.model_copy(update={"grasp": turned(plan.grasp), "pregrasp": turned(plan.pregrasp),
                                   "retreat": turned(plan.retreat),
                                   "T_object_gripper": turned(plan.T_object_gripper)})

def is_round(size: Sequence[float], T_world_object: np.ndarray, tol: float = 0.15) -> bool:
    """An upright object whose footprint sides agree within `tol`: its yaw cannot be seen (a cup, a
    round plate), so any yaw of its frame is as good as the perceived one."""
    s = np.asarray(size, dtype=float)
    upright = abs(float(np.asarray(T_world_object)[2, 2])) > 0.9
    return upright and abs(s[0] - s[1]) <= tol * max(float(s[0]), float(s[1]), 1e-6)


def retreat_pose(T_world_gripper: Pose, distance: float = RETREAT_M, up: float = 0.03) -> Pose:
    """Back off along the gripper's approach axis and a little up."""
    T = T_world_gripper.matrix()
    T[:3, 3] = T[:3, 3] - T[:3, 2] * distance + np.array([0.0, 0.0, up])
    return Pose.from_matrix(T)
