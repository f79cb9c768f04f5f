"""The evaluation protocol: tasks x variants x trials, the whole agent graph per trial.

    python main.py bench [--tasks all|a,b] [--variants seen,unseen] [--trials 3] [--n-demos 5]
                         [--reasoner offline|llm] [--adapter-rounds 4] [--review-rounds 2] [--name evaluation]
    python -m bench.evaluate ...   (same options)

Protocol (after the paper's: learn from a few demos of the seen distribution, test on seen and unseen):
1. A fresh skill memory for this evaluation (bench/results/<name>.memory/, deleted first).
2. Learning, per task: `n_demos` synthetic demonstrations (variant seen, seeds 1000..), grounded and
   learned into that memory with the chosen reasoner. Learning time is reported separately.
3. Trials, per task and variant: seeds 1..trials, the goal text of the task, the full graph
   (planner finds the plan in memory -> adapter loop -> report); success is the simulator's success
   predicate at the end (and ordered subgoals for long-horizon tasks).
4. Results: success rate per task and variant, mean subgoals reached (and each trial's subgoals for
   long-horizon tasks), median trial time, mean compare/review rounds, reasoner calls and tokens;
   bench/results/<name>.md + .json + <name>.png.
`--reuse-learning` keeps bench/results/<name>.work/ and skips learning a task already learned there:
the trials run again on the same skills after a change downstream of learning (said in the report).
Runs of the trials are kept under bench/results/<name>.runs/ (replayable with `main.py replay`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.errors import ConfigError  # noqa: E402

RESULTS = REPO / "bench" / "results"


class Protocol(BaseModel):
    tasks: list[str]
    variants: list[str] = Field(default_factory=lambda: ["seen", "unseen"])
    trials: int = Field(3, ge=1)
    n_demos: int = Field(5, ge=1)
    demo_seed: int = 1000
    reasoner: str = "offline"
    adapter_rounds: int = Field(4, ge=0, le=4)
    review_rounds: int = Field(2, ge=0, le=2)
    name: str = "evaluation"
    out_dir: Path = RESULTS
    reuse_learning: bool = Field(False, description="keep <name>.work/ and skip learning a task whose plan is "
                                 "already in its memory (trials only, after a change downstream of learning)")

    @classmethod
    def from_cli(cls, *, tasks: str, variants: str, trials: int, n_demos: int, reasoner: str,
                 adapter_rounds: int, review_rounds: int, name: str, out_dir: Path | None = None,
                 reuse_learning: bool = False) -> Protocol:
        from sim.tasks import TASKS, get_task, parse_variant

        names = sorted(TASKS) if tasks.strip() in ("", "all") else [t.strip() for t in tasks.split(",") if t.strip()]
        for n in names:
            get_task(n)
        vs = [parse_variant(v.strip()).value for v in variants.split(",") if v.strip()]
        if not vs:
            raise ConfigError("--variants: give seen, unseen or both")
        try:
            return cls(tasks=names, variants=vs, trials=trials, n_demos=n_demos, reasoner=reasoner,
                       adapter_rounds=adapter_rounds, review_rounds=review_rounds, name=name,
                       out_dir=out_dir or RESULTS, reuse_learning=reuse_learning)
        except ValidationError as e:
            first = e.errors()[0]
            field = "--" + str(first["loc"][0]).replace("_", "-")
            raise ConfigError(f"{field}: {first['msg']} (got {first.get('input')!r})") from None


class Trial(BaseModel):
    task: str
    variant: str
    seed: int
    run_id: str
    outcome: str | None
    success: bool
    subgoals_met: int = 0
    subgoals_total: int = 0
    subgoals: dict[str, bool] = Field(default_factory=dict, description="long-horizon tasks: reached, in order")
    seconds: float = 0.0
    adapt_rounds: int = 0
    review_rounds: int = 0
    reasoner_calls: int = 0
    tokens: int = 0
    error: str | None = None


class Cell(BaseModel):
    task: str
    variant: str
    trials: int
    successes: int
    success_rate: float
    mean_subgoals: float | None
    median_seconds: float
    mean_adapt_rounds: float
    mean_review_rounds: float
    tokens: int


class Results(BaseModel):
    protocol: Protocol
    learning_s: dict[str, float] = Field(default_factory=dict)
    learning_reused: list[str] = Field(default_factory=list)
    learning_errors: dict[str, str] = Field(default_factory=dict)
    trials: list[Trial] = Field(default_factory=list)
    cells: list[Cell] = Field(default_factory=list)
    wall_s: float = 0.0


def learn(task: str, proto: Protocol, settings: Any, work: Path) -> float:
    """Record, ground and learn `n_demos` demos of `task` into the evaluation memory; seconds taken."""
    from agents.grounder import ground
    from agents.reasoning import make_reasoner
    from agents.skill_learner import learn_task
    from memory.store import open_memory
    from sim.demonstrator import record_demos
    from sim.tasks import get_task

    t0 = time.perf_counter()
    t = get_task(task)
    out = work / "demos" / task
    shutil.rmtree(out, ignore_errors=True)
    demos = record_demos(task=task, n=proto.n_demos, variant="seen", seed=proto.demo_seed, out=out)
    reasoner = make_reasoner(proto.reasoner, settings)
    for d in demos:
        ground(Path(d), reasoner)
    with open_memory(settings) as mem:
        learn_task(demos=[Path(d) for d in demos], task=t.name, goal=t.goal_text, paraphrases=list(t.paraphrases),
                   reasoner=reasoner, memory=mem)
    return time.perf_counter() - t0


def _learned(task: str, settings: Any) -> bool:
    from memory.store import open_memory

    with open_memory(settings) as mem:
        return mem.get_plan(task) is not None


def trial(task: str, variant: str, seed: int, proto: Protocol, settings: Any, runs_root: Path) -> Trial:
    from agents.graph import make_context, run_goal
    from agents.state import RunConfig, new_run_id
    from sim.tasks import get_task

    t = get_task(task)
    cfg = RunConfig(run_id=new_run_id(f"{task}-{variant}-{seed}"), goal=t.goal_text, scene=task, variant=variant,
                    seed=seed, reasoner=proto.reasoner, robot="sim", yes=True, n_demos=proto.n_demos,
                    adapter_rounds=proto.adapter_rounds, review_rounds=proto.review_rounds, record_video=False)
    t0 = time.perf_counter()
    try:
        s = run_goal(cfg, runs_root=runs_root, context_factory=partial(make_context, settings=settings))
    except Exception as e:  # noqa: BLE001 - one failed trial is a result, not the end of the evaluation
        return Trial(task=task, variant=variant, seed=seed, run_id=cfg.run_id, outcome="error", success=False,
                     seconds=time.perf_counter() - t0, error=f"{type(e).__name__}: {e}",
                     subgoals_total=len(t.subgoal_names))
    return Trial(
        task=task, variant=variant, seed=seed, run_id=cfg.run_id, outcome=s.outcome, success=s.achieved,
        subgoals_met=sum(bool(v) for v in s.subgoals.values()), subgoals_total=len(t.subgoal_names),
        subgoals={k: bool(v) for k, v in s.subgoals.items()},
        seconds=time.perf_counter() - t0, adapt_rounds=sum(x.adapt_rounds for x in s.steps),
        review_rounds=sum(x.review_rounds for x in s.steps), reasoner_calls=s.reasoner_calls,
        tokens=int(s.tokens.get("total_tokens", 0)),
    )


def aggregate(trials: list[Trial]) -> list[Cell]:
    cells = []
    keys = list(dict.fromkeys((t.task, t.variant) for t in trials))
    for task, variant in keys:
        ts = [t for t in trials if t.task == task and t.variant == variant]
        sub = [t.subgoals_met for t in ts if t.subgoals_total]
        cells.append(Cell(
            task=task, variant=variant, trials=len(ts), successes=sum(t.success for t in ts),
            success_rate=sum(t.success for t in ts) / len(ts),
            mean_subgoals=statistics.fmean(sub) if sub else None,
            median_seconds=statistics.median(t.seconds for t in ts),
            mean_adapt_rounds=statistics.fmean(t.adapt_rounds for t in ts),
            mean_review_rounds=statistics.fmean(t.review_rounds for t in ts),
            tokens=sum(t.tokens for t in ts),
        ))
    return cells


def write_report(res: Results) -> Path:
    p = res.protocol
    p.out_dir.mkdir(parents=True, exist_ok=True)
    md = [f"# {p.name}", "",
          f"Protocol: {len(p.tasks)} tasks x {p.variants} x {p.trials} trials; {p.n_demos} demos per task "
          f"(seen variant); reasoner {p.reasoner}; compare rounds <= {p.adapter_rounds}, "
          f"review rounds <= {p.review_rounds}. Wall time {res.wall_s:.0f} s.", "",
          "| task | variant | success | rate | subgoals (mean) | median s | compare rounds | review rounds | tokens |",
          "|---|---|---|---|---|---|---|---|---|"]
    for c in res.cells:
        sg = f"{c.mean_subgoals:.1f}" if c.mean_subgoals is not None else "-"
        md.append(f"| {c.task} | {c.variant} | {c.successes}/{c.trials} | {c.success_rate:.0%} | {sg} | "
                  f"{c.median_seconds:.1f} | {c.mean_adapt_rounds:.1f} | {c.mean_review_rounds:.1f} | {c.tokens} |")
    for v in p.variants:
        cs = [c for c in res.cells if c.variant == v]
        if cs:
            md.append(f"\nMean success rate, {v}: {statistics.fmean(c.success_rate for c in cs):.0%}")
    if res.learning_s:
        md += ["", "Learning (record + ground + learn) per task: "
               + ", ".join(f"{k} {v:.0f} s" for k, v in res.learning_s.items())]
    if res.learning_reused:
        md += ["", "Learning reused from an earlier run of this protocol (--reuse-learning): "
               + ", ".join(res.learning_reused)]
    long = [t for t in res.trials if t.subgoals]
    if long:
        names = list(dict.fromkeys(k for t in long for k in t.subgoals))
        md += ["", "Subgoals per trial (in the task's order; a trial succeeds only with all of them, in order):", "",
               "| task | variant | seed | " + " | ".join(names) + " | outcome | s |",
               "|---|---|---|" + "---|" * len(names) + "---|---|"]
        for t in long:
            marks = " | ".join("yes" if t.subgoals.get(k) else "no" for k in names)
            md.append(f"| {t.task} | {t.variant} | {t.seed} | {marks} | {t.outcome} | {t.seconds:.0f} |")
    if res.learning_errors:
        md += ["", "Learning failed for: " + "; ".join(f"{k}: {v}" for k, v in res.learning_errors.items())]
    errors = [t for t in res.trials if t.error]
    if errors:
        md += ["", "Trials that raised:"] + [f"- {t.task} {t.variant} seed {t.seed}: {t.error}" for t in errors]
    md_path = p.out_dir / f"{p.name}.md"
    md_path.write_text("\n".join(md) + "\n")
    (p.out_dir / f"{p.name}.json").write_text(res.model_dump_json(indent=1))
    _plot(res, p.out_dir / f"{p.name}.png")
    return md_path


def _plot(res: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = list(dict.fromkeys(c.task for c in res.cells))
    variants = res.protocol.variants
    if not tasks:
        return
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(tasks)), 3.5))
    w = 0.8 / max(1, len(variants))
    x = np.arange(len(tasks))
    for i, v in enumerate(variants):
        rates = [next((c.success_rate for c in res.cells if c.task == t and c.variant == v), 0.0) for t in tasks]
        ax.bar(x + i * w, rates, w, label=v)
    ax.set_xticks(x + w * (len(variants) - 1) / 2, tasks, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate")
    ax.set_title(f"{res.protocol.name}: {res.protocol.trials} trials, reasoner {res.protocol.reasoner}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_protocol(proto: Protocol, console: Any = None) -> Results:
    from rich.console import Console
    from rich.table import Table

    from core.settings import load_settings

    console = console or Console()
    wall0 = time.perf_counter()
    work = proto.out_dir / f"{proto.name}.work"
    if not proto.reuse_learning:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    settings = load_settings(memory_path=work / "memory.sqlite")
    runs_root = proto.out_dir / f"{proto.name}.runs"
    res = Results(protocol=proto)
    for task in proto.tasks:
        if proto.reuse_learning and _learned(task, settings):
            console.print(f"[bold]{task}[/bold]: plan already learned in {work} (--reuse-learning)")
            res.learning_reused.append(task)
        else:
            console.print(f"[bold]learning {task}[/bold] from {proto.n_demos} demos ...")
        try:
            if task not in res.learning_reused:
                res.learning_s[task] = round(learn(task, proto, settings, work), 1)
        except Exception as e:  # noqa: BLE001 - report and go on with the other tasks
            res.learning_errors[task] = f"{type(e).__name__}: {e}"
            console.print(f"[red]learning {task} failed:[/red] {e}")
        for variant in proto.variants:
            for seed in range(1, proto.trials + 1):
                tr = trial(task, variant, seed, proto, settings, runs_root)
                res.trials.append(tr)
                mark = "[green]ok[/green]" if tr.success else f"[red]{tr.outcome}[/red]"
                err = f" {tr.error}" if tr.error else ""
                console.print(f"  {task} {variant} seed {seed}: {mark} ({tr.seconds:.0f} s){err}")
    res.cells = aggregate(res.trials)
    res.wall_s = round(time.perf_counter() - wall0, 1)
    path = write_report(res)
    table = Table("task", "variant", "success", "rate", "median s", "rounds (compare/review)", title=proto.name)
    for c in res.cells:
        table.add_row(c.task, c.variant, f"{c.successes}/{c.trials}", f"{c.success_rate:.0%}",
                      f"{c.median_seconds:.1f}", f"{c.mean_adapt_rounds:.1f}/{c.mean_review_rounds:.1f}")
    console.print(table)
    console.print(f"wrote {path}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--variants", default="seen,unseen")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--n-demos", type=int, default=5)
    ap.add_argument("--reasoner", default="offline")
    ap.add_argument("--adapter-rounds", type=int, default=4)
    ap.add_argument("--review-rounds", type=int, default=2)
    ap.add_argument("--name", default="evaluation")
    ap.add_argument("--reuse-learning", action="store_true",
                    help="keep <name>.work/ and skip learning tasks already learned there (trials only)")
    a = ap.parse_args(argv)
    proto = Protocol.from_cli(tasks=a.tasks, variants=a.variants, trials=a.trials, n_demos=a.n_demos,
                              reasoner=a.reasoner, adapter_rounds=a.adapter_rounds, review_rounds=a.review_rounds,
                              name=a.name, reuse_learning=a.reuse_learning)
    run_protocol(proto)
    return 0


if __name__ == "__main__":
    sys.exit(main())
