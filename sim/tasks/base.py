"""What every simulated task provides (DESIGN §6).

A task builds its objects into an `mujoco.MjSpec` that already holds the table, the Panda and the
lights (`sim.world.base_spec()`), randomised by a seeded generator and a variant. After the world is
compiled, the task judges success from simulator state only, and can produce scripts (sim.script)
for its scripted robot solution and for the synthetic human demonstrator.

Naming rules the rest of the system relies on:
- every object the system may perceive is a body whose name is in `object_labels`; its geoms (and
  those of child bodies that are not labels themselves) get that label in segmentation;
- moving parts of articulated objects (door, drawer, knob, button) are bodies of their own with a
  label such as "microwave_door", child of the fixed body ("microwave");
- cameras are named `cam_<view>`; every task has at least three.

Two optional hooks (defaults do nothing special; whoever compiles a task's world and runs it, e.g.
sim.execute, calls them):
- `attach(world, params)`: once, right after the world is compiled and before anything moves, so a
  task can install step observers (world.add_step_callback) for success criteria that depend on
  history (brush coverage, subgoals met in order). Success predicates read only simulator state
  and what these observers recorded from it.
- `solution_phases` / `solution_phase(world, params, i)`: a long-horizon task whose later poses
  depend on where earlier placements ended (wash_pan) splits its robot solution into phases; the
  runner executes phase 0, then asks for phase 1 from the state reached, and so on. The default is
  one phase equal to `solution()`, so `solution()` stays the whole script for one-phase tasks.

Conventions from the articulated tasks (sim/tasks/common.py, sim/execute.py):
- `build()` gets only the rng; `SceneParams.seed` (and variant/task) are filled in by
  `sim.show.build_scene`, the one place that turns (task, variant, seed) into a world.
- One-joint tasks subclass `common.ArticulatedTask`: `values` holds "joint", "threshold" and
  "open_value"; it provides `success` (joint >= threshold), `progress()` and `solved_state()`.
- A moving part jointed to a fixed body needs `common.exclude_contacts(spec, fixed, part)`:
  MuJoCo does not filter parent-child contacts when the parent is welded to the world.
- Scripts: `Release(width=0)` closes an empty hand (e.g. to press with the fingertips); the robot
  runner maps it to `open_gripper(0)`. Handles are approached pitched down 45-60 deg (a
  horizontal approach at table height drives the Panda's wrist into its joint limits).
- `sim.execute.run_solution(task, variant, seed)` calls `attach`, runs every solution phase and
  scores; `bench/task_solvability.py` runs it over seeds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np
from pydantic import BaseModel, Field

from sim.script import Script

if TYPE_CHECKING:
    from sim.world import SimWorld


class Variant(StrEnum):
    seen = "seen"  # the demo distribution
    unseen = "unseen"  # other sizes/colours/shapes/positions, plus distractors


class SceneParams(BaseModel):
    """The randomised choices a build made; enough for success checks and scripts."""

    task: str
    variant: Variant
    seed: int
    values: dict[str, Any] = Field(default_factory=dict, description="sizes, positions, colours ...")
    distractors: list[str] = Field(default_factory=list)


class Task(ABC):
    name: str
    goal_text: str
    paraphrases: tuple[str, ...] = ()
    object_labels: tuple[str, ...] = ()
    camera_names: tuple[str, ...] = ("cam_front", "cam_left", "cam_right")
    subgoal_names: tuple[str, ...] = ()  # non-empty for long-horizon tasks, in the required order
    episode_seconds: float = 20.0

    @abstractmethod
    def build(self, spec: mujoco.MjSpec, variant: Variant, rng: np.random.Generator) -> SceneParams:
        """Add this task's objects (and distractors for the unseen variant) to the spec."""

    @abstractmethod
    def success(self, world: SimWorld, params: SceneParams) -> bool:
        """Ground-truth success from simulator state (scores a trial; never steers the method)."""

    def subgoals(self, world: SimWorld, params: SceneParams) -> dict[str, bool]:
        """Instantaneous truth of each subgoal; the SubgoalTracker enforces their order over time."""
        return {}

    @abstractmethod
    def solution(self, world: SimWorld, params: SceneParams) -> Script:
        """The scripted robot solution, computed from the true scene (proves solvability only)."""

    solution_phases: int = 1

    def solution_phase(self, world: SimWorld, params: SceneParams, phase: int) -> Script:
        """Phase `phase` (0-based) of the robot solution, computed from the current state."""
        if phase != 0:
            raise ValueError(f"{self.name}: has {self.solution_phases} solution phase(s), asked for phase {phase}")
        return self.solution(world, params)

    def attach(self, world: SimWorld, params: SceneParams) -> None:
        """Install step observers on a freshly compiled world (see the module docstring)."""
        return None

    @abstractmethod
    def demonstration(self, world: SimWorld, params: SceneParams, rng: np.random.Generator) -> Script:
        """What the human demonstrator does, with per-demo variation drawn from `rng`."""
