"""The synthetic human demonstrator: a skin-coloured hand performs a task's scripted demonstration.

`record_demos(task, n, variant, seed, out)` builds the scene of seed+i without the robot, adds the
hand (sim/hand.py), asks the task for its demonstration `Script`, and plays it with human-like
motion while recording RGB-D frames, segmentation, hand keypoints and a separate ground-truth file
into a demo folder (core/demo.py; written to a temp folder and renamed into place).

Motion: every Move is one minimum-jerk (quintic) time scaling along the arc length of its path
(linear position, slerped orientation between via poses), so the hand starts and stops smoothly
and never stops at intermediate via poses. Per demo the rng draws a speed factor (0.85-1.2), a
smooth path wobble (2-4 mm, 0.3-1 deg, zero at every segment end so grasp poses are exact), short
pauses before closing and after releasing, and the opening/closing times. Grasp closes the hand to a
thumb-index pinch of the step's width and then activates a weld between the hand and the target
body; Release deactivates it and opens the hand. For an articulated part the weld drags the part
along its joint physically.

Ground truth (ground_truth.json, read only by bench/ and accuracy tests): per frame the world pose of
every labelled body and the value of every hinge/slide joint inside labelled bodies; contact events
[{frame, time, kind: begin|end, a, b}] for hand-object grasps/releases and for MuJoCo contacts
between different labelled bodies (debounced over 2 frames); and the scripted gripper pose and
width of every grasp (for the keypoint -> gripper contract check); and `success` / `subgoals`: the
task's own success predicate on the final state (a demo that fails its task is worth knowing about).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

import sim.render  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)
from core.demo import HAND_KEYPOINT_NAMES, DemoMeta, DemoWriter, HandTrack
from core.errors import DemoFormatError, VLMimicError
from core.geometry import Pose
from core.sensing import RGBDFrame
from sim.hand import HAND_ROOT, PAD_BIT, Hand, add_hand, hand_kinematics
from sim.script import Grasp, Move, Release, Script, Wait
from sim.show import build_scene, check_camera
from sim.tasks import SceneParams, Task, get_task, parse_variant
from sim.world import SimWorld

WELD_PREFIX = "hand_weld_"
SETTLE_S = 0.3  # physics time before recording so objects rest on the table
CONTACT_DEBOUNCE_FRAMES = 2
MIN_HAND_PIXELS = 30
_MAX_FRAMES_IN_FLIGHT = 8


class DemonstrationError(VLMimicError):
    """A task's demonstration script cannot be played (e.g. grasps a body that is not a label)."""


# --- motion ------------------------------------------------------------------------------------------


def _rotvec_matrix(v: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues' formula)."""
    x, y, z = float(v[0]), float(v[1]), float(v[2])
    th = math.sqrt(x * x + y * y + z * z)
    if th < 1e-12:
        return np.eye(3)
    x, y, z = x / th, y / th, z / th
    c, s_, C = math.cos(th), math.sin(th), 1.0 - math.cos(th)
    return np.array([[c + x * x * C, x * y * C - z * s_, x * z * C + y * s_],
                     [y * x * C + z * s_, c + y * y * C, y * z * C - x * s_],
                     [z * x * C - y * s_, z * y * C + x * s_, c + z * z * C]])


def min_jerk(tau: float) -> float:
    """Quintic minimum-jerk time scaling s(tau) on [0, 1] with zero end velocity and acceleration."""
    t = float(np.clip(tau, 0.0, 1.0))
    return t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)


@dataclass
class _Wobble:
    """Smooth human wobble: a few sinusoids, windowed to vanish (with its slope) at both ends."""

    amp_pos: np.ndarray  # (3,) metres
    amp_rot: np.ndarray  # (3,) radians
    freq: np.ndarray  # (6,) cycles per segment
    phase: np.ndarray  # (6,)

    @classmethod
    def draw(cls, rng: np.random.Generator, pos_mm: float, rot_deg: float) -> _Wobble:
        return cls(
            amp_pos=rng.uniform(0.5, 1.0, 3) * pos_mm / 1000.0,
            amp_rot=np.deg2rad(rng.uniform(0.3, 1.0, 3) * rot_deg),
            freq=rng.uniform(0.5, 1.5, 6),
            phase=rng.uniform(0.0, 2.0 * np.pi, 6),
        )

    def __call__(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        w = np.sin(np.pi * s) ** 2
        v = np.sin(2.0 * np.pi * self.freq * s + self.phase) * w
        return self.amp_pos * v[:3], self.amp_rot * v[3:]


@dataclass
class _Segment:
    kind: str  # move | hold | close | open
    t0: float
    duration: float
    poses: list[np.ndarray]  # 4x4; hold/close/open use poses[0]
    c0: float
    c1: float
    target: str = ""
    label: str = ""
    wobble: _Wobble | None = None
    _cum: np.ndarray = field(default_factory=lambda: np.zeros(1))
    _rots: Rotation | None = None
    _rel: list[np.ndarray] = field(default_factory=list)
    _mats: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))

    def __post_init__(self) -> None:
        if self.kind == "move" and len(self.poses) > 1:
            lengths = []
            for a, b in zip(self.poses[:-1], self.poses[1:], strict=True):
                dp = float(np.linalg.norm(b[:3, 3] - a[:3, 3]))
                dr = float(np.linalg.norm((Rotation.from_matrix(a[:3, :3]).inv()
                                           * Rotation.from_matrix(b[:3, :3])).as_rotvec()))
                lengths.append(dp + 0.1 * dr + 1e-9)  # 10 cm per radian: pure rotations take time too
            self._cum = np.concatenate([[0.0], np.cumsum(lengths)]) / sum(lengths)
            self._rots = Rotation.from_matrix(np.array([p[:3, :3] for p in self.poses]))
            self._rel = [(self._rots[i].inv() * self._rots[i + 1]).as_rotvec() for i in range(len(self.poses) - 1)]
            self._mats = self._rots.as_matrix()

    @property
    def t1(self) -> float:
        return self.t0 + self.duration

    def at(self, t: float) -> tuple[np.ndarray, float]:
        """(T_world_gripper, closure) at absolute time t within this segment."""
        tau = 0.0 if self.duration <= 0 else (t - self.t0) / self.duration
        s = min_jerk(tau)
        closure = self.c0 + (self.c1 - self.c0) * s
        if self.kind != "move" or len(self.poses) == 1:
            return self.poses[-1 if self.kind == "move" else 0], closure
        i = int(np.clip(np.searchsorted(self._cum, s, side="right") - 1, 0, len(self.poses) - 2))
        f = (s - self._cum[i]) / max(self._cum[i + 1] - self._cum[i], 1e-12)
        a, b = self.poses[i], self.poses[i + 1]
        p = (1.0 - f) * a[:3, 3] + f * b[:3, 3]
        # Plain numpy rotations (Rodrigues): this runs at every physics step, scipy's Rotation is ~10x slower.
        R = self._mats[i] @ _rotvec_matrix(f * self._rel[i])
        if self.wobble is not None:
            dp, dr = self.wobble(s)
            p = p + dp
            R = _rotvec_matrix(dr) @ R
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = p
        return T, closure


@dataclass
class Timeline:
    """A script turned into timed segments of hand pose and finger closure."""

    segments: list[_Segment]
    grasps: list[dict]
    pressing: bool = False  # no Grasp in the script: fingertips together, pads push moving parts

    @property
    def duration(self) -> float:
        return self.segments[-1].t1 if self.segments else 0.0

    def at(self, t: float) -> tuple[int, np.ndarray, float]:
        """(segment index, T_world_gripper, closure) at time t (clamped to the timeline)."""
        for i, seg in enumerate(self.segments):
            if t < seg.t1 or i == len(self.segments) - 1:
                return (i, *seg.at(min(t, seg.t1)))
        raise AssertionError("empty timeline")


def plan_motion(script: Script, rng: np.random.Generator, start: np.ndarray | None = None) -> Timeline:
    """Turn a Script into a human-like timeline (speed, wobble, pauses drawn from `rng`)."""
    kin = hand_kinematics()
    moves = [s for s in script.steps if isinstance(s, Move)]
    if not moves:
        raise DemonstrationError("the demonstration script has no Move step")
    speed = float(rng.uniform(0.85, 1.2))  # > 1 = slower person
    pos_mm, rot_deg = float(rng.uniform(2.0, 4.0)), float(rng.uniform(0.3, 1.0))
    if start is None:
        # The hand comes in from where a person's hand rests: back along the first approach, a bit higher.
        first = moves[0].path[0].matrix()
        start = first.copy()
        start[:3, 3] += -0.12 * first[:3, 2] + np.array([0.0, 0.0, 0.05]) + rng.uniform(-0.03, 0.03, 3)
    segs: list[_Segment] = []
    grasps: list[dict] = []
    t = 0.0
    pressing = not any(isinstance(s, Grasp) for s in script.steps)
    # The hand's shape at the start: the width of a Release that precedes the first Move, else an open
    # hand, or (pressing demonstrations) the fingertips together.
    closure = 1.0 if pressing else 0.0
    for s in script.steps:
        if isinstance(s, Move):
            break
        if isinstance(s, Release):
            closure = kin.closure_for_width(s.width)
    pose, holding = start, ""

    def add(kind: str, duration: float, poses: list[np.ndarray], c1: float, **kw) -> None:
        nonlocal t
        segs.append(_Segment(kind=kind, t0=t, duration=max(duration, 0.0), poses=poses, c0=closure, c1=c1, **kw))
        t += max(duration, 0.0)

    add("hold", float(rng.uniform(0.3, 0.6)), [pose], closure, label="idle")
    for step in script.steps:
        if isinstance(step, Move):
            path = [p.matrix() for p in step.path]
            add("move", step.duration * speed, [pose, *path], closure, label=step.label,
                wobble=_Wobble.draw(rng, pos_mm, rot_deg))
            pose = path[-1]
        elif isinstance(step, Wait):
            add("hold", step.duration, [pose], closure, label="wait")
        elif isinstance(step, Grasp):
            if holding:
                raise DemonstrationError(f"Grasp({step.target!r}) while still holding {holding!r}")
            add("hold", float(rng.uniform(0.1, 0.3)), [pose], closure, label="before_grasp")
            c1 = kin.closure_for_width(step.width) if step.width > 0 else 1.0
            add("close", float(rng.uniform(0.3, 0.45)), [pose], c1, target=step.target, label="grasp")
            closure = c1
            grasps.append({"time": t, "target": step.target, "width": float(step.width),
                           "T_world_gripper": Pose.from_matrix(pose).model_dump(mode="json")})
            holding = step.target
            add("hold", float(rng.uniform(0.15, 0.3)), [pose], closure, label="settle")
        elif isinstance(step, Release):
            c1 = kin.closure_for_width(step.width)
            if holding or abs(c1 - closure) > 1e-6:
                add("open", float(rng.uniform(0.3, 0.45)), [pose], c1, target=holding, label="release")
                closure = c1
                if holding:
                    add("hold", float(rng.uniform(0.1, 0.3)), [pose], closure, label="after_release")
                holding = ""
    add("hold", 0.5, [pose], closure, label="end")
    return Timeline(segments=segs, grasps=grasps, pressing=pressing)


# --- scene with hand -------------------------------------------------------------------------------


def _moving_part_geoms(spec: mujoco.MjSpec, labels: list[str]) -> list[mujoco.MjsGeom]:
    """Geoms of labelled bodies that move on a hinge/slide joint (and of their unlabelled children)."""
    out: list[mujoco.MjsGeom] = []
    movable = (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)

    def collect(body: mujoco.MjsBody) -> None:
        out.extend(body.geoms)
        for child in body.bodies:
            if child.name not in labels:
                collect(child)

    for label in labels:
        body = spec.body(label)
        if body is not None and any(j.type in movable for j in body.joints):
            collect(body)
    return out


def _add_hand_and_welds(spec: mujoco.MjSpec, task: Task, params: SceneParams) -> None:
    add_hand(spec)
    for geom in _moving_part_geoms(spec, list(task.object_labels)):
        geom.conaffinity = int(geom.conaffinity) | PAD_BIT
    for label in task.object_labels:
        eq = spec.add_equality()
        eq.name = f"{WELD_PREFIX}{label}"
        eq.type = mujoco.mjtEq.mjEQ_WELD
        eq.objtype = mujoco.mjtObj.mjOBJ_BODY
        eq.name1 = HAND_ROOT
        eq.name2 = label
        eq.active = False
        eq.solref = [0.01, 1.0]


def _body_labels(model: mujoco.MjModel, labels: list[str]) -> np.ndarray:
    """Per body: index into `labels` of its nearest labelled ancestor (itself included), else -1."""
    out = np.full(model.nbody, -1, dtype=np.int32)
    index = {n: i for i, n in enumerate(labels)}
    for b in range(model.nbody):
        i = b
        while i > 0:
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) or ""
            if name in index:
                out[b] = index[name]
                break
            i = int(model.body_parentid[i])
    return out


class _GroundTruth:
    """Collects body poses, articulation values and debounced contact events while recording."""

    def __init__(self, world: SimWorld, labels: list[str]) -> None:
        self.world = world
        m = world.model
        self.body_ids = [world.body_id(n) for n in labels]
        self.geom_label = _body_labels(m, labels)[m.geom_bodyid]
        self.labels = [*labels, "hand"]  # hand pads touching moving parts (pressing demonstrations)
        self.geom_label[world.geom_label == world.label_ids["hand"]] = len(labels)
        self.joints = []
        body_lab = _body_labels(m, labels)
        for j in range(m.njnt):
            if int(m.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
                if body_lab[m.jnt_bodyid[j]] >= 0:
                    self.joints.append((mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}",
                                        int(m.jnt_qposadr[j])))
        self.frames: list[dict] = []
        self.events: list[dict] = []
        self._seen: set[tuple[str, str]] = set()  # pairs touching since the last frame
        self._state: dict[tuple[str, str], bool] = {}
        self._streak: dict[tuple[str, str], int] = {}
        self._pending_start: dict[tuple[str, str], tuple[int, float]] = {}

    def sample_contacts(self) -> None:
        d = self.world.data
        n = d.ncon
        if n == 0:
            return
        g1 = self.geom_label[d.contact.geom1[:n]]
        g2 = self.geom_label[d.contact.geom2[:n]]
        mask = (g1 >= 0) & (g2 >= 0) & (g1 != g2) & (d.contact.dist[:n] <= 0.0)
        for a, b in zip(g1[mask], g2[mask], strict=True):
            na, nb = self.labels[a], self.labels[b]
            self._seen.add((na, nb) if (na < nb or na == "hand") and nb != "hand" else (nb, na))

    def hand_event(self, frame: int, time: float, kind: str, target: str) -> None:
        self.events.append({"frame": frame, "time": round(time, 6), "kind": kind, "a": "hand", "b": target})

    def record_frame(self, i: int, time: float) -> None:
        d = self.world.data
        bodies = {}
        for name, b in zip(self.labels[:-1], self.body_ids, strict=True):
            w, x, y, z = d.xquat[b]
            bodies[name] = {"position": [float(v) for v in d.xpos[b]], "quaternion": [float(x), float(y), float(z),
                                                                                       float(w)]}
        joints = {name: float(d.qpos[adr]) for name, adr in self.joints}
        self.frames.append({"frame": i, "time": round(time, 6), "bodies": bodies, "joints": joints})
        # Debounce: a pair changes state only after CONTACT_DEBOUNCE_FRAMES consistent frames; the event is
        # stamped at the first frame of the new state.
        for pair in set(self._state) | self._seen:
            now = pair in self._seen
            if self._state.get(pair, False) == now:
                self._streak.pop(pair, None)
                self._pending_start.pop(pair, None)
                continue
            self._streak[pair] = self._streak.get(pair, 0) + 1
            self._pending_start.setdefault(pair, (i, time))
            if self._streak[pair] >= CONTACT_DEBOUNCE_FRAMES or (i == 0 and now):
                f0, t0 = self._pending_start.pop(pair)
                self._streak.pop(pair, None)
                self._state[pair] = now
                self.events.append({"frame": f0, "time": round(t0, 6), "kind": "begin" if now else "end",
                                    "a": pair[0], "b": pair[1]})
        self._seen = set()

    def result(self, extra: dict) -> dict:
        events = sorted(self.events, key=lambda e: (e["frame"], e["kind"] != "end", e["a"], e["b"]))
        return {**extra, "labels": self.labels[:-1], "joints": [n for n, _ in self.joints], "frames": self.frames,
                "contacts": events}


# --- recording ---------------------------------------------------------------------------------------


def _project(frame: RGBDFrame, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points -> (uv pixels, in front of the camera and inside the image)."""
    T = np.asarray(frame.T_world_camera)
    pc = (xyz - T[:3, 3]) @ T[:3, :3]
    uv = frame.intrinsics.project(pc)
    w, h = frame.intrinsics.width, frame.intrinsics.height
    inside = (pc[:, 2] > 0.01) & (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    return uv, inside


def record_demo(
    task: str | Task,
    variant: str,
    seed: int,
    out_dir: Path,
    *,
    camera: str | None = None,
    fps: float = 15.0,
    width: int = 640,
    height: int = 480,
    max_seconds: float | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> Path:
    """Record one demo of `task` (scene of `seed`) into `out_dir` (must not exist); returns it.

    max_seconds cuts the demonstration short (tests); on_frame(i) is called after each captured frame.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if Path(out_dir).exists():
        raise DemoFormatError(f"{out_dir}: already exists; refusing to overwrite a demo")
    t_obj, world, params = build_scene(task, variant, seed, with_robot=False, width=width, height=height,
                                       extend=_add_hand_and_welds)
    with world:
        cam_name = check_camera(t_obj, world, camera)
        labels = [*t_obj.object_labels, *[d for d in params.distractors if d not in t_obj.object_labels]]
        m, d = world.model, world.data
        hand = Hand(m, d)
        welds = {lab: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_EQUALITY, f"{WELD_PREFIX}{lab}")
                 for lab in t_obj.object_labels}
        seq = np.random.SeedSequence([int(seed), 0x68616E64])
        demo_rng, motion_rng = (np.random.default_rng(s) for s in seq.spawn(2))

        # Let the scene come to rest (the hand parked out of reach, pads off), then ask the task for its script.
        hand.enable_pads(False)
        world.step(int(round(SETTLE_S / world.timestep)))
        world.forward()
        script = t_obj.demonstration(world, params, demo_rng)
        timeline = plan_motion(script, motion_rng)
        for g in timeline.grasps:
            if g["target"] not in welds:
                raise DemonstrationError(
                    f"{t_obj.name}: the demonstration grasps {g['target']!r}, which is not one of the task's "
                    f"object labels ({', '.join(t_obj.object_labels)})"
                )
        _, T0, c0 = timeline.at(0.0)
        hand.place(T0, c0)
        hand.enable_pads(timeline.pressing)
        d.time = 0.0
        world.forward()

        duration = timeline.duration if max_seconds is None else min(timeline.duration, max_seconds)
        n_frames = int(np.floor(duration * fps + 1e-9)) + 1
        gt = _GroundTruth(world, labels)
        cam = world.camera(cam_name)
        kp_xyz = np.zeros((n_frames, len(HAND_KEYPOINT_NAMES), 3))
        kp_uv = np.zeros((n_frames, len(HAND_KEYPOINT_NAMES), 2))
        visible = np.zeros(n_frames, dtype=bool)
        grasp_frames: list[int] = []
        seg_index, holding = 0, ""
        dt = world.timestep
        meta_first: RGBDFrame | None = None

        def apply(t: float, frame_i: int) -> None:
            nonlocal seg_index, holding
            i, T, c = timeline.at(t)
            while seg_index < i:  # segment boundaries crossed: fire their events
                done = timeline.segments[seg_index]
                if done.kind == "close" and done.target:
                    eq = welds[done.target]
                    mujoco.mj_kinematics(m, d)
                    b1, b2 = int(m.eq_obj1id[eq]), int(m.eq_obj2id[eq])
                    R1 = d.xmat[b1].reshape(3, 3)
                    rel_p = R1.T @ (d.xpos[b2] - d.xpos[b1])
                    q1, q2 = d.xquat[b1], d.xquat[b2]
                    rel_q = np.zeros(4)
                    neg = np.zeros(4)
                    mujoco.mju_negQuat(neg, q1)
                    mujoco.mju_mulQuat(rel_q, neg, q2)
                    m.eq_data[eq, :3] = 0.0
                    m.eq_data[eq, 3:6] = rel_p
                    m.eq_data[eq, 6:10] = rel_q
                    d.eq_active[eq] = 1
                    holding = done.target
                    gt.hand_event(frame_i, t, "begin", done.target)
                    grasp_frames.append(frame_i)
                seg_index += 1
                nxt = timeline.segments[seg_index]
                if nxt.kind == "open" and holding:
                    d.eq_active[welds[holding]] = 0
                    gt.hand_event(frame_i, t, "end", holding)
                    holding = ""
            hand.place(T, c)

        with DemoWriter(Path(out_dir)) as writer, ThreadPoolExecutor(max_workers=1) as pool:
            pending: deque[Future] = deque()
            step_i = 0
            for fi in range(n_frames):
                t_frame = fi / fps
                while step_i * dt < t_frame - 1e-9:
                    apply(step_i * dt, fi)
                    world.step(1)
                    gt.sample_contacts()
                    step_i += 1
                apply(t_frame, fi)
                mujoco.mj_kinematics(m, d)
                mujoco.mj_camlight(m, d)
                frame = cam.capture()
                frame = frame.model_copy(update={"timestamp": t_frame})
                if meta_first is None:
                    meta_first = frame
                xyz = hand.keypoints_world()
                uv, inside = _project(frame, xyz)
                kp_xyz[fi], kp_uv[fi] = xyz, uv
                hand_id = world.label_ids["hand"]
                n_hand = int(np.count_nonzero(frame.segmentation == hand_id)) if frame.segmentation is not None else 0
                visible[fi] = bool(inside[:3].all() and n_hand >= MIN_HAND_PIXELS)
                gt.record_frame(fi, t_frame)
                pending.append(pool.submit(writer.add_frame, frame))
                while len(pending) > _MAX_FRAMES_IN_FLIGHT or (pending and pending[0].done()):
                    pending.popleft().result()
                if on_frame is not None:
                    on_frame(fi)
            while pending:
                pending.popleft().result()
            assert meta_first is not None
            if not visible.any():
                raise DemonstrationError(
                    f"{t_obj.name}: the hand is never visible from camera {cam_name!r}; choose another camera"
                )
            t_name = t_obj.name
            meta = DemoMeta(
                demo_id=Path(out_dir).name,
                task=t_obj.goal_text,
                source="sim",
                fps=float(fps),
                n_frames=n_frames,
                intrinsics=meta_first.intrinsics,
                T_world_camera=np.asarray(meta_first.T_world_camera).tolist(),
                timestamps=[],
                depth_scale=writer.depth_scale,
                labels=dict(world.labels),
                camera_name=cam_name,
                extra={"task_name": t_name, "variant": params.variant.value, "seed": int(seed), "hand": "adroit"},
            )
            hand_track = HandTrack(names=HAND_KEYPOINT_NAMES, uv=kp_uv, xyz=kp_xyz, visible=visible)
            grasps = []
            for g, f in zip(timeline.grasps, grasp_frames, strict=False):
                grasps.append({**g, "frame": f})
            world.forward()
            truth = gt.result({
                "task": t_name, "variant": params.variant.value, "seed": int(seed), "fps": float(fps),
                "camera": cam_name, "params": params.model_dump(mode="json"), "grasps": grasps,
                # Did the demonstration achieve the goal (the task's own success predicate, final state)?
                "success": bool(t_obj.success(world, params)),
                "subgoals": {k: bool(v) for k, v in t_obj.subgoals(world, params).items()},
            })
            return writer.commit(meta, hand_track, truth)


def record_demos(
    task: str,
    n: int,
    variant: str,
    seed: int,
    out: Path,
    camera: str | None = None,
    fps: float = 15.0,
) -> list[Path]:
    """Record `n` demos into out/<task>_<variant>_<seed+i>/; each has its own seed-derived scene and motion."""
    t = get_task(task)
    v = parse_variant(variant)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    targets = [Path(out) / f"{t.name}_{v.value}_{int(seed) + i}" for i in range(n)]
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        raise DemoFormatError(f"{', '.join(existing)}: already exists; refusing to overwrite (choose another --out "
                              "or --seed)")
    return [record_demo(t, v.value, int(seed) + i, p, camera=camera, fps=fps) for i, p in enumerate(targets)]
