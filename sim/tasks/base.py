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

    @abstractmethod
    def demonstration(self, world: SimWorld, params: SceneParams, rng: np.random.Generator) -> Script:
        """What the human demonstrator does, with per-demo variation drawn from `rng`."""
