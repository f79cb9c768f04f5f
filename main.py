"""VLMimic command line.

    python main.py --goal "wash the pan"          learn what is missing, act, report
    python main.py demo record --task T ...       record human demonstrations
    python main.py sim show --task T ...          render a scene
    python main.py doctor                         what works on this machine

Each command is a thin shell over a function in its package; errors derived from VLMimicError are
printed as one line (exit 2) without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from core.errors import VLMimicError

console = Console()
app = typer.Typer(add_completion=False, no_args_is_help=False, help="VLMimic: skills from human RGB-D videos.")
demo_app = typer.Typer(no_args_is_help=True, help="Record and inspect demonstrations.")
sim_app = typer.Typer(no_args_is_help=True, help="The simulated world.")
app.add_typer(demo_app, name="demo")
app.add_typer(sim_app, name="sim")


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn VLMimicError into one red line and exit status 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except VLMimicError as e:
            console.print(f"[red]error:[/red] {e}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    goal: Annotated[str | None, typer.Option("--goal", help="what the robot should do")] = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if goal is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    console.print("[red]error:[/red] the agent graph is not built yet (issue 6); see README 'Status'.")
    raise typer.Exit(2)


# --- sim ---------------------------------------------------------------------------------------


@sim_app.command("show")
@user_errors
def sim_show(
    task: Annotated[str, typer.Option(help="task name (see `sim tasks`)")],
    out: Annotated[Path, typer.Option(help="PNG to write")],
    variant: Annotated[str, typer.Option(help="seen | unseen")] = "seen",
    seed: Annotated[int, typer.Option()] = 0,
    camera: Annotated[str | None, typer.Option(help="camera name; default: the task's first")] = None,
) -> None:
    """Render a task's scene to a PNG."""
    from sim.show import render_scene

    path = render_scene(task=task, variant=variant, seed=seed, camera=camera, out=out)
    console.print(f"wrote {path}")


@sim_app.command("tasks")
@user_errors
def sim_tasks() -> None:
    """List the simulated tasks."""
    from rich.table import Table

    from sim.tasks import TASKS

    table = Table("task", "goal", "cameras", "subgoals")
    for name, task in TASKS.items():
        table.add_row(name, task.goal_text, ", ".join(task.camera_names), str(len(task.subgoal_names)))
    console.print(table)


# --- demo --------------------------------------------------------------------------------------


@demo_app.command("record")
@user_errors
def demo_record(
    out: Annotated[Path, typer.Option(help="folder to write one sub-folder per video into")],
    task: Annotated[str | None, typer.Option(help="simulated task name")] = None,
    n: Annotated[int, typer.Option(help="number of videos")] = 5,
    variant: Annotated[str, typer.Option(help="seen | unseen")] = "seen",
    seed: Annotated[int, typer.Option()] = 0,
    camera: Annotated[str, typer.Option(help="sim camera name, or 'realsense'")] = "",
    fps: Annotated[float, typer.Option()] = 15.0,
) -> None:
    """Record human demonstrations: the synthetic demonstrator in simulation, or a RealSense."""
    if camera == "realsense":
        from tools.robot.realsense import record_human_demo

        record_human_demo(out=out, n=n, fps=fps, task_text=task or "")
        return
    if task is None:
        raise VLMimicError("--task is required for simulated recording (see `python main.py sim tasks`)")
    from sim.demonstrator import record_demos

    paths = record_demos(task=task, n=n, variant=variant, seed=seed, out=out, camera=camera or None, fps=fps)
    for p in paths:
        console.print(f"wrote {p}")


# --- doctor ------------------------------------------------------------------------------------


@app.command()
@user_errors
def doctor(
    robot: Annotated[str, typer.Option(help="also check this robot: sim | panda")] = "sim",
) -> None:
    """Report which rendering backend and optional components work here (bounded in time)."""
    from rich.table import Table

    from sim.render import doctor_checks as sim_checks
    from tools.doctor import run_checks

    table = Table("component", "status", "detail")
    ok_all = True
    for check in [*sim_checks(), *run_checks(robot=robot)]:
        colour = {"ok": "green", "missing": "yellow", "not configured": "yellow"}.get(check.status, "red")
        table.add_row(check.name, f"[{colour}]{check.status}[/{colour}]", check.detail)
        ok_all &= check.status != "error"
    console.print(table)
    raise typer.Exit(0 if ok_all else 1)


if __name__ == "__main__":
    sys.exit(app())
