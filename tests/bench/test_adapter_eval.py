"""The adapter bench's report: rates, ablations, verdict agreement and timings from trial outcomes."""

from __future__ import annotations

from pathlib import Path

from bench.adapter_eval import EvalResults, TrialOutcome, summarise, write_report


def _o(task: str, variant: str, seed: int, ok: bool, verdict: bool, a: int = 4, r: int = 2) -> TrialOutcome:
    return TrialOutcome(task=task, variant=variant, seed=seed, adapter_rounds=a, review_rounds=r, success=ok,
                        verdict=verdict, timings=[{"perception_s": 0.2, "adaptation_s": 0.1, "planning_s": 0.3,
                                                   "motion_s": 2.0}])


def test_summary_and_report(tmp_path: Path) -> None:
    outs = [_o("a", "seen", 1, True, True), _o("a", "seen", 2, False, False), _o("a", "unseen", 1, True, True),
            _o("a", "unseen", 1, False, False, a=0), _o("b", "seen", 1, False, True)]
    res = EvalResults(tasks=["a", "b"], variants=["seen", "unseen"], trials=2, n_demos=5, outcomes=outs,
                      excluded_from_mean={"b": "plan incomplete"}, command="python -m bench.adapter_eval")
    sm = summarise(res)
    assert sm["means"] == {"seen": 0.5, "unseen": 1.0}
    assert sm["ablations"]["compare 0 rounds"] == {"n": 1, "success": 0.0}
    assert sm["verdict_agreement"] == 1.0 and sm["verdict_agreement_all"] == 0.8
    assert abs(sm["step_s_median"] - 0.6) < 1e-9 and sm["motion_s_median"] == 2.0
    md = write_report(res, "t", tmp_path).read_text()
    assert "| a | seen | 2 | 0.50 | 0.76 |" in md and "**b**: plan incomplete" in md
    assert (tmp_path / "t.json").exists()


def test_rewrite_keeps_the_outcomes_and_adds_notes(tmp_path: Path, monkeypatch) -> None:
    import bench.adapter_eval as ae

    res = EvalResults(tasks=["a"], variants=["seen"], trials=1, n_demos=5,
                      outcomes=[_o("a", "seen", 1, True, True)], command="python -m bench.adapter_eval --tasks a")
    write_report(res, "r", tmp_path)
    monkeypatch.setattr(ae, "RESULTS", tmp_path)
    monkeypatch.setattr(ae, "write_report", lambda r, name: write_report(r, name, tmp_path))
    assert ae.main(["--rewrite", str(tmp_path / "r.json"), "--name", "r2", "--note", "memories from run X"]) == 0
    md = (tmp_path / "r2.md").read_text()
    assert "| a | seen | 1 | 1.00 | 0.76 |" in md and "Note: memories from run X" in md
    assert "--tasks a" in md  # the original command, not the rewrite's


def test_rewrite_replaces_a_re_run_task(tmp_path: Path, monkeypatch) -> None:
    import bench.adapter_eval as ae

    first = EvalResults(tasks=["a", "b"], variants=["seen"], trials=1, n_demos=5, command="run 1",
                        outcomes=[_o("a", "seen", 1, True, True), _o("b", "seen", 1, False, True)])
    again = EvalResults(tasks=["b"], variants=["seen"], trials=1, n_demos=5, command="run 2",
                        outcomes=[_o("b", "seen", 1, True, True)])
    write_report(first, "one", tmp_path)
    write_report(again, "two", tmp_path)
    monkeypatch.setattr(ae, "write_report", lambda r, name: write_report(r, name, tmp_path))
    assert ae.main(["--rewrite", str(tmp_path / "one.json"), str(tmp_path / "two.json"), "--name", "both"]) == 0
    md = (tmp_path / "both.md").read_text()
    assert "| b | seen | 1 | 1.00 | 0.76 |" in md and "| a | seen | 1 | 1.00 | 0.76 |" in md
    assert "run 1" in md and "run 2" in md and "**1.00**" in md


def test_a_trial_binds_the_plan_as_the_main_job_does(tmp_path: Path, monkeypatch) -> None:
    # the brush carried to the pan, used on it and put down: it stays in the hand between those steps, as in
    # `python main.py`; a bench that let go of it after each step measured another robot
    import contextlib

    from agents.state import StepResult
    from bench.adapter_eval import run_trial
    from core.skills import PlanStep, TaskPlan

    steps = [PlanStep(index=0, subtask="grasp the brush", skill_id="g", phase="grasping", master="brush"),
             *[PlanStep(index=i, subtask=t, skill_id=f"m{i}", phase="manipulation", master="pan", slave="brush")
               for i, t in enumerate(("move the brush to the pan", "use the brush on the pan",
                                      "put the brush down by the pan"), start=1)]]
    plan = TaskPlan(task="brush_pan", goal="brush the pan", steps=steps)

    class Memory:
        def get_plan(self, task: str) -> TaskPlan:
            return plan

    bound = []
    monkeypatch.setattr("memory.store.open_memory", lambda _s: contextlib.nullcontext(Memory()))
    monkeypatch.setattr("agents.adapter.run_step",
                        lambda step, _ctx: bound.append(step) or StepResult(index=step.index, status="achieved"))
    out = run_trial("brush_pan", "seen", 1, tmp_path)
    assert out.error is None and out.verdict
    assert [b.keep_holding for b in bound] == [False, True, True, False]
