"""Typed state of the agent graph (DESIGN §5) and the run's configuration.

The graph state is a TypedDict of plain JSON-able values so that LangGraph's SqliteSaver can
checkpoint it exactly and a resumed run sees what the crashed one saw. Structured parts are stored
as dicts dumped from the pydantic models below; use `steps_of(state)` / `results_of(state)` to get
them back typed. Non-serialisable things (robot, camera, world, reasoner, memory, tracer) live in
`agents.graph.RunContext`, rebuilt from `RunConfig` on resume.
"""

from __future__ import annotations

import operator
import re
import secrets
import time
from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel, Field

from core.errors import ConfigError

Outcome = Literal["achieved", "not_achieved", "needs_demos", "refused", "error"]
StepStatus = Literal["pending", "running", "achieved", "failed", "refused", "skipped"]


class RunConfig(BaseModel):
    """Everything needed to (re)build a run's context; saved as runs/<id>/run.json."""

    run_id: str
    goal: str
    scene: str | None = Field(None, description="sim task; None = the task that best matches the goal")
    variant: Literal["seen", "unseen"] = "seen"
    seed: int = 0
    reasoner: str = "offline"
    robot: Literal["sim", "panda"] = "sim"
    camera: str | None = None
    yes: bool = False
    n_demos: int = Field(5, ge=1)
    demo_seed: int = Field(1000, description="seed of the synthetic demonstrations recorded by the planner")
    record_workers: int = Field(2, ge=1, description="processes recording synthetic demonstrations in parallel")
    adapter_rounds: int = Field(4, ge=0, le=4)
    review_rounds: int = Field(2, ge=0, le=2)
    record_video: bool = True
    created_at: float = Field(default_factory=time.time)
    parent_run: str | None = Field(None, description="the run this one re-runs (replay --rerun)")
    demos_dir: str | None = Field(None, description="demo folders to learn when memory lacks the goal")
    video_camera: str | None = Field(None, description="sim camera the execution video is taken from")

    @property
    def simulated(self) -> bool:
        return self.robot == "sim"


class StepBinding(BaseModel):
    """A plan step bound to the objects of the current scene."""

    index: int = Field(ge=0)
    text: str
    skill_id: str | None = None
    phase: str | None = None
    master: str | None = Field(None, description="scene object the step acts on")
    slave: str | None = Field(None, description="scene object held while acting (manipulation)")
    demo_master: str | None = Field(None, description="object name in the demonstrations")
    demo_slave: str | None = None
    keep_holding: bool = Field(False, description="the next step acts with the same held object: "
                               "do not release it at the end of this one (e.g. carry the brush to the pan, then scrub)")


class StepResult(BaseModel):
    index: int
    status: StepStatus = "pending"
    adapt_rounds: int = 0
    review_rounds: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    message: str = ""
    subgoals: dict[str, bool] = Field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return max(0.0, self.ended_at - self.started_at)


def _merge_dict(a: dict | None, b: dict | None) -> dict:
    out = dict(a or {})
    out.update(b or {})
    return out


def _merge_or(a: dict | None, b: dict | None) -> dict:
    out = dict(a or {})
    for k, v in (b or {}).items():
        out[k] = bool(out.get(k, False)) or bool(v)
    return out


class GraphState(TypedDict, total=False):
    run_id: str
    goal: str
    scene: str | None  # resolved sim task (None on the real robot)
    scene_objects: list[str]
    plan_id: str | None
    steps: list[dict]  # StepBinding dumps, in order
    step_index: int  # the next step to run
    results: Annotated[dict[str, dict], _merge_dict]  # str(index) -> StepResult dump
    demos: list[str]  # demo folders recorded or given for learning
    to_ground: list[str]  # demo folders still waiting for the grounder
    grounded: list[str]  # demo folders grounded (their grounded/ sub-folder exists)
    learned: bool  # the skill learner ran in this run
    subgoals: Annotated[dict[str, bool], _merge_or]  # a subgoal once met stays met (also across a resume)
    approved: Annotated[dict[str, bool], _merge_dict]  # approval key -> decision
    outcome: Outcome | None
    message: str
    notes: Annotated[list[str], operator.add]  # what the agents said, in order


def steps_of(state: GraphState) -> list[StepBinding]:
    return [StepBinding.model_validate(s) for s in state.get("steps") or []]


def results_of(state: GraphState) -> dict[int, StepResult]:
    return {int(k): StepResult.model_validate(v) for k, v in (state.get("results") or {}).items()}


def initial_state(cfg: RunConfig) -> GraphState:
    return GraphState(
        run_id=cfg.run_id,
        goal=cfg.goal,
        scene=cfg.scene,
        scene_objects=[],
        plan_id=None,
        steps=[],
        step_index=0,
        results={},
        demos=[],
        to_ground=[],
        grounded=[],
        learned=False,
        subgoals={},
        approved={},
        outcome=None,
        message="",
        notes=[],
    )


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}$")


def new_run_id(goal: str, now: float | None = None) -> str:
    """A sortable, readable run id: 20261125-060102-wash-the-pan-3f9a."""
    t = time.gmtime(now if now is not None else time.time())
    slug = re.sub(r"[^a-z0-9]+", "-", goal.lower()).strip("-")[:32].strip("-") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S', t)}-{slug}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"run id {run_id!r}: expected letters, digits, '-', '_' or '.'")
    return run_id
