"""The evaluation protocol's options and its report (the trials themselves run the real graph)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.evaluate import Protocol, Results, Trial, aggregate, write_report
from main import app
from sim.tasks import TASKS, UnknownTaskError


def test_options_name_tasks_and_variants() -> None:
    p = Protocol.from_cli(tasks="all", variants="seen", trials=2, n_demos=3, reasoner="offline",
                          adapter_rounds=1, review_rounds=0, name="x")
    assert p.tasks == sorted(TASKS) and p.variants == ["seen"] and (p.adapter_rounds, p.review_rounds) == (1, 0)
    with pytest.raises(UnknownTaskError, match="valid tasks"):
        Protocol.from_cli(tasks="open_drawer,juggle", variants="seen", trials=1, n_demos=1, reasoner="offline",
                          adapter_rounds=4, review_rounds=2, name="x")


def test_bench_cli_rejects_bad_rounds_and_tasks() -> None:
    res = CliRunner().invoke(app, ["bench", "--tasks", "juggle"])
    assert res.exit_code == 2 and "unknown task 'juggle'" in res.output
    res = CliRunner().invoke(app, ["bench", "--tasks", "open_drawer", "--adapter-rounds", "9"])
    assert res.exit_code == 2 and "--adapter-rounds" in res.output and "Traceback" not in res.output


def test_report_has_rates_per_task_and_variant(tmp_path: Path) -> None:
    proto = Protocol(tasks=["open_drawer", "press_button"], variants=["seen", "unseen"], trials=2, name="t",
                     out_dir=tmp_path)

    def t(task: str, variant: str, seed: int, ok: bool, secs: float) -> Trial:
        return Trial(task=task, variant=variant, seed=seed, run_id=f"{task}-{variant}-{seed}",
                     outcome="achieved" if ok else "not_achieved", success=ok, seconds=secs, adapt_rounds=2)

    trials = [t("open_drawer", "seen", 1, True, 10), t("open_drawer", "seen", 2, True, 20),
              t("open_drawer", "unseen", 1, False, 30), t("open_drawer", "unseen", 2, True, 50),
              t("press_button", "seen", 1, False, 5), t("press_button", "seen", 2, False, 7)]
    res = Results(protocol=proto, trials=trials, cells=aggregate(trials), learning_s={"open_drawer": 100.0})
    md = write_report(res).read_text()
    assert "| open_drawer | seen | 2/2 | 100% |" in md and "| open_drawer | unseen | 1/2 | 50% |" in md
    assert "| press_button | seen | 0/2 | 0% |" in md
    assert "Mean success rate, seen: 50%" in md
    cells = {(c["task"], c["variant"]): c for c in json.loads((tmp_path / "t.json").read_text())["cells"]}
    assert cells[("open_drawer", "unseen")]["median_seconds"] == 40
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_report_lists_each_long_horizon_trials_subgoals_in_order(tmp_path: Path) -> None:
    proto = Protocol(tasks=["wash_pan"], variants=["seen"], trials=2, name="w", out_dir=tmp_path)
    order = ("pan_in_sink", "faucet_on", "faucet_off", "pan_on_table", "pan_brushed", "pan_on_rack")
    full = dict.fromkeys(order, True)
    part = {**full, "pan_brushed": False, "pan_on_rack": False}
    trials = [Trial(task="wash_pan", variant="seen", seed=1, run_id="a", outcome="achieved", success=True,
                    subgoals_met=6, subgoals_total=6, subgoals=full, seconds=80),
              Trial(task="wash_pan", variant="seen", seed=2, run_id="b", outcome="not_achieved", success=False,
                    subgoals_met=4, subgoals_total=6, subgoals=part, seconds=70)]
    res = Results(protocol=proto, trials=trials, cells=aggregate(trials), learning_reused=["wash_pan"])
    md = write_report(res).read_text()
    assert "| task | variant | seed | " + " | ".join(order) + " | outcome | s |" in md
    assert "| wash_pan | seen | 1 | yes | yes | yes | yes | yes | yes | achieved | 80 |" in md
    assert "| wash_pan | seen | 2 | yes | yes | yes | yes | no | no | not_achieved | 70 |" in md
    assert "| wash_pan | seen | 1/2 | 50% | 5.0 |" in md
    assert "--reuse-learning" in md and "wash_pan" in md.split("--reuse-learning")[1]


def test_reuse_learning_keeps_the_work_folder_and_skips_learned_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.evaluate as ev

    learned: list[str] = []
    monkeypatch.setattr(ev, "learn", lambda task, proto, settings, work: learned.append(task) or 1.0)
    monkeypatch.setattr(ev, "_learned", lambda task, settings: task == "open_drawer")
    monkeypatch.setattr(ev, "trial", lambda task, variant, seed, proto, settings, runs: Trial(
        task=task, variant=variant, seed=seed, run_id="r", outcome="achieved", success=True))
    work = tmp_path / "e.work"
    work.mkdir()
    (work / "keep.txt").write_text("demos")
    proto = Protocol(tasks=["open_drawer", "press_button"], variants=["seen"], trials=1, name="e",
                     out_dir=tmp_path, reuse_learning=True)
    res = ev.run_protocol(proto)
    assert learned == ["press_button"] and res.learning_reused == ["open_drawer"]
    assert (work / "keep.txt").exists()
    ev.run_protocol(proto.model_copy(update={"reuse_learning": False}))
    assert not (work / "keep.txt").exists() and learned == ["press_button", "open_drawer", "press_button"]
