"""Build a task's scene from (task, variant, seed) and render it (`python main.py sim show`).

`build_scene` is the one place that turns a seed into a scene: the scene of seed s is the same with
and without the robot (the robot does not consume random numbers), so a human demo recorded for
seed s and a robot trial of seed s see the same objects.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import mujoco
import numpy as np

import sim.render  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)
from sim.tasks import SceneParams, Task, get_task, parse_variant
from sim.world import SimWorld, base_spec, unknown_name_error


def build_scene(
    task: str | Task,
    variant: str,
    seed: int,
    *,
    with_robot: bool = True,
    render: bool = True,
    width: int = 640,
    height: int = 480,
    extend: Callable[[mujoco.MjSpec, Task, SceneParams], None] | None = None,
) -> tuple[Task, SimWorld, SceneParams]:
    """(task, compiled world, scene parameters) for a seed; `extend` may add bodies before compiling."""
    t = get_task(task) if isinstance(task, str) else task
    v = parse_variant(variant)
    spec = base_spec(with_robot=with_robot)
    params = t.build(spec, v, np.random.default_rng(seed))
    params = params.model_copy(update={"seed": int(seed), "variant": v, "task": t.name})
    if extend is not None:
        extend(spec, t, params)
    labels = [*t.object_labels, *[d for d in params.distractors if d not in t.object_labels]]
    world = SimWorld(spec, render=render, width=width, height=height, labels=labels)
    return t, world, params


def check_camera(task: Task, world: SimWorld, camera: str | None) -> str:
    """The camera to use: `camera`, or the task's first; an unknown name lists the valid ones."""
    name = camera or task.camera_names[0]
    valid = [c for c in task.camera_names if c in world.camera_names] or world.camera_names
    if name not in world.camera_names:
        raise unknown_name_error("camera", name, valid)
    return name


def write_png_atomic(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB image as PNG via a temp file + rename (no half-written file on interrupt)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        if not cv2.imwrite(tmp, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: could not write PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def render_scene(task: str, variant: str, seed: int, camera: str | None, out: Path) -> Path:
    """Render the built scene (with the robot, after a short settle) from `camera` into the PNG `out`."""
    t, world, _params = build_scene(task, variant, seed, with_robot=True)
    with world:
        name = check_camera(t, world, camera)
        world.step(int(round(0.2 / world.timestep)))  # let objects come to rest on the table
        frame = world.camera(name).capture(segmentation=False)
        return write_png_atomic(Path(out), frame.rgb)
