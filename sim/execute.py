"""Run a `sim.script.Script` on a robot, and run a task's scripted solution as a scored trial.

`run_script` drives any `Robot` (tools.robot.protocols): Move -> follow_poses, Grasp -> grasp,
Release -> open_gripper (Release(width=0) closes the empty hand, e.g. to press with the fingertips),
Wait -> world.step. The robot time-parameterises motion itself inside its velocity limits scaled by
`speed_factor`, so a Move's `duration` (timing for the human demonstrator) is not used here.
Execution stops at the first step that fails (unreachable pose, collision, missed grasp) and the
report says which and why.

`run_solution` builds (task, variant, seed), calls the task's `attach` hook, executes the task's
scripted robot solution phase by phase (`solution_phase(world, params, i)` for i < solution_phases,
each computed from the state the previous one reached) and scores it with the task's success
predicate (and, for long-horizon tasks, ordered subgoals sampled every 0.1 s of simulated time).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from sim.script import Grasp, Move, Release, Script, Wait
from sim.subgoals import SubgoalTracker
from tools.robot.protocols import Robot

if TYPE_CHECKING:
    from sim.tasks.base import Task, Variant
    from sim.world import SimWorld

SUBGOAL_PERIOD_S = 0.1
SETTLE_BEFORE_S = 0.2  # let loose objects come to rest before the robot moves
SETTLE_AFTER_S = 0.5  # let articulations and objects come to rest before scoring


class StepOutcome(BaseModel):
    index: int
    kind: str
    label: str = ""
    ok: bool
    message: str = ""
    sim_seconds: float = 0.0


class ExecutionReport(BaseModel):
    steps: list[StepOutcome] = Field(default_factory=list)
    completed: bool = False  # every step ran and succeeded
    failed_step: int | None = None

    @property
    def message(self) -> str:
        if self.completed:
            return "all steps done"
        if self.failed_step is None:
            return "not run"
        s = self.steps[self.failed_step]
        return f"step {s.index} ({s.kind}{' ' + s.label if s.label else ''}) failed: {s.message}"


class TrialResult(BaseModel):
    task: str
    variant: str
    seed: int
    success: bool
    subgoals: dict[str, float | None] = Field(default_factory=dict, description="sim time each was met in order")
    seconds: float = Field(description="simulated seconds from the first command to scoring")
    wall_seconds: float = 0.0
    progress: float | None = Field(None, description="articulated tasks: the joint value at scoring")
    progress_ratio: float | None = Field(None, description="articulated tasks: progress / success threshold")
    execution: ExecutionReport


def _idle(world: SimWorld, seconds: float) -> None:
    n = int(round(seconds / world.timestep))
    if n > 0:
        world.step(n)


def run_script(
    world: SimWorld,
    script: Script,
    robot: Robot,
    *,
    speed_factor: float = 0.3,
    held_speed_factor: float = 0.15,
    grasp_force: float | None = None,
) -> ExecutionReport:
    """Execute `script` through the Robot protocol; stop at the first failing step.

    Moves while the hand holds something (between a Grasp and the next Release) use
    `held_speed_factor`: pulling a drawer or swinging a door fast strains the grasp.
    """
    report = ExecutionReport()
    holding = False
    for i, step in enumerate(script.steps):
        t0 = world.time
        ok, msg = True, ""
        if isinstance(step, Move):
            result = robot.follow_poses(step.path, speed_factor=held_speed_factor if holding else speed_factor)
            ok, msg = result.ok, result.message or result.status.value
        elif isinstance(step, Grasp):
            g = robot.grasp(
                width=step.width, force=grasp_force or step.force, epsilon_inner=0.01, epsilon_outer=0.03
            )
            ok, msg = g.success, g.message
            holding = ok
        elif isinstance(step, Release):
            robot.open_gripper(width=step.width)
            holding = False
            msg = f"gripper at {robot.gripper_width() * 1000:.0f} mm"
        elif isinstance(step, Wait):
            _idle(world, step.duration)
        label = getattr(step, "label", "")
        report.steps.append(
            StepOutcome(index=i, kind=step.kind, label=label, ok=ok, message=msg, sim_seconds=world.time - t0)
        )
        if not ok:
            report.failed_step = len(report.steps) - 1
            robot.stop()
            return report
    report.completed = True
    return report


def run_solution(task: str | Task, variant: str | Variant, seed: int) -> TrialResult:
    """Build the scene for (task, variant, seed), run the scripted robot solution, score it."""
    from sim.show import build_scene
    from sim.tasks.common import ArticulatedTask

    wall0 = time.perf_counter()
    t, world, params = build_scene(task, str(variant), seed, with_robot=True, render=False)
    with world:
        robot = world.robot
        if robot is None:
            raise RuntimeError("the scene was built without a robot")
        t.attach(world, params)
        _idle(world, SETTLE_BEFORE_S)
        tracker = SubgoalTracker(t.subgoal_names)
        remove = lambda: None  # noqa: E731
        if t.subgoal_names:
            period = max(1, int(round(SUBGOAL_PERIOD_S / world.timestep)))
            counter = {"n": 0}

            def sample(w: SimWorld) -> None:
                counter["n"] += 1
                if counter["n"] % period == 0:
                    tracker.update(w.time, t.subgoals(w, params))

            remove = world.add_step_callback(sample)
        start = world.time
        try:
            report = ExecutionReport()
            for phase in range(max(1, int(t.solution_phases))):
                part = run_script(world, t.solution_phase(world, params, phase), robot)
                offset = len(report.steps)
                report.steps += [s.model_copy(update={"index": s.index + offset}) for s in part.steps]
                if not part.completed:
                    report.failed_step = None if part.failed_step is None else part.failed_step + offset
                    break
            else:
                report.completed = True
            _idle(world, SETTLE_AFTER_S)
        finally:
            remove()
        if t.subgoal_names:
            tracker.update(world.time, t.subgoals(world, params))
        success = bool(t.success(world, params)) and tracker.all_met
        progress = float(t.progress(world, params)) if isinstance(t, ArticulatedTask) else None
        return TrialResult(
            task=t.name,
            variant=params.variant.value,
            seed=int(seed),
            success=success,
            subgoals=dict(tracker.met_at),
            seconds=world.time - start,
            wall_seconds=time.perf_counter() - wall0,
            progress=None if progress is None or not np.isfinite(progress) else progress,
            progress_ratio=None if progress is None else progress / float(params.values["threshold"]),
            execution=report,
        )
