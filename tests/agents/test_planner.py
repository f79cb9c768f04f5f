"""The planner: goal -> sim task match, plan from memory bound to the scene, or what demos it needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.planner import match_task, plan_node, resolve_scene
from agents.state import RunConfig, initial_state, steps_of
from agents.trace import read_events, use_tracer
from sim.tasks import TASKS, UnknownTaskError
from tests.agents.graph_helpers import GOAL, FakeAdapter, FakeArm, make_ctx_factory, make_memory, seed_plan


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_sim_task_is_found_from_its_goal_and_paraphrases(name: str) -> None:
    task = TASKS[name]
    for text in (task.goal_text, *task.paraphrases[:1]):
        found, score = match_task(text)
        assert found == name, (text, found, score)


def test_unrelated_goal_matches_no_task_and_explicit_scene_is_checked() -> None:
    assert resolve_scene("fold the laundry", None)[0] is None
    assert resolve_scene("anything", "open_drawer") == ("open_drawer", 1.0)
    with pytest.raises(UnknownTaskError, match="valid tasks"):
        resolve_scene("open the drawer", "open_the_fridge")


def _ctx(tmp_path: Path, cfg: RunConfig, seeded: bool = True):
    mem = tmp_path / "memory.sqlite"
    with make_memory(mem) as m:
        if seeded:
            seed_plan(m)
    run_dir = tmp_path / "runs" / cfg.run_id
    run_dir.mkdir(parents=True)
    return make_ctx_factory(mem, FakeArm(), FakeAdapter())(cfg, run_dir)


def test_plan_from_memory_gives_ordered_steps_with_objects(tmp_path: Path) -> None:
    cfg = RunConfig(run_id="p1", goal="place the block into the box", robot="panda")
    ctx = _ctx(tmp_path, cfg)
    out = plan_node(initial_state(cfg), ctx)
    steps = steps_of(out)
    assert [(s.index, s.text, s.master) for s in steps] == [(0, "grasp the block", "block"),
                                                             (1, "take hold of the box rim", "box")]
    assert out["plan_id"] == "t" and "outcome" not in out
    ctx.close()


def test_without_skills_or_simulator_it_says_which_demos_and_commands(tmp_path: Path) -> None:
    cfg = RunConfig(run_id="p2", goal="water the plants", robot="panda")
    ctx = _ctx(tmp_path, cfg, seeded=False)
    out = plan_node(initial_state(cfg), ctx)
    assert out["outcome"] == "needs_demos"
    assert 'python main.py demo record --camera realsense --task "water the plants" --n 5 ' in out["message"]
    assert 'python main.py --goal "water the plants" --demos demos/water-the-plants' in out["message"]
    ctx.close()


def test_given_demos_are_sent_to_the_grounder(tmp_path: Path) -> None:
    demos = tmp_path / "demos"
    for i in range(2):
        (demos / f"d{i}").mkdir(parents=True)
        (demos / f"d{i}" / "meta.json").write_text("{}")
    cfg = RunConfig(run_id="p3", goal=GOAL + " twice", robot="panda", demos_dir=str(demos))
    ctx = _ctx(tmp_path, cfg, seeded=False)
    out = plan_node(initial_state(cfg), ctx)
    assert out["to_ground"] == [str(demos / "d0"), str(demos / "d1")]
    ctx.close()


def test_a_plan_whose_objects_the_scene_lacks_is_not_executed(tmp_path: Path) -> None:
    from sim.show import build_scene

    cfg = RunConfig(run_id="p4", goal=GOAL, robot="sim", scene="open_drawer")
    ctx = _ctx(tmp_path, cfg)
    task, world, params = build_scene("open_drawer", "seen", 0, render=True)
    ctx.camera, ctx.closers = world.camera("cam_front"), [*ctx.closers, world.close]
    with use_tracer(ctx.tracer):  # as inside the graph's planner node: reasoner calls reach the trace
        out = plan_node(initial_state(cfg), ctx)
    assert out["outcome"] == "not_achieved" and "no object for" in out["message"] and "block" in out["message"]
    calls = [e for e in read_events(ctx.run_dir) if e["kind"] == "reasoner_call"]
    assert [c["question"] for c in calls] == ["plan"]
    assert {o["name"] for o in calls[0]["input"]["scene"]} >= {"cabinet", "drawer"}
    ctx.close()


def test_a_held_tool_stays_in_hand_only_between_steps_that_use_it_again() -> None:
    from agents.planner import to_bindings
    from agents.reasoning.questions import PlanAnswer, PlanCandidate
    from core.grounding import Phase
    from core.skills import PlanStep

    def st(i: int, text: str, phase: Phase, master: str, slave: str | None) -> PlanStep:
        return PlanStep(index=i, subtask=text, skill_id=f"s{i}", phase=phase, master=master, slave=slave)

    steps = [st(0, "grasp the brush", Phase.grasping, "brush", None),
             st(1, "move the brush to the pan", Phase.manipulation, "pan", "brush"),
             st(2, "use the brush on the pan", Phase.manipulation, "pan", "brush"),
             st(3, "put the brush down by the rack", Phase.manipulation, "rack", "brush"),
             st(4, "grasp the pan", Phase.grasping, "pan", None),
             st(5, "move the pan to the rack", Phase.manipulation, "rack", "pan")]
    cand = PlanCandidate(task="t", goal="g", score=1.0, steps=steps)
    bound = to_bindings(PlanAnswer(found=True, task="t", steps=steps), cand)
    assert [b.keep_holding for b in bound] == [False, True, True, False, False, False]
