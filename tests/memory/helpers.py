"""Small skills and plans for memory tests."""

from __future__ import annotations

from core.grounding import Phase
from core.skills import GraspConstraint, GraspRegion, PlanStep, Provenance, Skill, SkillObject, TaskPlan


def make_task(task: str, goal: str, paraphrases=(), n: int = 2) -> tuple[list[Skill], TaskPlan]:
    skills = []
    for i in range(n):
        sid = Skill.make_id(task, i, f"grasp part {i}")
        skills.append(Skill(
            id=sid, task=task, subtask=f"grasp part {i} of {goal}", phase=Phase.grasping,
            master=SkillObject(name=f"{task}_obj{i}", bbox_size=(0.1, 0.1, 0.1)), semantic=f"grasp it ({goal})",
            grasp=GraspConstraint(regions=[GraspRegion(center=(0, 0, 0.4), extent=(0.2, 0.2, 0.1))],
                                  approach=(0, 0, -1), width=0.03),
            provenance=Provenance(demo_ids=["d0"], containment=1.0),
        ))
    plan = TaskPlan(task=task, goal=goal, paraphrases=list(paraphrases), steps=[
        PlanStep(index=i, subtask=s.subtask, skill_id=s.id, phase=s.phase, master=s.master.name)
        for i, s in enumerate(skills)])
    return skills, plan
