"""The agent graph: planner -> steps -> adapter loop -> report, checkpoints, approval, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agents.graph import resume_run, run_goal
from agents.runs import list_runs, load_run
from agents.trace import read_events
from tests.agents.graph_helpers import (
    FakeAdapter,
    FakeArm,
    make_ctx_factory,
    make_memory,
    real_robot_config,
    seed_plan,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def mem_path(tmp_path: Path) -> Path:
    path = tmp_path / "memory.sqlite"
    with make_memory(path) as mem:
        seed_plan(mem)
    return path


def kinds(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir) if e["kind"] == kind]


def test_plan_from_memory_runs_every_step_after_approval(tmp_path: Path, mem_path: Path) -> None:
    arm, adapter = FakeArm(), FakeAdapter()
    asked: list[dict] = []
    summary = run_goal(real_robot_config("r1"), runs_root=tmp_path / "runs",
                       approver=lambda p: asked.append(p) or True,
                       context_factory=make_ctx_factory(mem_path, arm, adapter))
    assert summary.outcome == "achieved" and summary.status == "finished"
    assert [s.status for s in summary.steps] == ["achieved", "achieved"]
    assert [s.text for s in summary.steps] == ["grasp the block", "take hold of the box rim"]
    assert adapter.calls == [0, 1]
    assert len(asked) == 2 and "grasp the block" in asked[0]["question"]
    run = tmp_path / "runs" / "r1"
    ends = [(e["node"], e["status"]) for e in kinds(run, "node_end")]
    # the approval node stops at interrupt() and re-runs from its top once the operator answered
    ask = [("approve", "interrupted"), ("approve", "ok"), ("adapter", "ok")]
    assert ends == [("planner", "ok"), *ask, *ask, ("report", "ok")]
    approvals = kinds(run, "approval")
    assert [a["by"] for a in approvals] == ["operator", "operator"]
    # every arm command is in the trace, after its approval
    cmds = [e for e in read_events(run) if e["kind"] in ("approval", "robot_command") and e.get("status") != "started"]
    assert [e["kind"] for e in cmds[:3]] == ["approval", "robot_command", "robot_command"]
    assert (run / "checkpoints.sqlite").is_file()
    saved = json.loads((run / "summary.json").read_text())
    assert saved["outcome"] == "achieved" and saved["timings_s"]["adapter"] > 0


def test_refused_approval_moves_nothing(tmp_path: Path, mem_path: Path) -> None:
    arm = FakeArm()
    summary = run_goal(real_robot_config("r2"), runs_root=tmp_path / "runs", approver=lambda p: False,
                       context_factory=make_ctx_factory(mem_path, arm, FakeAdapter()))
    assert summary.outcome == "refused" and arm.log == []
    assert summary.steps[0].status == "refused"


def test_yes_skips_the_question(tmp_path: Path, mem_path: Path) -> None:
    def never(p: dict) -> bool:
        raise AssertionError("asked although --yes was given")

    summary = run_goal(real_robot_config("r3", yes=True), runs_root=tmp_path / "runs", approver=never,
                       context_factory=make_ctx_factory(mem_path, FakeArm(), FakeAdapter()))
    assert summary.outcome == "achieved"
    assert {a["by"] for a in kinds(tmp_path / "runs" / "r3", "approval")} == {"--yes"}


def test_failed_step_stops_the_loop(tmp_path: Path, mem_path: Path) -> None:
    adapter = FakeAdapter(fail_at=0)
    summary = run_goal(real_robot_config("r4", yes=True), runs_root=tmp_path / "runs",
                       context_factory=make_ctx_factory(mem_path, FakeArm(), adapter))
    assert summary.outcome == "not_achieved" and adapter.calls == [0]
    assert [s.status for s in summary.steps] == ["failed", "pending"]
    assert "slipped" in summary.message


def test_pending_approval_pauses_and_resume_asks_then_finishes(tmp_path: Path, mem_path: Path) -> None:
    arm, adapter = FakeArm(), FakeAdapter()
    factory = make_ctx_factory(mem_path, arm, adapter)
    paused = run_goal(real_robot_config("r5"), runs_root=tmp_path / "runs", approver=None, context_factory=factory)
    assert paused.status == "interrupted" and arm.log == []
    done = resume_run("r5", runs_root=tmp_path / "runs", approver=lambda p: True, context_factory=factory)
    assert done.outcome == "achieved" and adapter.calls == [0, 1]


def test_crash_inside_a_node_then_resume_to_completion(tmp_path: Path, mem_path: Path) -> None:
    arm, adapter = FakeArm(), FakeAdapter(crash_at=1)
    factory = make_ctx_factory(mem_path, arm, adapter)
    with pytest.raises(RuntimeError, match="injected crash"):
        run_goal(real_robot_config("r6", yes=True), runs_root=tmp_path / "runs", context_factory=factory)
    crashed = load_run("r6", tmp_path / "runs")
    assert crashed.summary is not None and crashed.summary.status == "error"
    done = resume_run("r6", runs_root=tmp_path / "runs", context_factory=factory)
    assert done.outcome == "achieved" and done.status == "finished"
    assert adapter.calls == [0, 1, 1], "step 1 is not repeated; step 2 re-runs from its top"
    assert [r.status for r in list_runs(tmp_path / "runs")] == ["finished"]


def test_killed_process_resumes_from_its_checkpoint(tmp_path: Path, mem_path: Path) -> None:
    code = f"""
import sys
from pathlib import Path
from agents.graph import run_goal
from tests.agents.graph_helpers import FakeAdapter, FakeArm, make_ctx_factory, real_robot_config
run_goal(real_robot_config("r7", yes=True), runs_root=Path({str(tmp_path / 'runs')!r}),
         context_factory=make_ctx_factory(Path({str(mem_path)!r}), FakeArm(), FakeAdapter(crash_at=1, hard=True)))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr[-2000:]
    run = tmp_path / "runs" / "r7"
    assert not (run / "summary.json").exists()
    adapter = FakeAdapter(crash_at=1, hard=True)  # the crash marker is on disk: it will not crash again
    done = resume_run("r7", runs_root=tmp_path / "runs",
                      context_factory=make_ctx_factory(mem_path, FakeArm(), adapter))
    assert done.outcome == "achieved"
    assert adapter.calls == [1], "the step finished before the kill is not executed again"
    assert [s.status for s in done.steps] == ["achieved", "achieved"]


def test_resume_of_a_finished_run_is_refused(tmp_path: Path, mem_path: Path) -> None:
    from core.errors import ConfigError

    factory = make_ctx_factory(mem_path, FakeArm(), FakeAdapter())
    run_goal(real_robot_config("r8", yes=True), runs_root=tmp_path / "runs", context_factory=factory)
    with pytest.raises(ConfigError, match="finished already"):
        resume_run("r8", runs_root=tmp_path / "runs", context_factory=factory)


def test_no_api_key_anywhere_in_the_run_folder_even_in_checkpoints(tmp_path: Path, mem_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-proj-FAKEKEYFORTESTS0123456789abcdefXYZ"
    monkeypatch.setenv("OPENAI_API_KEY", key)

    class LeakyAdapter(FakeAdapter):
        def __call__(self, step, ctx):
            res = super().__call__(step, ctx)
            ctx.tracer.event("round", phase="review", round=1, conclusion=f"endpoint said: bad key {key}")
            return res.model_copy(update={"status": "failed", "message": f"401 Unauthorized for {key}"})

    summary = run_goal(real_robot_config("k1", yes=True), runs_root=tmp_path / "runs",
                       context_factory=make_ctx_factory(mem_path, FakeArm(), LeakyAdapter()))
    assert summary.outcome == "not_achieved" and "401 Unauthorized" in summary.message
    run = tmp_path / "runs" / "k1"
    for f in run.rglob("*"):
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f
    calls = kinds(run, "reasoner_call")
    assert calls and all({"question", "input", "answer", "total_tokens", "latency_s"} <= set(c) for c in calls)


def test_an_adapter_subgraph_asks_before_its_own_motions_and_resumes_inside(
    tmp_path: Path, mem_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contract with agents/adapter.py: build_adapter_graph(ctx) runs inside our adapter node and
    interrupts for approval from its own node; the answer resumes the subgraph where it stopped."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    import agents.adapter
    from agents.graph import make_approval_node
    from core.geometry import Pose

    class S(TypedDict, total=False):
        step: dict
        run_id: str
        approved: dict
        result: dict

    def build(ctx):
        def key(state: S) -> str:
            return f"inner-{state['step']['index']}"

        def execute(state: S) -> dict:
            res = ctx.robot.follow_poses([Pose(position=(0.5, 0.0, 0.3))])
            return {"result": {"index": state["step"]["index"], "status": "achieved" if res.ok else "failed"}}

        g = StateGraph(S)
        g.add_node("approve", make_approval_node(ctx, key, lambda s: s["step"]["text"]))
        g.add_node("execute", execute)
        g.add_edge(START, "approve")
        g.add_edge("approve", "execute")
        g.add_edge("execute", END)
        return g.compile()

    monkeypatch.setattr(agents.adapter, "build_adapter_graph", build)
    arm = FakeArm()
    asked: list[dict] = []
    factory = make_ctx_factory(mem_path, arm, None)  # no adapter function: the module's subgraph is used
    summary = run_goal(real_robot_config("sub1"), runs_root=tmp_path / "runs",
                       approver=lambda p: asked.append(p) or True, context_factory=factory)
    assert summary.outcome == "achieved", summary.message
    assert [p["key"] for p in asked] == ["inner-0", "inner-1"], "asked once per motion, by the adapter"
    assert arm.log == ["follow_poses", "follow_poses"], "each motion ran once, after its approval"
    by = [e["by"] for e in kinds(tmp_path / "runs" / "sub1", "approval")]
    assert by == ["delegated: the adapter asks before each of its motions", "operator"] * 2
    assert len(kinds(tmp_path / "runs" / "sub1", "step_start")) == 2


def test_the_run_says_when_memory_was_reindexed_and_which_embedder_it_uses(tmp_path: Path) -> None:
    from core.settings import load_settings
    from memory.embeddings import LexicalEmbedder
    from memory.store import open_memory

    class Older(LexicalEmbedder):
        name = "older-embedder"

    path = tmp_path / "memory.sqlite"
    with open_memory(load_settings(memory_path=path), embedder=Older()) as mem:
        seed_plan(mem)
    summary = run_goal(real_robot_config("r9"), runs_root=tmp_path / "runs", approver=lambda p: True,
                       context_factory=make_ctx_factory(path, FakeArm(), FakeAdapter()))
    assert summary.outcome == "achieved"
    said = [e["text"] for e in kinds(tmp_path / "runs" / "r9", "say") if e.get("agent") == "memory"]
    assert said == ["skill memory re-indexed for lexical:hashed-ngrams (was older-embedder): 1 plans, 2 skills",
                    "lexical fallback"]
