"""The adapter's tuning constants, its error, and its state: the subgraph's state schema, the per-step
live objects, the per-run memory (what the gripper holds and how, remembered frames, placements,
timings) and how Revisions accumulate."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

import numpy as np

from agents.reasoning.questions import Revision
from agents.state import StepBinding
from core.contents import ContentsReading
from core.errors import VLMimicError
from core.geometry import Pose
from core.skills import Skill
from tools.execution.candidates import GraspPlan
from tools.execution.feasibility import PathCheck
from tools.perception.scene import PerceivedObject, PerceivedScene

N_CANDIDATES = 4  # grasp candidates per round (paper: 5x5 grid, 4 per round)
N_SHAPE = 24  # the adapted program at evenly spaced times: what the compare sets beside the demo's keypoints
APPROACH_SPEED = 0.3
CONTACT_SPEED = 0.1
HELD_SPEED = 0.12
GRASP_FORCE_N = 40.0
SETTLE_S = 0.4
SAME_PLACE_M = 0.03  # a re-perceived object within this of its remembered frame has not moved
OCCLUDED_SHARE = 0.7  # a view with fewer points than this share of the remembered one is occluded
OCCLUDED_SHIFT_M = 0.08  # ... and its centre may look this far off before the object counts as moved
FINGERTIP_BELOW_TCP_M = 0.01  # the Panda's fingertips reach this far below the TCP
FLOOR_MARGIN_M = 0.01  # and keep this clear of the surface an object stands on
PLACED_AGREE_M = 0.06  # a put-down object seen this near where the hand let it go has not moved since
MIN_MATERIAL_POINTS = 20  # perceived points between the fingers below which a grasp closes on nothing
# Panda joint poses that keep the arm out of an overhead camera's view (tried in order until the
# step's objects show): the elbow folded back and up over the base, the hand inside the workspace
OBSERVE_QS = ((0.0, -1.5, 0.0, -2.95, 0.0, 1.6, 0.785),)


class AdapterError(VLMimicError):
    """A step cannot be adapted or executed (reported as a failed step, never raised out of the adapter)."""


# --- state ------------------------------------------------------------------------------------------


def _merge(a: dict | None, b: dict | None) -> dict:
    out = dict(a or {})
    out.update(b or {})
    return out


class AdapterState(TypedDict, total=False):
    step: dict  # StepBinding dump
    run_id: str | None
    approved: Annotated[dict[str, bool], _merge]
    attempt: int  # executions so far
    adapt_rounds: int
    review_rounds: int
    revision: dict  # accumulated Revision dump
    revisions: Annotated[list[dict], operator.add]
    excluded: list[list[int]]  # (region, cell) grasp cells already tried
    instance: dict | None  # what will be executed (JSON summary)
    facts: dict | None  # ExecutionFacts dump of the last attempt
    verdict: str  # "" | "achieved" | "retry" | "failed"
    message: str
    timings: dict[str, float]
    result: dict


@dataclass
class _Held:
    """The object in the gripper, as the adapter grasped it."""

    name: str
    T_object_gripper: np.ndarray  # measured at the grasp: inv(T_world_object) · T_world_gripper
    T_world_object: np.ndarray  # where the object was when grasped
    grasp_skill: str = ""
    width: float = 0.0
    size: tuple[float, float, float] | None = None  # its bbox as seen before the hand hid part of it
    points_object: np.ndarray | None = None  # its cloud then, in its own frame (what later views are part of)


@dataclass
class _Placed:
    """An object the arm put down, carried rigidly from its grasp to where the hand let go of it."""

    T_world_object: np.ndarray  # where the hand let go of it: the hand's pose times the grasp's offset
    size: tuple[float, float, float] | None  # its bbox size when grasped
    points_object: np.ndarray | None = None  # its cloud when grasped, in its own frame


@dataclass
class _Live:
    """Per-step things that are not JSON (clouds, poses); rebuilt by perceive after a resume."""

    step: StepBinding
    skill: Skill
    scene: PerceivedScene
    grasp: GraspPlan | None = None
    trajectory: list[Pose] = field(default_factory=list)
    planned_ms: np.ndarray | None = None
    start_ms: np.ndarray | None = None
    T_slave_gripper: np.ndarray | None = None
    check: PathCheck | None = None
    before_support: float | None = None
    shape_ms: np.ndarray | None = None
    shape_args: tuple[dict, Revision] | None = None  # (scene sizes, revision) the shape was made with
    T_wm: np.ndarray | None = None  # the master's frame the trajectory is written in (yaw fixed for a round one)
    origin_ms: np.ndarray | None = None  # a held part's relation to its master when the step was first planned


@dataclass
class _RunMemory:
    held: _Held | None = None
    frames: dict[str, PerceivedObject] = field(default_factory=dict)  # first unoccluded sighting per object
    placed: dict[str, _Placed] = field(default_factory=dict)  # objects the arm put down
    timings: list[dict[str, float]] = field(default_factory=list)  # per step: perception/adaptation/planning/motion
    # per object, its latest contents reading whose inside was seen, and the frame it was measured in: the
    # run's first (clear) look, then each review's. A step's "before" falls back on it when the arm holding
    # the slave hides the master's inside at the step's start (agents/adapter_contents.py).
    contents: dict[str, tuple[np.ndarray, ContentsReading]] = field(default_factory=dict)


def run_memory(ctx: Any) -> _RunMemory:
    mem = getattr(ctx, "_adapter_memory", None)
    if mem is None:
        mem = _RunMemory()
        ctx._adapter_memory = mem
    return mem


def _rev(state: AdapterState) -> Revision:
    return Revision.model_validate(state.get("revision") or {})


def _combine(a: Revision, b: Revision) -> Revision:
    """Apply revision b on top of the accumulated a."""
    return Revision(
        grasp_offset=tuple(float(x + y) for x, y in zip(a.grasp_offset, b.grasp_offset, strict=True)),
        next_grasp_candidate=b.next_grasp_candidate,
        approach=b.approach if b.approach is not None else a.approach,
        trajectory_scale=float(np.clip(a.trajectory_scale * b.trajectory_scale, 0.2, 3.0)),
        angle_scale=float(np.clip(a.angle_scale * b.angle_scale, 0.2, 3.0)),
        lift_m=float(np.clip(a.lift_m + b.lift_m, -0.1, 0.2)),
        grasp_force_scale=float(np.clip(a.grasp_force_scale * b.grasp_force_scale, 0.1, 1.75)),
        note=b.note,
    )
