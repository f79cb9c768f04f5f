import json

import pytest

from agents.reasoning import make_reasoner
from agents.reasoning.questions import DiagnoseQuestion, ExecutionFacts, GraspQuestion, GraspSample
from agents.reasoning.replay import ReplayMismatch
from agents.trace import Tracer, use_tracer
from core.grounding import Phase
from core.skills import SkillObject


def grasp_q(shift=0.0):
    return GraspQuestion(
        subtask="grasp the cup", object=SkillObject(name="cup", bbox_size=(0.08, 0.08, 0.1)),
        grasps=[GraspSample(demo_id=f"d{i}", position_frac=(0.0, 0.1 + shift, 0.3), approach=(0, 0, -1),
                            quaternion=(1, 0, 0, 0), width=0.05) for i in range(3)],
    )


def diag_q():
    return DiagnoseQuestion(skill_id="s", subtask="grasp", facts=ExecutionFacts(phase=Phase.grasping,
                                                                             grasp_closed_on_object=False))


@pytest.fixture
def recorded_run(tmp_path):
    run = tmp_path / "runs" / "r1"
    with Tracer(run) as tracer, use_tracer(tracer):
        r = make_reasoner("offline")  # records into the current tracer by default
        a1 = r.group_grasps(grasp_q())
        a2 = r.diagnose(diag_q())
    return run, a1, a2


def test_replay_gives_the_recorded_answers(recorded_run):
    run, a1, a2 = recorded_run
    events = [json.loads(line) for line in (run / "trace.jsonl").read_text().splitlines()]
    assert sum(e.get("kind") == "reasoner_call" for e in events) == 2
    replay = make_reasoner(f"replay:{run}", on_call=lambda c: None)
    assert replay.group_grasps(grasp_q()) == a1
    assert replay.diagnose(diag_q()) == a2


def test_replay_fails_loudly_on_a_different_question(recorded_run):
    run, *_ = recorded_run
    replay = make_reasoner(f"replay:{run}", on_call=lambda c: None)
    with pytest.raises(ReplayMismatch, match=r"group_grasps.*#1 differs.*position_frac"):
        replay.group_grasps(grasp_q(shift=0.05))


def test_replay_fails_loudly_on_an_unrecorded_question(recorded_run):
    run, *_ = recorded_run
    replay = make_reasoner(f"replay:{run}", on_call=lambda c: None)
    replay.diagnose(diag_q())
    with pytest.raises(ReplayMismatch, match=r"diagnose.*#2 was not recorded"):
        replay.diagnose(diag_q())


def test_replay_of_a_missing_run_is_a_clear_error(tmp_path):
    from agents.reasoning import ReasonerError

    with pytest.raises(ReasonerError, match="no trace to replay"):
        make_reasoner(f"replay:{tmp_path / 'nope'}")
