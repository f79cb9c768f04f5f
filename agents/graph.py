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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from agents.run_world import TracedRobot as TracedRobot  # re-exported: tests and bench wrap robots with it
from agents.run_world import (
    build_sim,
    connect_real,
    restore_sim,
    snapshot_sim,
    stop_arm_on_interrupt,
)
from agents.state import (
    GraphState,
    RunConfig,
    StepBinding,
    StepResult,
    check_run_id,
    initial_state,
    results_of,
    steps_of,
)
from agents.trace import (
    CHECKPOINT_FILE,
    RUN_FILE,
    RunSummary,
    StepSummary,
    Tracer,
    scrub,
    token_totals,
    use_tracer,
)
from core.errors import ConfigError, VLMimicError
from core.settings import Settings, load_settings

AdapterFn = Callable[[StepBinding, "RunContext"], StepResult]
Approver = Callable[[dict], bool]


@dataclass
class RunContext:
    """The run's live objects. Built by `make_context`; tests build it with fakes at the edges."""

    config: RunConfig
    run_dir: Path
    tracer: Tracer
    settings: Settings = field(default_factory=load_settings)
    robot: Any = None  # tools.robot.protocols.Robot (wrapped: SafeRobot, traced)
    camera: Any = None  # tools.robot.protocols.Camera
    world: Any = None  # sim.world.SimWorld in simulation
    task: Any = None  # sim task (simulation only)
    params: Any = None  # sim.tasks.base.SceneParams (simulation only)
    subgoal_tracker: Any = None
    reasoner: Any = None
    memory: Any = None
    adapter: AdapterFn | None = None  # overrides agents.adapter (tests)
    closers: list[Callable[[], None]] = field(default_factory=list)
    sim_at: int | None = None  # the step the simulated world is at (None: freshly built)
    started_steps: set[int] = field(default_factory=set)

    def close(self) -> None:
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception:  # noqa: BLE001 - closing must not mask the run's own error
                pass
        self.closers.clear()


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


# --- running -----------------------------------------------------------------------------------


def create_run_dir(cfg: RunConfig, runs_root: Path | None = None) -> Path:
    root = Path(runs_root) if runs_root is not None else load_settings().runs_dir
    d = root / check_run_id(cfg.run_id)
    if (d / RUN_FILE).exists():
        raise ConfigError(f"{d}: a run with this id exists already (use `python main.py resume {cfg.run_id}`)")
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{RUN_FILE}.tmp"
    tmp.write_text(cfg.model_dump_json(indent=1))
    tmp.replace(d / RUN_FILE)
    return d


def summarise(ctx: RunContext, state: GraphState | None, status: str, error: str | None = None) -> RunSummary:
    """Build and write summary.json from the (last checkpointed) state and the trace."""
    from agents.trace import read_events

    state = state or {}
    events = read_events(ctx.run_dir)
    steps = steps_of(state) if state.get("steps") else []
    results = results_of(state) if state.get("results") else {}
    step_rows = []
    for s in steps:
        r = results.get(s.index, StepResult(index=s.index))
        step_rows.append(StepSummary(index=s.index, text=s.text, skill_id=s.skill_id, status=r.status,
                                     adapt_rounds=r.adapt_rounds, review_rounds=r.review_rounds,
                                     duration_s=round(r.duration_s, 3), message=r.message))
    timings: dict[str, float] = {}
    for ev in events:
        if ev.get("kind") == "node_end":
            timings[ev["node"]] = round(timings.get(ev["node"], 0.0) + float(ev.get("duration_s", 0.0)), 3)
    starts = [ev["wall"] for ev in events if ev.get("kind") == "run_start"]
    started = starts[0] if starts else ctx.config.created_at
    timings["total"] = round(time.time() - started, 3)
    outcome = state.get("outcome")
    if error is not None:
        outcome = "error"
    summary = RunSummary(
        run_id=ctx.config.run_id,
        goal=ctx.config.goal,
        scene=state.get("scene") or ctx.config.scene,
        variant=ctx.config.variant,
        seed=ctx.config.seed,
        reasoner=ctx.config.reasoner,
        robot=ctx.config.robot,
        status=status,
        outcome=outcome,
        achieved=outcome == "achieved",
        message=error or state.get("message", ""),
        steps=step_rows,
        subgoals=dict(state.get("subgoals") or {}),
        timings_s=timings,
        reasoner_calls=sum(1 for ev in events if ev.get("kind") == "reasoner_call"),
        tokens=token_totals(events),
        started_at=started,
        ended_at=time.time(),
    )
    if status in ("finished", "interrupted", "error") and ctx.config.record_video:
        video = ctx.tracer.write_video()
        if video is not None:
            summary.video = video.name
    ctx.tracer.write_summary(summary)
    return summary


def _thread(cfg: RunConfig) -> dict:
    return {"configurable": {"thread_id": cfg.run_id}, "recursion_limit": 200}


def drive(
    ctx: RunContext,
    *,
    resume: bool = False,
    approver: Approver | None = None,
) -> RunSummary:
    """Run (or resume) the graph to the end; writes summary.json; returns the summary.

    `approver(payload) -> bool` answers approval interrupts (the CLI asks the operator); without one
    an approval interrupt leaves the run paused ("interrupted") to be finished with `resume`.
    Ctrl-C stops the arm (SafeRobot.stop_on_interrupt when available) and leaves a resumable run.
    """
    cfg = ctx.config
    graph_state: GraphState | None = None
    with SqliteSaver.from_conn_string(str(ctx.run_dir / CHECKPOINT_FILE)) as saver:
        graph = build_graph(ctx).compile(checkpointer=saver)
        thread = _thread(cfg)
        snap = graph.get_state(thread)
        if resume:
            if not snap.values and not snap.next:
                inp: Any = initial_state(cfg)
                ctx.tracer.event("run_start", run_id=cfg.run_id, goal=cfg.goal, resumed=False)
            else:
                pending = [i.value for t in snap.tasks for i in (t.interrupts or ())]
                inp = None
                if pending and approver is not None:
                    inp = Command(resume=approver(pending[0]))
                ctx.tracer.event("run_start", run_id=cfg.run_id, goal=cfg.goal, resumed=True, next=list(snap.next))
        else:
            if snap.values:
                raise ConfigError(f"run {cfg.run_id} has checkpoints already; use resume")
            inp = initial_state(cfg)
            ctx.tracer.event("run_start", run_id=cfg.run_id, goal=cfg.goal, resumed=False,
                             config=cfg.model_dump(mode="json"))
        stop_ctx = stop_arm_on_interrupt(ctx)
        try:
            with stop_ctx:
                while True:
                    interrupts: list[Any] = []
                    for chunk in graph.stream(inp, thread, stream_mode="updates", durability="sync"):
                        if "__interrupt__" in chunk:
                            interrupts.extend(i.value for i in chunk["__interrupt__"])
                    if not interrupts:
                        break
                    ctx.tracer.event("interrupt", payload=interrupts[0])
                    if approver is None:
                        graph_state = graph.get_state(thread).values
                        ctx.tracer.event("run_end", status="interrupted", reason="waiting for approval")
                        return summarise(ctx, graph_state, "interrupted")
                    inp = Command(resume=approver(interrupts[0]))
        except KeyboardInterrupt:
            graph_state = graph.get_state(thread).values
            ctx.tracer.event("run_end", status="interrupted", reason="Ctrl-C; the arm was stopped")
            summarise(ctx, graph_state, "interrupted")
            raise
        except Exception as e:
            graph_state = graph.get_state(thread).values
            msg = f"{type(e).__name__}: {e}" if not isinstance(e, VLMimicError) else str(e)
            ctx.tracer.event("error", error=msg)
            ctx.tracer.event("run_end", status="error")
            summarise(ctx, graph_state, "error", error=msg)
            raise
        graph_state = graph.get_state(thread).values
    ctx.tracer.event("run_end", status="finished", outcome=graph_state.get("outcome"))
    return summarise(ctx, graph_state, "finished")


# --- building a run's context ------------------------------------------------------------------

def make_context(
    cfg: RunConfig, run_dir: Path, *, adapter: AdapterFn | None = None, settings: Settings | None = None
) -> RunContext:
    """Build the live objects of a run: tracer, reasoner, memory and the robot/camera (sim or real)."""
    tracer = Tracer(run_dir)
    ctx = RunContext(config=cfg, run_dir=run_dir, tracer=tracer, adapter=adapter,
                     settings=settings or load_settings())
    ctx.closers.append(tracer.close)
    try:
        ctx.reasoner = _make_reasoner(cfg, ctx.settings)
        ctx.memory = _open_memory(ctx.settings)
        ctx.closers.append(ctx.memory.close)
        if cfg.simulated:
            build_sim(ctx)
        else:
            connect_real(ctx)
    except BaseException:
        ctx.close()
        raise
    return ctx


def _make_reasoner(cfg: RunConfig, settings: Settings) -> Any:
    from agents.reasoning import make_reasoner

    # Reasoners report each ReasonerCall to agents.trace.current_tracer(); our nodes set it.
    return make_reasoner(cfg.reasoner, settings)


def _open_memory(settings: Settings) -> Any:
    from agents.planner import embedder
    from memory.store import open_memory

    return open_memory(settings, embedder=embedder())



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
