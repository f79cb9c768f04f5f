"""VLMimic command line.

    python main.py --goal "wash the pan"          learn what is missing, act, report
    python main.py demo record --task T ...       record human demonstrations
    python main.py sim show --task T ...          render a scene
    python main.py doctor                         what works on this machine

Each command is a thin shell over a function in its package; errors derived from VLMimicError are
printed as one line (exit 2) without a traceback.
"""

from __future__ import annotations

import os
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
    scene: Annotated[str | None, typer.Option(help="sim task; default: the task best matching the goal")] = None,
    variant: Annotated[str, typer.Option(help="seen | unseen (simulation)")] = "seen",
    seed: Annotated[int, typer.Option(help="scene seed (simulation)")] = 0,
    reasoner: Annotated[str, typer.Option(help="offline | llm | replay:RUN")] = "offline",
    robot: Annotated[str, typer.Option(help="sim | panda")] = "sim",
    camera: Annotated[str | None, typer.Option(help="sim camera name, or realsense")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="approve real-robot motions without asking")] = False,
    panda_host: Annotated[
        str | None, typer.Option(help="robot address for --robot panda (else VLMIMIC_PANDA_HOST); no default")
    ] = None,
    demos: Annotated[Path | None, typer.Option(help="demo folders to learn if memory lacks the goal")] = None,
    n_demos: Annotated[int, typer.Option(help="demos the planner records in simulation")] = 5,
) -> None:
    """Without a command: `--goal "..."` learns what is missing, acts and reports (exit 0 achieved,
    3 finished but not achieved, 2 bad input, 1 other errors, 130 interrupted)."""
    if ctx.invoked_subcommand is not None:
        return
    if goal is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    from agents.cli import run_goal_command

    if panda_host:
        # The run's settings are loaded inside the graph; the environment carries the address there.
        os.environ["VLMIMIC_HARDWARE__PANDA_HOST"] = panda_host
    raise typer.Exit(
        run_goal_command(
            console, goal=goal, scene=scene, variant=variant, seed=seed, reasoner=reasoner, robot=robot,
            camera=camera, yes=yes, demos=demos, n_demos=n_demos,
        )
    )


# --- runs: list, replay, resume, chat, bench (agents/cli.py) ----------------------------------


@app.command("runs")
@user_errors
def runs_cmd() -> None:
    """List recorded runs (newest first)."""
    from agents.cli import list_runs_command

    list_runs_command(console)


@app.command("replay")
@user_errors
def replay_cmd(
    run: Annotated[str, typer.Argument(help="run id (or unique prefix, or folder)")],
    rerun: Annotated[bool, typer.Option("--rerun", help="re-execute in simulation with the recorded answers")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="every event")] = False,
) -> None:
    """Show a run's timeline; with --rerun, execute it again and say whether the outcome matches."""
    from agents.cli import replay_command

    raise typer.Exit(replay_command(console, run, rerun=rerun, verbose=verbose))


@app.command("resume")
@user_errors
def resume_cmd(
    run: Annotated[str, typer.Argument(help="run id (or unique prefix, or folder)")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="approve real-robot motions without asking")] = False,
) -> None:
    """Finish a crashed or interrupted run from its last checkpoint."""
    from agents.cli import resume_command

    raise typer.Exit(resume_command(console, run, yes=yes))


@app.command("chat")
@user_errors
def chat_cmd(
    reasoner: Annotated[str, typer.Option(help="offline | llm (llm also parses what you say)")] = "offline",
    robot: Annotated[str, typer.Option(help="sim | panda")] = "sim",
    variant: Annotated[str, typer.Option(help="seen | unseen (simulation)")] = "seen",
    seed: Annotated[int, typer.Option()] = 0,
    yes: Annotated[bool, typer.Option("--yes", "-y")] = False,
) -> None:
    """Talk to the robot: goals, 'what can you do?', 'forget the pour skill', 'quit'."""
    from agents.chat import chat_loop

    chat_loop(console, reasoner=reasoner, robot=robot, variant=variant, seed=seed, yes=yes)


@app.command("bench")
@user_errors
def bench_cmd(
    tasks: Annotated[str, typer.Option(help="comma-separated sim tasks, or 'all'")] = "all",
    variants: Annotated[str, typer.Option(help="seen,unseen")] = "seen,unseen",
    trials: Annotated[int, typer.Option(help="trials per task and variant")] = 3,
    n_demos: Annotated[int, typer.Option(help="demos learned per task")] = 5,
    reasoner: Annotated[str, typer.Option()] = "offline",
    adapter_rounds: Annotated[int, typer.Option(help="compare-before-acting rounds (<= 4)")] = 4,
    review_rounds: Annotated[int, typer.Option(help="review rounds (<= 2)")] = 2,
    name: Annotated[str, typer.Option(help="results file name under bench/results/")] = "evaluation",
    reuse_learning: Annotated[bool, typer.Option(help="skip learning tasks already learned by an earlier run of "
                                                 "this protocol name (trials only)")] = False,
) -> None:
    """Run the evaluation protocol (bench/evaluate.py); writes bench/results/<name>.md and plots."""
    from bench.evaluate import Protocol, run_protocol

    proto = Protocol.from_cli(tasks=tasks, variants=variants, trials=trials, n_demos=n_demos, reasoner=reasoner,
                              adapter_rounds=adapter_rounds, review_rounds=review_rounds, name=name,
                              reuse_learning=reuse_learning)
    run_protocol(proto, console=console)


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
    bag: Annotated[bool, typer.Option(help="realsense: also keep the raw streams (<demo>.db3, rosbag2)")] = False,
) -> None:
    """Record human demonstrations: the synthetic demonstrator in simulation, or a RealSense."""
    if camera == "realsense":
        from tools.robot.realsense import record_human_demo

        record_human_demo(out=out, n=n, fps=fps, task_text=task or "", bag=bag)
        return
    if task is None:
        raise VLMimicError("--task is required for simulated recording (see `python main.py sim tasks`)")
    from sim.demonstrator import record_demos

    paths = record_demos(task=task, n=n, variant=variant, seed=seed, out=out, camera=camera or None, fps=fps)
    for p in paths:
        console.print(f"wrote {p}")


# --- skills and learn (agents/skill_learner.py, memory/) -----------------------------------------

skills_app = typer.Typer(no_args_is_help=True, help="The skill memory: list, show, forget.")
app.add_typer(skills_app, name="skills")


@skills_app.command("list")
@user_errors
def skills_list() -> None:
    """List the learned skills and task plans."""
    from agents.skill_learner import skills_table
    from memory import open_memory

    with open_memory() as mem:
        if mem.note:
            console.print(f"[yellow]note:[/yellow] {mem.note}", highlight=False)
        console.print(skills_table(mem.list_skills(), title=f"skills in {mem.location}"))
        for plan in mem.list_plans():
            steps = " | ".join(s.subtask for s in plan.steps)
            console.print(f"plan [bold]{plan.task}[/bold]: {plan.goal!r} -> {steps}", highlight=False)


@skills_app.command("show")
@user_errors
def skills_show(skill_id: Annotated[str, typer.Argument(help="skill id (see `skills list`)")]) -> None:
    """Show one skill in full (JSON)."""
    from memory import open_memory

    with open_memory() as mem:
        skill = mem.get_skill(skill_id)
        if skill is None:
            raise VLMimicError(f"no skill {skill_id!r} in {mem.location}; see `python main.py skills list`")
        console.print_json(skill.model_dump_json())


@skills_app.command("forget")
@user_errors
def skills_forget(skill_id: Annotated[str, typer.Argument(help="skill id (see `skills list`)")]) -> None:
    """Delete a skill (and the task plans that use it)."""
    from memory import open_memory

    with open_memory() as mem:
        plans = mem.forget_skill(skill_id)
    console.print(f"forgot {skill_id}" + (f"; removed plans: {', '.join(plans)}" if plans else ""))


@app.command("learn")
@user_errors
def learn_cmd(
    demo_dirs: Annotated[list[Path], typer.Argument(help="demo folders (or folders of demo folders)")],
    task: Annotated[str | None, typer.Option("--task", help="task name/goal text; default: the demos' task")] = None,
    reasoner: Annotated[str, typer.Option("--reasoner", help="offline | llm | replay:RUN")] = "offline",
) -> None:
    """Ground demos (if needed), learn one skill per subtask, store skills and the plan in memory."""
    from agents.reasoning import make_reasoner
    from agents.skill_learner import learn_from_dirs, skills_table
    from memory import open_memory

    with open_memory() as mem:
        for note in (mem.note, mem.embedder.note if mem.embedder.name.startswith("lexical") else ""):
            if note:
                console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
        res = learn_from_dirs(demo_dirs, task=task, reasoner=make_reasoner(reasoner), memory=mem)
        console.print(skills_table(res.skills, title=f"learned {res.task!r} from {len(res.plan.demo_ids)} demos "
                                   f"in {res.timings_s['total']:.1f} s ({res.reasoner} reasoner)"))
        for note in res.notes:
            console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
        console.print(f"stored in {mem.location}")


@app.command("ground")
@user_errors
def ground_cmd(
    demo_dir: Annotated[Path, typer.Argument(help="a demo folder (or a RealSense .bag)")],
    reasoner: Annotated[str, typer.Option("--reasoner", help="offline | llm | replay:RUN")] = "offline",
) -> None:
    """Ground one demo: objects, contact segments and interactions, written to DEMO_DIR/grounded/."""
    from rich.table import Table

    from agents.grounder import OfflineGroundingReasoner, ground

    if reasoner == "offline":
        r = OfflineGroundingReasoner()
    else:
        from agents.reasoning import make_reasoner

        r = make_reasoner(reasoner)
    gd = ground(demo_dir, r)
    table = Table("#", "frames", "time (s)", "phase", "master", "slave", "subtask", "hand path (m)",
                  title=f"{gd.demo_id}: {gd.task!r} ({gd.n_frames} frames in {gd.timings_s.get('total', 0):.1f} s)")
    for s in gd.segments:
        table.add_row(str(s.index), f"{s.start_frame}-{s.end_frame}", f"{s.start_time:.2f}-{s.end_time:.2f}",
                      s.phase.value, s.master, s.slave or "", s.text, f"{s.hand_path_m:.2f}")
    console.print(table)
    console.print("objects: " + ", ".join(f"{o.name}" + (f" (part of {o.parent})" if o.parent else "")
                                          for o in gd.objects), highlight=False)
    for k, v in gd.sources.items():
        console.print(f"{k}: {v}", highlight=False)
    console.print(f"wrote {Path(gd.demo_dir) / 'grounded'}")


# --- doctor ------------------------------------------------------------------------------------


@app.command()
@user_errors
def doctor(
    robot: Annotated[str, typer.Option(help="also check this robot: sim | panda")] = "sim",
    panda_host: Annotated[str | None, typer.Option(help="probe this robot address (FCI port 1337)")] = None,
) -> None:
    """Report which rendering backend and optional components work here (bounded in time)."""
    from rich.table import Table

    from core.settings import load_settings
    from memory.health import memory_checks
    from sim.render import doctor_checks as sim_checks
    from tools.doctor import run_checks

    table = Table("component", "status", "detail")
    ok_all = True
    checks = [*sim_checks(), *run_checks(robot=robot, panda_host=panda_host)]
    if not any(c.name == "settings" for c in checks):  # settings that do not load are already reported
        checks += memory_checks(load_settings())
    for check in checks:
        colour = {"ok": "green", "missing": "yellow", "not configured": "yellow"}.get(check.status, "red")
        table.add_row(check.name, f"[{colour}]{check.status}[/{colour}]", check.detail)
        ok_all &= check.status != "error"
    console.print(table)
    raise typer.Exit(0 if ok_all else 1)


# --- calibrate (tools/robot/calibration.py) --------------------------------------------------------


@app.command()
@user_errors
def calibrate(
    mode: Annotated[str, typer.Option(help="hand-eye (board on the gripper) | board (board at a known pose)")] = (
        "hand-eye"),
    panda_host: Annotated[str | None, typer.Option(help="robot address (else VLMIMIC_HARDWARE__PANDA_HOST)")] = None,
    poses: Annotated[int, typer.Option(help="hand-eye: arm poses to record, posed by hand")] = 8,
    joint_poses: Annotated[Path | None, typer.Option(help="hand-eye: JSON list of joint positions to visit")] = None,
    board_pose: Annotated[str | None, typer.Option(help="board mode: x,y,z,roll,pitch,yaw (m, deg) in base")] = None,
    squares: Annotated[str, typer.Option(help="ChArUco squares, COLUMNSxROWS")] = "7x5",
    square_mm: Annotated[float, typer.Option(help="printed square size, mm")] = 40.0,
    marker_mm: Annotated[float, typer.Option(help="printed marker size, mm")] = 30.0,
    dictionary: Annotated[str, typer.Option(help="ArUco dictionary")] = "DICT_5X5_100",
    print_board: Annotated[Path | None, typer.Option(help="write the board as a PNG to print, and exit")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="move the arm without asking")] = False,
    save: Annotated[bool, typer.Option(help="store the result in vlmimic.toml")] = True,
) -> None:
    """Camera-to-robot-base calibration with a ChArUco board; stores hardware.T_base_camera."""
    import cv2

    from core.settings import load_settings
    from tools.robot.calibration import BoardSpec, parse_squares, run_calibrate

    sx, sy = parse_squares(squares)
    spec = BoardSpec(squares_x=sx, squares_y=sy, square_m=square_mm / 1000, marker_m=marker_mm / 1000,
                     dictionary=dictionary)
    if print_board is not None:
        cv2.imwrite(str(print_board), spec.image(px_per_square=400, margin_px=100))
        console.print(f"wrote {print_board}: print it, measure a square and pass that size as --square-mm")
        return
    run_calibrate(mode=mode, spec=spec, panda_host=panda_host, joint_poses_file=joint_poses, n_poses=poses,
                  board_pose=board_pose, yes=yes, save=save, settings=load_settings(), echo=console.print)


if __name__ == "__main__":
    sys.exit(app())
