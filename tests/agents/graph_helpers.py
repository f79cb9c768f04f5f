"""Shared by the graph tests and the subprocess they kill: a real skill memory with a two-step plan,
an arm fake at the hardware edge, and an honest fake adapter (the real one is agents/adapter.py)."""

from __future__ import annotations

import os
from pathlib import Path

from agents.graph import RunContext, TracedRobot
from agents.reasoning import make_reasoner
from agents.state import RunConfig, StepBinding, StepResult
from agents.trace import Tracer
from core.geometry import Pose
from core.grounding import Phase
from core.motion import GraspResult, MotionResult, MotionStatus
from core.settings import load_settings
from core.skills import GraspConstraint, GraspRegion, PlanStep, Provenance, Skill, SkillObject, TaskPlan
from memory.embeddings import LexicalEmbedder
from memory.store import SkillMemory, open_memory

GOAL = "put the block in the box"


def make_memory(path: Path) -> SkillMemory:
    return open_memory(load_settings(memory_path=path), embedder=LexicalEmbedder())


def seed_plan(mem: SkillMemory) -> TaskPlan:
    block = SkillObject(name="block", bbox_size=(0.05, 0.05, 0.05))
    box = SkillObject(name="box", bbox_size=(0.2, 0.2, 0.1))
    grasp = GraspConstraint(regions=[GraspRegion(center=(0, 0, 0.2), extent=(0.4, 0.4, 0.4))], approach=(0, 0, -1),
                            width=0.04)
    skills = [
        Skill(id="t.00.grasp", task="t", subtask="grasp the block", phase=Phase.grasping, master=block,
              semantic="grasp the block from the top", grasp=grasp, provenance=Provenance(demo_ids=["d0"])),
        Skill(id="t.01.place", task="t", subtask="take hold of the box rim", phase=Phase.grasping, master=box,
              semantic="grasp the box rim", grasp=grasp, provenance=Provenance(demo_ids=["d0"])),
    ]
    plan = TaskPlan(task="t", goal=GOAL, paraphrases=["place the block into the box"], steps=[
        PlanStep(index=0, subtask="grasp the block", skill_id="t.00.grasp", phase=Phase.grasping, master="block"),
        PlanStep(index=1, subtask="take hold of the box rim", skill_id="t.01.place", phase=Phase.grasping,
                 master="box"),
    ])
    mem.learn(skills, plan)
    return plan


class FakeArm:
    """A Robot at the hardware edge: records commands; motions succeed."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.stopped = 0

    def follow_poses(self, poses, speed_factor: float = 0.2) -> MotionResult:
        self.log.append("follow_poses")
        return MotionResult(status=MotionStatus.done, waypoints_done=len(poses), waypoints_total=len(poses))

    def grasp(self, width: float = 0.0, force: float = 40.0, **kw) -> GraspResult:
        self.log.append("grasp")
        return GraspResult(success=True, width=0.04)

    def open_gripper(self, width: float = 0.08, speed: float = 0.1) -> bool:
        self.log.append("open_gripper")
        return True

    def ee_pose(self) -> Pose:
        return Pose()

    def stop(self) -> None:
        self.stopped += 1


class FakeAdapter:
    """Stands in for agents/adapter.py: moves the arm toward the bound object and grasps it.

    `crash_at` raises (or, with `hard=True`, kills the process) at that step the first time.
    """

    def __init__(self, crash_at: int | None = None, hard: bool = False, fail_at: int | None = None) -> None:
        self.crash_at, self.hard, self.fail_at = crash_at, hard, fail_at
        self.calls: list[int] = []

    def __call__(self, step: StepBinding, ctx: RunContext) -> StepResult:
        self.calls.append(step.index)
        ctx.tracer.event("round", phase="compare", round=1, conclusion=f"grasp region fits the {step.master}")
        ctx.robot.follow_poses([Pose(position=(0.5, 0.0, 0.3))])
        if step.index == self.crash_at:
            marker = ctx.run_dir / f"crashed-{step.index}"
            if not marker.exists():
                marker.write_text("1")
                if self.hard:
                    os._exit(17)
                raise RuntimeError(f"injected crash in step {step.index}")
        ok = ctx.robot.grasp(width=0.04).success and step.index != self.fail_at
        return StepResult(index=step.index, status="achieved" if ok else "failed", adapt_rounds=1,
                          message="" if ok else "the block slipped")


def make_ctx_factory(mem_path: Path, arm: FakeArm, adapter: FakeAdapter):
    def factory(cfg: RunConfig, run_dir: Path) -> RunContext:
        tracer = Tracer(run_dir)
        mem = make_memory(mem_path)
        ctx = RunContext(config=cfg, run_dir=run_dir, tracer=tracer, settings=load_settings(), memory=mem,
                         robot=TracedRobot(arm, tracer), adapter=adapter, reasoner=make_reasoner(cfg.reasoner))
        ctx.closers += [tracer.close, mem.close]
        return ctx

    return factory


def real_robot_config(run_id: str, yes: bool = False) -> RunConfig:
    return RunConfig(run_id=run_id, goal=GOAL, robot="panda", yes=yes)
