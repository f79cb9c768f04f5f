"""The LLM reasoner through langchain_openai.ChatOpenAI against a local OpenAI-compatible server."""

import json

import pytest

from agents.reasoning.llm import LLMReasoner, ReasonerRefused
from agents.reasoning.protocol import ReasonerError
from agents.reasoning.questions import (
    DiagnoseAnswer,
    DiagnoseQuestion,
    ExecutionFacts,
    TrajectoryAnswer,
    TrajectoryQuestion,
)
from core.grounding import Phase
from core.settings import LLMSettings
from tests.agents.reasoning.fake_openai import FakeOpenAI

KEY = "sk-test-verysecret-0123456789"
QUESTION = DiagnoseQuestion(skill_id="s", subtask="grasp the mug",
                            facts=ExecutionFacts(phase=Phase.grasping, grasp_closed_on_object=False))
ANSWER = DiagnoseAnswer(cause="missed_grasp", explanation="the fingers closed on air", source="fake-model")


@pytest.fixture
def server(monkeypatch):
    with FakeOpenAI() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield srv


def reasoner(method="json_schema", **kw):
    calls = []
    settings = LLMSettings(model="fake-model", structured_output=method, timeout_s=kw.pop("timeout_s", 10),
                           max_retries=0, reask_attempts=kw.pop("reask_attempts", 1))
    r = LLMReasoner(settings, on_call=calls.append)
    return r, calls


def test_json_schema_answers_are_parsed_and_counted(server):
    server.replies = [{"content": ANSWER.model_dump_json()}]
    r, calls = reasoner("json_schema")
    assert r.diagnose(QUESTION) == ANSWER
    body = server.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "DiagnoseAnswer"
    assert "grasp the mug" in json.dumps(body["messages"])  # the question reached the prompt
    call = calls[0]
    assert (call.question, call.model, call.prompt_tokens, call.completion_tokens, call.attempts) == (
        "diagnose", "fake-model", 100, 20, 1)
    headers = {k.lower(): v for k, v in server.headers[0].items()}
    assert headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in call.model_dump_json()


def test_function_calling_answers_are_parsed(server):
    server.replies = [{"tool": "DiagnoseAnswer", "arguments": ANSWER.model_dump_json()}]
    r, _ = reasoner("function_calling")
    assert r.diagnose(QUESTION) == ANSWER
    assert server.requests[0]["tools"][0]["function"]["name"] == "DiagnoseAnswer"


def test_malformed_answer_is_reasked_with_the_error(server):
    server.replies = [{"content": '{"cause": "cosmic rays"}'}, {"content": ANSWER.model_dump_json()}]
    r, calls = reasoner("json_schema")
    assert r.diagnose(QUESTION) == ANSWER
    assert calls[0].attempts == 2 and calls[0].prompt_tokens == 200
    reask = server.requests[1]["messages"][-1]["content"]
    assert "not valid" in reask and "cause" in reask


def test_malformed_tool_call_is_reasked(server):
    server.replies = [{"tool": "DiagnoseAnswer", "arguments": "{not json"},
                      {"tool": "DiagnoseAnswer", "arguments": ANSWER.model_dump_json()}]
    r, _ = reasoner("function_calling")
    assert r.diagnose(QUESTION) == ANSWER


def test_persistently_malformed_answers_end_in_one_clear_error(server):
    server.replies = [{"content": "I think it slipped"}] * 3
    r, calls = reasoner("json_schema", reask_attempts=2)
    with pytest.raises(ReasonerError, match=r"no valid answer to 'diagnose' after 3 attempt"):
        r.diagnose(QUESTION)
    assert calls[0].error is not None and len(server.requests) == 3


def test_trajectory_program_with_code_in_it_is_rejected_and_reasked(server):
    bad = {"semantic": "open", "program": {"start": {"position": ["__import__('os').system('x')", 0, 0]}}}
    good = TrajectoryAnswer(semantic="open", program={"start": {"position": ["master.x/2", 0, 0]}, "steps": [
        {"kind": "line", "direction": [1, 0, 0], "distance": "master.x"}]})
    server.replies = [{"content": json.dumps(bad)}, {"content": good.model_dump_json()}]
    r, _ = reasoner("json_schema")
    q = TrajectoryQuestion(subtask="pull", master={"name": "drawer", "bbox_size": (0.3, 0.3, 0.1)},
                           slave={"name": "handle", "bbox_size": (0.02, 0.1, 0.02)},
                           tracks=[{"demo_id": "d", "master_size": (0.3, 0.3, 0.1), "slave_size": (0.02, 0.1, 0.02),
                                    "positions": [(0, 0, 0), (0.1, 0, 0)],
                                    "quaternions": [(0, 0, 0, 1), (0, 0, 0, 1)]}])
    assert r.fit_trajectory(q) == good
    assert "rejected" in server.requests[1]["messages"][-1]["content"]


def test_refusal_is_reported_as_such(server):
    server.replies = [{"refusal": "I cannot help with that."}]
    r, _ = reasoner("json_schema")
    with pytest.raises(ReasonerRefused, match="refused"):
        r.diagnose(QUESTION)


def test_timeout_is_a_clear_error(server):
    server.replies = [{"sleep": 2.0, "content": ANSWER.model_dump_json()}]
    r, _ = reasoner("json_schema", timeout_s=0.5)
    with pytest.raises(ReasonerError, match=r"timed out after 0.5 s"):
        r.diagnose(QUESTION)


def test_http_errors_do_not_leak_the_key(server):
    server.replies = [{"status": 401}]
    r, calls = reasoner("json_schema")
    with pytest.raises(ReasonerError) as e:
        r.diagnose(QUESTION)
    assert KEY not in str(e.value) and KEY not in calls[0].model_dump_json()


def test_images_are_sent_as_base64_blocks(server, tmp_path):
    img = tmp_path / "grasps.png"
    img.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 16)
    server.replies = [{"content": ANSWER.model_dump_json()}]
    r, calls = reasoner("json_schema")
    r.diagnose(QUESTION.model_copy(update={"image_paths": [str(img)]}))
    blocks = server.requests[0]["messages"][1]["content"]
    assert blocks[1]["type"] == "image_url" and blocks[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert calls[0].images == [str(img)]


def test_every_question_has_a_template_with_input_and_schema():
    from agents.reasoning.llm import load_template, render_prompt
    from agents.reasoning.questions import QUESTIONS

    for name in QUESTIONS:
        text = load_template(name)
        assert "{{input}}" in text and "{{schema}}" in text, name
    prompt = render_prompt("diagnose", QUESTION, DiagnoseAnswer)
    assert "grasp the mug" in prompt and '"missed_grasp"' in prompt and "{{" not in prompt
