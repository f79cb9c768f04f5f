"""`python main.py chat`: intents, capabilities, forgetting, goals, quitting."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import agents.graph
from agents.chat import parse_intent
from main import app
from tests.agents.graph_helpers import FakeAdapter, FakeArm, make_ctx_factory, make_memory, seed_plan

runner = CliRunner()


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("wash the pan", "goal", "wash the pan"),
        ("now put the mango on the plate.", "goal", "put the mango on the plate"),
        ("Could you please open the drawer?", "goal", "open the drawer"),
        ("what can you do?", "capabilities", ""),
        ("list skills", "capabilities", ""),
        ("forget the pour skill", "forget", "pour"),
        ("please delete the grasp the block skill", "forget", "grasp the block"),
        ("runs", "runs", ""),
        ("quit", "quit", ""),
        ("bye!", "quit", ""),
        ("   ", "empty", ""),
    ],
)
def test_offline_intents(text: str, kind: str, value: str) -> None:
    intent = parse_intent(text)
    assert intent.kind == kind
    assert (intent.goal or intent.target) == value


@pytest.fixture
def memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "memory.sqlite"
    monkeypatch.setenv("VLMIMIC_MEMORY_PATH", str(path))
    monkeypatch.setenv("VLMIMIC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "200")
    with make_memory(path) as mem:
        seed_plan(mem)
    return path


def test_what_can_you_do_then_forget_then_quit(memory: Path) -> None:
    res = runner.invoke(app, ["chat"], input="what can you do?\nforget the box rim skill\nwhat can you do?\nquit\n")
    assert res.exit_code == 0, res.output
    first, second = res.output.split("Forgot the skill")
    assert "put the block in the box" in first and "take hold of the box rim" in first
    assert "open the drawer" in first, "simulated tasks are listed too"
    assert "'take hold of the box rim'" in second.split("\n")[0] and "the plans that used it are gone too" in second
    with make_memory(memory) as mem:
        assert [s.subtask for s in mem.list_skills()] == ["grasp the block"]
        assert mem.list_plans() == []
    assert "put the block in the box" not in second, "the plan went with its skill"
    assert res.output.rstrip().endswith("bye")


def test_forgetting_something_unknown_says_so(memory: Path) -> None:
    res = runner.invoke(app, ["chat"], input="forget the juggling skill\n")
    assert res.exit_code == 0
    assert "no skill matching 'juggling'" in " ".join(res.output.split())


def test_goals_run_until_end_of_input(memory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arm, adapter = FakeArm(), FakeAdapter()
    monkeypatch.setattr(agents.graph, "make_context", make_ctx_factory(memory, arm, adapter))
    res = runner.invoke(app, ["chat", "--robot", "panda", "--yes"],
                        input="put the block in the box\nnow place the block into the box please\n")
    assert res.exit_code == 0, res.output
    assert res.output.count("robot> done.") == 2
    assert adapter.calls == [0, 1, 0, 1]
    assert "on it: place the block into the box" in res.output


def test_llm_intents_come_from_the_endpoint_and_rules_take_over_when_it_fails(
    memory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.agents.reasoning.fake_openai import FakeOpenAI

    key = "sk-chat-secret-42"
    with FakeOpenAI() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", key)
        monkeypatch.setenv("VLMIMIC_LLM__MAX_RETRIES", "0")
        # The model hears "tell me your tricks" as a capabilities question (the rules would call it a goal),
        # then the endpoint fails once (the rules decide, and the chat says so), then it answers "quit".
        srv.replies = [{"content": '{"kind": "capabilities", "goal": "", "target": ""}'},
                       {"status": 500},
                       {"content": '{"kind": "quit", "goal": "", "target": ""}'}]
        res = runner.invoke(app, ["chat", "--reasoner", "llm"], input="tell me your tricks\nwhat can you do?\nbye\n")
    assert res.exit_code == 0, res.output
    assert len(srv.requests) == 3
    assert "tell me your tricks" in str(srv.requests[0]["messages"])
    assert res.output.count("put the block in the box") == 2, "both questions listed the plans in memory"
    assert "LLM intent failed" in res.output and "using rules" in res.output
    assert res.output.rstrip().endswith("bye")
    assert key not in res.output
