"""What `main.py` calls for goals, runs, replay and resume (kept out of main.py so it stays thin).

Exit statuses of a goal run: 0 achieved; 3 finished but not achieved (including "needs demos" and
a refused approval); 2 bad input (VLMimicError, printed as one line); 1 any other error; 130 Ctrl-C
(the arm was stopped and the run can be resumed).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from agents.console import ProgressView, summary_tables, timeline_table
from agents.state import RunConfig, new_run_id
from agents.trace import RunSummary
from core.errors import VLMimicError

EXIT_ACHIEVED = 0
EXIT_ERROR = 1
EXIT_USER_ERROR = 2
EXIT_NOT_ACHIEVED = 3
EXIT_INTERRUPTED = 130


def exit_code(summary: RunSummary) -> int:
    if summary.status == "interrupted":
        return EXIT_INTERRUPTED
    if summary.outcome == "achieved":
        return EXIT_ACHIEVED
    if summary.outcome == "error" or summary.status == "error":
        return EXIT_ERROR
    return EXIT_NOT_ACHIEVED


def make_approver(console: Console, yes: bool) -> Callable[[dict], bool]:
    def approve(payload: dict) -> bool:
        if yes:
            return True
        question = str(payload.get("question", "Move the arm?"))
        try:
            return bool(typer.confirm(question, default=False))
        except (typer.Abort, EOFError):
            console.print("[yellow]no answer; not approved[/yellow]")
            return False

    return approve


def _execute(console: Console, fn: Callable[..., RunSummary], goal: str, **kwargs: Any) -> int:
    view = ProgressView(console, goal)
    try:
        with view:
            summary = fn(listeners=[view.on_event], **kwargs)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: the arm was stopped; finish with `python main.py resume <run>`[/yellow]")
        return EXIT_INTERRUPTED
    except VLMimicError as e:
        console.print(f"[red]error:[/red] {e}", highlight=False)
        return EXIT_USER_ERROR
    except Exception as e:  # noqa: BLE001 - one line plus where to look; the trace has the rest
        console.print(f"[red]error:[/red] {type(e).__name__}: {e}", highlight=False)
        console.print(f"[dim]{traceback.format_exc(limit=3)}[/dim]", highlight=False)
        return EXIT_ERROR
    console.print(summary_tables(summary))
    if summary.message and summary.outcome != "achieved":
        console.print(summary.message, highlight=False)
    console.print(f"[dim]run {summary.run_id}: python main.py replay {summary.run_id}[/dim]")
    return exit_code(summary)


def run_goal_command(
    console: Console,
    *,
    goal: str,
    scene: str | None = None,
    variant: str = "seen",
    seed: int = 0,
    reasoner: str = "offline",
    robot: str = "sim",
    camera: str | None = None,
    yes: bool = False,
    demos: Path | None = None,
    n_demos: int = 5,
    runs_root: Path | None = None,
    parent_run: str | None = None,
    context_factory: Any = None,
) -> int:
    from agents.graph import run_goal

    if not goal.strip():
        console.print("[red]error:[/red] --goal is empty; say what the robot should do, e.g. --goal \"wash the pan\"")
        return EXIT_USER_ERROR
    if robot not in ("sim", "panda"):
        console.print(f"[red]error:[/red] --robot {robot!r}: expected sim or panda")
        return EXIT_USER_ERROR
    if variant not in ("seen", "unseen"):
        console.print(f"[red]error:[/red] --variant {variant!r}: expected seen or unseen")
        return EXIT_USER_ERROR
    if robot != "sim" and scene:
        console.print("[red]error:[/red] --scene names a simulated task; it cannot be used with --robot panda")
        return EXIT_USER_ERROR
    cfg = RunConfig(
        run_id=new_run_id(goal), goal=goal.strip(), scene=scene, variant=variant, seed=seed, reasoner=reasoner,
        robot=robot, camera=camera, yes=yes, demos_dir=str(demos) if demos else None, n_demos=n_demos,
        parent_run=parent_run,
    )
    console.print(f"[bold]run {cfg.run_id}[/bold]: {cfg.goal} ({robot}, reasoner {reasoner})")
    return _execute(console, run_goal, cfg.goal, cfg=cfg, runs_root=runs_root,
                    approver=make_approver(console, yes), context_factory=context_factory)


def resume_command(console: Console, ref: str, *, yes: bool = False, runs_root: Path | None = None,
                   context_factory: Any = None) -> int:
    from agents.graph import resume_run
    from agents.runs import load_config, resolve_run

    cfg = load_config(resolve_run(ref, runs_root))
    console.print(f"[bold]resuming run {cfg.run_id}[/bold]: {cfg.goal}")
    return _execute(console, resume_run, cfg.goal, ref=ref, runs_root=runs_root,
                    approver=make_approver(console, yes or cfg.yes), context_factory=context_factory)


def list_runs_command(console: Console, runs_root: Path | None = None) -> None:
    from agents.runs import list_runs

    rows = list_runs(runs_root)
    if not rows:
        console.print("no runs yet; start one with python main.py --goal \"...\"")
        return
    t = Table("run", "goal", "scene", "reasoner", "status", "outcome", "time (s)")
    for r in rows:
        t.add_row(r.run_id, r.goal, r.scene or "-", r.reasoner, r.status, r.outcome or "-",
                  f"{r.duration_s:.1f}" if r.duration_s is not None else "-")
    console.print(t)


def replay_command(console: Console, ref: str, *, rerun: bool = False, verbose: bool = False,
                   runs_root: Path | None = None, context_factory: Any = None) -> int:
    from agents.runs import load_run

    rec = load_run(ref, runs_root)
    console.print(f"[bold]run {rec.config.run_id}[/bold]: {rec.config.goal} "
                  f"(scene {rec.config.scene or (rec.summary.scene if rec.summary else None) or '-'}, "
                  f"{rec.config.variant}, seed {rec.config.seed}, reasoner {rec.config.reasoner})")
    console.print(timeline_table(rec.events, verbose=verbose))
    if rec.summary is not None:
        console.print(summary_tables(rec.summary))
    else:
        console.print("[yellow]this run has no summary (it crashed or is still running); "
                      f"finish it with python main.py resume {rec.config.run_id}[/yellow]")
    if not rerun:
        return 0
    if rec.config.robot != "sim":
        console.print("[red]error:[/red] --rerun re-executes in simulation; this run used the real robot")
        return EXIT_USER_ERROR
    if rec.summary is None:
        console.print("[red]error:[/red] nothing to compare with: the run has no summary")
        return EXIT_USER_ERROR
    scene = rec.config.scene or rec.summary.scene
    code = run_goal_command(
        console, goal=rec.config.goal, scene=scene, variant=rec.config.variant, seed=rec.config.seed,
        reasoner=f"replay:{rec.path}", robot="sim", camera=rec.config.camera, yes=True,
        demos=Path(rec.config.demos_dir) if rec.config.demos_dir else None, n_demos=rec.config.n_demos,
        runs_root=runs_root, parent_run=rec.config.run_id, context_factory=context_factory,
    )
    from agents.runs import list_runs, load_summary

    children = [r for r in list_runs(runs_root) if r.run_id != rec.config.run_id]
    new = next((r for r in children if _parent_of(Path(r.path)) == rec.config.run_id), None)
    new_summary = load_summary(Path(new.path)) if new else None
    if new_summary is None:
        console.print("[red]the re-run did not finish; outcomes cannot be compared[/red]")
        return code if code else EXIT_ERROR
    same = new_summary.outcome == rec.summary.outcome and [s.status for s in new_summary.steps] == [
        s.status for s in rec.summary.steps
    ]
    colour = "green" if same else "red"
    console.print(f"[{colour}]re-run {new_summary.run_id}: outcome {new_summary.outcome} vs recorded "
                  f"{rec.summary.outcome}: {'matches' if same else 'DIFFERS'}[/{colour}]")
    return 0 if same else EXIT_NOT_ACHIEVED


def _parent_of(run_dir: Path) -> str | None:
    from agents.runs import load_config

    try:
        return load_config(run_dir).parent_run
    except VLMimicError:
        return None
