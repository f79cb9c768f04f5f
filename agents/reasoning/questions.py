"""The reasoner's questions and answers, typed (DESIGN §3 `Reasoner`).

Each question is a pydantic model holding only facts (numbers, names, image paths); each answer is
a pydantic model that an LLM must fill (validated, re-asked on error) and that the offline reasoner
computes geometrically. Every answer says where it came from in `source`.

recognise_task / label_segment use the grounding contracts (core.grounding: TaskQuestion ->
TaskRecognition, SegmentQuestion -> SegmentLabel).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.grounding import Phase, SegmentLabel, SegmentQuestion, TaskQuestion, TaskRecognition
from core.program import TrajectoryProgram
from core.skills import GraspConstraint, PlanStep, SkillObject

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]

__all__ = [
    "TaskQuestion", "TaskRecognition", "SegmentQuestion", "SegmentLabel",
    "GraspSample", "GraspQuestion", "GraspAnswer",
    "KeypointTrack", "TrajectoryQuestion", "TrajectoryAnswer",
    "SceneObject", "PlanCandidate", "PlanQuestion", "PlanAnswer",
    "Revision", "CompareQuestion", "CompareAnswer", "ExecutionFacts", "DiagnoseQuestion", "DiagnoseAnswer",
    "QUESTIONS",
]


class _Answer(BaseModel):
    reasoning: str = Field("", description="one or two sentences on why")
    source: str = Field("", description="who answered, e.g. 'offline reasoner (geometric)' or the model name")


# --- grasping: group demonstrated grasps into regions ------------------------------------------


class GraspSample(BaseModel):
    demo_id: str
    position_frac: Vec3 = Field(description="gripper TCP in the object frame as bbox fractions ([-0.5, 0.5] inside)")
    approach: Vec3 = Field(description="gripper approach axis (z) in the object frame")
    quaternion: Quat = Field(description="gripper orientation in the object frame (x, y, z, w)")
    width: float = Field(description="gripper opening at contact, m")


class GraspQuestion(BaseModel):
    """Step 1 (semantic): where on the object do the grasps fall (labelled render)?
    Step 2 (geometric): which grasps belong together, as regions in bbox fractions?"""

    subtask: str
    object: SkillObject
    grasps: list[GraspSample] = Field(min_length=1)
    image_paths: list[str] = Field(default_factory=list, description="labelled grasps over the object render")


class GraspAnswer(_Answer):
    semantic: str = Field(description="the semantic constraint, e.g. 'grasp the handle in its middle, from the front'")
    groups: list[list[int]] = Field(description="indices of the question's grasps per region; outliers left out")
    constraint: GraspConstraint


# --- manipulation: fit a trajectory program to keypoints ---------------------------------------


class KeypointTrack(BaseModel):
    demo_id: str
    master_size: Vec3
    slave_size: Vec3
    positions: list[Vec3] = Field(description="slave origin in the master frame, m (10 keypoints)")
    quaternions: list[Quat] = Field(description="slave orientation in the master frame (x, y, z, w)")


class TrajectoryQuestion(BaseModel):
    """Step 1 (semantic): what motion is this (render of the trajectory with its keypoints)?
    Step 2 (geometric): a program from the vocabulary, parameters as expressions over bbox sizes."""

    subtask: str
    master: SkillObject
    slave: SkillObject
    tracks: list[KeypointTrack] = Field(min_length=1)
    vocabulary: list[str] = Field(default_factory=lambda: ["waypoints", "line", "arc", "rotation", "tilt",
                                                           "spiral", "zigzag"])
    image_paths: list[str] = Field(default_factory=list)


class TrajectoryAnswer(_Answer):
    semantic: str = Field(description="the semantic constraint, e.g. 'swing the door open about its hinge'")
    program: TrajectoryProgram


# --- planning -------------------------------------------------------------------------------------


class SceneObject(BaseModel):
    name: str
    bbox_size: Vec3
    color_rgb: Vec3 = (0.0, 0.0, 0.0)
    parent: str | None = None


class PlanCandidate(BaseModel):
    task: str
    goal: str
    paraphrases: list[str] = Field(default_factory=list)
    score: float = Field(description="retrieval similarity to the goal, higher is closer")
    steps: list[PlanStep]
    objects: dict[str, Vec3] = Field(default_factory=dict, description="demonstrated object name -> bbox size")


class PlanQuestion(BaseModel):
    goal: str
    scene: list[SceneObject]
    candidates: list[PlanCandidate] = Field(description="plans from memory, best retrieval score first")
    min_score: float = Field(0.35, description="below this similarity a candidate does not match the goal")


class PlanAnswer(_Answer):
    found: bool
    task: str | None = None
    steps: list[PlanStep] = Field(default_factory=list, description="steps with master/slave bound to scene names")
    bindings: dict[str, str] = Field(default_factory=dict, description="demonstrated object -> scene object")
    message: str = ""


# --- compare (before acting) and diagnose (after a failed execution) ---------------------------


class Revision(BaseModel):
    """A correction the adapter applies to a skill's instantiation (all optional, identity by default)."""

    model_config = ConfigDict(extra="forbid")
    grasp_offset: Vec3 = Field((0.0, 0.0, 0.0), description="shift of grasp candidates, bbox fractions")
    next_grasp_candidate: bool = Field(False, description="try the next cell of the 5x5 grid")
    approach: Vec3 | None = Field(None, description="replacement approach axis in the object frame")
    trajectory_scale: float = Field(1.0, gt=0, le=3, description="scale of the slave's motion about its start")
    angle_scale: float = Field(1.0, gt=0, le=3, description="scale of rotation angles (arcs, rotations, tilts)")
    lift_m: float = Field(0.0, ge=-0.1, le=0.2, description="extra height above the master, m")
    grasp_force_scale: float = Field(1.0, gt=0, le=2)
    note: str = ""

    def is_identity(self) -> bool:
        return self == Revision(note=self.note)


class CompareQuestion(BaseModel):
    skill_id: str
    subtask: str
    phase: Phase
    round: int = Field(0, ge=0)
    demo_master_size: Vec3
    scene_master_size: Vec3
    demo_slave_size: Vec3 | None = Field(None, description="the demonstrated slave's bbox size (manipulation)")
    scene_slave_size: Vec3 | None = Field(None, description="the slave's bbox size in this scene (manipulation)")
    demo_keypoints: list[Vec3] = Field(default_factory=list, description="demonstrated slave keypoints, master frame")
    adapted_keypoints: list[Vec3] = Field(default_factory=list, description="adapted slave keypoints, master frame")
    sweep: bool = Field(False, description="an oscillating motion (a scrub): compare the regions swept on the "
                        "master, not the keypoints in order")
    reachable: list[bool] = Field(default_factory=list, description="IK found, per adapted keypoint / candidate")
    collision_free: list[bool] = Field(default_factory=list)
    grasp_inside_object: bool | None = Field(None, description="the candidate grasp lies on/in the object bbox")
    grasp_in_region: bool | None = Field(None, description="the candidate grasp lies inside a learned region")
    gripper_width_needed: float | None = None
    image_paths: list[str] = Field(default_factory=list, description="demonstrated vs adapted renders")


class CompareAnswer(_Answer):
    acceptable: bool
    issues: list[str] = Field(default_factory=list)
    revision: Revision = Field(default_factory=Revision)


class ExecutionFacts(BaseModel):
    phase: Phase
    motion_status: str = Field("done", description="done | stopped | unreachable | collision | fault | timeout")
    grasp_closed_on_object: bool | None = None
    gripper_width_after: float | None = None
    object_held_at_end: bool | None = None
    expected_motion_m: float | None = Field(None, description="how far the slave/part should have moved")
    achieved_motion_m: float | None = None
    expected_rotation_deg: float | None = None
    achieved_rotation_deg: float | None = None
    subgoal_met: bool | None = None
    contents_expected_m3: float | None = Field(
        None, description="volume the demos poured into the master (median); None when the skill moves no contents")
    contents_gained_m3: float | None = Field(None, description="volume the master gained in this attempt (measured)")
    contents_share: float | None = Field(
        None, description="contents_gained_m3 / contents_expected_m3; below the skill's minimum the step failed")
    contents_transferred: bool | None = Field(
        None, description="False: the master did not receive the contents (spilled or not poured); None: not checked")
    slave_emptied: bool | None = Field(
        None, description="the slave's contents left it (True: poured out, a spill if the master lacks them; False: "
        "it still holds them, nothing was poured); None: its inside was not seen")
    message: str = ""


class DiagnoseQuestion(BaseModel):
    skill_id: str
    subtask: str
    round: int = Field(0, ge=0)
    facts: ExecutionFacts
    previous: list[Revision] = Field(default_factory=list, description="revisions already tried")
    image_paths: list[str] = Field(default_factory=list, description="frames before/after the attempt")


Cause = Literal["missed_grasp", "slip", "too_little_motion", "too_much_motion", "collision", "unreachable",
                "contents_lost", "unknown", "none"]


class DiagnoseAnswer(_Answer):
    cause: Cause
    explanation: str
    revision: Revision = Field(default_factory=Revision)
    give_up: bool = False


# question name -> (input model, answer model)
QUESTIONS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "recognise_task": (TaskQuestion, TaskRecognition),
    "label_segment": (SegmentQuestion, SegmentLabel),
    "group_grasps": (GraspQuestion, GraspAnswer),
    "fit_trajectory": (TrajectoryQuestion, TrajectoryAnswer),
    "plan": (PlanQuestion, PlanAnswer),
    "compare": (CompareQuestion, CompareAnswer),
    "diagnose": (DiagnoseQuestion, DiagnoseAnswer),
}
