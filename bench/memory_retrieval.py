"""Skill memory retrieval: top-1 accuracy and latency of plan search as the library grows, per backend.

    python -m bench.memory_retrieval [--sizes 0,1000,5000] [--seed 7] [--backends sqlite,postgres,postgres-hnsw]

The library holds one plan per simulated task, stored with its goal text only (as `learn` stores a
task learned without paraphrases), plus N distractor plans whose goals are drawn (seeded) from a
household vocabulary that shares no noun with the simulated tasks. Queries are every task's goal text
and all its paraphrases, so the paraphrases are held out. Latency is wall time of
`SkillMemory.search_plans(query, k=3)` (query embedding included) and of `learn` (one plan and its
skill, one transaction). SQLite is the default file backend (sqlite-vec); PostgreSQL is pgvector on a
local pgserver (skipped when pgserver is not installed), searched exactly as the product does;
"postgres-hnsw" is the same behind pgvector's approximate HNSW index, which the product does not use
(this bench is why). Writes bench/results/memory_retrieval.md/.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
VERBS = ("fold", "water", "sort", "hang", "wipe", "charge", "sweep", "file", "tie", "peel", "plug in", "roll up")
ADJECTIVES = ("blue", "wool", "spare", "old", "small", "striped", "paper", "heavy", "dusty", "green")
NOUNS = ("towel", "plant", "screws", "coat", "window", "phone", "floor", "papers", "shoelace", "orange",
         "lamp", "rug", "scarf", "stapler", "sock", "cable", "pillow", "candle", "umbrella", "notebook")
PLACES = ("in the hallway", "by the door", "on the balcony", "under the desk", "in the garage",
          "next to the sofa", "in the bedroom", "on the porch")


def distractor_goals(n: int, seed: int) -> list[str]:
    """`n` distinct household goals (seeded); no noun is one of the simulated tasks' objects."""
    rng = np.random.default_rng(seed)
    goals: list[str] = []
    seen: set[str] = set()
    while len(goals) < n:
        g = (f"{VERBS[rng.integers(len(VERBS))]} the {ADJECTIVES[rng.integers(len(ADJECTIVES))]} "
             f"{NOUNS[rng.integers(len(NOUNS))]} {PLACES[rng.integers(len(PLACES))]}")
        if g not in seen:
            seen.add(g)
            goals.append(g)
    return goals


def one_step_plan(task: str, goal: str) -> tuple[list[Any], Any]:
    """A task plan of one grasp skill: what retrieval needs (its texts), nothing more."""
    from core.grounding import Phase
    from core.skills import GraspConstraint, GraspRegion, PlanStep, Provenance, Skill, SkillObject, TaskPlan

    sid = Skill.make_id(task, 0, f"grasp for {goal}")
    skill = Skill(id=sid, task=task, subtask=f"grasp for {goal}", phase=Phase.grasping,
                  master=SkillObject(name=f"{task}_object", bbox_size=(0.1, 0.1, 0.1)), semantic=goal,
                  grasp=GraspConstraint(regions=[GraspRegion(center=(0, 0, 0.5), extent=(0.2, 0.2, 0.2))],
                                        approach=(0, 0, -1), width=0.04),
                  provenance=Provenance(demo_ids=["bench"], containment=1.0))
    plan = TaskPlan(task=task, goal=goal, steps=[PlanStep(index=0, subtask=skill.subtask, skill_id=sid,
                                                           phase=skill.phase, master=skill.master.name)])
    return [skill], plan


@contextmanager
def fresh_memory(backend: str, embedder: Any) -> Iterator[Any]:
    from core.settings import load_settings
    from memory.backends import open_postgres_store
    from memory.store import SkillMemory, open_memory

    folder = tempfile.mkdtemp(prefix="vlmmem")
    server = None
    try:
        if backend.startswith("postgres"):
            import pgserver

            server = pgserver.get_server(folder, cleanup_mode="stop")
            if backend == "postgres-hnsw":
                store, closer = open_postgres_store(server.get_uri(), embedder, pg_index="hnsw")
                with SkillMemory(store, embedder, closer=closer, backend="postgres") as mem:
                    mem.sync_index()
                    yield mem
                return
            settings = load_settings(memory_path=Path(folder) / "unused.sqlite", memory_url=server.get_uri())
        else:
            settings = load_settings(memory_path=Path(folder) / "memory.sqlite")
        with open_memory(settings, embedder=embedder) as mem:
            yield mem
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def measure(backend: str, size: int, seed: int, embedder: Any) -> dict[str, Any]:
    from sim.tasks import TASKS

    with fresh_memory(backend, embedder) as mem:
        learn_s = []
        library = [(name, t.goal_text) for name, t in TASKS.items()]
        library += [(f"chore_{i:05d}", g) for i, g in enumerate(distractor_goals(size, seed))]
        for task, goal in library:
            t0 = time.perf_counter()
            mem.learn(*one_step_plan(task, goal))
            learn_s.append(time.perf_counter() - t0)
        hits, misses, search_s = 0, [], []
        queries = [(name, q) for name, t in TASKS.items() for q in (t.goal_text, *t.paraphrases)]
        for name, q in queries:
            t0 = time.perf_counter()
            top = mem.search_plans(q, k=3)
            search_s.append(time.perf_counter() - t0)
            if top and top[0][0].task == name:
                hits += 1
            else:
                misses.append({"task": name, "query": q, "got": top[0][0].task if top else None})
        skill_s = []
        for _, q in queries:
            t0 = time.perf_counter()
            mem.search_skills(q, k=5)
            skill_s.append(time.perf_counter() - t0)
    return {"backend": backend, "plans": len(library), "distractors": size, "queries": len(queries),
            "top1": hits, "misses": misses,
            "search_median_ms": round(1000 * statistics.median(search_s), 2),
            "search_p90_ms": round(1000 * float(np.percentile(search_s, 90)), 2),
            "skill_search_median_ms": round(1000 * statistics.median(skill_s), 2),
            "learn_median_ms": round(1000 * statistics.median(learn_s), 2)}


def write(rows: list[dict[str, Any]], args: argparse.Namespace, embedder_name: str) -> None:
    cmd = (f"python -m bench.memory_retrieval --sizes {args.sizes} --seed {args.seed} "
           f"--backends {','.join(r for r in args.backends.split(','))}")
    lines = ["# Skill memory retrieval (issue 4)", "", f"`{cmd}`", "",
             f"Embedder: {embedder_name}. Queries: each simulated task's goal text and all its paraphrases "
             "(the paraphrases are not stored). Distractor plans: household chores sharing no noun with the tasks.",
             "", "| backend | plans | top-1 | search median (p90) ms | skill search median ms | learn median ms |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['plans']} | {r['top1']}/{r['queries']} | {r['search_median_ms']} "
                     f"({r['search_p90_ms']}) | {r['skill_search_median_ms']} | {r['learn_median_ms']} |")
    lines += ["", "## Ratios", ""]
    for backend in sorted({r["backend"] for r in rows}):
        mine = [r for r in rows if r["backend"] == backend]
        if len(mine) > 1:
            lines.append(f"- {backend}: search at {mine[-1]['plans']} plans / at {mine[0]['plans']} plans = "
                         f"{mine[-1]['search_median_ms'] / mine[0]['search_median_ms']:.2f}x")
    for size in sorted({r["plans"] for r in rows}):
        by = {r["backend"]: r for r in rows if r["plans"] == size}
        for pg in ("postgres", "postgres-hnsw"):
            if {"sqlite", pg} <= by.keys():
                lines.append(f"- {size} plans: {pg} / sqlite search = "
                             f"{by[pg]['search_median_ms'] / by['sqlite']['search_median_ms']:.2f}x")
    missed = [m | {"plans": r["plans"], "backend": r["backend"]} for r in rows for m in r["misses"]]
    lines += ["", "## Misses", ""] + ([f"- {m['backend']}, {m['plans']} plans: {m['query']!r} ({m['task']}) -> "
                                       f"{m['got']}" for m in missed] or ["none"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory_retrieval.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "memory_retrieval.json").write_text(json.dumps({"command": cmd, "embedder": embedder_name,
                                                               "rows": rows}, indent=1) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="0,1000,5000", help="distractor plans, comma-separated")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--backends", default="sqlite,postgres,postgres-hnsw")
    args = ap.parse_args()
    from memory.embeddings import make_embedder

    embedder = make_embedder()
    rows = []
    for backend in args.backends.split(","):
        if backend.startswith("postgres"):
            try:
                import langgraph.store.postgres  # noqa: F401
                import pgserver  # noqa: F401
            except ImportError as e:
                print(f"postgres skipped: {e}")
                continue
        for size in (int(s) for s in args.sizes.split(",")):
            row = measure(backend, size, args.seed, embedder)
            print({k: v for k, v in row.items() if k != "misses"}, flush=True)
            rows.append(row)
    write(rows, args, embedder.name)


if __name__ == "__main__":
    main()
