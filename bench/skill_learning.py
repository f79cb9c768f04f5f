"""Skill learning from seen demos (issue 4): trajectory fit, grasp regions, learning time, plan retrieval.

    python -m bench.skill_learning [--tasks open_drawer,...] [--n 5] [--seed 200] [--demos DIR]
                                   [--reasoner offline]

For every task (default: all registered sim tasks) records `n` seen demos with the synthetic
demonstrator (cached under --demos; recording is not timed), then, timed: grounds each demo afresh
(agents.grounder.ground, default perception settings) and learns the task (agents.skill_learner),
storing it into a fresh skill memory. Figures:

- trajectory fit: median over the 10 keypoints of all demos of the position error of each learned
  trajectory program, started from each demo's own start pose ("shape", what the adapter executes)
  and from the program's learned start pose ("with start"); target <= 1 cm. Oscillating motions
  (scrubbing: zigzag, spiral) are measured phase-free over 40 keypoints (tools.constraints.sweep);
  steps whose demos end at freely chosen places (a brush put back where it was picked up) with each
  demo's own end (the learner's notes say which);
- grasp regions: share of demonstrated grasps inside the learned regions; target >= 90 %;
- learning time for the n demos including grounding; target <= 60 s;
- retrieval: plans are stored under the task's goal text only; the goal text and two held-out
  paraphrases (sim task paraphrases 0 and 1) must retrieve the task's plan as top-1.
Writes bench/results/skill_learning.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def _demos(task: str, n: int, seed: int, root: Path) -> list[Path]:
    """The seen demos of seeds `seed`..`seed+n-1` under root/task/, recording only the missing ones (cache).

    Exactly those seeds: a cache holding other seeds of the task (an earlier run's) is not used for them."""
    folder = root / task
    from sim.demonstrator import record_demos

    out = []
    for i in range(n):
        target = folder / f"{task}_seen_{seed + i}"
        if not (target / "meta.json").is_file():
            record_demos(task=task, n=1, variant="seen", seed=seed + i, out=folder)
        if not (target / "meta.json").is_file():
            raise RuntimeError(f"recording {target.name} wrote no demo at {target}")
        out.append(target)
    return out


def run(tasks: list[str], n: int, seed: int, demos_root: Path, reasoner_spec: str) -> dict[str, Any]:
    from agents.grounder import ground
    from agents.reasoning import make_reasoner
    from agents.skill_learner import learn_task
    from core.grounding import GROUNDED_DIR
    from core.settings import load_settings
    from memory.store import open_memory
    from sim.tasks import TASKS

    tmp = Path(tempfile.mkdtemp(prefix="skill_bench_"))
    memory = open_memory(load_settings(memory_path=tmp / "memory.sqlite"))
    memory.embedder.embed(["warm up"])  # load the sentence model outside the timed part
    reasoner = make_reasoner(reasoner_spec, on_call=lambda c: None)
    out: dict[str, Any] = {"tasks": {}, "embedder": memory.embedder.name, "embedder_note": memory.embedder.note,
                           "load_average_1min_start": round(os.getloadavg()[0], 1)}
    for name in tasks:
        task = TASKS[name]
        t_rec = time.perf_counter()
        demos = _demos(name, n, seed, demos_root)
        rec_s = time.perf_counter() - t_rec
        for d in demos:
            shutil.rmtree(d / GROUNDED_DIR, ignore_errors=True)
        row: dict[str, Any] = {"demos": [d.name for d in demos], "record_s": round(rec_s, 1)}
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            gds = [ground(d, reasoner) for d in demos]
            t_ground = time.perf_counter() - t0
            res = learn_task(gds, task=name, goal=task.goal_text, paraphrases=(), reasoner=reasoner, memory=memory)
        except Exception as e:  # noqa: BLE001 - a bench reports failures and goes on
            row.update(error=f"{type(e).__name__}: {e}", learn_s=round(time.perf_counter() - t0, 2))
            out["tasks"][name] = row
            print(name, row["error"], flush=True)
            continue
        row.update(
            learn_s=round(time.perf_counter() - t0, 2), ground_s=round(t_ground, 2),
            cpu_s=round(time.process_time() - c0, 2),
            steps=[s.subtask for s in res.plan.steps], notes=res.notes,
            fits=[{"skill": s.id, "family": s.manipulation.program.family, "fit_m": s.provenance.fit_error_m,
                   "fit_with_start_m": s.provenance.fit_error_start_m, "excluded": s.provenance.excluded_demos}
                  for s in res.skills if s.manipulation is not None],
            grasps=[{"skill": s.id, "containment": s.provenance.containment, "regions": len(s.grasp.regions)}
                    for s in res.skills if s.grasp is not None],
        )
        out["tasks"][name] = row
        print(name, {k: row[k] for k in ("learn_s", "fits", "grasps")}, flush=True)
    # retrieval over everything learned
    learned = {p.task for p in memory.list_plans()}
    hits, total, misses = 0, 0, []
    for name in tasks:
        if name not in learned:
            continue
        t = TASKS[name]
        for q in [t.goal_text, *t.paraphrases[:2]]:
            top = memory.search_plans(q, k=2)
            total += 1
            ok = bool(top) and top[0][0].task == name
            hits += ok
            if not ok:
                misses.append({"task": name, "query": q, "got": top[0][0].task if top else None})
            out["tasks"][name].setdefault("retrieval", []).append(
                {"query": q, "top1": top[0][0].task if top else None, "score": round(top[0][1], 3) if top else None,
                 "margin": round(top[0][1] - top[1][1], 3) if len(top) > 1 else None})
    fits = [f["fit_m"] for r in out["tasks"].values() for f in r.get("fits", [])]
    fits_start = [f["fit_with_start_m"] for r in out["tasks"].values() for f in r.get("fits", [])]
    cont = [g["containment"] for r in out["tasks"].values() for g in r.get("grasps", [])]
    times = [r["learn_s"] for r in out["tasks"].values() if "error" not in r]
    cpu = [r["cpu_s"] for r in out["tasks"].values() if "error" not in r]
    out["overall"] = {
        "tasks": len(tasks), "learned": len(learned), "failed": [t for t, r in out["tasks"].items() if "error" in r],
        "fit_median_m": statistics.median(fits) if fits else None,
        "fit_max_m": max(fits) if fits else None,
        "fit_with_start_median_m": statistics.median(fits_start) if fits_start else None,
        "manipulation_skills_within_1cm": f"{sum(f <= 0.01 for f in fits)}/{len(fits)}",
        "grasp_containment_min": min(cont) if cont else None,
        "grasp_skills_at_least_90pct": f"{sum(c >= 0.9 for c in cont)}/{len(cont)}",
        "learn_time_median_s": round(statistics.median(times), 2) if times else None,
        "learn_time_max_s": round(max(times), 2) if times else None,
        "learn_cpu_median_s": round(statistics.median(cpu), 2) if cpu else None,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(),
        "retrieval_top1": f"{hits}/{total}", "retrieval_misses": misses,
    }
    memory.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def write_report(res: dict[str, Any], args: argparse.Namespace) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "skill_learning.json").write_text(json.dumps(res, indent=1))
    o = res["overall"]

    def cm(v: float | None) -> str:
        return "-" if v is None else f"{v * 100:.2f} cm"

    lines = [
        "# Skill learning (issue 4)",
        "",
        f"`python -m bench.skill_learning --n {args.n} --seed {args.seed} --reasoner {args.reasoner}"
        + (f" --tasks {args.tasks}" if args.tasks else "") + "`",
        "",
        f"{args.n} seen demos per task from the synthetic demonstrator; grounded afresh (timed) and learned with "
        f"the {args.reasoner} reasoner; memory embedder: {res['embedder']}.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| trajectory fit, median over keypoints (from each demo's start; scrubs phase-free) "
        f"| {cm(o['fit_median_m'])} | <= 1 cm |",
        f"| trajectory fit, worst skill | {cm(o['fit_max_m'])} | |",
        f"| manipulation skills within 1 cm | {o['manipulation_skills_within_1cm']} | all |",
        f"| trajectory fit incl. learned start pose, median | {cm(o['fit_with_start_median_m'])} | |",
        f"| grasp skills with >= 90 % of demo grasps in regions | {o['grasp_skills_at_least_90pct']} | all |",
        f"| learning time incl. grounding (wall), median / max | {o['learn_time_median_s']} s / "
        f"{o['learn_time_max_s']} s | <= 60 s |",
        f"| learning CPU time incl. grounding (this process), median | {o['learn_cpu_median_s']} s | |",
        f"| plan retrieval top-1 (goal + 2 held-out paraphrases) | {o['retrieval_top1']} | all |",
        f"| tasks failed to learn | {', '.join(o['failed']) or 'none'} | none |",
        "",
        f"Machine: {o['cpus']} CPUs, 1-minute load average {res.get('load_average_1min_start', '-')} at the start "
        f"and {o['load_average_1min']} at the end of the run "
        "(other sessions share the machine; wall times are inflated accordingly).",
        "",
        "Demos: " + "; ".join(f"{name}: {', '.join(r.get('demos', []))}" for name, r in res["tasks"].items()) + ".",
        "",
        "## Per task",
        "",
        "| task | learn s (ground s, CPU s) | steps | trajectory programs (fit, with start) | grasp containment "
        "| retrieval |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in res["tasks"].items():
        if "error" in r:
            lines.append(f"| {name} | {r.get('learn_s')} | error: {r['error'][:120]} | | | |")
            continue
        fits = "; ".join(f"{f['family']} {cm(f['fit_m'])}, {cm(f['fit_with_start_m'])}"
                         + (f" (left out {', '.join(f['excluded'])})" if f["excluded"] else "") for f in r["fits"])
        grasps = "; ".join(f"{g['containment']:.0%}" for g in r["grasps"])
        retr = ", ".join(("ok" if q["top1"] == name else f"MISS({q['top1']})") + f" {q['score']}"
                         for q in r.get("retrieval", []))
        timing = f"{r['learn_s']} ({r['ground_s']}, {r.get('cpu_s', '-')})"
        lines.append(f"| {name} | {timing} | {len(r['steps'])} | {fits} | {grasps} | {retr} |")
    if o["retrieval_misses"]:
        lines += ["", "Retrieval misses: " + "; ".join(f"{m['query']!r} -> {m['got']}" for m in o["retrieval_misses"])]
    notes = [f"- {name}: {n}" for name, r in res["tasks"].items() for n in r.get("notes", [])]
    if notes:
        lines += ["", "## Notes from the learner", "", *notes]
    path = RESULTS / "skill_learning.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="", help="comma-separated; default all registered tasks")
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--seed", type=int, default=200)
    ap.add_argument("--demos", type=Path, default=Path(".vlmimic/bench/skill_demos"))
    ap.add_argument("--reasoner", default="offline")
    args = ap.parse_args()
    if args.tasks:
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    else:
        from sim.tasks import TASKS

        tasks = list(TASKS)
    res = run(tasks, args.n, args.seed, args.demos, args.reasoner)
    path = write_report(res, args)
    print(json.dumps(res["overall"], indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
