"""Task solvability: the scripted robot solution of every task, seen and unseen, over many seeds.

    python -m bench.task_solvability [--tasks open_drawer,turn_faucet] [--seeds 20] [--out-name NAME]

Proves each simulated task can be solved by the physical robot (IK, joint control, friction grasps;
nothing attached kinematically) and measures how often its scripted solution succeeds. Prints one
line per trial and a table, and writes bench/results/task_solvability.md and .json (or NAME.md/.json).
Target: >= 95 % per task and variant.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sim.execute import TrialResult, run_solution  # noqa: E402
from sim.tasks import TASKS, get_task, parse_variant  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.95


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def run_trials(tasks: list[str], variants: list[str], seeds: int) -> list[TrialResult | dict]:
    out: list[TrialResult | dict] = []
    total = len(tasks) * len(variants) * seeds
    k = 0
    for name in tasks:
        for variant in variants:
            for seed in range(seeds):
                k += 1
                try:
                    r: TrialResult | dict = run_solution(name, variant, seed)
                    ok, why = r.success, ("" if r.success else r.execution.message)
                    if not r.success and r.execution.completed:
                        why = f"all steps done but not solved (progress {r.progress})"
                except Exception as exc:  # a crash is a failed trial, reported, not a dead benchmark
                    r = {"task": name, "variant": variant, "seed": seed, "success": False,
                         "error": f"{type(exc).__name__}: {exc}"}
                    ok, why = False, r["error"]
                out.append(r)
                print(f"[{k}/{total}] {name} {variant} seed {seed}: {'ok' if ok else 'FAIL'} {why}", flush=True)
    return out


def _get(r: TrialResult | dict, key: str) -> object:
    return r.get(key) if isinstance(r, dict) else getattr(r, key)


def _trial_summary(r: TrialResult) -> dict:
    """One trial for the JSON: the outcome and, where it failed, the failing step (not every step)."""
    d = r.model_dump(mode="json", exclude={"execution"})
    d["completed"] = r.execution.completed
    d["message"] = r.execution.message
    return d


def summarise(results: list[TrialResult | dict], tasks: list[str], variants: list[str]) -> list[dict]:
    rows = []
    for name in tasks:
        for variant in variants:
            rs = [r for r in results if _get(r, "task") == name and _get(r, "variant") == variant]
            n = len(rs)
            wins = sum(bool(_get(r, "success")) for r in rs)
            sims = [r.seconds for r in rs if isinstance(r, TrialResult)]
            walls = [r.wall_seconds for r in rs if isinstance(r, TrialResult)]
            ratios = [r.progress_ratio for r in rs if isinstance(r, TrialResult) and r.progress_ratio is not None]
            failures = []
            for r in rs:
                if not _get(r, "success"):
                    why = r["error"] if isinstance(r, dict) else r.execution.message
                    if isinstance(r, TrialResult) and r.execution.completed:
                        why = f"not solved, progress {r.progress}"
                    failures.append(f"seed {_get(r, 'seed')}: {why}")
            rows.append({
                "task": name, "variant": variant, "trials": n, "successes": wins,
                "rate": wins / n if n else 0.0,
                "median_sim_s": statistics.median(sims) if sims else None,
                "median_wall_s": statistics.median(walls) if walls else None,
                "min_progress_ratio": min(ratios) if ratios else None,
                "median_progress_ratio": statistics.median(ratios) if ratios else None,
                "failures": failures,
            })
    return rows


def to_markdown(rows: list[dict], seeds: int, command: str, wall: float) -> str:
    lines = [
        "# Task solvability (scripted robot solutions)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}. "
        f"Command: `{command}`. {seeds} seeds per task and variant; total wall time {wall:.0f} s.",
        "",
        "Each trial builds the scene for (task, variant, seed), runs the task's scripted solution on the "
        "simulated Panda (IK + joint position control + physical friction grasps) and scores the task's "
        f"success predicate on the final simulator state. Target: >= {TARGET:.0%} per row.",
        "",
        "Articulated tasks also report the joint value reached as a multiple of the success threshold "
        "(progress: median, min over seeds): the margin by which they are solved.",
        "",
        "| task | variant | success | rate | progress median (min) | median sim s | median wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sim_s = "-" if r["median_sim_s"] is None else f"{r['median_sim_s']:.1f}"
        wall_s = "-" if r["median_wall_s"] is None else f"{r['median_wall_s']:.1f}"
        prog = ("-" if r["median_progress_ratio"] is None
                else f"{r['median_progress_ratio']:.2f}x ({r['min_progress_ratio']:.2f}x)")
        lines.append(f"| {r['task']} | {r['variant']} | {r['successes']}/{r['trials']} | {r['rate']:.0%} "
                     f"| {prog} | {sim_s} | {wall_s} |")
    fails = [(r, f) for r in rows for f in r["failures"]]
    lines += ["", f"Rows at or above target: {sum(r['rate'] >= TARGET for r in rows)}/{len(rows)}.", ""]
    if fails:
        lines += ["## Failures", ""] + [f"- {r['task']} {r['variant']} {f}" for r, f in fails] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="", help="comma-separated task names (default: all registered)")
    parser.add_argument("--variants", default="seen,unseen", help="comma-separated: seen,unseen")
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 per task and variant")
    parser.add_argument("--out-name", default="task_solvability", help="results file stem under bench/results")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    tasks = [get_task(t.strip()).name for t in args.tasks.split(",") if t.strip()] or list(TASKS)
    variants = [parse_variant(v).value for v in args.variants.split(",") if v.strip()]
    t0 = time.perf_counter()
    results = run_trials(tasks, variants, args.seeds)
    wall = time.perf_counter() - t0
    rows = summarise(results, tasks, variants)
    command = "python -m bench.task_solvability " + " ".join(argv if argv is not None else sys.argv[1:])
    md = to_markdown(rows, args.seeds, command.strip(), wall)
    print()
    print(md)
    stem = args.out_name
    _write_atomic(RESULTS / f"{stem}.md", md)
    payload = {
        "seeds": args.seeds, "tasks": tasks, "variants": variants, "wall_seconds": wall, "rows": rows,
        "trials": [r if isinstance(r, dict) else _trial_summary(r) for r in results],
    }
    _write_atomic(RESULTS / f"{stem}.json", json.dumps(payload, indent=1))
    return rows


if __name__ == "__main__":
    main()
