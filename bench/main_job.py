"""The README's main job, end to end: `python main.py --goal "wash the pan"` with an empty skill memory.

Runs main.py as a child process (scratch runs folder and memory; the memory file is removed first so
the planner records, grounds and learns demos), samples the CPU time of its whole process tree twice
a second from /proc (the machine is shared: wall time alone says little), and splits wall and CPU time
into stages from the run's trace.jsonl: recording, grounding, learning, acting (adapter steps), rest.
Writes bench/results/main_job.md and .json (appending this trial to earlier ones with --append).

    python -m bench.main_job --goal "wash the pan" --runs-dir /tmp/hmain/runs --memory /tmp/hmain/memory.sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children) from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    ppid = int(fields[1])
    cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICK  # utime stime cutime cstime
    return ppid, cpu


def tree_cpu(root: int) -> float:
    """CPU seconds of `root` and all its live descendants (reaped ones count in their parent's cutime)."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (s := _stat(int(d))) is not None:
            stats[int(d)] = s
    total, todo, seen = 0.0, [root], set()
    while todo:
        p = todo.pop()
        if p in seen or p not in stats:
            continue
        seen.add(p)
        total += stats[p][1]
        todo.extend(c for c, (pp, _) in stats.items() if pp == p)
    return total


class CpuSampler(threading.Thread):
    def __init__(self, pid: int, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, float]] = []  # (wall, cumulative CPU s)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            c = tree_cpu(self.pid)
            if c > 0 or not self.samples:
                self.samples.append((time.time(), max(c, self.samples[-1][1] if self.samples else 0.0)))
            self.stop.wait(self.period)

    def cpu_at(self, wall: float) -> float:
        best = 0.0
        for t, c in self.samples:
            if t <= wall:
                best = c
        return best


def _load_trace(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines() if line.strip()]


def stages(trace: list[dict]) -> dict[str, tuple[float, float]]:
    """Stage -> (wall start, wall end) from the trace's tool and node events."""
    out: dict[str, list[float]] = {}

    def span(name: str, t0: float, t1: float) -> None:
        s = out.setdefault(name, [t0, t1])
        s[0], s[1] = min(s[0], t0), max(s[1], t1)

    open_calls: dict[str, float] = {}
    for ev in trace:
        kind, w = ev.get("kind"), float(ev.get("wall", 0.0))
        tool = ev.get("tool")
        if kind == "tool_call" and tool in ("record_demos", "ground", "learn_task"):
            open_calls[tool] = w
        elif kind == "tool_result" and tool in open_calls:
            name = {"record_demos": "record", "ground": "ground", "learn_task": "learn"}[tool]
            span(name, open_calls.pop(tool), w)
        elif ev.get("node") in ("adapter", "approve", "refused", "report") and kind in ("node_start", "node_end"):
            span("act" if ev["node"] != "report" else "report", w, w)
    return {k: (v[0], v[1]) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--goal", default="wash the pan")
    ap.add_argument("--runs-dir", default="/tmp/vlmimic_main_job/runs")
    ap.add_argument("--memory", default="/tmp/vlmimic_main_job/memory.sqlite")
    ap.add_argument("--keep-memory", action="store_true", help="do not start from an empty memory")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more main.py options")
    ap.add_argument("--out-name", default="main_job")
    ap.add_argument("--append", action="store_true", help="add this trial to the existing results")
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)

    runs, mem = Path(args.runs_dir), Path(args.memory)
    runs.mkdir(parents=True, exist_ok=True)
    mem.parent.mkdir(parents=True, exist_ok=True)
    if not args.keep_memory:
        for p in mem.parent.glob(mem.name + "*"):
            p.unlink()
    env = {**os.environ, "VLMIMIC_RUNS_DIR": str(runs), "VLMIMIC_MEMORY_PATH": str(mem)}
    before = set(runs.iterdir())
    cmd = [sys.executable, "main.py", "--goal", args.goal, *args.extra]
    load0 = os.getloadavg()
    t0 = time.time()
    log = runs / f"main_job_{int(t0)}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=Path(__file__).parent.parent, env=env, stdout=fh, stderr=subprocess.STDOUT)
        sampler = CpuSampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        sampler.stop.set()
        sampler.join()
    wall = time.time() - t0
    load1 = os.getloadavg()
    cpu_total = sampler.samples[-1][1] if sampler.samples else 0.0
    new = sorted((p for p in set(runs.iterdir()) - before if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not new:
        print(f"main.py exited {rc} and left no run folder; log: {log}")
        return 1
    run_dir = new[-1]
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    st = stages(_load_trace(run_dir))
    rows = {}
    for name in ("record", "ground", "learn", "act"):
        if name in st:
            a, b = st[name]
            rows[name] = {"wall_s": round(b - a, 1), "cpu_s": round(sampler.cpu_at(b) - sampler.cpu_at(a), 1)}
    trial = {
        "command": " ".join(["python", "main.py", "--goal", json.dumps(args.goal), *args.extra]),
        "exit": rc, "run": run_dir.name, "wall_s": round(wall, 1), "cpu_s": round(cpu_total, 1),
        "stages": rows, "outcome": summary.get("outcome"), "achieved": summary.get("achieved"),
        "message": summary.get("message", ""), "subgoals": summary.get("subgoals", {}),
        "steps": [{k: s.get(k) for k in ("index", "text", "outcome", "success", "attempts", "message") if k in s}
                  for s in summary.get("steps", [])],
        "load_before": [round(x, 1) for x in load0], "load_after": [round(x, 1) for x in load1],
        "note": args.note, "log": str(log),
    }
    RESULTS.mkdir(exist_ok=True)
    jpath = RESULTS / f"{args.out_name}.json"
    trials = json.loads(jpath.read_text())["trials"] if args.append and jpath.is_file() else []
    trials.append(trial)
    jpath.write_text(json.dumps({"trials": trials}, indent=1))
    lines = [
        "# The main job end to end",
        "",
        "`python -m bench.main_job` runs `python main.py --goal \"wash the pan\"` (simulation, empty skill memory:",
        "the planner records 5 synthetic demos, grounds and learns them, then acts) on this 2-core machine,",
        "which other sessions share (load averages below). CPU = the whole process tree (user + system),",
        "sampled from /proc twice a second; stages are cut at the run's trace events. Target: <= 600 s wall.",
        "",
        "| trial | run | exit | outcome | wall s | CPU s | record wall/CPU | ground wall/CPU | learn wall/CPU |"
        " act wall/CPU | load 1-min before/after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, t in enumerate(trials):
        cell = [f"{t['stages'][k]['wall_s']} / {t['stages'][k]['cpu_s']}" if k in t["stages"] else "-"
                for k in ("record", "ground", "learn", "act")]
        lines.append(f"| {i + 1} | {t['run']} | {t['exit']} | {t['outcome']} | {t['wall_s']} | {t['cpu_s']} | "
                     + " | ".join(cell) + f" | {t['load_before'][0]} / {t['load_after'][0]} |")
    lines += ["", "Subgoals per trial (in the task's order) and the run's message:", ""]
    for i, t in enumerate(trials):
        sg = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in t["subgoals"].items()) or "(none reported)"
        lines.append(f"{i + 1}. {sg}. {t['message'][:300]}" + (f" ({t['note']})" if t["note"] else ""))
    (RESULTS / f"{args.out_name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
