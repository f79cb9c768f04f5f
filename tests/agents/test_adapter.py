"""The adapter on the simulated Panda: learned skills executed, bad input and faults end cleanly.

Skills below are what the skill learner stored from 5 seen synthetic demos of each task (offline
reasoner), copied with 4-digit precision; the scenes are real MuJoCo scenes seen through the sim
camera; the robot is the simulated Panda behind SafeRobot. Fakes wrap the robot only where a fault
has to be injected (a slip, a controller exception).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.adapter import OBSERVE_QS, StepAdapter, build_adapter_graph, run_step
from agents.graph import RunContext, TracedRobot
from agents.reasoning import make_reasoner
from agents.state import RunConfig, StepBinding, StepResult
from agents.trace import Tracer, read_events
from core.geometry import Pose
from core.settings import load_settings
from core.skills import PlanStep, Skill, TaskPlan
from sim.show import build_scene
from tests.agents.graph_helpers import make_memory
from tools.robot.safety import SafeRobot

DRAWER = [
    {"id": "open_drawer.00.grasp", "task": "open_drawer", "subtask": "grasp the drawer of the cabinet",
     "phase": "grasping", "master": {"name": "drawer", "bbox_size": [0.0583, 0.3568, 0.1316], "parent": "cabinet"},
     "semantic": "grasp the drawer at its middle height, front, approaching from the front",
     "grasp": {"regions": [{"center": [0.3308, 0.0305, 0.0027], "extent": [0.1633, 0.1401, 0.1267]}],
               "approach": [-0.721, -0.016, -0.6927], "orientation": [0.6619, -0.6387, -0.2762, 0.2786],
               "width": 0.02},
     "provenance": {"demo_ids": ["open_drawer_seen_1000"]}},
    {"id": "open_drawer.01.open", "task": "open_drawer", "subtask": "open the drawer of the cabinet",
     "phase": "manipulation", "master": {"name": "cabinet", "bbox_size": [0.296, 0.3949, 0.3956]},
     "slave": {"name": "drawer", "bbox_size": [0.0583, 0.3568, 0.1316], "parent": "cabinet"},
     "semantic": "move the drawer in a straight line relative to the cabinet",
     "manipulation": {"program": {"family": "line", "start": {"position": ["master.x*0.58863", 0.0, "master.z*0.28821"],
                                                               "quaternion": [0.0, 0.0, 0.0049, -1.0]},
                                  "steps": [{"kind": "line", "direction": [1.0, 0.0027, -0.0023],
                                             "distance": "master.x*0.48196"}]},
                      "T_slave_gripper": {"position": [0.0196, 0.0103, -0.0004],
                                          "quaternion": [0.6619, -0.6388, -0.2761, 0.2785]},
                      "keypoints": [{"position": [0.1742, -0.0013, 0.114]}, {"position": [0.2216, -0.0011, 0.1138]},
                                    {"position": [0.2695, -0.0011, 0.1137]}, {"position": [0.3165, -0.0013, 0.114]}]},
     "provenance": {"demo_ids": ["open_drawer_seen_1000"]}},
]
BLOCKS = [
    {"id": "stack_block.00.grasp", "task": "stack_block", "subtask": "grasp the block red", "phase": "grasping",
     "master": {"name": "block_red", "bbox_size": [0.0484, 0.0485, 0.0431]},
     "semantic": "grasp the block_red at its middle height, centre, approaching from above",
     "grasp": {"regions": [{"center": [-0.0075, 0.0012, 0.0118], "extent": [0.0979, 0.1094, 0.2025]}],
               "approach": [0.0011, 0.0003, -1.0], "orientation": [-0.0198, 0.9998, 0.0, 0.0006], "width": 0.0446},
     "provenance": {"demo_ids": ["stack_block_seen_1000"]}},
    {"id": "stack_block.01.place", "task": "stack_block", "subtask": "place the block red on the block blue",
     "phase": "manipulation", "master": {"name": "block_blue", "bbox_size": [0.0518, 0.0518, 0.0431]},
     "slave": {"name": "block_red", "bbox_size": [0.0484, 0.0485, 0.0431]},
     "semantic": "move the block_red straight to the block_blue",
     "manipulation": {"program": {"family": "reach", "start": {"position": ["master.x*0.875", "master.y*3.75", 0.0],
                                                                "quaternion": [0.0, 0.0, 0.1932, -0.9812]},
                                  "steps": [{"kind": "waypoints", "points": [
                                      ["master.x*0.75", "master.y*3.625", "master.z*3.75"],
                                      ["master.x*-0.125", "master.y*-0.053724", "master.z*3.875"],
                                      [0.0, "master.y*0.054918", "master.z*1.0496"]]}]},
                      "T_slave_gripper": {"position": [-0.0003, 0.0001, -0.0003],
                                          "quaternion": [-0.0198, 0.9998, 0.0, 0.0006]},
                      "keypoints": [{"position": [0.0454, 0.194, 0.0003]}, {"position": [0.0426, 0.1877, 0.167]},
                                    {"position": [0.0053, 0.0394, 0.1614]}, {"position": [-0.0025, 0.0013, 0.0455]}]},
     "provenance": {"demo_ids": ["stack_block_seen_1000"]}},
]

# put_fruit_on_plate, learned from 5 seen demos (the mango lies long along its x in the demo's frame)
FRUIT = [
    {"id": "put_fruit_on_plate.00.grasp", "task": "put_fruit_on_plate", "subtask": "grasp the mango",
     "phase": "grasping", "master": {"name": "mango", "bbox_size": [0.0808, 0.0492, 0.0438]},
     "semantic": "grasp the mango at its bottom, centre, approaching from above",
     "grasp": {"regions": [{"center": [0.0114, 0.1318, -0.3398], "extent": [0.1914, 0.1888, 0.1632]}],
               "approach": [0.0055, 0.0227, -0.9997], "orientation": [-0.0628, -0.998, -0.0113, -0.0029],
               "width": 0.0614},
     "provenance": {"demo_ids": ["put_fruit_on_plate_seen_1000"]}},
    {"id": "put_fruit_on_plate.01.place", "task": "put_fruit_on_plate", "subtask": "place the mango on the plate",
     "phase": "manipulation", "master": {"name": "plate", "bbox_size": [0.1968, 0.1966, 0.0071]},
     "slave": {"name": "mango", "bbox_size": [0.0808, 0.0492, 0.0438]},
     "semantic": "lift the mango, carry it over the plate and lower it onto the plate",
     "manipulation": {"program": {"family": "transport",
                                  "start": {"position": ["master.x*0.53576", "master.y*1.3968", 0.0247],
                                            "quaternion": [0.0, 0.0, -0.1901, 0.9818]},
                                  "steps": [{"kind": "line", "direction": [0.0, 0.0, 1.0], "distance": 0.134},
                                            {"kind": "waypoints",
                                             "points": [["master.x*-0.068711", "master.y*0.033806", 0.1759],
                                                        ["master.x*-0.070068", 0.0, 0.0358]]}]},
                      "T_slave_gripper": {"position": [0.0005, 0.0055, -0.0144],
                                          "quaternion": [-0.0628, -0.998, -0.0116, -0.0029]}},
     "provenance": {"demo_ids": ["put_fruit_on_plate_seen_1000"]}},
]


class Sim:
    """A scene, its context and the plan's steps bound by name."""

    def __init__(self, tmp: Path, task: str, skills: list[dict], *, seed: int = 1, variant: str = "seen",
                 adapter_rounds: int = 4, review_rounds: int = 2, wrap: Any = None) -> None:
        self.settings = load_settings(memory_path=tmp / "memory.sqlite", runs_dir=tmp / "runs")
        self.task, self.world, self.params = build_scene(task, variant, seed, with_robot=True, render=True)
        self.task.attach(self.world, self.params)
        self.world.step(int(0.2 / self.world.timestep))
        self.memory = make_memory(tmp / "memory.sqlite")
        sk = [Skill.model_validate(s) for s in skills]
        self.steps = [PlanStep(index=i, subtask=s.subtask, skill_id=s.id, phase=s.phase, master=s.master.name,
                               slave=s.slave.name if s.slave else None) for i, s in enumerate(sk)]
        self.memory.learn(sk, TaskPlan(task=task, goal=task, steps=self.steps))
        self.run_dir = tmp / "run"
        self.tracer = Tracer(self.run_dir)
        robot: Any = SafeRobot(self.world.robot, self.settings.safety, confirm=lambda _w: True)
        self.raw = wrap(robot) if wrap else robot
        cfg = RunConfig(run_id="adapter-test", goal=task, scene=task, adapter_rounds=adapter_rounds,
                        review_rounds=review_rounds, record_video=False, yes=True)
        camera = self.world.camera(self.task.camera_names[0])
        self.ctx = RunContext(config=cfg, run_dir=self.run_dir, tracer=self.tracer, settings=self.settings,
                              robot=TracedRobot(self.raw, self.tracer), camera=camera, world=self.world,
                              reasoner=make_reasoner("offline", self.settings), memory=self.memory)

    def binding(self, i: int, **update: Any) -> StepBinding:
        s = self.steps[i]
        b = StepBinding(index=i, text=s.subtask, skill_id=s.skill_id, phase=s.phase.value, master=s.master,
                        slave=s.slave)
        return b.model_copy(update=update)

    def events(self, kind: str) -> list[dict]:
        return [e for e in read_events(self.run_dir) if e["kind"] == kind]

    def close(self) -> None:
        self.tracer.close()
        self.memory.close()
        self.world.close()


@pytest.fixture
def sims(tmp_path: Path):
    made: list[Sim] = []

    def make(*args: Any, **kw: Any) -> Sim:
        s = Sim(tmp_path / f"s{len(made)}", *args, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_learned_drawer_skills_open_the_drawer_and_outcomes_reach_memory(sims) -> None:
    s = sims("open_drawer", DRAWER)
    results = [run_step(s.binding(0), s.ctx), run_step(s.binding(1), s.ctx)]
    assert [r.status for r in results] == ["achieved", "achieved"], [r.message for r in results]
    assert "holding" in results[0].message and "moved" in results[1].message
    s.world.step(int(0.5 / s.world.timestep))
    assert s.task.success(s.world, s.params)  # ground truth, scoring only
    rounds = s.events("round")
    assert {r["phase"] for r in rounds} == {"compare", "review"} and all("conclusion" in r for r in rounds)
    assert all(r.adapt_rounds >= 1 for r in results)
    outs = s.memory.outcomes()
    assert {o.skill_id for o in outs if o.success} == {"open_drawer.00.grasp", "open_drawer.01.open"}
    assert s.memory.get_skill("open_drawer.01.open").stats.successes == 1
    assert any(e["command"] == "grasp" for e in s.events("robot_command"))


def test_the_same_scene_and_skills_give_the_same_commands_and_outcome(sims) -> None:
    # every choice the adapter makes is seeded: a bench's figure or a replayed run can be reproduced
    runs = []
    for _ in range(2):
        s = sims("open_drawer", DRAWER, seed=3)
        results = [run_step(s.binding(0), s.ctx), run_step(s.binding(1), s.ctx)]
        commands = [(e["command"], json.dumps(e["args"], sort_keys=True)) for e in s.events("robot_command")
                    if "result" in e]
        runs.append(([(r.status, r.message) for r in results], commands,
                     round(s.world.joint_qpos("drawer_slide"), 6),
                     s.task.success(s.world, s.params)))
    assert runs[0][0][-1][0] == "achieved"
    assert len(runs[0][1]) > 4
    assert runs[0] == runs[1]


def test_zero_compare_rounds_executes_without_asking_and_the_graph_contract_holds(sims) -> None:
    s = sims("open_drawer", DRAWER, adapter_rounds=0)
    graph = build_adapter_graph(s.ctx)
    out = graph.invoke({"step": s.binding(0).model_dump(mode="json"), "run_id": "adapter-test"})
    res = StepResult.model_validate(out["result"])
    assert res.status == "achieved" and res.adapt_rounds == 0
    assert not [r for r in s.events("round") if r["phase"] == "compare"]
    assert [e for e in s.events("approval") if e["approved"]]  # the adapter's own approval before moving


def test_object_not_visible_fails_clearly_after_looking_again_without_touching_anything(sims) -> None:
    s = sims("open_drawer", DRAWER)
    res = run_step(s.binding(0, master="teapot"), s.ctx)
    assert res.status == "failed" and "does not see 'teapot'" in res.message
    # the arm only folded out of the camera's view to look again: no gripper command, no approach
    commands = {e["command"] for e in s.events("robot_command")}
    assert commands <= {"move_to_joints", "stop"}
    assert any("clearing the camera's view of ['teapot']" in str(e.get("result")) for e in s.events("tool_result"))
    assert np.allclose(s.world.robot.joint_positions()[1:4], OBSERVE_QS[-1][1:4], atol=0.05)  # at rest there
    assert any("teapot" in e["message"] for e in s.events("adapter_error"))


def test_a_fruit_hidden_by_the_arm_is_found_folded_away_grasped_across_and_placed_on_the_plate(sims) -> None:
    # unseen seed 2: the arm at home hides the (cylindrical) fruit from the front camera
    s = sims("put_fruit_on_plate", FRUIT, seed=2, variant="unseen")
    f = s.ctx.camera.capture()
    ids = {v: k for k, v in (f.labels or {}).items()}
    assert int((f.segmentation == ids["mango"]).sum()) < 30
    for i in range(2):
        res = run_step(s.binding(i), s.ctx)
        assert res.status == "achieved", res.message
    looked = [e for e in s.events("tool_result") if "clearing the camera's view of ['mango']" in str(e.get("result"))]
    assert looked
    s.world.step(int(0.5 / s.world.timestep))
    assert s.task.success(s.world, s.params)  # the ground truth agrees with the review


def test_unreachable_target_is_refused_before_any_motion(sims) -> None:
    s = sims("stack_block", BLOCKS)
    p = s.world.body_pose("block_red")
    s.world.set_free_body_pose("block_red", Pose(position=(0.95, 0.0, p.position[2]), quaternion=p.quaternion))
    s.world.step(int(0.3 / s.world.timestep))
    q0 = s.world.robot.joint_positions()
    res = run_step(s.binding(0), s.ctx)
    assert res.status == "failed" and "cannot execute 'grasp the block red'" in res.message
    assert "IK" in res.message or "reach" in res.message
    assert np.allclose(s.world.robot.joint_positions(), q0, atol=1e-3)
    assert s.events("adapter_error")


class Slippery:
    """The gripper lets go as a long trajectory starts (a slip at the hardware edge)."""

    def __init__(self, robot: Any) -> None:
        self._robot = robot
        self.stops = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._robot, name)

    def follow_poses(self, poses: Any, speed_factor: float = 0.2) -> Any:
        if len(poses) > 5:
            self._robot.open_gripper(0.08)
        return self._robot.follow_poses(poses, speed_factor=speed_factor)

    def stop(self) -> None:
        self.stops += 1
        self._robot.stop()


class Faulty(Slippery):
    """The controller throws half-way through a long trajectory (a libfranka reflex)."""

    def follow_poses(self, poses: Any, speed_factor: float = 0.2) -> Any:
        if len(poses) > 5:
            self._robot.follow_poses(poses[: len(poses) // 2], speed_factor=speed_factor)
            raise RuntimeError("libfranka: cartesian_reflex")
        return self._robot.follow_poses(poses, speed_factor=speed_factor)


def test_dropped_object_is_diagnosed_retried_and_fails_cleanly(sims) -> None:
    s = sims("stack_block", BLOCKS, review_rounds=1, wrap=Slippery)
    assert run_step(s.binding(0), s.ctx).status == "achieved"
    res = run_step(s.binding(1), s.ctx)
    assert res.status == "failed" and res.review_rounds == 1
    reviews = [r for r in s.events("round") if r["phase"] == "review"]
    assert any("slip" in r["conclusion"] or "missed" in r["conclusion"] for r in reviews)
    assert s.raw.stops >= 1 and s.events("adapter_error")
    assert not s.task.success(s.world, s.params)
    assert any(not o.success for o in s.memory.outcomes("stack_block.01.place"))


def test_robot_fault_mid_trajectory_stops_the_arm_and_reports(sims) -> None:
    s = sims("stack_block", BLOCKS, wrap=Faulty)
    assert run_step(s.binding(0), s.ctx).status == "achieved"
    res = run_step(s.binding(1), s.ctx)
    assert res.status == "failed" and "robot fault" in res.message and "cartesian_reflex" in res.message
    assert s.raw.stops >= 1
    assert any("cartesian_reflex" in e["message"] for e in s.events("adapter_error"))


@pytest.mark.slow
def test_the_agent_graph_runs_the_real_adapter_end_to_end(tmp_path: Path) -> None:
    """The outer graph looks up agents.adapter.build_adapter_graph and scores with the simulator."""
    from functools import partial

    from agents.graph import make_context, run_goal
    from memory.store import open_memory

    settings = load_settings(memory_path=tmp_path / "memory.sqlite", runs_dir=tmp_path / "runs")
    sk = [Skill.model_validate(s) for s in DRAWER]
    plan = TaskPlan(task="open_drawer", goal="open the drawer", paraphrases=["pull the drawer open"], steps=[
        PlanStep(index=i, subtask=s.subtask, skill_id=s.id, phase=s.phase, master=s.master.name,
                 slave=s.slave.name if s.slave else None) for i, s in enumerate(sk)])
    with open_memory(settings) as mem:
        mem.learn(sk, plan)
    cfg = RunConfig(run_id="graph-adapter", goal="open the drawer", scene="open_drawer", seed=2, record_video=False)
    summary = run_goal(cfg, runs_root=tmp_path / "runs", context_factory=partial(make_context, settings=settings))
    assert [st.status for st in summary.steps] == ["achieved", "achieved"], summary.message
    assert summary.outcome == "achieved"
    kinds = {e["kind"] for e in read_events(tmp_path / "runs" / "graph-adapter")}
    assert {"round", "adapter_timing", "robot_command"} <= kinds


class DownReasoner:
    """The VLM endpoint is down (network edge): every question fails."""

    name = "llm"

    def compare(self, q: Any) -> Any:
        from agents.reasoning.protocol import ReasonerError

        raise ReasonerError("endpoint http://localhost:8000/v1 timed out after 30 s")

    diagnose = compare


def test_reasoner_outage_fails_the_step_before_moving(sims) -> None:
    s = sims("open_drawer", DRAWER)
    s.ctx.reasoner = DownReasoner()
    q0 = s.world.robot.joint_positions()
    res = run_step(s.binding(0), s.ctx)
    assert res.status == "failed" and "could not compare" in res.message and "timed out" in res.message
    assert np.allclose(s.world.robot.joint_positions(), q0, atol=1e-3)
    # an image-reading reasoner is shown the adapted grasp against the learned regions, under the run
    assert list((s.run_dir / "adapter").glob("open_drawer.00.grasp.round0.grasp.png"))
    assert not s.events("adapter_error") or all("render" not in e["message"] for e in s.events("adapter_error"))


# --- frames the adapter keeps between steps (no simulator: the perceived objects are built directly) ---


FAUCET = json.loads((Path(__file__).parent / "data" / "turn_faucet_skills.json").read_text())


def _off_axis_lever_grasp(skills: list[dict], across: float) -> list[dict]:
    """The recorded faucet skills with the grasp region moved `across` (a fraction of the lever's width) off
    the lever's axis: where a lever frame tilted by a few degrees put the demos' grasps (grounder <= 11)."""
    out = copy.deepcopy(skills)
    region = out[0]["grasp"]["regions"][0]
    region["center"][1], region["extent"][1] = across, 0.05
    return out


@pytest.mark.parametrize("review_rounds", [0, 2])
def test_a_grasp_turning_about_the_lever_is_caught_by_the_view_not_credited_from_the_hand(
        sims, review_rounds: int) -> None:
    # unseen seed 6, the lever held 1.8 cm off its axis at 34 mm: the fingers turn about the lever while
    # it swings about the faucet, so the lever ends up turned otherwise than the hand (18 deg apart)
    s = sims("turn_faucet", _off_axis_lever_grasp(FAUCET, 0.45), seed=6, variant="unseen", adapter_rounds=0,
             review_rounds=review_rounds)
    assert run_step(s.binding(0), s.ctx).status == "achieved"
    res = run_step(s.binding(1), s.ctx)
    slips = [e for e in s.events("tool_result") if "slipped in the grasp" in str(e.get("result"))]
    assert slips, "the view of the lever was not checked against the hand"
    s.world.step(int(0.5 / s.world.timestep))
    # the verdict, judged from what is seen, agrees with the ground truth (scoring only)
    assert (res.status == "achieved") == s.task.success(s.world, s.params), res.message


def test_the_arm_folds_out_of_view_even_with_its_wrist_at_the_end_stop(sims) -> None:
    # a far put-down leaves the wrist turned beyond what the safety layer lets a move end at; folding the
    # arm away must still happen (with the twist brought inside the limits), not be refused as a whole
    s = sims("open_drawer", DRAWER)
    q = np.asarray(s.world.robot.joint_positions(), dtype=float)
    q[6] = 2.87
    s.world.robot.move_to_joints(q, speed_factor=0.5)  # the bare simulated arm: no safety margin
    assert s.world.robot.joint_positions()[6] > 2.85
    assert StepAdapter(s.ctx)._clear_view(["drawer"])
    results = [str(e.get("result")) for e in s.events("tool_result")
               if "clearing the camera's view" in str(e.get("result"))]
    assert results and not any("refused" in r for r in results), results
    q_end = s.world.robot.joint_positions()
    assert np.allclose(q_end[1:4], OBSERVE_QS[0][1:4], atol=0.05) and q_end[6] < 2.85
