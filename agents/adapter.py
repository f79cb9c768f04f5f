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

Where the parts live: the nodes and the subgraph here; state, run memory and tuning constants in
agents/adapter_state.py; trajectory composition in agents/adapter_compose.py; StepAdapter's helpers in
agents/adapter_base.py, adapter_perception.py, adapter_planning.py and adapter_execution.py (one
class each, each built on the one before).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from langgraph.graph import END, START, StateGraph

from agents.adapter_compose import Composed, _twist_like, _within, compose_manipulation  # noqa: F401 - re-exported
from agents.adapter_execution import AdapterExecution
from agents.adapter_state import (  # noqa: F401 - re-exported: tests, bench and callers import them from here
    APPROACH_SPEED,
    CONTACT_SPEED,
    FINGERTIP_BELOW_TCP_M,
    FLOOR_MARGIN_M,
    GRASP_FORCE_N,
    HELD_SPEED,
    MIN_MATERIAL_POINTS,
    N_CANDIDATES,
    N_SHAPE,
    OBSERVE_QS,
    OCCLUDED_SHARE,
    OCCLUDED_SHIFT_M,
    PLACED_AGREE_M,
    SAME_PLACE_M,
    SETTLE_S,
    AdapterError,
    AdapterState,
    _combine,
    _Held,
    _Live,
    _merge,
    _rev,
    _RunMemory,
    run_memory,
)
from agents.reasoning.questions import CompareQuestion, DiagnoseQuestion, ExecutionFacts, Revision
from agents.state import StepBinding, StepResult
from core.errors import VLMimicError
from core.grounding import HAND, Phase
from core.skills import Outcome
from tools.constraints.sweep import is_oscillating_program
from tools.execution.candidates import match_demo_frame
from tools.execution.manipulation import keypoint_times, keypoints_of, master_slave_trajectory

# --- the adapter -------------------------------------------------------------------------------------


class StepAdapter(AdapterExecution):
    """The nodes of the adapter subgraph, bound to a run's context."""

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
                if skill.slave is not None and live.shape_args:
                    q["demo_slave_size"] = tuple(float(v) for v in skill.slave.bbox_size)
                    q["scene_slave_size"] = tuple(float(v) for v in live.shape_args[0]["slave"])
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


# --- the subgraph ----------------------------------------------------------------------------------


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
