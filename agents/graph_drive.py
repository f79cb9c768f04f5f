"""Running the graph: the run folder, the checkpointed drive loop (run or resume) and summary.json."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from agents.graph_nodes import build_graph
from agents.run_context import Approver, RunContext
from agents.run_world import stop_arm_on_interrupt
from agents.state import GraphState, RunConfig, StepResult, check_run_id, initial_state, results_of, steps_of
from agents.trace import CHECKPOINT_FILE, RUN_FILE, RunSummary, StepSummary, token_totals
from core.errors import ConfigError, VLMimicError
from core.settings import load_settings

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
