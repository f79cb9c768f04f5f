"""The agent graph (DESIGN §5): planner -> (grounder -> skill_learner)* -> adapter loop -> report.

    START -> planner --(demos to learn)--> grounder --(one demo per visit)--> ... -> skill_learner -> planner
             planner --(steps bound)--> approve -> adapter -> approve -> adapter ... -> report -> END
             planner --(needs demos / error)--> report

- Checkpoints: LangGraph `SqliteSaver` in `runs/<id>/checkpoints.sqlite`, one thread per run
  (thread_id = run id), durability "sync" so a killed process loses at most the node it was in.
  `resume_run()` rebuilds the context from run.json and continues the thread; in simulation the
  world is restored from the snapshot taken after the last finished step (`runs/<id>/sim/`).
- Approval: `make_approval_node` builds a node that, on the real robot (without `--yes`), calls
  `interrupt()` so the CLI asks the operator; in simulation it auto-approves (and says so in the
  trace). It is a node of its own because an interrupted node re-runs from its top on resume: no
  motion may happen before an `interrupt()` in the same node. The adapter subgraph puts one before
  each of its execute nodes (first try and review retries), so the outer `approve` node then only
  records that approval is delegated; with an adapter function (tests) the outer node asks per step.
- Non-serialisable things live in `RunContext` (robot, camera, world, reasoner, memory, tracer), never
  in the state.

Adapter contract (agents/adapter.py, issue 6 adapter engineer) — any one of, looked up in order:

1. `build_adapter_graph(ctx: RunContext) -> compiled LangGraph` taking `{"step": StepBinding dump,
   "run_id": str}` and returning a state with `"result"`: a StepResult dump (status achieved/failed,
   adapt_rounds, review_rounds, message). It is invoked inside our `adapter` node with our config,
   so it shares the run's checkpointer and may `interrupt()` for approval.
2. `run_step(step: StepBinding, ctx: RunContext) -> StepResult`.

What the adapter gets in `ctx`: `config.adapter_rounds` (<= 4 compare rounds) and
`config.review_rounds` (<= 2), `robot` (SafeRobot, every command traced), `camera` (RGB-D; in sim the
perfect segmenter's labels), `reasoner`, `memory` (SkillMemory: get_skill, record_outcome), `tracer`,
`run_dir` (write renders for the reasoner under it). In simulation `world` is there for stepping/idling
only; `task`/`params` are ground truth and must not steer the method (the report node scores with them).
The adapter records what it does through `ctx.tracer` (events "round" with phase compare|review,
round, conclusion — the live view shows them; reasoner calls reach the trace by themselves), writes
each skill's Outcome to memory, and moves the arm only through `ctx.robot`. Tests inject a fake
with `RunContext.adapter`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

# The pieces live in their own modules; their names stay importable from here.
from agents.graph_drive import create_run_dir as create_run_dir
from agents.graph_drive import drive as drive
from agents.graph_drive import summarise as summarise
from agents.graph_nodes import build_graph as build_graph
from agents.graph_nodes import make_approval_node as make_approval_node
from agents.run_context import AdapterFn as AdapterFn
from agents.run_context import Approver as Approver
from agents.run_context import RunContext as RunContext
from agents.run_context import make_context as make_context  # looked up here at call time: tests patch it
from agents.run_world import TracedRobot as TracedRobot  # re-exported: tests and bench wrap robots with it
from agents.state import RunConfig
from agents.trace import RunSummary, Tracer
from core.errors import ConfigError, VLMimicError


def run_goal(
    cfg: RunConfig,
    *,
    runs_root: Path | None = None,
    approver: Approver | None = None,
    context_factory: Callable[[RunConfig, Path], RunContext] | None = None,
    listeners: list[Callable[[dict], None]] | None = None,
) -> RunSummary:
    """Create runs/<id>/, build the context and run the graph to the end."""
    run_dir = create_run_dir(cfg, runs_root)
    factory = context_factory or make_context
    try:
        ctx = factory(cfg, run_dir)
    except BaseException as e:
        _record_setup_failure(cfg, run_dir, e)
        raise
    ctx.tracer.listeners.extend(listeners or [])
    try:
        return drive(ctx, approver=approver)
    finally:
        ctx.close()


def _record_setup_failure(cfg: RunConfig, run_dir: Path, e: BaseException) -> None:
    """The run could not even start (robot unreachable, bad option): say so in its folder."""
    msg = str(e) if isinstance(e, VLMimicError) else f"{type(e).__name__}: {e}"
    with Tracer(run_dir) as tracer:
        tracer.event("error", error=msg, during="setup")
        tracer.write_summary(RunSummary(run_id=cfg.run_id, goal=cfg.goal, scene=cfg.scene, variant=cfg.variant,
                                        seed=cfg.seed, reasoner=cfg.reasoner, robot=cfg.robot, status="error",
                                        outcome="error", message=msg, started_at=cfg.created_at,
                                        ended_at=time.time()))


def resume_run(
    ref: str | Path,
    *,
    runs_root: Path | None = None,
    approver: Approver | None = None,
    context_factory: Callable[[RunConfig, Path], RunContext] | None = None,
    listeners: list[Callable[[dict], None]] | None = None,
) -> RunSummary:
    """Finish a crashed or interrupted run from its last checkpoint."""
    from agents.runs import load_config, load_summary, resolve_run

    run_dir = resolve_run(ref, runs_root)
    cfg = load_config(run_dir)
    prev = load_summary(run_dir)
    if prev is not None and prev.status == "finished":
        raise ConfigError(f"run {cfg.run_id} finished already (outcome: {prev.outcome}); nothing to resume")
    factory = context_factory or make_context
    ctx = factory(cfg, run_dir)
    ctx.tracer.listeners.extend(listeners or [])
    try:
        return drive(ctx, resume=True, approver=approver)
    finally:
        ctx.close()
