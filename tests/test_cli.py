"""The command line as a user drives it: goals, exit codes, runs, replay, resume, Ctrl-C."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import agents.graph
from agents.runs import list_runs, load_run
from agents.state import StepBinding, StepResult
from main import app
from tests.agents.graph_helpers import GOAL, FakeAdapter, FakeArm, make_ctx_factory, make_memory, seed_plan

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VLMIMIC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VLMIMIC_MEMORY_PATH", str(tmp_path / "memory.sqlite"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture
def fake_world(env: Path, monkeypatch: pytest.MonkeyPatch):
    """The real graph and memory, with the arm faked at the hardware edge and an in-test adapter."""
    with make_memory(env / "memory.sqlite") as mem:
        seed_plan(mem)
    arm, adapter = FakeArm(), FakeAdapter()
    monkeypatch.setattr(agents.graph, "make_context", make_ctx_factory(env / "memory.sqlite", arm, adapter))
    return arm, adapter


def test_achieved_goal_exits_0_with_a_table_of_steps(fake_world) -> None:
    res = runner.invoke(app, ["--goal", GOAL, "--robot", "panda", "--yes"])
    assert res.exit_code == 0, res.output
    assert "grasp the block" in res.output and "take hold of the box rim" in res.output
    assert "achieved" in res.output


def test_goal_finished_but_not_achieved_exits_3(fake_world) -> None:
    fake_world[1].fail_at = 1
    res = runner.invoke(app, ["--goal", GOAL, "--robot", "panda", "--yes"])
    assert res.exit_code == 3, res.output
    assert "failed" in res.output and "slipped" in res.output


def test_unknown_goal_in_simulation_explains_which_demos_are_needed(env: Path) -> None:
    res = runner.invoke(app, ["--goal", "fold the laundry"])
    assert res.exit_code == 3, res.output
    out = " ".join(res.output.split())
    assert "no skills for 'fold the laundry'" in out
    assert 'python main.py demo record --camera realsense --task "fold the laundry" --n 5' in out
    assert 'python main.py --goal "fold the laundry" --demos demos/fold-the-laundry' in out
    [run] = list_runs(env / "runs")
    assert run.outcome == "needs_demos" and run.status == "finished"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--goal", "  "], "--goal is empty"),
        (["--goal", "x", "--robot", "ur5"], "expected sim or panda"),
        (["--goal", "x", "--variant", "weird"], "expected seen or unseen"),
        (["--goal", "x", "--scene", "no_such_task"], "unknown task"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(env: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_runs_and_replay_show_the_recorded_timeline(fake_world, env: Path) -> None:
    assert runner.invoke(app, ["--goal", GOAL, "--robot", "panda", "--yes"]).exit_code == 0
    [run] = list_runs(env / "runs")
    res = runner.invoke(app, ["runs"])
    assert res.exit_code == 0 and run.run_id in res.output and "achieved" in res.output
    res = runner.invoke(app, ["replay", run.run_id[:12]])
    assert res.exit_code == 0, res.output
    for text in ("timeline", "planner", "memory has the plan", "1: grasp the block", "follow_poses",
                 "compare round 1", "approval"):
        assert text in res.output, text
    res = runner.invoke(app, ["replay", "no-such-run"])
    assert res.exit_code == 2 and "no run 'no-such-run'" in res.output


def test_resume_finishes_a_crashed_run(fake_world, env: Path) -> None:
    fake_world[1].crash_at = 1
    res = runner.invoke(app, ["--goal", GOAL, "--robot", "panda", "--yes"])
    assert res.exit_code == 1 and "injected crash" in res.output
    [run] = list_runs(env / "runs")
    assert run.status == "error"
    res = runner.invoke(app, ["resume", run.run_id])
    assert res.exit_code == 0, res.output
    assert fake_world[1].calls == [0, 1, 1]
    res = runner.invoke(app, ["resume", run.run_id])
    assert res.exit_code == 2 and "finished already" in res.output


def test_ctrl_c_stops_the_arm_and_leaves_a_resumable_run(fake_world, env: Path) -> None:
    arm, adapter = fake_world
    pressed: list[int] = []

    def ctrl_c_in_step_2(step: StepBinding, ctx) -> StepResult:
        if step.index == 1 and not pressed:
            pressed.append(1)
            os.kill(os.getpid(), signal.SIGINT)
        return FakeAdapter.__call__(adapter, step, ctx)

    agents_ctx_factory = agents.graph.make_context

    def factory(cfg, run_dir):
        ctx = agents_ctx_factory(cfg, run_dir)
        ctx.adapter = ctrl_c_in_step_2
        return ctx

    agents.graph.make_context = factory
    try:
        res = runner.invoke(app, ["--goal", GOAL, "--robot", "panda", "--yes"])
    finally:
        agents.graph.make_context = agents_ctx_factory
    assert res.exit_code == 130, res.output
    assert arm.stopped >= 1, "Ctrl-C stops the arm"
    [run] = list_runs(env / "runs")
    assert run.status == "interrupted"
    assert load_run(run.run_id, env / "runs").summary.steps[0].status == "achieved"
    res = runner.invoke(app, ["resume", run.run_id])
    assert res.exit_code == 0, res.output


def test_unreachable_robot_is_one_line_and_the_run_says_so(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLMIMIC_HARDWARE__PANDA_HOST", raising=False)
    res = runner.invoke(app, ["--goal", "open the drawer", "--robot", "panda"])
    assert res.exit_code == 2, res.output
    assert "no robot address" in res.output and "Traceback" not in res.output
    [run] = list_runs(env / "runs")
    assert run.status == "error" and run.outcome == "error"
