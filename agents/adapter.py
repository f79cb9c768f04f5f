"""The adapter (DESIGN §1.3-1.4, §5): one plan step, from a camera frame to a verified result.

A LangGraph subgraph per step (contract: the docstring of agents/graph.py):

    START -> perceive -> compare -> approve -> execute -> review --(retry)--> approve -> execute ...
                 |          |                                   \\--(done)--> result -> END
                 \\----------\\--(object not visible / nothing reachable)-----> result

- perceive: segment the step's objects in one RGB-D frame, canonical frames and bboxes
  (tools.perception.scene); the skill comes from memory. An object the arm hides from the camera is
  looked for again with the arm folded out of the view (OBSERVE_QS); an object seen through an
  occluder (a smaller cloud, its centre shifted) keeps the frame of its unoccluded sighting.
- compare (before acting, <= config.adapter_rounds rounds): instantiate the skill's constraint on the
  objects seen now (grasp candidates inside the learned regions, or the slave's trajectory
  T_world_master · T_master_slave(t) · T_slave_gripper), score the candidates (IK inside joint
  limits, collisions: the MuJoCo model in simulation, the perceived cloud otherwise), and ask the
  reasoner to compare the adapted interaction with the demonstrated one (the adapted program where
  it passes the demonstrated keypoints); its Revision is applied and the instance re-planned. With 0
  rounds the best-scored first instance is executed unexamined. Instantiation matches the perceived
  frames to the demonstrated ones: a footprint whose long side fell on the other axis is turned 90°;
  a round master's or slave's unobservable yaw is taken from the demonstrated start (the source cup
  beside the target, whichever side it stands on). A grasp of a free object stays above the surface
  it stands on and is centred between the fingers on the local cross-section; when the plan's next
  step moves the object, the grasp (and, for a round or square object, its quarter-turn twist) is
  chosen so that that motion is feasible too.
- approve: the graph's approval node (a step may move the arm more than once: review retries).
- execute: through ctx.robot only. Grasping: open, pre-grasp, grasp pose, close, verify from the
  gripper width (a missed grasp backs off cleanly). Manipulation: follow the composed trajectory,
  note whether the slave is still held, release where it rests, retreat.
- review (after acting, <= config.review_rounds rounds of diagnose-and-revise): measure what was
  achieved (slave pose in the master frame, articulation change) against the plan / demonstration's
  end state and decide success; on failure the reasoner diagnoses the cause and revises the instance
  (grasp offset / next cell, approach, trajectory scale, angles, lift, force), then retry.
- result: a StepResult; an Outcome per attempt with the adapted instance's parameters goes to memory.

Bad input and faults (object not visible, nothing reachable, missed/dropped object, a robot fault or
exception mid-motion) end the step as "failed" with one clear message, the arm stopped, an
"adapter_error" event in the trace; nothing raises out of the adapter except an approval interrupt.

What steers the loop is only what the robot perceives and measures: `ctx.world` serves stepping
(letting objects settle) and the MuJoCo collision model; `ctx.task`/`ctx.params` are never read here.
Between the steps of a run the adapter remembers which object the gripper holds and how
(`ctx._adapter_memory`, in-process): a manipulation step anchors its trajectory on that grasp and can
re-grasp the object after a slip.
"""

from __future__ import annotations

import operator
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

import numpy as np
from langgraph.graph import END, START, StateGraph

from agents.reasoning.questions import CompareQuestion, DiagnoseQuestion, ExecutionFacts, Revision
from agents.state import StepBinding, StepResult
from core.errors import VLMimicError
from core.geometry import Pose, invert_transform
from core.grounding import HAND, Phase
from core.skills import Outcome, Skill
from tools.constraints.sweep import is_oscillating_program
from tools.execution.candidates import (
    GraspPlan,
    centre_between_fingers,
    close_across_section,
    grasp_candidates,
    is_round,
    keypoint_times,
    keypoints_of,
    master_slave_trajectory,
    match_demo_frame,
    material_between_fingers,
    mirror_grasp_constraint,
    retreat_pose,
    twist_grasp,
    world_trajectory,
    yaw_master_to_demo,
    yaw_slave_to_demo,
)
from tools.execution.feasibility import (
    CollisionChecker,
    MujocoCollisionChecker,
    PathCheck,
    PointCloudCollisionChecker,
    check_path,
    rank,
)
from tools.execution.verify import (
    judge_motion,
    placed_height_tolerance,
    placement_tolerance,
    relation,
    verify_grasp,
)
from tools.perception.scene import PerceivedObject, PerceivedScene, perceive

N_CANDIDATES = 4  # grasp candidates per round (paper: 5x5 grid, 4 per round)
N_SHAPE = 24  # the adapted program at evenly spaced times: what the compare sets beside the demo's keypoints
APPROACH_SPEED = 0.3
CONTACT_SPEED = 0.1
HELD_SPEED = 0.12
GRASP_FORCE_N = 40.0
SETTLE_S = 0.4
SAME_PLACE_M = 0.03  # a re-perceived object within this of its remembered frame has not moved
OCCLUDED_SHARE = 0.7  # a view with fewer points than this share of the remembered one is occluded
OCCLUDED_SHIFT_M = 0.08  # ... and its centre may look this far off before the object counts as moved
FINGERTIP_BELOW_TCP_M = 0.01  # the Panda's fingertips reach this far below the TCP
FLOOR_MARGIN_M = 0.01  # and keep this clear of the surface an object stands on
PLACED_AGREE_M = 0.06  # a put-down object seen this near where the hand let it go has not moved since
MIN_MATERIAL_POINTS = 20  # perceived points between the fingers below which a grasp closes on nothing
# Panda joint poses that keep the arm out of an overhead camera's view (tried in order until the
# step's objects show): the elbow folded back and up over the base, the hand inside the workspace
OBSERVE_QS = ((0.0, -1.5, 0.0, -2.95, 0.0, 1.6, 0.785),)


class AdapterError(VLMimicError):
    """A step cannot be adapted or executed (reported as a failed step, never raised out of the adapter)."""


# --- state ------------------------------------------------------------------------------------------


def _merge(a: dict | None, b: dict | None) -> dict:
    out = dict(a or {})
    out.update(b or {})
    return out


class AdapterState(TypedDict, total=False):
    step: dict  # StepBinding dump
    run_id: str | None
    approved: Annotated[dict[str, bool], _merge]
    attempt: int  # executions so far
    adapt_rounds: int
    review_rounds: int
    revision: dict  # accumulated Revision dump
    revisions: Annotated[list[dict], operator.add]
    excluded: list[list[int]]  # (region, cell) grasp cells already tried
    instance: dict | None  # what will be executed (JSON summary)
    facts: dict | None  # ExecutionFacts dump of the last attempt
    verdict: str  # "" | "achieved" | "retry" | "failed"
    message: str
    timings: dict[str, float]
    result: dict


@dataclass
class _Held:
    """The object in the gripper, as the adapter grasped it."""

    name: str
    T_object_gripper: np.ndarray  # measured at the grasp: inv(T_world_object) · T_world_gripper
    T_world_object: np.ndarray  # where the object was when grasped
    grasp_skill: str = ""
    width: float = 0.0
    size: tuple[float, float, float] | None = None  # its bbox as seen before the hand hid part of it


@dataclass
class _Live:
    """Per-step things that are not JSON (clouds, poses); rebuilt by perceive after a resume."""

    step: StepBinding
    skill: Skill
    scene: PerceivedScene
    grasp: GraspPlan | None = None
    trajectory: list[Pose] = field(default_factory=list)
    planned_ms: np.ndarray | None = None
    start_ms: np.ndarray | None = None
    T_slave_gripper: np.ndarray | None = None
    check: PathCheck | None = None
    before_support: float | None = None
    shape_ms: np.ndarray | None = None
    shape_args: tuple[dict, Revision] | None = None  # (scene sizes, revision) the shape was made with
    T_wm: np.ndarray | None = None  # the master's frame the trajectory is written in (yaw fixed for a round one)


@dataclass
class _RunMemory:
    held: _Held | None = None
    frames: dict[str, PerceivedObject] = field(default_factory=dict)  # first unoccluded sighting per object
    # objects the arm put down: (frame where the hand let go of it, carried rigidly from its grasp, and
    # the bbox size it had when grasped)
    placed: dict[str, tuple[np.ndarray, tuple[float, float, float]]] = field(default_factory=dict)
    timings: list[dict[str, float]] = field(default_factory=list)  # per step: perception/adaptation/planning/motion


def run_memory(ctx: Any) -> _RunMemory:
    mem = getattr(ctx, "_adapter_memory", None)
    if mem is None:
        mem = _RunMemory()
        ctx._adapter_memory = mem
    return mem


def _rev(state: AdapterState) -> Revision:
    return Revision.model_validate(state.get("revision") or {})


def _combine(a: Revision, b: Revision) -> Revision:
    """Apply revision b on top of the accumulated a."""
    return Revision(
        grasp_offset=tuple(float(x + y) for x, y in zip(a.grasp_offset, b.grasp_offset, strict=True)),
        next_grasp_candidate=b.next_grasp_candidate,
        approach=b.approach if b.approach is not None else a.approach,
        trajectory_scale=float(np.clip(a.trajectory_scale * b.trajectory_scale, 0.2, 3.0)),
        angle_scale=float(np.clip(a.angle_scale * b.angle_scale, 0.2, 3.0)),
        lift_m=float(np.clip(a.lift_m + b.lift_m, -0.1, 0.2)),
        grasp_force_scale=float(np.clip(a.grasp_force_scale * b.grasp_force_scale, 0.1, 1.75)),
        note=b.note,
    )


# --- the adapter -------------------------------------------------------------------------------------


class StepAdapter:
    """The nodes of the adapter subgraph, bound to a run's context."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.live: dict[str, _Live] = {}
        self.memo = run_memory(ctx)

    # --- helpers ---------------------------------------------------------------------------------
    def _key(self, state: AdapterState) -> str:
        return f"{state.get('run_id') or ''}:{state['step']['index']}"

    def _event(self, kind: str, **fields: Any) -> None:
        if self.ctx.tracer is not None:
            self.ctx.tracer.event(kind, **fields)

    def _say(self, text: str) -> None:
        if self.ctx.tracer is not None:
            self.ctx.tracer.say("adapter", text)

    def _idle(self, seconds: float) -> None:
        w = self.ctx.world
        if w is not None:
            w.step(max(1, int(round(seconds / w.timestep))))
        else:
            time.sleep(min(seconds, 0.5))

    def _rounds(self, name: str, default: int) -> int:
        cfg = getattr(self.ctx, "config", None)
        return int(getattr(cfg, name, default)) if cfg is not None else default

    def _fail(self, state: AdapterState, message: str, **fields: Any) -> dict:
        self._stop_arm()
        self._event("adapter_error", step=state["step"]["index"], message=message, **fields)
        self._say(f"step failed: {message}")
        return {"verdict": "failed", "message": message}

    def _stop_arm(self) -> None:
        robot = self.ctx.robot
        if robot is None:
            return
        try:
            robot.stop()
        except Exception as e:  # noqa: BLE001 - stopping must not raise over the real failure
            self._event("adapter_error", message=f"stop() failed: {type(e).__name__}: {e}")

    def _segmenter(self) -> Any:
        from tools.perception.segmenters import make_segmenter

        return make_segmenter(self.ctx.settings.perception, source=getattr(self.ctx.camera, "name", ""))

    def _perceive(self, names: list[str], parents: dict[str, str], required: list[str] | None = None) -> PerceivedScene:
        if self.ctx.camera is None:
            raise AdapterError("no camera in this run: the adapter cannot see the scene")
        frame = self.ctx.camera.capture()
        first = not self.memo.frames  # the run's first look: remember every object while the view is clear
        scene = perceive(frame, names, self._segmenter(), parents=parents, all_objects=first)
        unseen = [n for n in (required or []) if n in scene.missing and n not in self.memo.frames]
        if unseen and self._clear_view(unseen):
            # the arm stood between the camera and the object: look again with the arm out of the way
            frame = self.ctx.camera.capture()
            scene = perceive(frame, names, self._segmenter(), parents=parents, all_objects=first)
        # Objects that have not moved keep the frame of their first (unoccluded) sighting: the arm
        # in front of an object shrinks its visible cloud, and with it the bbox.
        # A cloud much smaller than the remembered one is an occluded view of the same object (the arm
        # or a held object in front of it): its centre shifts towards the visible part, so it keeps the
        # remembered frame unless it is clearly somewhere else (its centre far off and its points
        # outside the remembered box: a strip of a pan under the brush that scrubs it is still the pan).
        for n, obj in list(scene.objects.items()):
            scene.objects[n] = obj = self._as_placed(obj)
            old = self.memo.frames.get(n)
            shift = np.linalg.norm(obj.T_world_object[:3, 3] - old.T_world_object[:3, 3]) if old is not None else 0.0
            occluded = old is not None and len(obj.points) < OCCLUDED_SHARE * len(old.points)
            if old is None:
                self.memo.frames[n] = obj
            elif shift < SAME_PLACE_M or (occluded and (shift < OCCLUDED_SHIFT_M or _within(obj.points, old))):
                scene.objects[n] = old
            else:
                self.memo.frames[n] = obj
        # an object hidden now (behind the arm, in the hand) keeps the frame it was last seen in
        for n in list(scene.missing):
            if n in self.memo.frames:
                scene.objects[n] = self.memo.frames[n]
                scene.missing.remove(n)
        return scene

    def _as_placed(self, obj: PerceivedObject) -> PerceivedObject:
        """An object the arm put down keeps the frame it was carried in, where the view agrees with it.

        The canonical frame of a footprint with no clear long side (a pan: a disc and a handle) is fitted
        differently from view to view (in a sink, its walls hide part of it), and its centre moves by
        centimetres with it: a grasp measured against one fit and a placement written in another put
        the object centimetres off (a pan set down half on the rack beside it). Where the arm let go
        of it, the object's frame is known from the grasp: the hand's pose times the grasp's offset.
        Its height is the one seen now (it drops onto its support); a view whose centre lies more than
        PLACED_AGREE_M away means the object moved since (it slid, something pushed it)."""
        rec = self.memo.placed.get(obj.name)
        if rec is None:
            return obj
        T_drop, size = rec
        T_seen = obj.T_world_object
        off = float(np.linalg.norm(T_seen[:2, 3] - T_drop[:2, 3]))
        if off > PLACED_AGREE_M or abs(float(T_drop[2, 2])) < 0.9:
            self.memo.placed.pop(obj.name, None)
            self._event("tool_result", tool="adapter", duration_s=0.0,
                        result=f"the {obj.name} is seen {off * 100:.1f} cm from where the hand let go of it: "
                               "it moved since; its frame is fitted to the view")
            return obj
        T = T_drop.copy()
        T[2, 3] = T_seen[2, 3] - 0.5 * float(obj.size[2]) + 0.5 * float(size[2])  # standing where it is seen
        d = obj.descriptor.model_copy(update={"T_world_object": Pose.from_matrix(T), "bbox_size": size})
        carried = obj.model_copy(update={"descriptor": d})
        if not _within(obj.points, carried, margin=0.015, share=0.97):
            # what is seen sticks out of the box it was put down in: it was pushed or turned since
            self.memo.placed.pop(obj.name, None)
            self._event("tool_result", tool="adapter", duration_s=0.0,
                        result=f"the {obj.name} no longer fits the box it was put down in: it moved since; "
                               "its frame is fitted to the view")
            return obj
        return carried

    def _clear_view(self, unseen: list[str]) -> bool:
        """Fold the arm out of the camera's view (elbow back and up over the base) until `unseen`
        objects show; True if the arm moved. The arm in its working pose often hides an object near
        the robot from an overhead camera behind it."""
        robot = self.ctx.robot
        if robot is None or self.ctx.camera is None:
            return False
        q_now = np.asarray(robot.joint_positions(), dtype=float)
        moved = False
        for q in OBSERVE_QS:
            q = np.array(q, dtype=float)
            q[6] = q_now[6]  # keep the wrist's twist (a held object stays as it is)
            try:
                r = robot.move_to_joints(q, speed_factor=APPROACH_SPEED)
            except VLMimicError as e:  # refused by the safety layer: look from where the arm is
                self._event("tool_result", tool="adapter", duration_s=0.0,
                            result=f"clearing the camera's view of {unseen}: refused ({e})")
                continue
            moved = True
            self._event("tool_result", tool="adapter", result=f"clearing the camera's view of {unseen}: "
                        f"arm to {np.round(q, 2).tolist()} ({r.status.value})", duration_s=0.0)
            if not r.ok:
                continue
            self._idle(0.1)
            seg = perceive(self.ctx.camera.capture(), unseen, self._segmenter())
            if not [n for n in unseen if n in seg.missing]:
                break
        return moved

    def _checker(self, live: _Live, allowed: list[str], hand_only: list[str] | None = None) -> CollisionChecker:
        w = self.ctx.world
        if w is not None and getattr(w, "model", None) is not None:
            return MujocoCollisionChecker(w.model, w.data, allowed_bodies=allowed, hand_only_bodies=hand_only or [])
        return PointCloudCollisionChecker(live.scene.cloud_without(exclude=allowed))

    def _ensure_live(self, state: AdapterState) -> _Live | None:
        """The step's live objects; after a resume (a fresh process) perceive and plan again."""
        live = self.live.get(self._key(state))
        if live is not None:
            return live
        self._event("tool_result", tool="adapter", result="resumed: perceiving and planning the step again",
                    duration_s=0.0)
        if self.perceive_node(state).get("verdict") == "failed":
            return None
        live = self.live.get(self._key(state))
        if live is not None:
            self._plan(live, state, _rev(state), [list(e) for e in state.get("excluded") or []])
        return live

    # --- node: perceive --------------------------------------------------------------------------
    def perceive_node(self, state: AdapterState) -> dict:
        step = StepBinding.model_validate(state["step"])
        t0 = time.perf_counter()
        reset: dict[str, Any] = {"attempt": 0, "adapt_rounds": 0, "review_rounds": 0, "revision": {},
                                 "excluded": [], "instance": None, "facts": None, "verdict": "", "message": "",
                                 "timings": {}}
        if self.ctx.robot is None:
            return {**reset, **self._fail(state, "no robot in this run: the adapter cannot act")}
        mem = self.ctx.memory
        skill = mem.get_skill(step.skill_id) if (mem is not None and step.skill_id) else None
        if skill is None:
            return {**reset, **self._fail(state, f"no skill {step.skill_id!r} in memory for step {step.text!r}")}
        master = step.master or skill.master.name
        slave = step.slave if step.slave is not None else (skill.slave.name if skill.slave else None)
        names = [master] + ([slave] if slave and slave != HAND else [])
        # a slave in the gripper may be hidden by it: only the master must be seen then
        held = self.memo.held
        required = [master] if (held is not None and held.name == slave) else names
        parents = {}
        if skill.master.parent:
            parents[master] = skill.master.parent
        if skill.slave is not None and skill.slave.parent and slave:
            parents[slave] = skill.slave.parent
        try:
            scene = self._perceive(names, parents, required)
            scene.require(required)
        except VLMimicError as e:
            return {**reset, **self._fail(state, str(e), during="perceive")}
        except Exception as e:  # noqa: BLE001 - a camera fault is a failed step, not a crash
            return {**reset, **self._fail(state, f"perception failed: {type(e).__name__}: {e}", during="perceive")}
        step = step.model_copy(update={"master": master, "slave": slave})
        self.live[self._key(state)] = _Live(step=step, skill=skill, scene=scene)
        dt = time.perf_counter() - t0
        seen = ", ".join(f"{n} {tuple(round(v, 3) for v in o.descriptor.bbox_size)}" for n, o in scene.objects.items()
                         if n in names)
        self._event("tool_result", tool="perceive", result={"objects": seen, "seconds": round(dt, 3)},
                    duration_s=round(dt, 4))
        return {**reset, "step": step.model_dump(mode="json"), "timings": {"perception_s": dt}}

    # --- instantiation (used by compare and by review's re-plan) ----------------------------------
    def _plan_grasp(self, live: _Live, rev: Revision, excluded: list[list[int]], seed: int) -> str:
        skill, robot = live.skill, self.ctx.robot
        assert skill.grasp is not None
        obj = live.scene.objects[live.step.master or skill.master.name]
        ee = robot.ee_pose().matrix()
        # the learned regions and closing axis are written in the demonstrated object's frame: turn the
        # perceived frame so that its sides correspond to the demonstrated ones (long side to long side)
        T_wo, size = match_demo_frame(obj.T_world_object, obj.size, skill.master.bbox_size)
        free = not skill.master.parent

        def sample(constraint: Any) -> list[GraspPlan]:
            cs = grasp_candidates(constraint, T_wo, size, n=N_CANDIDATES, seed=seed, revision=rev,
                                  exclude=[tuple(e) for e in excluded], prefer_y_world=ee[:3, 1],
                                  edges_world=obj.footprint_edges(), floor_z=self._grasp_floor(live, obj))
            # a free object: centre the fingers on what they close around
            # (across the part they take: a handle, not at a slant)
            if not free:
                return cs
            return [centre_between_fingers(close_across_section(c, obj.points), obj.points) for c in cs]

        cands = sample(skill.grasp)
        if not cands:
            live.grasp, live.check = None, None
            return "every grasp cell of the learned regions was tried"
        if free and len(obj.points):
            cands = self._on_material(cands, obj, sample, skill.grasp)
        checker = self._checker(live, [obj.name])
        q0 = robot.joint_positions()
        checks = [check_path(c.approach_path(), q0, checker, widths=[0.08, 0.08]) for c in cands]
        order = rank(checks)
        best = order[0]
        nxt = self._next_use(live)
        if nxt is not None and checks[best].ok:
            # the object is taken in order to be used: prefer a grasp from which the next step's motion
            # is feasible too (a cup must tilt without running the wrist into its limit); a round
            # object may be taken at any twist about the approach
            # (quarter turns: also right for a square block, whose faces the fingers must close on)
            # and any object at either of the two twists of a parallel gripper (the fingers are the same
            # either way; the wrist, 180° apart, is not: one of them may run into its limit while carrying)
            twists = [k * np.pi / 2 for k in range(4)] if is_round(size, T_wo) else [0.0, np.pi]
            tried: list[tuple[float, int, GraspPlan, PathCheck]] = []
            for i in [j for j in order if checks[j].ok]:
                for a in twists:
                    c = twist_grasp(cands[i], a) if a else cands[i]
                    ck = checks[i] if not a else check_path(c.approach_path(), q0, checker, widths=[0.08, 0.08])
                    if not ck.ok:
                        continue
                    use = self._use_check(live, obj, c, nxt, ck)
                    tried.append((use, len(tried), c, ck))
                    if use >= 1.0:
                        break
                if tried and max(t[0] for t in tried) >= 1.0:
                    break
            if tried:
                use, _, g, ck = max(tried, key=lambda t: (t[0], -t[1]))
                self._event("tool_result", tool="adapter", duration_s=0.0,
                            result=f"grasp chosen for the next step ({nxt[1].subtask!r}): its motion "
                                   f"{use:.0%} feasible from this grasp ({len(tried)} grasp(s) looked at)")
                live.grasp, live.check = g, ck
                return ""
        live.grasp, live.check = cands[best], checks[best]
        return "" if checks[best].ok else checks[best].first_problem()

    def _on_material(self, cands: list[GraspPlan], obj: PerceivedObject, sample: Any, constraint: Any
                     ) -> list[GraspPlan]:
        """Grasps whose fingers close on perceived material like the demonstrated one, those first.

        A grasp fits when enough points lie between its fingers and their extent across the closing
        axis is about the learned opening (a 2 cm handle, not a pan's 5 mm rim beside it). A canonical
        frame fitted to a footprint that is not a box (a pan: a disc and a handle) may come out tilted
        the other way than in the demonstrations, which mirrors where the learned region lies in it:
        when no candidate fits, the regions reflected through the frame's mid-planes are tried and the
        reflection with the best fitting grasps wins (else the one with most material)."""
        width = float(getattr(constraint, "width", 0.0) or 0.0)

        def fit(c: GraspPlan) -> tuple[int, int]:
            n, extent = material_between_fingers(c, obj.points)
            good = n >= MIN_MATERIAL_POINTS and extent is not None and \
                (width <= 0 or 0.6 * width <= extent <= width + 0.02)
            return int(good), min(n, MIN_MATERIAL_POINTS)

        def best(cs: list[GraspPlan]) -> tuple[int, int]:
            return max(fit(c) for c in cs)

        top = best(cands)
        if top[0] == 0:
            chosen: tuple[tuple[int, int], list[GraspPlan], tuple[int, int]] = (top, cands, (1, 1))
            for sx, sy in ((1, -1), (-1, 1), (-1, -1)):
                alt = sample(mirror_grasp_constraint(constraint, sx, sy))
                if alt and best(alt) > chosen[0]:
                    chosen = (best(alt), alt, (sx, sy))
            if chosen[2] != (1, 1) and chosen[0][1] >= MIN_MATERIAL_POINTS:
                self._event("tool_result", tool="adapter", duration_s=0.0,
                            result=f"no grasp in the learned region closes on the {obj.name} as demonstrated in its "
                                   f"perceived frame; the frame's mirror {chosen[2]} does"
                                   + ("" if chosen[0][0] else " (on the most material, not the demonstrated width)"))
                cands = chosen[1]
        return sorted(cands, key=lambda c: tuple(-v for v in fit(c)))

    def _next_use(self, live: _Live) -> tuple[Any, Skill] | None:
        """The plan's next manipulation that moves the object this grasp takes, with its skill."""
        mem = self.ctx.memory
        if mem is None:
            return None
        try:
            plan = mem.get_plan(live.skill.task)
        except Exception:  # noqa: BLE001 - no look-ahead without a plan
            return None
        if plan is None:
            return None
        names = {live.step.master, live.skill.master.name}
        for ps in plan.steps:
            if ps.index > live.step.index and ps.phase == Phase.manipulation and ps.slave in names:
                sk = mem.get_skill(ps.skill_id) if ps.skill_id else None
                return (ps, sk) if sk is not None and sk.manipulation is not None else None
            if ps.index > live.step.index and ps.phase == Phase.grasping:
                return None
        return None

    def _use_check(self, live: _Live, obj: PerceivedObject, g: GraspPlan, nxt: tuple[Any, Skill],
                   approach: PathCheck) -> float:
        """Share of the next step's gripper poses reachable without collision from grasp g."""
        ps, sk = nxt
        master = self.memo.frames.get(ps.master) or live.scene.objects.get(ps.master)
        if master is None:
            return 0.0
        T_wo = obj.T_world_object
        T_sg = invert_transform(T_wo) @ g.grasp.matrix()
        T_wm, m_size = self._master_frame(sk, master)
        try:
            c = compose_manipulation(sk, T_wm, m_size, T_wo, T_sg, tuple(obj.size),
                                     Revision(), g.grasp.matrix(), slave_round=is_round(obj.size, T_wo))
        except VLMimicError:
            return 0.0
        q = approach.q[-1] if approach.q else self.ctx.robot.joint_positions()
        ck = check_path(c.poses, q, self._checker(live, [obj.name, master.name], hand_only=[master.name]),
                        widths=g.width)
        return float(ck.score)

    def _master_frame(self, skill: Skill, master: PerceivedObject) -> tuple[np.ndarray, tuple[float, float, float]]:
        """The master's frame and size the skill's program is written in, read off the perceived one.

        A free master's canonical frame may come out with its sides swapped against the demonstrated
        one (a pan's footprint, a disc and a handle, has no clear long side), which stretches and turns
        a program written in bbox fractions: the frame is turned to match the demonstrated sides, and
        of it and its half turn the one that puts the demonstrated contact (the keypoints that lay over
        the demonstrated master) over the perceived master's points wins (the side of a pan its disc
        is on). Parts of fixtures and round masters keep the perceived frame."""
        T = master.T_world_object
        size = tuple(float(v) for v in master.size)
        m = skill.manipulation
        part = skill.slave is not None and bool(skill.slave.parent)
        if skill.master.parent or part or m is None or is_round(master.size, T):
            return T, size  # type: ignore[return-value]
        T1, size1 = match_demo_frame(T, master.size, skill.master.bbox_size)
        demo = np.array([p.position for p in m.keypoints], dtype=float).reshape(-1, 3)
        d_size = np.maximum(np.asarray(skill.master.bbox_size, dtype=float), 1e-6)
        over = demo[np.all(np.abs(demo[:, :2] / d_size[:2]) <= 0.5, axis=1)] / d_size if len(demo) else demo
        if len(over) == 0 or len(master.points) == 0:
            return T1, size1
        from scipy.spatial import cKDTree

        tree = cKDTree(np.asarray(master.points, dtype=float)[:, :2])
        half = np.diag([-1.0, -1.0, 1.0, 1.0])

        def score(Tv: np.ndarray) -> float:
            world = (Tv[:3, :3] @ (over * np.asarray(size1)).T).T + Tv[:3, 3]
            d, _ = tree.query(world[:, :2])
            return float(np.mean(d <= 0.02))

        s0, s1 = score(T1), score(T1 @ half)
        if s1 > s0 + 0.2:
            self._event("tool_result", tool="adapter", duration_s=0.0,
                        result=f"the {master.name}'s frame turned half a turn: the demonstrated contact lies over it "
                               f"{s1:.0%} (vs {s0:.0%})")
            return T1 @ half, size1
        return T1, size1

    def _grasp_floor(self, live: _Live, obj: PerceivedObject) -> float | None:
        """The lowest TCP height for grasping a free object from above: the lowest point seen on it
        (where it stands) plus the fingertips' reach below the TCP and a margin. None for a part of
        a fixture (a handle may sit low on purpose) or an unseen cloud."""
        if live.skill.master.parent or len(obj.points) == 0:
            return None
        return float(np.min(obj.points[:, 2])) + FINGERTIP_BELOW_TCP_M + FLOOR_MARGIN_M

    def _plan_manipulation(self, live: _Live, rev: Revision) -> str:
        skill, robot = live.skill, self.ctx.robot
        assert skill.manipulation is not None
        step = live.step
        master = live.scene.objects[step.master or skill.master.name]
        T_wm = master.T_world_object
        ee = robot.ee_pose().matrix()
        if step.slave in (None, HAND):
            # nothing held: the hand travels freely to where the demonstrated motion began
            T_sg = np.eye(4)
            T_ws = None
            slave_size = skill.slave.bbox_size if skill.slave else (0.08, 0.02, 0.1)
        else:
            held = self.memo.held
            if held is None or held.name != step.slave:
                if step.slave in live.scene.objects and robot.is_grasping():
                    obj = live.scene.objects[step.slave]
                    held = _Held(name=step.slave, T_object_gripper=invert_transform(obj.T_world_object) @ ee,
                                 T_world_object=obj.T_world_object)
                    self.memo.held = held
                else:
                    return f"the step needs the {step.slave} in the gripper, and the adapter has not grasped it"
            T_sg = held.T_object_gripper
            T_ws = ee @ invert_transform(T_sg)
            # its size as seen when it was grasped: in the hand, the fingers and the arm hide part of it
            # (a brush held by its handle looks half as tall), and the program's heights scale with it
            slave_obj = live.scene.objects.get(step.slave)
            slave_size = held.size if held.size is not None else \
                tuple(slave_obj.size) if slave_obj is not None else skill.slave.bbox_size  # type: ignore[union-attr]
        slave_round = T_ws is not None and step.slave in live.scene.objects \
            and is_round(np.asarray(slave_size, dtype=float), T_ws)
        T_wm0, m_size = self._master_frame(skill, master)
        c = compose_manipulation(skill, T_wm0, m_size, T_ws, T_sg, tuple(slave_size),
                                 rev, ee, slave_round=slave_round)
        T_wm, Ts, T_ms0, T_sg, poses = c.T_wm, c.Ts, c.T_ms0, c.T_sg, c.poses
        live.T_wm = T_wm
        # the adapted constraint's shape, from its learned start (what the compare looks at)
        live.shape_ms = c.shape_ms
        live.shape_args = ({"master": m_size, "slave": tuple(slave_size)}, rev)
        allowed = [n for n in (step.master, step.slave) if n and n != HAND]
        # the master may be touched by the hand (a door's handle, a plate under the fruit), not by the arm
        checker = self._checker(live, allowed, hand_only=[step.master or skill.master.name])
        width = float(robot.gripper_width())
        live.check = check_path(poses, robot.joint_positions(), checker, widths=width)
        live.trajectory, live.planned_ms, live.start_ms, live.T_slave_gripper = poses, Ts, T_ms0, T_sg
        return "" if live.check.ok else live.check.first_problem()

    def _plan(self, live: _Live, state: AdapterState, rev: Revision, excluded: list[list[int]]) -> str:
        try:
            if live.skill.phase == Phase.grasping:
                return self._plan_grasp(live, rev, excluded, seed=int(state["step"]["index"]))
            return self._plan_manipulation(live, rev)
        except VLMimicError as e:
            live.check = None
            return str(e)

    def _compare_question(self, live: _Live, k: int) -> CompareQuestion:
        skill, step = live.skill, live.step
        master = live.scene.objects[step.master or skill.master.name]
        q: dict[str, Any] = {
            "skill_id": skill.id, "subtask": skill.subtask, "phase": skill.phase, "round": k,
            "demo_master_size": skill.master.bbox_size,
            "scene_master_size": (match_demo_frame(master.T_world_object, master.size, skill.master.bbox_size)[1]
                                  if skill.phase == Phase.grasping else
                                  tuple(float(v) for v in (live.shape_args[0]["master"] if live.shape_args
                                                           else master.size))),
        }
        if live.check is not None:
            q["reachable"] = list(live.check.reachable)
            q["collision_free"] = list(live.check.collision_free)
        if skill.phase == Phase.grasping and live.grasp is not None:
            q["grasp_inside_object"] = live.grasp.inside_object
            q["grasp_in_region"] = live.grasp.in_region
            q["gripper_width_needed"] = skill.grasp.width if skill.grasp else None
        if skill.phase == Phase.manipulation and live.shape_ms is not None and skill.manipulation:
            demo = [tuple(float(v) for v in p.position) for p in skill.manipulation.keypoints]
            if demo:
                q["demo_keypoints"] = demo
                q["adapted_keypoints"] = [tuple(float(v) for v in p) for p in self._adapted_keypoints(live, demo)]
                q["sweep"] = is_oscillating_program(skill.manipulation.program)
        q["image_paths"] = self._renders(live, k)
        return CompareQuestion(**q)

    def _adapted_keypoints(self, live: _Live, demo: list[tuple[float, ...]]) -> np.ndarray:
        """The adapted program where it passes the demonstrated keypoints (same program time), in
        the scene's sizes and with the revision: the point-by-point counterpart of each keypoint."""
        skill = live.skill
        assert skill.manipulation is not None and live.shape_ms is not None
        if live.shape_args is None:
            return keypoints_of(live.shape_ms, len(demo))
        sizes, rev = live.shape_args
        demo_sizes = {"master": tuple(skill.master.bbox_size),
                      "slave": tuple(skill.slave.bbox_size) if skill.slave else sizes["slave"]}
        try:
            tk = keypoint_times(skill.manipulation, demo_sizes, demo)
            about = "contact" if live.step.slave in (None, HAND) else "start"
            return master_slave_trajectory(skill.manipulation, sizes, None, revision=rev, times=tk,
                                           scale_about=about)[:, :3, 3]
        except VLMimicError:
            return keypoints_of(live.shape_ms, len(demo))

    def _renders(self, live: _Live, k: int) -> list[str]:
        """Demonstrated vs adapted renders, for a reasoner that looks at images (not the offline one)."""
        reasoner = self.ctx.reasoner
        if getattr(reasoner, "name", "") == "offline" or self.ctx.run_dir is None:
            return []
        out = Path(self.ctx.run_dir) / "adapter"
        try:
            from tools.constraints.render import render_grasps, render_trajectory

            skill = live.skill
            if skill.phase == Phase.manipulation and live.shape_ms is not None and skill.manipulation:
                demo = np.array([p.position for p in skill.manipulation.keypoints])
                adapted = self._adapted_keypoints(live, [tuple(p) for p in demo]) if len(demo) else \
                    keypoints_of(live.shape_ms, 2)
                p = render_trajectory(skill.master.bbox_size, [demo, adapted],
                                      out / f"{skill.id}.round{k}.trajectory.png",
                                      title=f"{skill.subtask}: demonstrated vs adapted")
                return [str(p)]
            if live.grasp is not None and skill.grasp is not None:
                size = np.asarray(skill.master.bbox_size, dtype=float)
                g = live.grasp.T_object_gripper.matrix()
                # the adapted grasp (scaled to the demonstrated box) beside the learned regions' centres
                scene = live.scene.objects[live.step.master or skill.master.name].size
                pos = [g[:3, 3] / np.maximum(scene, 1e-6) * size]
                pos += [np.asarray(r.center) * size for r in skill.grasp.regions]
                appr = [g[:3, 2]] + [np.asarray(skill.grasp.approach)] * len(skill.grasp.regions)
                p = render_grasps(size, np.array(pos), np.array(appr), out / f"{skill.id}.round{k}.grasp.png",
                                  title=f"{skill.subtask}: adapted grasp (0) vs learned regions",
                                  groups=[0] + [1] * len(skill.grasp.regions))
                return [str(p)]
        except Exception as e:  # noqa: BLE001 - a render is an aid, not a requirement
            self._event("adapter_error", message=f"render failed: {type(e).__name__}: {e}")
        return []

    def _instance(self, live: _Live, rev: Revision) -> dict:
        inst: dict[str, Any] = {"revision": rev.model_dump(mode="json")}
        if live.check is not None:
            inst["score"] = round(live.check.score, 3)
        if live.grasp is not None and live.skill.phase == Phase.grasping:
            inst.update(region=live.grasp.region, cell=live.grasp.cell,
                        grasp=[round(float(v), 4) for v in live.grasp.grasp.position])
        if live.trajectory and live.skill.phase == Phase.manipulation:
            inst.update(n_poses=len(live.trajectory), target=[round(float(v), 4) for v in live.trajectory[-1].position])
        return inst

    # --- node: compare (before acting) -------------------------------------------------------------
    def compare_node(self, state: AdapterState) -> dict:
        live = self._ensure_live(state)
        if live is None:
            return self._fail(state, "the step's objects could not be perceived again")
        t0 = time.perf_counter()
        rev = _rev(state)
        excluded = [list(e) for e in state.get("excluded") or []]
        problem = self._plan(live, state, rev, excluded)
        plan_s = time.perf_counter() - t0
        rounds = self._rounds("adapter_rounds", 4)
        revisions: list[dict] = []
        k = 0
        while k < rounds:
            if live.check is None and problem:
                break
            try:
                answer = self.ctx.reasoner.compare(self._compare_question(live, k))
            except Exception as e:  # noqa: BLE001 - a reasoner outage fails the step before any motion
                return {"adapt_rounds": k, **self._fail(state, f"the reasoner could not compare: {e}",
                                                        during="compare")}
            conclusion = "acceptable" if answer.acceptable else "; ".join(answer.issues) or "revise"
            self._event("round", phase="compare", round=k + 1, step=state["step"]["index"], conclusion=conclusion,
                        acceptable=answer.acceptable, revision=answer.revision.model_dump(mode="json"))
            k += 1
            if answer.acceptable or answer.revision.is_identity():
                break
            if answer.revision.next_grasp_candidate and live.grasp is not None:
                excluded.append([live.grasp.region, live.grasp.cell])
            rev = _combine(rev, answer.revision)
            revisions.append(answer.revision.model_dump(mode="json"))
            problem = self._plan(live, state, rev, excluded)
        timings = dict(state.get("timings") or {})
        timings["adaptation_s"] = time.perf_counter() - t0 - plan_s
        timings["planning_s"] = plan_s
        update: dict[str, Any] = {"adapt_rounds": k, "revision": rev.model_dump(mode="json"), "excluded": excluded,
                                  "revisions": revisions, "timings": timings}
        if live.check is None or not live.check.ok:
            why = problem or "no feasible instance"
            return {**update, **self._fail(state, f"cannot execute {live.skill.subtask!r}: {why}", during="compare")}
        update["instance"] = self._instance(live, rev)
        return update

    # --- node: execute ------------------------------------------------------------------------------
    def execute_node(self, state: AdapterState) -> dict:
        live = self._ensure_live(state)
        if live is None:
            return self._fail(state, "the step's objects could not be perceived again")
        t0 = time.perf_counter()
        rev = _rev(state)
        try:
            if live.skill.phase == Phase.grasping:
                facts = self._execute_grasp(live, rev)
            else:
                facts = self._execute_manipulation(live, rev)
        except Exception as e:  # noqa: BLE001 - a robot fault mid-motion ends the step, never the run
            self._stop_arm()
            facts = ExecutionFacts(phase=live.skill.phase, motion_status="fault",
                                   message=f"robot fault: {type(e).__name__}: {e}")
            self._event("adapter_error", step=state["step"]["index"], message=facts.message, during="execute")
        timings = dict(state.get("timings") or {})
        timings["motion_s"] = timings.get("motion_s", 0.0) + time.perf_counter() - t0
        return {"facts": facts.model_dump(mode="json"), "attempt": int(state.get("attempt") or 0) + 1,
                "timings": timings}

    def _move(self, poses: list[Pose], speed: float) -> Any:
        return self.ctx.robot.follow_poses(poses, speed_factor=speed)

    def _execute_grasp(self, live: _Live, rev: Revision) -> ExecutionFacts:
        robot, g = self.ctx.robot, live.grasp
        assert g is not None
        if robot.is_grasping():
            robot.open_gripper(0.08)
            self.memo.held = None
        robot.open_gripper(0.08)
        r = self._move([g.pregrasp], APPROACH_SPEED)
        if not r.ok:
            return ExecutionFacts(phase=Phase.grasping, motion_status=r.status.value, message=r.message)
        r = self._move([g.grasp], CONTACT_SPEED)
        if not r.ok:
            self._move([g.pregrasp], APPROACH_SPEED)
            return ExecutionFacts(phase=Phase.grasping, motion_status=r.status.value, message=r.message)
        force = float(np.clip(GRASP_FORCE_N * rev.grasp_force_scale, 5.0, 70.0))
        res = robot.grasp(width=g.width, force=force, epsilon_inner=max(g.width - 0.001, 0.0), epsilon_outer=0.08)
        verdict = verify_grasp(res.success, robot.gripper_width(), robot.is_grasping(), g.width)
        if not verdict.held:
            robot.open_gripper(0.08)
            self._move([g.pregrasp], APPROACH_SPEED)
            return ExecutionFacts(phase=Phase.grasping, motion_status="done", grasp_closed_on_object=False,
                                  gripper_width_after=verdict.width, object_held_at_end=False, message=verdict.message)
        obj = live.scene.objects[live.step.master or live.skill.master.name]
        ee = robot.ee_pose().matrix()
        self.memo.placed.pop(obj.name, None)
        self.memo.held = _Held(name=obj.name, T_object_gripper=invert_transform(obj.T_world_object) @ ee,
                               T_world_object=obj.T_world_object, grasp_skill=live.skill.id, width=verdict.width,
                               size=tuple(float(v) for v in obj.size))  # type: ignore[arg-type]
        return ExecutionFacts(phase=Phase.grasping, motion_status="done", grasp_closed_on_object=True,
                              gripper_width_after=verdict.width, object_held_at_end=True, message=verdict.message)

    def _regrasp(self, live: _Live) -> str:
        """Take the slave again the way it was taken before (after a slip or a release)."""
        held = self.memo.held
        robot = self.ctx.robot
        name = live.step.slave
        if held is None or held.name != name or name not in live.scene.objects:
            return f"the {name} is not in the gripper and there is no earlier grasp of it to repeat"
        scene = self._perceive([name], {})
        if name not in scene.objects:
            return f"the {name} is no longer visible"
        T_wo = scene.objects[name].T_world_object
        if np.linalg.norm(T_wo[:3, 3] - held.T_world_object[:3, 3]) < SAME_PLACE_M:
            T_wo = held.T_world_object
        T_wg = T_wo @ held.T_object_gripper
        grasp = Pose.from_matrix(T_wg)
        pre = retreat_pose(grasp, 0.08, 0.0)
        robot.open_gripper(0.08)
        for p, s in ((pre, APPROACH_SPEED), (grasp, CONTACT_SPEED)):
            r = self._move([p], s)
            if not r.ok:
                return f"re-grasp motion {r.status.value}: {r.message}"
        res = robot.grasp(width=held.width, force=GRASP_FORCE_N, epsilon_inner=max(held.width - 0.001, 0.0),
                          epsilon_outer=0.08)
        v = verify_grasp(res.success, robot.gripper_width(), robot.is_grasping())
        if not v.held:
            robot.open_gripper(0.08)
            self._move([pre], APPROACH_SPEED)
            return f"re-grasp missed: {v.message}"
        held.T_world_object = T_wo
        held.T_object_gripper = invert_transform(T_wo) @ robot.ee_pose().matrix()
        return ""

    def _execute_manipulation(self, live: _Live, rev: Revision) -> ExecutionFacts:
        robot, step = self.ctx.robot, live.step
        hand = step.slave in (None, HAND)
        if not hand and not robot.is_grasping():
            why = self._regrasp(live)
            if why:
                return ExecutionFacts(phase=Phase.manipulation, motion_status="done", grasp_closed_on_object=False,
                                      object_held_at_end=False, message=why)
            problem = self._plan_manipulation(live, rev)
            if problem:
                return ExecutionFacts(phase=Phase.manipulation, motion_status="unreachable", message=problem)
        if hand and robot.gripper_width() > 0.005:
            robot.open_gripper(0.0)  # press/push with the closed fingertips
        slave = live.scene.objects.get(step.slave or "")
        direction = None
        if slave is not None and live.planned_ms is not None:
            d = self._T_wm(live)[:3, :3] @ (live.planned_ms[-1][:3, 3] - live.planned_ms[0][:3, 3])
            if np.linalg.norm(d) > 1e-6:
                direction = d / np.linalg.norm(d)
                live.before_support = float(np.max(slave.points @ direction))
        r = self._move(live.trajectory, HELD_SPEED)
        ee_end = robot.ee_pose().matrix()
        held_end = None if hand else bool(robot.is_grasping())
        facts = {"phase": Phase.manipulation, "motion_status": r.status.value, "object_held_at_end": held_end,
                 "message": r.message}
        assert live.planned_ms is not None and live.start_ms is not None and live.T_slave_gripper is not None
        master = live.scene.objects[step.master or live.skill.master.name]
        T_ms_end = None
        if hand or held_end:
            T_ms_end = relation(self._T_wm(live), ee_end @ invert_transform(live.T_slave_gripper))
        released = False
        # The plan's next step uses the held object again (carry the brush to the pan, then scrub):
        # it stays in the hand, where this motion left it.
        keep = bool(step.keep_holding) and not hand and bool(held_end)
        if not hand and not keep:
            if self._rests(live):
                robot.open_gripper(0.08)  # the grasp stays remembered: a later step may re-grasp the same way
                released = True
                held = self.memo.held
                part = live.skill.slave is not None and bool(live.skill.slave.parent)
                if held is not None and held.name == step.slave and held.size is not None and not part:
                    self.memo.placed[held.name] = (ee_end @ invert_transform(held.T_object_gripper), held.size)
            self._idle(SETTLE_S)
        if not keep:
            rr = self._move([retreat_pose(Pose.from_matrix(ee_end))], APPROACH_SPEED)
            if not rr.ok:
                facts["message"] = (facts["message"] + f"; retreat {rr.status.value}: {rr.message}").strip("; ")
        part = live.skill.slave is not None and bool(live.skill.slave.parent)
        if T_ms_end is None or (not hand and not held_end) or (not hand and not part and released):
            T_ms_end = self._measure_after(live, direction, placed=released and not part)
        placed = released and not part
        j = judge_motion(live.planned_ms, live.start_ms, T_ms_end, placement=placed,
                         end_tolerance_m=placement_tolerance(master.size) if placed else 0.03,
                         height_tolerance_m=placed_height_tolerance(slave.size if slave is not None else None),
                         sweep=not placed and is_oscillating_program(live.skill.manipulation.program)
                         if live.skill.manipulation else False)
        facts.update(expected_motion_m=j.expected_motion_m, achieved_motion_m=j.achieved_motion_m,
                     expected_rotation_deg=j.expected_rotation_deg, achieved_rotation_deg=j.achieved_rotation_deg,
                     subgoal_met=j.enough, message=(facts["message"] + "; " + j.message).strip("; "))
        return ExecutionFacts(**facts)

    def _T_wm(self, live: _Live) -> np.ndarray:
        """The master's frame the step's trajectory was planned in."""
        if live.T_wm is not None:
            return live.T_wm
        return live.scene.objects[live.step.master or live.skill.master.name].T_world_object

    def _rests(self, live: _Live) -> bool:
        """Release the slave where the motion ends? Yes for a part (drawer, door, knob) and for an object
        set down on/in the master; no for one still in the air (a cup mid-pour)."""
        skill, step = live.skill, live.step
        if skill.slave is not None and skill.slave.parent:
            return True
        assert live.planned_ms is not None
        master = live.scene.objects[step.master or skill.master.name]
        slave = live.scene.objects.get(step.slave or "")
        sz = float(slave.size[2]) if slave is not None else 0.05
        bottom = float(live.planned_ms[-1][2, 3]) - sz / 2
        return bottom <= float(master.size[2]) / 2 + 0.03

    def _measure_after(self, live: _Live, direction: np.ndarray | None, placed: bool = False) -> np.ndarray:
        """The slave's pose in the master frame, perceived after the attempt (arm retreated).

        An object just put down is measured with the arm out of the camera's view: the retreated arm
        often hides part of it (a pan's handle under the wrist), and a box fitted to what is left of it
        puts its centre centimetres away from where it lies."""
        step = live.step
        assert live.start_ms is not None
        try:
            if placed:
                self._clear_view([step.slave or ""])
            scene = perceive(self.ctx.camera.capture(), [step.slave], self._segmenter())
            if step.slave in scene.missing and self._clear_view([step.slave or ""]):
                # the retreated arm hides what it put down: look again with the arm out of the way
                scene = perceive(self.ctx.camera.capture(), [step.slave], self._segmenter())
        except Exception:  # noqa: BLE001 - nothing measured: no motion credited
            return live.start_ms
        obj = scene.objects.get(step.slave or "")
        if obj is None:
            return live.start_ms
        if placed:  # seen with the arm out of the way: the frame later (occluded) views are held to
            self.memo.frames[obj.name] = self._as_placed(obj)
        if live.skill.slave is not None and live.skill.slave.parent and direction is not None \
                and live.before_support is not None:
            # a part: its front moves with it even as more of it comes into view
            shift = float(np.max(obj.points @ direction)) - live.before_support
            d_master = self._T_wm(live)[:3, :3].T @ direction
            T = live.start_ms.copy()
            T[:3, 3] += d_master * shift
            assert live.planned_ms is not None
            full = float(np.linalg.norm(live.planned_ms[-1][:3, 3] - live.planned_ms[0][:3, 3]))
            if full > 1e-6:  # credit rotation in proportion to the displacement (arcs)
                from scipy.spatial.transform import Rotation as Rot

                rv = Rot.from_matrix(live.planned_ms[-1][:3, :3] @ live.start_ms[:3, :3].T).as_rotvec()
                T[:3, :3] = Rot.from_rotvec(rv * float(np.clip(shift / full, 0, 1.5))).as_matrix() @ T[:3, :3]
            return T
        # a placed object: its position (a symmetric object's yaw is not observable)
        T = live.planned_ms[-1].copy() if live.planned_ms is not None else live.start_ms.copy()
        T[:3, 3] = relation(self._T_wm(live), obj.T_world_object)[:3, 3]
        return T

    # --- node: review (after acting) ----------------------------------------------------------------
    def review_node(self, state: AdapterState) -> dict:
        live = self._ensure_live(state)
        facts = ExecutionFacts.model_validate(state.get("facts") or {"phase": "grasping", "motion_status": "fault"})
        if live is None:
            return self._fail(state, "the step's objects could not be perceived again")
        if live.skill.phase == Phase.grasping:
            ok = bool(facts.grasp_closed_on_object) and facts.motion_status == "done"
        else:
            ok = bool(facts.subgoal_met) and facts.motion_status in ("done", "collision", "stopped")
        k = int(state.get("review_rounds") or 0)
        self._record(live, state, facts, ok)
        if ok:
            self._event("round", phase="review", round=k, step=state["step"]["index"], conclusion="achieved",
                        facts=facts.model_dump(mode="json"))
            return {"verdict": "achieved", "message": facts.message or "done"}
        if facts.motion_status == "fault":
            self._event("round", phase="review", round=k, step=state["step"]["index"], conclusion="robot fault")
            return self._fail(state, facts.message or "robot fault")
        if k >= self._rounds("review_rounds", 2):
            self._event("round", phase="review", round=k, step=state["step"]["index"],
                        conclusion=f"failed, no review rounds left: {facts.message}")
            return self._fail(state, facts.message or "the step did not achieve its end state", during="review")
        previous = [Revision.model_validate(r) for r in state.get("revisions") or []]
        try:
            answer = self.ctx.reasoner.diagnose(DiagnoseQuestion(skill_id=live.skill.id, subtask=live.skill.subtask,
                                                                 round=k, facts=facts, previous=previous))
        except Exception as e:  # noqa: BLE001
            return self._fail(state, f"{facts.message}; the reasoner could not diagnose: {e}", during="review")
        self._event("round", phase="review", round=k + 1, step=state["step"]["index"],
                    conclusion=f"{answer.cause}: {answer.explanation}", give_up=answer.give_up,
                    revision=answer.revision.model_dump(mode="json"), facts=facts.model_dump(mode="json"))
        if answer.give_up:
            return {**self._fail(state, f"{facts.message}; the reasoner gives up ({answer.explanation})"),
                    "review_rounds": k + 1}
        excluded = [list(e) for e in state.get("excluded") or []]
        if answer.revision.next_grasp_candidate and live.grasp is not None:
            excluded.append([live.grasp.region, live.grasp.cell])
        rev = _combine(_rev(state), answer.revision)
        update = {"review_rounds": k + 1, "revision": rev.model_dump(mode="json"), "excluded": excluded,
                  "revisions": [answer.revision.model_dump(mode="json")]}
        if live.skill.phase == Phase.manipulation and live.step.slave not in (None, HAND) \
                and not self.ctx.robot.is_grasping():
            # the slave was let go (or slipped): execute re-grasps it, then plans from the new grasp
            return {**update, "verdict": "retry", "instance": {"revision": rev.model_dump(mode="json"),
                                                               "regrasp": live.step.slave}}
        problem = self._plan(live, state, rev, excluded)
        if live.check is None or not live.check.ok:
            # e.g. the drawer half-open: the remaining motion is checked again from where it is now
            return {**update, **self._fail(state, f"{facts.message}; revised instance not executable: {problem}")}
        return {**update, "verdict": "retry", "instance": self._instance(live, rev)}

    def _record(self, live: _Live, state: AdapterState, facts: ExecutionFacts, ok: bool) -> None:
        mem = self.ctx.memory
        if mem is None:
            return
        inst = state.get("instance") or {}
        info: dict[str, float | str | bool] = {"attempt": int(state.get("attempt") or 0),
                                               "motion_status": facts.motion_status}
        for key in ("region", "cell", "score"):
            if key in inst:
                info[key] = inst[key]
        rv = _rev(state)
        info.update(trajectory_scale=rv.trajectory_scale, angle_scale=rv.angle_scale, lift_m=rv.lift_m,
                    grasp_offset=",".join(f"{v:.3f}" for v in rv.grasp_offset))
        if facts.achieved_motion_m is not None:
            info["achieved_motion_m"] = round(float(facts.achieved_motion_m), 4)
        try:
            mem.record_outcome(Outcome(skill_id=live.skill.id, task=live.skill.task, success=ok,
                                       phase=live.skill.phase.value, message=facts.message[:300], facts=info,
                                       run_id=str(state.get("run_id") or "")))
        except Exception as e:  # noqa: BLE001 - a memory hiccup must not fail a step that worked
            self._event("adapter_error", message=f"could not record the outcome: {type(e).__name__}: {e}")

    # --- node: result -----------------------------------------------------------------------------
    def result_node(self, state: AdapterState) -> dict:
        verdict = state.get("verdict") or "failed"
        status = "achieved" if verdict == "achieved" else "failed"
        timings = {k: round(float(v), 4) for k, v in (state.get("timings") or {}).items()}
        self.memo.timings.append(timings)
        self._event("adapter_timing", step=state["step"]["index"], **timings)
        self.live.pop(self._key(state), None)
        res = StepResult(index=int(state["step"]["index"]), status=status,
                         adapt_rounds=int(state.get("adapt_rounds") or 0),
                         review_rounds=int(state.get("review_rounds") or 0), message=state.get("message") or "")
        return {"result": res.model_dump(mode="json")}


@dataclass
class Composed:
    """A manipulation instantiated in the world: the master frame used, T_master_slave(t), the start,
    the slave-to-gripper transform (yaw of a round slave fixed) and the gripper poses."""

    T_wm: np.ndarray
    Ts: np.ndarray
    T_ms0: np.ndarray
    T_sg: np.ndarray
    poses: list[Pose]
    shape_ms: np.ndarray


def compose_manipulation(skill: Skill, T_wm: np.ndarray, master_size: tuple, T_ws: np.ndarray | None,
                         T_sg: np.ndarray, slave_size: tuple, rev: Revision, ee: np.ndarray, *,
                         slave_round: bool = False) -> Composed:
    """T_world_gripper(t) = T_world_master · T_master_slave(t) · T_slave_gripper for a skill, started
    from the slave's pose now (T_ws; None: the hand, from the program's own start). The yaw of a round
    master (or slave) cannot be seen, so the one that matches the demonstrated start is taken."""
    assert skill.manipulation is not None
    sizes = {"master": master_size, "slave": slave_size}
    about = "start" if T_ws is not None else "contact"  # a free hand: stretch the approach, not the press
    shape = master_slave_trajectory(skill.manipulation, sizes, None, revision=rev,
                                    times=np.linspace(0.0, 1.0, N_SHAPE), scale_about=about)
    part = skill.slave is not None and bool(skill.slave.parent)  # a drawer, a door: frames fixed by the fixture
    if T_ws is not None and not part:
        if is_round(master_size, T_wm):
            T_wm = yaw_master_to_demo(T_wm, T_ws, shape[0])
        if slave_round:
            Rz = yaw_slave_to_demo(relation(T_wm, T_ws), shape[0])
            T_ws, T_sg = T_ws @ Rz, invert_transform(Rz) @ T_sg
    T_ms0 = relation(T_wm, T_ws) if T_ws is not None else None
    Ts = master_slave_trajectory(skill.manipulation, sizes, T_ms0, revision=rev, scale_about=about,
                                 relative=part and T_ms0 is not None)
    if T_ws is None:
        Ts = _twist_like(Ts, invert_transform(T_wm) @ ee)
        T_ms0 = Ts[0]
    return Composed(T_wm=T_wm, Ts=Ts, T_ms0=T_ms0, T_sg=T_sg, poses=world_trajectory(T_wm, Ts, T_sg), shape_ms=shape)


def _within(points: np.ndarray, obj: PerceivedObject, margin: float = 0.015, share: float = 0.9) -> bool:
    """Do (at least `share` of) `points` lie inside obj's box (its frame and size, plus `margin`)?"""
    if len(points) == 0:
        return False
    T = invert_transform(obj.T_world_object)
    local = np.asarray(points, dtype=float) @ T[:3, :3].T + T[:3, 3]
    inside = np.all(np.abs(local) <= np.asarray(obj.size, dtype=float) / 2 + margin, axis=1)
    return float(np.mean(inside)) >= share


# --- the subgraph ----------------------------------------------------------------------------------


def _twist_like(Ts: np.ndarray, T_ref: np.ndarray) -> np.ndarray:
    """Turn each pose 180 deg about its own z when that brings its y nearer the reference's y (a
    parallel gripper is the same either way; the wrist is not)."""
    out = Ts.copy()
    if float(Ts[0][:3, 1] @ T_ref[:3, 1]) < 0:
        out[:, :3, :3] = Ts[:, :3, :3] @ np.diag([-1.0, -1.0, 1.0])
    return out


def _after_perceive(state: AdapterState) -> str:
    return "result" if state.get("verdict") == "failed" else "compare"


def _after_compare(state: AdapterState) -> str:
    return "result" if state.get("verdict") == "failed" else "approve"


def _after_review(state: AdapterState) -> str:
    return "approve" if state.get("verdict") == "retry" else "result"


def _after_approve(key: Any) -> Any:
    def route(state: AdapterState) -> str:
        return "execute" if (state.get("approved") or {}).get(key(state), False) else "refused"

    return route


def build_adapter_graph(ctx: Any, *, checkpointer: Any = None) -> Any:
    """The compiled adapter subgraph: {"step": StepBinding dump, "run_id"} -> {"result": StepResult dump}."""
    from agents.graph import make_approval_node

    a = StepAdapter(ctx)

    def key(state: AdapterState) -> str:
        return f"step-{state['step']['index']}.try-{int(state.get('attempt') or 0)}"

    def describe(state: AdapterState) -> str:
        inst = state.get("instance") or {}
        target = inst.get("grasp") or inst.get("target")
        return f"{state['step'].get('text', '')!r} (attempt {int(state.get('attempt') or 0) + 1}, to {target})"

    def refused(state: AdapterState) -> dict:
        return {"verdict": "failed", "message": "the operator did not approve the motion"}

    g = StateGraph(AdapterState)
    g.add_node("perceive", a.perceive_node)
    g.add_node("compare", a.compare_node)
    approve = make_approval_node(ctx, key, describe)
    g.add_node("approve", lambda state: approve(state))  # the adapter's state schema, not the outer graph's
    g.add_node("refused", refused)
    g.add_node("execute", a.execute_node)
    g.add_node("review", a.review_node)
    g.add_node("result", a.result_node)
    g.add_edge(START, "perceive")
    g.add_conditional_edges("perceive", _after_perceive, ["compare", "result"])
    g.add_conditional_edges("compare", _after_compare, ["approve", "result"])
    g.add_conditional_edges("approve", _after_approve(key), {"execute": "execute", "refused": "refused"})
    g.add_edge("refused", "result")
    g.add_edge("execute", "review")
    g.add_conditional_edges("review", _after_review, ["approve", "result"])
    g.add_edge("result", END)
    return g.compile(checkpointer=checkpointer)


def run_step(step: StepBinding, ctx: Any) -> StepResult:
    """One step without the outer graph (bench, scripts): the same subgraph, no checkpointer."""
    from agents.trace import use_tracer

    graph = getattr(ctx, "_adapter_graph", None)
    if graph is None:
        graph = build_adapter_graph(ctx)
        ctx._adapter_graph = graph
    inp = {"step": step.model_dump(mode="json"), "run_id": getattr(getattr(ctx, "config", None), "run_id", "")}
    if ctx.tracer is not None:
        with use_tracer(ctx.tracer):
            out = graph.invoke(inp)
    else:
        out = graph.invoke(inp)
    return StepResult.model_validate(out["result"])


def step_timings(ctx: Any) -> list[dict[str, float]]:
    """Per-step timings of this run so far: perception_s, adaptation_s, planning_s, motion_s."""
    return list(run_memory(ctx).timings)


__all__ = ["AdapterError", "StepAdapter", "build_adapter_graph", "run_step", "step_timings"]
