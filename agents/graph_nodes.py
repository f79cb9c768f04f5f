"""The agent graph's nodes, the routing between them and `build_graph` (contract: agents/graph.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from agents.run_context import RunContext
from agents.run_world import restore_sim, snapshot_sim
from agents.state import GraphState, StepBinding, StepResult, results_of, steps_of
from agents.trace import scrub, use_tracer
from core.errors import VLMimicError

# --- nodes -------------------------------------------------------------------------------------


def make_approval_node(
    ctx: RunContext,
    key: Callable[[GraphState], str],
    describe: Callable[[GraphState], str],
    delegated: Callable[[], bool] | None = None,
):
    """A node that asks before a real-robot motion; auto-approves in simulation or with --yes.

    Put it directly before the node that moves the arm. Its decision is stored under `key(state)`
    in state["approved"], so resuming after the interrupt does not ask twice. `delegated()` true: a
    later node asks before each motion itself (the adapter subgraph), so this one does not ask.
    """

    def approve(state: Any) -> dict:  # untyped on purpose: usable in any graph whose state has "approved"
        k = key(state)
        if k in (state.get("approved") or {}):
            return {}
        what = describe(state)
        if delegated is not None and delegated():
            decision, how = True, "delegated: the adapter asks before each of its motions"
        elif ctx.config.simulated:
            decision, how = True, "auto (simulation)"
        elif ctx.config.yes:
            decision, how = True, "--yes"
        else:
            decision = bool(interrupt({"kind": "approval", "key": k, "question": f"Move the real arm: {what}?"}))
            how = "operator"
        ctx.tracer.event("approval", key=k, what=what, approved=decision, by=how)
        return {"approved": {k: decision}}

    return approve


def _step_key(state: GraphState) -> str:
    return f"step-{state.get('step_index', 0)}"


def _step_text(state: GraphState) -> str:
    steps = steps_of(state)
    i = state.get("step_index", 0)
    return f"step {i + 1}/{len(steps)} '{steps[i].text}'" if i < len(steps) else "nothing"


def _node(ctx: RunContext, name: str, fn: Callable[[GraphState], dict]) -> Callable[[GraphState], dict]:
    def run(state: GraphState) -> dict:
        with use_tracer(ctx.tracer), ctx.tracer.node(name, step=state.get("step_index")):
            return scrub(fn(state))  # checkpoints hold the state: no secret may enter it

    run.__name__ = name
    return run


def _planner(ctx: RunContext) -> Callable[[GraphState], dict]:
    def plan(state: GraphState) -> dict:
        from agents.planner import plan_node

        return plan_node(state, ctx)

    return plan


def _grounder(ctx: RunContext) -> Callable[[GraphState], dict]:
    def ground(state: GraphState) -> dict:
        todo = list(state.get("to_ground") or [])
        if not todo:
            return {}
        demo = todo[0]
        from agents.grounder import ground as ground_demo

        t0 = time.time()
        ctx.tracer.event("tool_call", tool="ground", args={"demo": demo})
        try:
            gd = ground_demo(Path(demo), ctx.reasoner)
        except VLMimicError as e:  # one unusable demo does not sink the others
            ctx.tracer.event("tool_result", tool="ground", result={"demo": demo, "error": str(e)},
                             duration_s=round(time.time() - t0, 3))
            ctx.tracer.say("grounder", f"could not ground {Path(demo).name}, skipping it: {e}")
            return {"to_ground": todo[1:]}
        n_seg = len(gd.segments)
        ctx.tracer.event("tool_result", tool="ground", result={"demo": demo, "segments": n_seg},
                         duration_s=round(time.time() - t0, 3))
        ctx.tracer.say("grounder", f"grounded {Path(demo).name}: {n_seg} segments")
        return {"to_ground": todo[1:], "grounded": [*(state.get("grounded") or []), demo]}

    return ground


def _skill_learner(ctx: RunContext) -> Callable[[GraphState], dict]:
    def learn(state: GraphState) -> dict:
        from agents.planner import learn_demos

        demos = [Path(d) for d in state.get("grounded") or []]
        if not demos:
            raise VLMimicError("none of the demonstrations could be grounded; nothing to learn from")
        ctx.tracer.say("skill_learner", learn_demos(demos, ctx, goal=state.get("goal", "")))
        return {"learned": True}

    return learn


def _adapter(ctx: RunContext) -> Callable[[GraphState], dict]:
    sub: dict[str, Any] = {}

    def adapt(state: GraphState, config: Any = None) -> dict:
        steps = steps_of(state)
        i = state.get("step_index", 0)
        step = steps[i]
        t0 = time.time()
        if i not in ctx.started_steps:  # the node re-runs from its top after an approval interrupt
            ctx.started_steps.add(i)
            ctx.tracer.event("step_start", index=i, text=step.text, skill_id=step.skill_id,
                             master=step.master, slave=step.slave)
            ctx.tracer.say("adapter", f"step {i + 1}/{len(steps)}: {step.text}")
        if ctx.world is not None:
            restore_sim(ctx, i)
        result = _run_adapter(ctx, step, state, config, sub)
        result = result.model_copy(update={"index": i, "started_at": result.started_at or t0,
                                           "ended_at": result.ended_at or time.time()})
        subgoals = _subgoals_now(ctx)
        if subgoals:
            result = result.model_copy(update={"subgoals": subgoals})
        ctx.tracer.event("step_end", index=i, text=step.text, status=result.status,
                         adapt_rounds=result.adapt_rounds, review_rounds=result.review_rounds,
                         message=result.message, duration_s=round(result.duration_s, 3), subgoals=subgoals)
        if ctx.world is not None:
            snapshot_sim(ctx, i + 1)
        update: dict[str, Any] = {"results": {str(i): result.model_dump(mode="json")}, "step_index": i + 1}
        if subgoals:
            update["subgoals"] = subgoals
        if result.status != "achieved":
            update["outcome"] = "not_achieved"
            update["message"] = f"step {i + 1} '{step.text}' {result.status}: {result.message}".strip(": ")
        return update

    return adapt


def _adapter_asks(ctx: RunContext) -> bool:
    """The real adapter subgraph puts an approval node before each execution (review retries too)."""
    if ctx.adapter is not None:
        return False
    try:
        import agents.adapter as adapter_mod
    except ImportError:
        return False
    return hasattr(adapter_mod, "build_adapter_graph")


def _run_adapter(ctx: RunContext, step: StepBinding, state: GraphState, config: Any, sub: dict) -> StepResult:
    if ctx.adapter is not None:
        return ctx.adapter(step, ctx)
    try:
        import agents.adapter as adapter_mod  # noqa: PLC0415
    except ImportError as e:
        if e.name not in ("agents.adapter",):
            raise
        raise VLMimicError(
            "the adapter (agents/adapter.py) is not available yet; planning and learning ran, execution cannot"
        ) from None
    if hasattr(adapter_mod, "build_adapter_graph"):
        if "graph" not in sub:
            sub["graph"] = adapter_mod.build_adapter_graph(ctx)
        out = sub["graph"].invoke({"step": step.model_dump(mode="json"), "run_id": state.get("run_id")}, config)
        return StepResult.model_validate(out["result"])
    if hasattr(adapter_mod, "run_step"):
        return StepResult.model_validate(adapter_mod.run_step(step, ctx))
    raise VLMimicError("agents/adapter.py exposes neither build_adapter_graph(ctx) nor run_step(step, ctx)")


def _subgoals_now(ctx: RunContext) -> dict[str, bool]:
    tr = ctx.subgoal_tracker
    if tr is None:
        return {}
    return {str(k): v is not None for k, v in tr.met_at.items()}


def _report(ctx: RunContext) -> Callable[[GraphState], dict]:
    def report(state: GraphState) -> dict:
        outcome = state.get("outcome")
        message = state.get("message", "")
        results = results_of(state)
        steps = steps_of(state)
        if outcome is None:
            all_ok = bool(steps) and all(results.get(s.index, StepResult(index=s.index)).status == "achieved"
                                         for s in steps)
            outcome = "achieved" if all_ok else "not_achieved"
        judged = None
        if ctx.world is not None and ctx.task is not None and outcome in ("achieved", "not_achieved"):
            judged = bool(ctx.task.success(ctx.world, ctx.params))  # scoring only: ground truth in sim
            ctx.tracer.event("tool_result", tool="sim_success_check", result={"success": judged}, duration_s=0.0)
            if judged != (outcome == "achieved"):
                message = (message + " " if message else "") + (
                    "the simulator's success check says the goal is met" if judged
                    else "all steps reported success, but the simulator's success check says the goal is not met"
                )
            outcome = "achieved" if judged else "not_achieved"
        subgoals = {**(state.get("subgoals") or {}), **_subgoals_now(ctx)}
        ctx.tracer.say("report", f"outcome: {outcome}" + (f" ({message})" if message else ""))
        return {"outcome": outcome, "message": message, "subgoals": subgoals}

    return report


def _after_planner(state: GraphState) -> str:
    if state.get("outcome") is not None:
        return "report"
    if state.get("to_ground"):
        return "grounder"
    if state.get("steps"):
        return "approve"
    return "report"


def _after_grounder(state: GraphState) -> str:
    return "grounder" if state.get("to_ground") else "skill_learner"


def _after_approve(state: GraphState) -> str:
    return "adapter" if (state.get("approved") or {}).get(_step_key(state), False) else "refused"


def _refused(ctx: RunContext) -> Callable[[GraphState], dict]:
    def refused(state: GraphState) -> dict:
        i = state.get("step_index", 0)
        res = StepResult(index=i, status="refused", message="the operator did not approve the motion")
        return {"outcome": "refused", "message": f"step {i + 1} was not approved; the arm did not move",
                "results": {str(i): res.model_dump(mode="json")}}

    return refused


def _after_adapter(state: GraphState) -> str:
    if state.get("outcome") is not None:
        return "report"
    return "approve" if state.get("step_index", 0) < len(state.get("steps") or []) else "report"


def build_graph(ctx: RunContext) -> StateGraph:
    """The uncompiled graph; compile it with a checkpointer (see `open_graph`)."""
    g = StateGraph(GraphState)
    g.add_node("planner", _node(ctx, "planner", _planner(ctx)))
    g.add_node("grounder", _node(ctx, "grounder", _grounder(ctx)))
    g.add_node("skill_learner", _node(ctx, "skill_learner", _skill_learner(ctx)))
    g.add_node("approve", _node(ctx, "approve", make_approval_node(ctx, _step_key, _step_text,
                                                                   lambda: _adapter_asks(ctx))))
    g.add_node("refused", _node(ctx, "refused", _refused(ctx)))
    adapt = _adapter(ctx)

    def adapter_node(state: GraphState, config: RunnableConfig) -> dict:
        with use_tracer(ctx.tracer), ctx.tracer.node("adapter", step=state.get("step_index")):
            return scrub(adapt(state, config))

    g.add_node("adapter", adapter_node)
    g.add_node("report", _node(ctx, "report", _report(ctx)))
    g.add_edge(START, "planner")
    g.add_conditional_edges("planner", _after_planner, ["grounder", "approve", "report"])
    g.add_conditional_edges("grounder", _after_grounder, ["grounder", "skill_learner"])
    g.add_edge("skill_learner", "planner")
    g.add_conditional_edges("approve", _after_approve, {"adapter": "adapter", "refused": "refused"})
    g.add_edge("refused", "report")
    g.add_conditional_edges("adapter", _after_adapter, ["approve", "report"])
    g.add_edge("report", END)
    return g
