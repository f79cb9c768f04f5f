"""Simulator speed: physics real-time factor with the arm moving under control, and the RGB-D +
segmentation render rate at 640x480.

    python -m bench.sim_speed [--repeats 5] [--frames 40]

Prints medians and writes bench/results/sim_speed.md and .json. Targets: >= 10x real time for
physics, >= 20 fps for a full capture (RGB + depth + segmentation). No assertions: numbers only.
"""

from __future__ import annotations

import sim.render

# isort: split

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from core.geometry import Pose
from core.motion import PANDA_HOME_Q
from sim.world import SimWorld, base_spec

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RTF = 10.0
TARGET_FPS = 20.0
DOWN = Rotation.from_matrix(np.diag([1.0, -1.0, -1.0]))


def _scene() -> object:
    spec = base_spec()
    rng = np.random.default_rng(0)
    for i in range(4):  # a few free objects on the table, as in a task scene
        body = spec.worldbody.add_body()
        body.name = f"block{i}"
        body.pos = [0.45 + 0.08 * i, rng.uniform(-0.3, 0.3), 0.03]
        body.add_freejoint()
        g = body.add_geom()
        g.type = mujoco.mjtGeom.mjGEOM_BOX
        g.size = [0.03, 0.03, 0.03]
        g.rgba = [*rng.uniform(0.2, 0.9, 3), 1.0]
    return spec


def physics_rtf(repeats: int) -> dict[str, float]:
    """Sim seconds per wall second while the arm moves (joint moves; Cartesian moves incl. IK)."""
    world = SimWorld(_scene(), render=False, labels=[f"block{i}" for i in range(4)])
    robot = world.robot
    assert robot is not None
    joint_targets = [
        PANDA_HOME_Q + np.array([0.8, 0.3, 0.0, 0.4, 0.0, -0.3, 0.5]),
        PANDA_HOME_Q + np.array([-0.8, 0.1, 0.3, 0.2, 0.4, 0.2, -0.5]),
        PANDA_HOME_Q,
    ]
    poses = [
        Pose.from_rotation(DOWN, [0.5, 0.25, 0.25]),
        Pose.from_rotation(DOWN * Rotation.from_euler("z", 0.8), [0.6, -0.25, 0.15]),
        Pose.from_rotation(DOWN, [0.4, 0.0, 0.35]),
    ]
    joint_rtf, cart_rtf, joint_cpu, cart_cpu = [], [], [], []
    for _ in range(repeats):
        t_sim, t0, c0 = world.time, time.perf_counter(), time.process_time()
        for q in joint_targets:
            robot.move_to_joints(q, speed_factor=0.5)
        joint_rtf.append((world.time - t_sim) / (time.perf_counter() - t0))
        joint_cpu.append((world.time - t_sim) / (time.process_time() - c0))
        t_sim, t0, c0 = world.time, time.perf_counter(), time.process_time()
        robot.follow_poses(poses, speed_factor=0.5)
        cart_rtf.append((world.time - t_sim) / (time.perf_counter() - t0))
        cart_cpu.append((world.time - t_sim) / (time.process_time() - c0))
    # Bare physics: mj_step with the arm holding a configuration (upper bound for the loop overhead).
    t_sim, t0 = world.time, time.perf_counter()
    world.step(2000)
    bare = (world.time - t_sim) / (time.perf_counter() - t0)
    return {
        "rtf_joint_moves_median": statistics.median(joint_rtf),
        "rtf_cartesian_moves_median": statistics.median(cart_rtf),
        "rtf_joint_moves_cpu_median": statistics.median(joint_cpu),
        "rtf_cartesian_moves_cpu_median": statistics.median(cart_cpu),
        "rtf_bare_step": bare,
    }


def render_fps(frames: int) -> dict[str, float]:
    """Median capture rate at 640x480 with the arm moving between frames."""
    world = SimWorld(_scene(), render=True, labels=[f"block{i}" for i in range(4)])
    robot = world.robot
    assert robot is not None
    out: dict[str, float] = {}
    try:
        for cam_name in ("cam_front", "cam_left"):
            cam = world.camera(cam_name)
            cam.capture()  # warm-up (context creation, shader compile)
            full, rgbd, full_cpu = [], [], []
            for k in range(frames):
                robot.set_joint_setpoint(PANDA_HOME_Q + 0.3 * np.sin(0.2 * k))
                world.step(33)
                t0, c0 = time.perf_counter(), time.process_time()
                cam.capture()
                full.append(time.perf_counter() - t0)
                full_cpu.append(time.process_time() - c0)
                t0 = time.perf_counter()
                cam.capture(segmentation=False)
                rgbd.append(time.perf_counter() - t0)
            out[f"fps_rgbd_seg_{cam_name}"] = 1.0 / statistics.median(full)
            out[f"fps_rgbd_{cam_name}"] = 1.0 / statistics.median(rgbd)
            out[f"cpu_fps_rgbd_seg_{cam_name}"] = 1.0 / max(statistics.median(full_cpu), 1e-6)
    finally:
        world.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args(argv)

    backend = sim.render.ensure_backend()
    load_before = os.getloadavg()[0]
    result: dict[str, object] = {
        "backend": backend,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
        f"mujoco {mujoco.__version__}",
        "timestep_s": 0.002,
    }
    result.update(physics_rtf(args.repeats))
    if sim.render.rendering_available():
        result.update(render_fps(args.frames))
    result["load_average_1min"] = round(max(load_before, os.getloadavg()[0]), 2)
    fps_full = [v for k, v in result.items() if k.startswith("fps_rgbd_seg_")]
    result["fps_rgbd_seg_median"] = statistics.median(fps_full) if fps_full else None
    result["meets_rtf_target"] = bool(result["rtf_cartesian_moves_median"] >= TARGET_RTF
                                      and result["rtf_joint_moves_median"] >= TARGET_RTF)
    result["meets_fps_target"] = bool(fps_full and min(fps_full) >= TARGET_FPS)

    lines = [
        "# Simulator speed",
        "",
        f"Machine: {result['machine']}; rendering backend: {backend}. Command: `python -m bench.sim_speed`.",
        f"1-minute load average during the run: {result['load_average_1min']} (on a shared machine, a load above",
        "the core count slows everything here proportionally; compare runs at similar load).",
        "",
        "| measure | median | target |",
        "|---|---|---|",
        f"| physics real-time factor, joint moves (control every 2 ms step) | "
        f"{result['rtf_joint_moves_median']:.1f}x | >= {TARGET_RTF:.0f}x |",
        f"| physics real-time factor, Cartesian moves (incl. IK planning) | "
        f"{result['rtf_cartesian_moves_median']:.1f}x | >= {TARGET_RTF:.0f}x |",
        f"| bare mj_step, arm holding | {result['rtf_bare_step']:.1f}x | - |",
        f"| same by process CPU time (load-independent), joint / Cartesian moves | "
        f"{result['rtf_joint_moves_cpu_median']:.1f}x / {result['rtf_cartesian_moves_cpu_median']:.1f}x | - |",
    ]
    for k, v in result.items():
        if k.startswith("fps_rgbd_seg_") and k != "fps_rgbd_seg_median":
            lines.append(f"| RGB + depth + segmentation 640x480, {k.removeprefix('fps_rgbd_seg_')} | "
                         f"{v:.1f} fps | >= {TARGET_FPS:.0f} fps |")
        elif k.startswith("fps_rgbd_") and not k.startswith("fps_rgbd_seg"):
            lines.append(f"| RGB + depth 640x480, {k.removeprefix('fps_rgbd_')} | {v:.1f} fps | - |")
        elif k.startswith("cpu_fps_rgbd_seg_"):
            cam = k.removeprefix("cpu_fps_rgbd_seg_")
            lines.append(f"| full capture by process CPU time (all render threads), {cam} | {v:.1f} fps | - |")
    lines += ["", f"Targets met: physics {result['meets_rtf_target']}, rendering {result['meets_fps_target']}.", ""]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sim_speed.md").write_text("\n".join(lines))
    (RESULTS / "sim_speed.json").write_text(json.dumps(result, indent=1))
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
