"""Skills, task plans and outcomes: what the skill learner stores and the adapter executes (DESIGN §4).

A `Skill` is one subtask learned from 1..N demos, with a hierarchical constraint: `semantic` text and
a geometric constraint, either a `GraspConstraint` (regions as bbox fractions in the object's
canonical frame, approach direction, width) for the grasping phase, or a `ManipulationConstraint`
(a trajectory program of T_master_slave(t)) for the manipulation phase. A `TaskPlan` is the ordered
list of subtasks of one task. An `Outcome` records one execution attempt.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.contents import ContentTransfer
from core.geometry import Pose
from core.grounding import ObjectDescriptor, Phase
from core.program import TrajectoryProgram

Vec3 = tuple[float, float, float]


class SkillObject(BaseModel):
    """An object as a skill remembers it: no scene pose, only what identifies and sizes it."""

    name: str
    bbox_size: Vec3 = Field(description="extent (m) along the canonical x, y, z axes")
    color_rgb: Vec3 = (0.0, 0.0, 0.0)
    crop_path: str | None = None
    parent: str | None = None

    @classmethod
    def from_descriptor(cls, d: ObjectDescriptor, crop_root: str | None = None) -> SkillObject:
        crop = d.crop_path
        if crop and crop_root:
            crop = f"{crop_root.rstrip('/')}/{crop}"
        return cls(name=d.name, bbox_size=d.bbox_size, color_rgb=d.color_rgb, crop_path=crop, parent=d.parent)


class GraspRegion(BaseModel):
    """A box in the object's canonical frame, in fractions of the bbox: centre in [-0.5, 0.5]^3."""

    model_config = ConfigDict(extra="forbid")
    center: Vec3
    extent: Vec3 = Field(description="full width of the region along x, y, z, fractions of the bbox")
    weight: float = Field(1.0, ge=0, description="share of demonstrated grasps in this region")
    label: str = ""

    @field_validator("center")
    @classmethod
    def _center_range(cls, v: Vec3) -> Vec3:
        if any(not np.isfinite(x) or abs(x) > 1.0 for x in v):
            raise ValueError("region centre must be bbox fractions within [-1, 1]")
        return v

    @field_validator("extent")
    @classmethod
    def _extent_range(cls, v: Vec3) -> Vec3:
        if any(not np.isfinite(x) or x < 0 or x > 2.0 for x in v):
            raise ValueError("region extent must be bbox fractions within [0, 2]")
        return v


class GraspConstraint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    regions: list[GraspRegion] = Field(min_length=1)
    approach: Vec3 = Field(description="gripper approach axis (its z) in the object frame, unit")
    orientation: tuple[float, float, float, float] = Field(
        (0.0, 0.0, 0.0, 1.0), description="typical gripper orientation in the object frame (x, y, z, w)"
    )
    width: float = Field(ge=0, description="gripper opening at contact, m")

    @field_validator("approach")
    @classmethod
    def _unit(cls, v: Vec3) -> Vec3:
        n = float(np.linalg.norm(v))
        if not np.isfinite(n) or n < 1e-6:
            raise ValueError("approach must be a non-zero vector")
        return tuple(float(x) / n for x in v)  # type: ignore[return-value]


class ManipulationConstraint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    program: TrajectoryProgram
    T_slave_gripper: Pose = Field(default_factory=Pose, description="gripper in the slave frame while held")
    keypoints: list[Pose] = Field(default_factory=list, description="demonstrated T_master_slave keypoints (mean demo)")
    free_place_spread_m: float | None = Field(
        None, description="the demos set the object down at places this far apart (median from their mean) "
        "relative to the master: the end place is a free choice near it, not a target")
    content_transfer: ContentTransfer | None = Field(
        None, description="the demos moved contents from the slave into the master (a pour): the review checks "
        "that the master received a comparable share; None = no transfer shown (and in memories learned before)")


class Provenance(BaseModel):
    demo_ids: list[str]
    fit_error_m: float | None = Field(
        None, description="median keypoint error of the trajectory fit, program started from each demo's start pose")
    fit_error_start_m: float | None = Field(
        None, description="the same with the program's own learned start pose (start placement included)")
    excluded_demos: list[str] = Field(default_factory=list, description="demos left out as inconsistent")
    containment: float | None = Field(None, description="share of demonstrated grasps inside the regions")
    reasoner: str = ""
    learned_at: float = Field(default_factory=time.time)


class SkillStats(BaseModel):
    tries: int = 0
    successes: int = 0

    @property
    def success_rate(self) -> float | None:
        return None if self.tries == 0 else self.successes / self.tries


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "skill"


class Skill(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    task: str
    subtask: str
    phase: Phase
    master: SkillObject
    slave: SkillObject | None = None
    semantic: str = Field(description="the semantic constraint, text")
    grasp: GraspConstraint | None = None
    manipulation: ManipulationConstraint | None = None
    provenance: Provenance
    stats: SkillStats = Field(default_factory=SkillStats)

    @model_validator(mode="after")
    def _constraint_matches_phase(self) -> Skill:
        if self.phase == Phase.grasping and self.grasp is None:
            raise ValueError(f"skill {self.id}: a grasping skill needs a grasp constraint")
        if self.phase == Phase.manipulation and self.manipulation is None:
            raise ValueError(f"skill {self.id}: a manipulation skill needs a manipulation constraint")
        return self

    @staticmethod
    def make_id(task: str, index: int, subtask: str) -> str:
        h = hashlib.sha1(f"{task}|{index}|{subtask}".encode()).hexdigest()[:6]
        verb = _slug(subtask).split("_")[0][:10]
        return f"{_slug(task)[:24]}.{index:02d}.{verb}.{h}"

    def search_text(self) -> str:
        parts = [self.subtask, self.semantic, self.master.name]
        if self.slave is not None:
            parts.append(self.slave.name)
        return " | ".join(parts)


class PlanStep(BaseModel):
    index: int = Field(ge=0)
    subtask: str
    skill_id: str
    phase: Phase
    master: str = Field(description="object name the master binds to in a scene")
    slave: str | None = None


class TaskPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(description="task key (e.g. the sim task name or the recognised task)")
    goal: str = Field(description="goal text")
    paraphrases: list[str] = Field(default_factory=list)
    steps: list[PlanStep]
    demo_ids: list[str] = Field(default_factory=list)

    def search_texts(self) -> list[str]:
        return [self.goal, *self.paraphrases]


class Outcome(BaseModel):
    skill_id: str
    task: str = ""
    success: bool
    phase: Literal["grasping", "manipulation", "task"] = "task"
    message: str = ""
    facts: dict[str, float | str | bool] = Field(default_factory=dict)
    run_id: str = ""
    time: float = Field(default_factory=time.time)
