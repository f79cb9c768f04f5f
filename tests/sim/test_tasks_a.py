"""Articulated tasks (open_drawer, open_microwave, press_button, turn_faucet), the registry, the
script runner and the ordered-subgoal tracker, on the real MuJoCo world."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from core.errors import VLMimicError
from sim.execute import run_script, run_solution
from sim.script import Script, Wait
from sim.show import build_scene
from sim.subgoals import SubgoalError, SubgoalTracker
from sim.tasks import TASKS, Variant, get_task, parse_variant
from sim.tasks.common import ArticulatedTask, joint_value
from sim.tasks.turn_faucet import add_faucet

TASKS_A = ("open_drawer", "open_microwave", "press_button", "turn_faucet")
MOVING_PART = {
    "open_drawer": "drawer",
    "open_microwave": "microwave_door",
    "press_button": "button",
    "turn_faucet": "faucet_handle",
}


def test_registry_holds_the_articulated_tasks_with_goal_texts() -> None:
    for name in TASKS_A:
        task = TASKS[name]
        assert task.name == name
        assert task.goal_text and len(task.paraphrases) >= 2
        assert len(task.camera_names) >= 3
        assert MOVING_PART[name] in task.object_labels


def test_unknown_task_and_variant_names_list_the_valid_ones() -> None:
    with pytest.raises(VLMimicError) as err:
        get_task("open_fridge")
    assert "open_drawer" in str(err.value) and "turn_faucet" in str(err.value)
    with pytest.raises(VLMimicError) as err:
        parse_variant("novel")
    assert "seen" in str(err.value) and "unseen" in str(err.value)
    assert parse_variant(" Unseen ") == Variant.unseen


@pytest.mark.parametrize("name", TASKS_A)
def test_every_seed_builds_in_both_variants_with_labels_cameras_and_a_false_predicate(name: str) -> None:
    for variant in ("seen", "unseen"):
        for seed in range(20):
            task, world, params = build_scene(name, variant, seed, with_robot=False, render=False)
            with world:
                for label in task.object_labels:
                    world.body_id(label)  # raises if missing
                for cam in task.camera_names:
                    assert cam in world.camera_names
                assert params.seed == seed and params.variant.value == variant
                assert not task.success(world, params), f"{name} {variant} seed {seed} solved at reset"
                if variant == "unseen":
                    assert 1 <= len(params.distractors) <= 3
                    for d in params.distractors:
                        world.body_id(d)
                else:
                    assert params.distractors == []


@pytest.mark.parametrize("name", TASKS_A)
def test_predicate_follows_the_articulation(name: str) -> None:
    task, world, params = build_scene(name, "seen", 3, with_robot=False, render=False)
    assert isinstance(task, ArticulatedTask)
    with world:
        joint = str(params.values["joint"])
        threshold = float(params.values["threshold"])
        # Just short of the threshold: not solved; the solved state: solved.
        from sim.tasks.common import set_joint_value

        set_joint_value(world, joint, 0.9 * threshold)
        assert not task.success(world, params)
        task.solved_state(world, params)
        assert task.success(world, params)
        assert joint_value(world, joint) > threshold


@pytest.mark.parametrize("name", TASKS_A)
def test_builds_are_deterministic_per_seed(name: str) -> None:
    task = get_task(name)
    outs = []
    for seed in (5, 5, 6):
        spec = mujoco.MjSpec()
        params = task.build(spec, Variant.unseen, np.random.default_rng(seed))
        model = spec.compile()
        outs.append((params.values, params.distractors, model.geom_size.copy(), model.geom_rgba.copy()))
    (v1, d1, s1, c1), (v2, d2, s2, c2), (v3, *_rest) = outs
    assert v1 == v2 and d1 == d2
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(c1, c2)
    assert v1 != v3


@pytest.mark.parametrize("name", TASKS_A)
def test_handles_are_graspable_and_variants_differ(name: str) -> None:
    task = get_task(name)
    seen_scales, unseen_scales, handles = [], [], set()
    for seed in range(20):
        for variant, scales in ((Variant.seen, seen_scales), (Variant.unseen, unseen_scales)):
            params = task.build(mujoco.MjSpec(), variant, np.random.default_rng(seed))
            scales.append(float(params.values["scale"]))
            if "handle_thickness" in params.values:
                assert 0.015 <= float(params.values["handle_thickness"]) <= 0.03
            if variant == Variant.unseen:
                handles.add(params.values.get("handle", params.values.get("shape")))
    assert max(abs(s - 1) for s in seen_scales) <= 0.05
    assert max(abs(s - 1) for s in unseen_scales) > 0.2 and max(abs(s - 1) for s in unseen_scales) <= 0.3
    assert len(handles) == 2  # unseen scenes use both handle types (or button shapes)


@pytest.mark.parametrize("name", TASKS_A)
def test_demonstrations_vary_with_the_rng_and_target_the_moving_part(name: str) -> None:
    task, world, params = build_scene(name, "seen", 0, with_robot=False, render=False)
    with world:
        a = task.demonstration(world, params, np.random.default_rng(1))
        b = task.demonstration(world, params, np.random.default_rng(2))
        assert a != b
        assert a == task.demonstration(world, params, np.random.default_rng(1))
        targets = {s.target for s in a.steps if s.kind == "grasp"}
        assert targets <= {MOVING_PART[name]}


@pytest.mark.parametrize("name", TASKS_A)
@pytest.mark.parametrize("variant", ["seen", "unseen"])
def test_scripted_robot_solution_solves_the_task(name: str, variant: str) -> None:
    result = run_solution(name, variant, 1)
    assert result.execution.completed, result.execution.message
    assert result.success, f"{name} {variant}: joint at {result.progress}"


def test_doing_nothing_does_not_solve_a_task() -> None:
    task, world, params = build_scene("open_drawer", "seen", 0, with_robot=True, render=False)
    with world:
        report = run_script(world, Script(steps=[Wait(duration=1.0)]), world.robot)
        assert report.completed
        assert not task.success(world, params)


def test_an_unreachable_move_stops_the_script_with_a_reason() -> None:
    from core.geometry import Pose
    from sim.script import Move, Release

    task, world, params = build_scene("press_button", "seen", 0, with_robot=True, render=False)
    with world:
        far = Pose(position=(2.0, 0.0, 0.3))
        script = Script(steps=[Move(path=[far], duration=1.0, label="too_far"), Release(width=0.08)])
        report = run_script(world, script, world.robot)
        assert not report.completed and report.failed_step == 0
        assert "too_far" in report.message and len(report.steps) == 1


def test_add_faucet_rejects_ungraspable_handles_and_reports_names() -> None:
    spec = mujoco.MjSpec()
    with pytest.raises(ValueError, match="thickness"):
        add_faucet(spec, (0.5, 0.0, 0.0), thickness=0.05)
    with pytest.raises(ValueError, match="lever"):
        add_faucet(spec, (0.5, 0.0, 0.0), handle="wheel")
    parts = add_faucet(spec, (0.5, 0.1, 0.05), yaw=math.pi / 2, name="tap", handle="knob")
    model = spec.compile()
    assert parts.body == "tap" and parts.handle == "tap_handle" and parts.joint == "tap_handle_hinge"
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, parts.joint) >= 0
    # yaw 90 deg: the rest direction (the faucet's -x) points along world -y
    np.testing.assert_allclose(parts.rest_dir, (0.0, -1.0, 0.0), atol=1e-9)
    assert parts.pivot[2] > 0.05 + 0.13


# --- subgoal tracker ---------------------------------------------------------------------------


def test_subgoals_count_only_in_order() -> None:
    tr = SubgoalTracker(["a", "b", "c"])
    tr.update(0.0, {"a": False, "b": True, "c": False})  # b before a: noted, not counted
    tr.update(1.0, {"a": True, "b": False, "c": False})
    assert tr.met_at == {"a": 1.0, "b": None, "c": None} and tr.early == ["b"]
    tr.update(2.0, {"a": False, "b": True, "c": True})  # b then c at the same instant: both in order
    assert tr.met_at == {"a": 1.0, "b": 2.0, "c": 2.0}
    assert tr.all_met and tr.n_met == 3
    assert tr.first_true_at["b"] == 0.0


def test_subgoals_missing_one_is_not_success() -> None:
    tr = SubgoalTracker(["a", "b"])
    tr.update(0.0, {"a": False, "b": True})
    tr.update(1.0, {"a": True, "b": False})
    assert not tr.all_met and tr.n_met == 1
    assert [r.met_at for r in tr.records()] == [1.0, None]


def test_subgoal_snapshots_must_match_and_come_in_time_order() -> None:
    tr = SubgoalTracker(["a"])
    with pytest.raises(SubgoalError, match="missing"):
        tr.update(0.0, {})
    tr.update(1.0, {"a": False})
    with pytest.raises(SubgoalError, match="time order"):
        tr.update(0.5, {"a": True})
    with pytest.raises(SubgoalError, match="unique"):
        SubgoalTracker(["a", "a"])
