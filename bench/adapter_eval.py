"""Adapter evaluation: learned skills executed by agents/adapter.py on randomised sim scenes.

    python -m bench.adapter_eval [--tasks open_drawer,press_button] [--variants seen,unseen] [--trials 10]
                                 [--n-demos 5] [--ablations] [--work DIR] [--name adapter_eval]
                                 [--exclude-from-mean TASK=WHY] [--note TEXT] [--rewrite RESULTS.json]

Protocol (the paper's: learn from 5 demos of the seen distribution, test on seen and unseen scenes):
1. Learning, per task (cached in --work, reused when the memory exists): `n_demos` synthetic demos
   (seen, seeds 1000..), grounded and learned with the offline reasoner (bench.evaluate.learn).
2. Trials, per task and variant: seeds 1..trials; the task's plan from memory, each step bound by
   name to the scene's objects (the planner's work is not measured here) and run by
   `agents.adapter.run_step` on the simulated Panda (SafeRobot, traced), offline reasoner.
3. Scored with the task's success predicate (ground truth, read only here, after the last step).
   The review's verdict (every step "achieved") is compared with it: agreement rate.
4. Timing per step: perception + adaptation (compare rounds) + candidate planning (IK + collision
   scoring), wall seconds (median); motion (simulated execution, wall) reported separately.
5. `--ablations`: on unseen, compare rounds 0 vs 4 and review rounds 0 vs 2.

Other code may call `learn_task_memory(task, ...)`, `run_trial(...)` and `evaluate(...)`: they return
pydantic models (TrialOutcome, EvalResults); bench/evaluate.py measures the whole graph instead.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results"
PAPER = {"seen": 0.76, "unseen": 0.71}
PAPER_ABLATION = {"compare 0 rounds": 0.58, "compare 4 rounds": 0.71, "review 0 rounds": 0.65,
                  "review 2 rounds": 0.71}


class TrialOutcome(BaseModel):
    task: str
    variant: str
    seed: int
    adapter_rounds: int
    review_rounds: int
    success: bool = Field(description="the task's success predicate (ground truth)")
    verdict: bool = Field(description="the adapter's review: every step achieved")
    steps: list[dict[str, Any]] = Field(default_factory=list)
    timings: list[dict[str, float]] = Field(default_factory=list)
    wall_s: float = 0.0
    error: str | None = None


class EvalResults(BaseModel):
    tasks: list[str]
    variants: list[str]
    trials: int
    n_demos: int
    learning_s: dict[str, float] = Field(default_factory=dict)
    learning_errors: dict[str, str] = Field(default_factory=dict)
    outcomes: list[TrialOutcome] = Field(default_factory=list)
    wall_s: float = 0.0
    command: str = ""
    excluded_from_mean: dict[str, str] = Field(default_factory=dict, description="task -> why it is not averaged")
    notes: list[str] = Field(default_factory=list, description="provenance and remarks printed under the table")


def _settings(work: Path, task: str) -> Any:
    from core.settings import load_settings

    return load_settings(memory_path=work / task / "memory.sqlite", runs_dir=work / "runs")


def learn_task_memory(task: str, work: Path, n_demos: int = 5, demo_seed: int = 1000) -> float:
    """Record, ground and learn `task` into work/<task>/memory.sqlite unless it is there; seconds spent."""
    from bench.evaluate import Protocol, learn

    s = _settings(work, task)
    if Path(s.memory_path).exists():
        from memory.store import open_memory

        with open_memory(s) as mem:
            if mem.get_plan(task) is not None:
                return 0.0
        Path(s.memory_path).unlink()
    return learn(task, Protocol(tasks=[task], n_demos=n_demos, demo_seed=demo_seed), s, work / task)


def run_trial(task: str, variant: str, seed: int, work: Path, *, adapter_rounds: int = 4, review_rounds: int = 2,
              camera: str | None = None) -> TrialOutcome:
    """One scene, the task's learned plan executed step by step by the adapter, scored by the simulator."""
    from agents.adapter import run_step, step_timings
    from agents.graph import RunContext, TracedRobot
    from agents.planner import to_bindings
    from agents.reasoning import make_reasoner
    from agents.state import RunConfig
    from agents.trace import Tracer
    from memory.store import open_memory
    from sim.show import build_scene, check_camera
    from tools.robot.safety import SafeRobot

    s = _settings(work, task)
    t0 = time.perf_counter()
    out = TrialOutcome(task=task, variant=variant, seed=seed, adapter_rounds=adapter_rounds,
                       review_rounds=review_rounds, success=False, verdict=False)
    run_dir = work / "runs" / f"{task}-{variant}-{seed}-c{adapter_rounds}-r{review_rounds}"
    cfg = RunConfig(run_id=run_dir.name, goal=task, scene=task, variant=variant, seed=seed, reasoner="offline",
                    adapter_rounds=adapter_rounds, review_rounds=review_rounds, record_video=False, yes=True)
    t, world, params = build_scene(task, variant, seed, with_robot=True, render=True)
    tracer = Tracer(run_dir)
    try:
        with world, open_memory(s) as mem:
            t.attach(world, params)
            world.step(int(0.2 / world.timestep))
            robot = TracedRobot(SafeRobot(world.robot, s.safety, confirm=lambda _w: True), tracer)
            ctx = RunContext(config=cfg, run_dir=run_dir, tracer=tracer, settings=s, robot=robot,
                             camera=world.camera(check_camera(t, world, camera)), world=world,
                             reasoner=make_reasoner("offline", s), memory=mem)
            plan = mem.get_plan(task)
            if plan is None:
                raise RuntimeError(f"no learned plan for {task} in {s.memory_path}")
            ok = True
            # bound as the main job binds a plan (a held object the next step uses again stays in the hand)
            for step in to_bindings(plan, plan):
                res = run_step(step, ctx)
                out.steps.append({"index": res.index, "status": res.status, "adapt_rounds": res.adapt_rounds,
                                  "review_rounds": res.review_rounds, "message": res.message[:200]})
                if res.status != "achieved":
                    ok = False
                    break
            world.step(int(0.5 / world.timestep))
            out.verdict = ok
            out.success = bool(t.success(world, params))  # ground truth: scoring only
            out.timings = step_timings(ctx)
    except Exception as e:  # noqa: BLE001 - a crashed trial is a result
        out.error = f"{type(e).__name__}: {e}"
    finally:
        tracer.close()
    out.wall_s = time.perf_counter() - t0
    return out


def _rate(xs: list[TrialOutcome]) -> float | None:
    return sum(o.success for o in xs) / len(xs) if xs else None


def _median(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def summarise(res: EvalResults) -> dict[str, Any]:
    counted = [o for o in res.outcomes if o.task not in res.excluded_from_mean]
    main = [o for o in counted if o.adapter_rounds == 4 and o.review_rounds == 2]
    rows = []
    for task in res.tasks:
        for v in res.variants:
            xs = [o for o in res.outcomes if o.task == task and o.variant == v and o.adapter_rounds == 4
                  and o.review_rounds == 2]
            if xs:
                rows.append({"task": task, "variant": v, "n": len(xs), "success": _rate(xs),
                             "errors": sum(o.error is not None for o in xs)})
    means = {v: _rate([o for o in main if o.variant == v]) for v in res.variants}
    every = [o for o in res.outcomes if o.adapter_rounds == 4 and o.review_rounds == 2]
    means_all = {v: _rate([o for o in every if o.variant == v]) for v in res.variants}
    abl: dict[str, Any] = {}
    for label, a, r in (("compare 0 rounds", 0, 2), ("compare 4 rounds", 4, 2), ("review 0 rounds", 4, 0),
                        ("review 2 rounds", 4, 2)):
        xs = [o for o in counted if o.variant == "unseen" and o.adapter_rounds == a and o.review_rounds == r]
        if xs and any(o.adapter_rounds != 4 or o.review_rounds != 2 for o in res.outcomes):
            abl[label] = {"n": len(xs), "success": _rate(xs)}
    agree = [o.verdict == o.success for o in counted if o.error is None]
    agree_all = [o.verdict == o.success for o in res.outcomes if o.error is None]
    steps = [tm for o in res.outcomes for tm in o.timings]
    think = [tm.get("perception_s", 0) + tm.get("adaptation_s", 0) + tm.get("planning_s", 0) for tm in steps]
    return {
        "rows": rows, "means": means, "means_all": means_all, "ablations": abl,
        "verdict_agreement": (sum(agree) / len(agree)) if agree else None, "n_judged": len(agree),
        "verdict_agreement_all": (sum(agree_all) / len(agree_all)) if agree_all else None,
        "n_judged_all": len(agree_all),
        "step_s_median": _median(think), "step_s_p90": (sorted(think)[int(0.9 * (len(think) - 1))] if think else None),
        "perception_s_median": _median([tm.get("perception_s", 0) for tm in steps]),
        "adaptation_s_median": _median([tm.get("adaptation_s", 0) for tm in steps]),
        "planning_s_median": _median([tm.get("planning_s", 0) for tm in steps]),
        "motion_s_median": _median([tm.get("motion_s", 0) for tm in steps]),
        "n_steps": len(steps),
    }


def _f(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if not pct else f"{x:.0%}"


def write_report(res: EvalResults, name: str = "adapter_eval", out_dir: Path = RESULTS) -> Path:
    sm = summarise(res)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Adapter evaluation (agents/adapter.py, offline reasoner)", "",
        f"Machine: {platform.machine()}, python {platform.python_version()}. Command: `{res.command}`. "
        f"{res.trials} trial(s) per task and variant (seeds 1..{res.trials}), skills learned from {res.n_demos} "
        f"synthetic seen demos per task; total wall time {res.wall_s:.0f} s.", "",
        "Each trial: a randomised scene, the task's learned plan run step by step by the adapter "
        "(perceive -> compare <= 4 rounds -> execute -> review <= 2 rounds), scored by the task's success "
        "predicate. Only what was run is reported; tasks not listed were not run.", "",
        "| task | variant | trials | success | paper (VLMimic, real world) |", "|---|---|---|---|---|",
    ]
    for r in sm["rows"]:
        errs = f" ({r['errors']} errors)" if r["errors"] else ""
        lines.append(f"| {r['task']} | {r['variant']} | {r['n']} | {_f(r['success'])}{errs} | "
                     f"{PAPER.get(r['variant'], '-')} |")
    for v, m in sm["means"].items():
        lines.append(f"| **mean** | {v} | | **{_f(m)}** | {PAPER.get(v, '-')} |")
    if res.excluded_from_mean:
        for v, m in sm["means_all"].items():
            lines.append(f"| mean, every task run (exclusions included) | {v} | | {_f(m)} | {PAPER.get(v, '-')} |")
    for task, why in res.excluded_from_mean.items():
        lines += ["", f"Not in the means or ablations: **{task}**: {why}"]
    for note in res.notes:
        lines += ["", f"Note: {note}"]
    if sm["ablations"]:
        lines += ["", "Ablations (unseen):", "", "| setting | trials | success | paper |", "|---|---|---|---|"]
        for k, v in sm["ablations"].items():
            lines.append(f"| {k} | {v['n']} | {_f(v['success'])} | {PAPER_ABLATION[k]} |")
    lines += [
        "", f"Review verdict agrees with the ground-truth predicate on **{_f(sm['verdict_agreement'], True)}** "
        f"of {sm['n_judged']} trials (target >= 95%); over every trial run, excluded tasks included: "
        f"{_f(sm['verdict_agreement_all'], True)} of {sm['n_judged_all']}.", "",
        f"Per step ({sm['n_steps']} steps): perception + adaptation + candidate planning, median "
        f"**{_f(sm['step_s_median'])} s** (p90 {_f(sm['step_s_p90'])} s; target <= 5 s): perception "
        f"{_f(sm['perception_s_median'])} s, compare rounds {_f(sm['adaptation_s_median'])} s, candidate planning "
        f"{_f(sm['planning_s_median'])} s. Motion (simulated execution incl. review retries, wall) median "
        f"{_f(sm['motion_s_median'])} s, reported separately.",
    ]
    if res.learning_s or res.learning_errors:
        lines += ["", "Learning (record + ground + learn, s; 0 = cached): "
                  + ", ".join(f"{k} {v:.0f}" for k, v in res.learning_s.items())
                  + ("; errors: " + "; ".join(f"{k}: {v}" for k, v in res.learning_errors.items())
                     if res.learning_errors else "")]
    fails = [o for o in res.outcomes if not o.success]
    if fails:
        lines += ["", "Failures (first 12):", ""]
        for o in fails[:12]:
            last = o.steps[-1] if o.steps else {}
            lines.append(f"- {o.task} {o.variant} seed {o.seed} (c{o.adapter_rounds} r{o.review_rounds}): "
                         f"{o.error or last.get('message', '')}"[:240])
    md = out_dir / f"{name}.md"
    md.write_text("\n".join(lines) + "\n")
    (out_dir / f"{name}.json").write_text(json.dumps({"results": res.model_dump(mode="json"), "summary": sm},
                                                     indent=1))
    return md


def evaluate(tasks: list[str], variants: list[str], trials: int, work: Path, *, n_demos: int = 5,
             ablations: bool = False, command: str = "", progress: Any = print,
             exclude_from_mean: dict[str, str] | None = None) -> EvalResults:
    t0 = time.perf_counter()
    res = EvalResults(tasks=tasks, variants=variants, trials=trials, n_demos=n_demos, command=command,
                      excluded_from_mean=exclude_from_mean or {})
    for task in tasks:
        try:
            res.learning_s[task] = learn_task_memory(task, work, n_demos)
        except Exception as e:  # noqa: BLE001
            res.learning_errors[task] = f"{type(e).__name__}: {e}"
            continue
        settings = [(v, 4, 2) for v in variants]
        if ablations and "unseen" in variants and task not in res.excluded_from_mean:
            settings += [("unseen", 0, 2), ("unseen", 4, 0)]
        for v, a, r in settings:
            for seed in range(1, trials + 1):
                o = run_trial(task, v, seed, work, adapter_rounds=a, review_rounds=r)
                res.outcomes.append(o)
                if progress:
                    progress(f"{task} {v} seed {seed} c{a} r{r}: success={o.success} verdict={o.verdict} "
                             f"{o.wall_s:.1f}s {o.error or (o.steps[-1]['message'][:100] if o.steps else '')}")
    res.wall_s = time.perf_counter() - t0
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="open_drawer,press_button,turn_faucet,open_microwave")
    ap.add_argument("--variants", default="seen,unseen")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--n-demos", type=int, default=5)
    ap.add_argument("--ablations", action="store_true")
    ap.add_argument("--work", type=Path, default=REPO / ".vlmimic" / "adapter_eval",
                    help="demos, learned memories and trial runs (cached between invocations; git-ignored)")
    ap.add_argument("--name", default="adapter_eval")
    ap.add_argument("--exclude-from-mean", action="append", default=[], metavar="TASK=WHY",
                    help="run and report TASK but leave it out of the means/ablations, saying why")
    ap.add_argument("--note", action="append", default=[], metavar="TEXT",
                    help="a remark printed under the table (e.g. where the memories came from)")
    ap.add_argument("--rewrite", type=Path, nargs="+", default=None, metavar="JSON",
                    help="no trials: write the report again from results JSON(s) (with --note/--exclude-from-mean "
                         "added); a later file's tasks replace those tasks' trials and learning in the earlier ones "
                         "(a task re-run after a fix), its command is listed too")
    a = ap.parse_args(argv)
    tasks = [x.strip() for x in a.tasks.split(",") if x.strip()]
    variants = [x.strip() for x in a.variants.split(",") if x.strip()]
    cmd = "python -m bench.adapter_eval " + " ".join(argv if argv is not None else sys.argv[1:])
    excl = dict(x.split("=", 1) if "=" in x else (x, "excluded on the command line") for x in a.exclude_from_mean)
    if a.rewrite is not None:
        parts = [EvalResults.model_validate(json.loads(f.read_text())["results"]) for f in a.rewrite]
        res = parts[0]
        for part in parts[1:]:
            redo = set(part.tasks)
            res.outcomes = [o for o in res.outcomes if o.task not in redo] + part.outcomes
            res.tasks = res.tasks + [t for t in part.tasks if t not in res.tasks]
            res.learning_s.update(part.learning_s)
            res.wall_s += part.wall_s
            res.command = f"{res.command}`, then for {', '.join(part.tasks)}: `{part.command}"
        res.excluded_from_mean.update(excl)
        res.notes = list(a.note) or res.notes
        path = write_report(res, a.name)
        print(path.read_text())
        return 0
    res = evaluate(tasks, variants, a.trials, a.work, n_demos=a.n_demos, ablations=a.ablations, command=cmd.strip(),
                   exclude_from_mean=excl)
    res.notes = list(a.note)
    path = write_report(res, a.name)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
