"""Kitchen-object tasks (put_fruit_on_plate, stack_block, pour_cup_to_cup, brush_pan, wash_pan) on the
real MuJoCo world: builds, success predicates, scripted solutions, demonstrations, wash_pan's order."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.geometry import Pose
from sim.execute import run_solution
from sim.script import Grasp, Move, Script
from sim.show import build_scene
from sim.tasks import TASKS
from sim.tasks.kitchen import (
    pan_geometry,
)
from sim.tasks.objects import (
    PLATE_THICKNESS,
    liquid_names,
)

TASKS_B = ("put_fruit_on_plate", "stack_block", "pour_cup_to_cup", "brush_pan", "wash_pan")
LABELS = {
    "put_fruit_on_plate": {"mango", "plate"},
    "stack_block": {"block_red", "block_blue"},
    "pour_cup_to_cup": {"cup_source", "cup_target"},
    "brush_pan": {"pan", "brush"},
    "wash_pan": {"pan", "sink", "faucet", "faucet_handle", "brush", "rack"},
}


def _settle(world, seconds: float = 0.3) -> None:
    world.step(int(seconds / world.timestep))


def test_registry_holds_the_kitchen_tasks_with_goal_texts_labels_and_cameras() -> None:
    for name in TASKS_B:
        task = TASKS[name]
        assert task.goal_text and len(task.paraphrases) >= 2
        assert len(task.camera_names) >= 3
        assert LABELS[name] <= set(task.object_labels)
    assert TASKS["wash_pan"].subgoal_names == (
        "pan_in_sink", "faucet_on", "faucet_off", "pan_on_table", "pan_brushed", "pan_on_rack")
    assert "clean the frying pan" in TASKS["wash_pan"].paraphrases


@pytest.mark.parametrize("name", TASKS_B)
def test_every_seed_builds_in_both_variants_and_is_unsolved_at_reset(name: str) -> None:
    shapes = set()
    for variant in ("seen", "unseen"):
        for seed in range(20):
            task, world, params = build_scene(name, variant, seed, with_robot=False, render=False)
            with world:
                for label in task.object_labels:
                    world.body_id(label)
                for cam in task.camera_names:
                    assert cam in world.camera_names
                if variant == "seen":
                    assert params.distractors == []
                else:
                    assert len(params.distractors) <= 3
                _settle(world)
                assert not task.success(world, params), f"{name} {variant} seed {seed} solved at reset"
                shapes.add(str(params.values.get("fruit_shape", params.values.get("pan_handle", ""))))
    if name == "put_fruit_on_plate":
        assert {"ellipsoid", "cube", "cylinder"} <= shapes
    if name in ("brush_pan", "wash_pan"):
        assert len(shapes) >= 2  # other handle types in unseen scenes


def test_unseen_scenes_have_distractors_and_other_sizes() -> None:
    n_distractors, radii = [], []
    for seed in range(10):
        _, world, params = build_scene("brush_pan", "unseen", seed, with_robot=False, render=False)
        world.close()
        n_distractors.append(len(params.distractors))
        radii.append(params.values["pan_radius"])
    assert min(n_distractors) >= 1
    assert max(radii) / min(radii) > 1.3


@pytest.mark.parametrize("name", TASKS_B)
def test_builds_are_deterministic_per_seed(name: str) -> None:
    def snapshot(seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
        _, world, params = build_scene(name, "unseen", seed, with_robot=False, render=False)
        with world:
            return params.values, world.model.qpos0.copy(), world.model.geom_size.copy()

    a, b, c = snapshot(3), snapshot(3), snapshot(4)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert a[0] != c[0]


def test_graspable_parts_fit_the_panda_hand() -> None:
    for seed in range(20):
        _, w, p = build_scene("put_fruit_on_plate", "unseen", seed, with_robot=False, render=False)
        w.close()
        assert 2 * p.values["fruit_size"][1] < 0.07
        _, w, p = build_scene("pour_cup_to_cup", "unseen", seed, with_robot=False, render=False)
        w.close()
        assert 2 * p.values["source_radius"] < 0.07
        assert 20 <= p.values["n_balls"] <= 40
    for handle in ("bar", "round", "flat"):
        geo = pan_geometry(0.1, handle)
        assert 0.015 <= geo.handle_width <= 0.03 and 0.015 <= geo.handle_height <= 0.03


def test_fruit_on_plate_and_red_on_blue_count_only_when_resting_there() -> None:
    task, world, params = build_scene("put_fruit_on_plate", "seen", 0, with_robot=False, render=False)
    with world:
        plate = world.body_pose("plate").translation
        world.set_free_body_pose("mango", Pose(position=(plate[0], plate[1], PLATE_THICKNESS + 0.05)))
        _settle(world, 1.0)
        assert task.success(world, params)
    task, world, params = build_scene("stack_block", "seen", 0, with_robot=False, render=False)
    with world:
        blue = world.body_pose("block_blue")
        h = params.values["blue_edge"] + params.values["red_edge"] / 2 + 0.002
        world.set_free_body_pose("block_red", Pose(position=(*blue.position[:2], h), quaternion=blue.quaternion))
        _settle(world, 1.0)
        assert task.success(world, params)
        # the blue block on the red one is not the goal
        red = world.body_pose("block_red")
        world.set_free_body_pose("block_red", Pose(position=(0.4, -0.3, 0.05)))
        world.set_free_body_pose("block_blue", Pose(position=(0.4, -0.3, 0.15), quaternion=red.quaternion))
        _settle(world, 1.0)
        assert not task.success(world, params)


def test_pour_counts_the_share_of_balls_inside_the_target_cup() -> None:
    task, world, params = build_scene("pour_cup_to_cup", "seen", 0, with_robot=False, render=False)
    with world:
        n = params.values["n_balls"]
        tgt = world.body_pose("cup_target").translation
        names = liquid_names("liquid", n)
        for k, ball in enumerate(names[: int(0.7 * n)]):  # 70 % poured: stacked in the target's middle
            world.set_free_body_pose(ball, Pose(position=(tgt[0], tgt[1], 0.03 + 0.012 * k)))
        _settle(world, 1.5)
        assert task.poured_share(world, params) == pytest.approx(int(0.7 * n) / n)
        assert task.success(world, params)


def test_demonstrations_vary_with_the_rng_and_repeat_with_its_seed() -> None:
    for name in TASKS_B:
        task, world, params = build_scene(name, "seen", 1, with_robot=False, render=False)
        with world:
            a = task.demonstration(world, params, np.random.default_rng(7))
            b = task.demonstration(world, params, np.random.default_rng(7))
            c = task.demonstration(world, params, np.random.default_rng(8))
        assert isinstance(a, Script) and a == b and a != c
        assert any(isinstance(s, Grasp) for s in a.steps) and any(isinstance(s, Move) for s in a.steps)


@pytest.mark.parametrize("name", ["put_fruit_on_plate", "stack_block"])
def test_scripted_solution_succeeds(name: str) -> None:
    for variant in ("seen", "unseen"):
        result = run_solution(name, variant, 0)
        assert result.success, f"{name} {variant}: {result.execution.message}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pour_cup_to_cup", "brush_pan"])
def test_scripted_solution_succeeds_slow(name: str) -> None:
    result = run_solution(name, "seen", 0)
    assert result.success, result.execution.message


@pytest.mark.slow
def test_wash_pan_scripted_solution_meets_every_subgoal_in_order() -> None:
    result = run_solution("wash_pan", "seen", 0)
    assert result.success, result.execution.message
    times = [result.subgoals[n] for n in TASKS["wash_pan"].subgoal_names]
    assert all(t is not None for t in times) and times == sorted(times)


def _brush_the_pan(world, params) -> None:
    """Slide the bristles over the pan's floor by teleporting the brush (no robot needed)."""
    pan = world.body_pose("pan")
    r = params.values["pan_radius"]
    for x in np.arange(-r + 0.03, r - 0.029, 0.02):
        for y in np.arange(-r + 0.03, r - 0.029, 0.02):
            if math.hypot(x, y) > r - 0.03:
                continue
            p = pan.apply(np.array([[x, y, 0.004]]))[0]
            world.set_free_body_pose("brush", Pose(position=tuple(p), quaternion=pan.quaternion))
            world.step(6)


def _put_pan(world, xy, z: float) -> None:
    world.set_free_body_pose("pan", Pose(position=(xy[0], xy[1], z + 0.002), quaternion=(0.0, 0.0, 1.0, 0.0)))
    _settle(world, 0.5)


def test_wash_pan_counts_subgoals_only_in_order() -> None:
    task, world, params = build_scene("wash_pan", "seen", 2, with_robot=False, render=False)
    with world:
        task.attach(world, params)
        joint = params.values["faucet"]["joint"]
        home = world.body_pose("pan").translation
        sx, sy = params.values["sink_xy"]
        rx, ry = params.values["rack_xy"]
        # out of order: water on first, then brush and rack the pan without ever washing it in the sink
        world.set_joint_qpos(joint, 1.3)
        _settle(world)
        world.set_joint_qpos(joint, 0.0)
        _settle(world)
        _brush_the_pan(world, params)
        assert task.observer(world, params).coverage.coverage == 0.0  # brushing before the sink does not count
        _put_pan(world, (rx, ry), params.values["rack_base"])
        assert task.subgoals(world, params)["pan_on_rack"]
        assert not task.success(world, params)
        obs = task.observer(world, params)
        assert obs.tracker.n_met == 0 and "faucet_on" in obs.tracker.early

        # now the right order, in a fresh scene
    task, world, params = build_scene("wash_pan", "seen", 2, with_robot=False, render=False)
    with world:
        task.attach(world, params)
        _settle(world)
        _put_pan(world, (sx - 0.03, sy), params.values["sink_floor"])
        world.set_joint_qpos(joint, 1.3)
        _settle(world)
        world.set_joint_qpos(joint, 0.0)
        _settle(world)
        _put_pan(world, home[:2], 0.0)
        _brush_the_pan(world, params)
        world.set_free_body_pose("brush", Pose(position=(0.34, -0.25, 0.001)))
        _settle(world)
        assert task.observer(world, params).coverage.coverage >= 0.6
        assert not task.success(world, params)  # not on the rack yet
        _put_pan(world, (rx, ry), params.values["rack_base"])
        assert task.success(world, params)
        assert task.observer(world, params).tracker.n_met == 6
