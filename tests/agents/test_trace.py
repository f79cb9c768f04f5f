"""The run record: events, reasoner calls with tokens and latency, images, video, secrets scrubbed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents.reasoning.records import ReasonerCall, default_hook
from agents.trace import REDACTED, Tracer, read_events, scrub, token_totals, use_tracer

FAKE_KEY = "sk-test-THISISNOTAREALKEY0123456789abcdef"


def test_events_are_appended_as_json_lines_and_survive_reopening(tmp_path: Path) -> None:
    with Tracer(tmp_path) as tr:
        with tr.node("planner", step=0):
            tr.say("planner", "memory has no skills")
        tr.robot_command("follow_poses", result={"status": "done"}, duration_s=0.5, n_poses=3)
    with Tracer(tmp_path) as tr:  # a resumed run appends to the same file
        tr.event("run_start", resumed=True)
    kinds = [e["kind"] for e in read_events(tmp_path)]
    assert kinds == ["node_start", "say", "node_end", "robot_command", "run_start"]
    ts = [e["t"] for e in read_events(tmp_path)]
    assert ts == sorted(ts), "times are relative to the first event, also after reopening"


def test_node_records_errors_with_their_message(tmp_path: Path) -> None:
    with Tracer(tmp_path) as tr, pytest.raises(RuntimeError):
        with tr.node("grounder"):
            raise RuntimeError("camera unplugged")
    end = read_events(tmp_path)[-1]
    assert end["kind"] == "node_end" and end["status"] == "error" and "camera unplugged" in end["error"]


def test_reasoner_calls_keep_question_answer_tokens_latency_and_images(tmp_path: Path) -> None:
    img = tmp_path / "seen.png"
    img.write_bytes(b"\x89PNG fake bytes")
    run = tmp_path / "run"
    call = ReasonerCall(question="compare", input={"step": "grasp the pan"}, answer={"verdict": "revise"},
                        model="gpt-4o", prompt_tokens=120, completion_tokens=30, total_tokens=150,
                        latency_s=1.25, images=[str(img)], reasoner="llm")
    with Tracer(run) as tr, use_tracer(tr):
        default_hook(call)  # what every reasoner does after each call
    ev = [e for e in read_events(run) if e["kind"] == "reasoner_call"]
    assert len(ev) == 1
    e = ev[0]
    assert (e["question"], e["answer"], e["input"]) == ("compare", {"verdict": "revise"}, {"step": "grasp the pan"})
    assert (e["prompt_tokens"], e["completion_tokens"], e["total_tokens"], e["latency_s"]) == (120, 30, 150, 1.25)
    assert e["images"] and (run / e["images"][0]).read_bytes() == img.read_bytes()
    assert token_totals(read_events(run))["total_tokens"] == 150


def test_no_api_key_reaches_the_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-abcdef123456")
    with Tracer(tmp_path) as tr:
        tr.event("tool_call", tool="llm", args={"api_key": "whatever-it-is", "headers": f"Bearer {FAKE_KEY}"})
        tr.say("reasoner", f"endpoint refused key {FAKE_KEY} and tok-abcdef123456")
        tr.reasoner_call({"question": "plan", "input": {"prompt": f"key={FAKE_KEY}"}, "answer": None,
                          "error": f"401 for {FAKE_KEY}", "reasoner": "llm"})
        tr.write_json("summary.json", {"message": f"failed with {FAKE_KEY}"})
    blob = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert FAKE_KEY not in blob and "tok-abcdef123456" not in blob and "whatever-it-is" not in blob
    assert REDACTED in blob


def test_scrub_keeps_token_counts() -> None:
    out = scrub({"prompt_tokens": 3, "total_tokens": 5, "api_key": "x" * 10, "tokens": 5})
    assert out == {"prompt_tokens": 3, "total_tokens": 5, "api_key": REDACTED, "tokens": 5}


def test_frames_become_a_video(tmp_path: Path) -> None:
    with Tracer(tmp_path) as tr:
        for i in range(12):
            rgb = np.zeros((48, 64, 3), np.uint8)
            rgb[:, : 5 * i] = 200
            assert tr.add_frame(rgb, sim_time=i * 0.1, force=True)
        video = tr.write_video(fps=10)
    assert video is not None and video.is_file() and video.stat().st_size > 1000
    import imageio_ffmpeg

    assert video.suffix == ".mp4"
    assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == 12
    summary = tmp_path / "summary.json"
    assert not summary.exists()
    json.dumps(read_events(tmp_path))
