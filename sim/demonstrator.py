"""The synthetic human demonstrator: a skin-coloured hand performs a task's scripted demonstration.

`record_demos(task, n, variant, seed, out)` builds the scene of seed+i without the robot, adds the
hand (sim/hand.py), asks the task for its demonstration `Script`, and plays it with human-like
motion while recording RGB-D frames, segmentation, hand keypoints and a separate ground-truth file
into a demo folder (core/demo.py; written to a temp folder and renamed into place).

Motion (sim/hand_motion.py): every Move is one minimum-jerk (quintic) time scaling along the arc length of its path
(linear position, slerped orientation between via poses), so the hand starts and stops smoothly
and never stops at intermediate via poses. Per demo the rng draws a speed factor (0.85-1.2), a
smooth path wobble (2-4 mm, 0.3-1 deg, zero at every segment end so grasp poses are exact), short
pauses before closing and after releasing, and the opening/closing times. Grasp closes the hand to a
thumb-index pinch of the step's width and then activates a weld between the hand and the target
body; Release deactivates it and opens the hand. For an articulated part the weld drags the part
along its joint physically.

Ground truth (sim/ground_truth.py; ground_truth.json, read only by bench/ and accuracy tests): per
frame the world pose of every labelled body and the value of every hinge/slide joint inside labelled
bodies; contact events [{frame, time, kind: begin|end, a, b}] for hand-object grasps/releases and for MuJoCo contacts
between different labelled bodies (debounced over 2 frames); and the scripted gripper pose and
width of every grasp (for the keypoint -> gripper contract check); and `success` / `subgoals`: the
task's own success predicate on the final state (a demo that fails its task is worth knowing about).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import mujoco
import numpy as np

import sim.render  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)
from core.demo import HAND_KEYPOINT_NAMES, DemoMeta, DemoWriter, HandTrack
from core.errors import DemoFormatError
from core.sensing import RGBDFrame
from sim.ground_truth import _GroundTruth
from sim.hand import HAND_ROOT, PAD_BIT, Hand, add_hand
from sim.hand_motion import DemonstrationError as DemonstrationError  # raised here too; callers catch it from here
from sim.hand_motion import plan_motion
from sim.show import build_scene, check_camera
from sim.tasks import SceneParams, Task, get_task, parse_variant

WELD_PREFIX = "hand_weld_"
SETTLE_S = 0.3  # physics time before recording so objects rest on the table
MIN_HAND_PIXELS = 30
_MAX_FRAMES_IN_FLIGHT = 8


# --- the hand and its welds --------------------------------------------------------------------------


def _moving_part_geoms(spec: mujoco.MjSpec, labels: list[str]) -> list[mujoco.MjsGeom]:
    """Geoms of labelled bodies that move on a hinge/slide joint (and of their unlabelled children)."""
    out: list[mujoco.MjsGeom] = []
    movable = (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)

    def collect(body: mujoco.MjsBody) -> None:
        out.extend(body.geoms)
        for child in body.bodies:
            if child.name not in labels:
                collect(child)

    for label in labels:
        body = spec.body(label)
        if body is not None and any(j.type in movable for j in body.joints):
            collect(body)
    return out


def _add_hand_and_welds(spec: mujoco.MjSpec, task: Task, params: SceneParams) -> None:
    add_hand(spec)
    for geom in _moving_part_geoms(spec, list(task.object_labels)):
        geom.conaffinity = int(geom.conaffinity) | PAD_BIT
    for label in task.object_labels:
        eq = spec.add_equality()
        eq.name = f"{WELD_PREFIX}{label}"
        eq.type = mujoco.mjtEq.mjEQ_WELD
        eq.objtype = mujoco.mjtObj.mjOBJ_BODY
        eq.name1 = HAND_ROOT
        eq.name2 = label
        eq.active = False
        eq.solref = [0.01, 1.0]


def _project(frame: RGBDFrame, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points -> (uv pixels, in front of the camera and inside the image)."""
    T = np.asarray(frame.T_world_camera)
    pc = (xyz - T[:3, 3]) @ T[:3, :3]
    uv = frame.intrinsics.project(pc)
    w, h = frame.intrinsics.width, frame.intrinsics.height
    inside = (pc[:, 2] > 0.01) & (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    return uv, inside


def record_demo(
    task: str | Task,
    variant: str,
    seed: int,
    out_dir: Path,
    *,
    camera: str | None = None,
    fps: float = 15.0,
    width: int = 640,
    height: int = 480,
    max_seconds: float | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> Path:
    """Record one demo of `task` (scene of `seed`) into `out_dir` (must not exist); returns it.

    max_seconds cuts the demonstration short (tests); on_frame(i) is called after each captured frame.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if Path(out_dir).exists():
        raise DemoFormatError(f"{out_dir}: already exists; refusing to overwrite a demo")
    t_obj, world, params = build_scene(task, variant, seed, with_robot=False, width=width, height=height,
                                       extend=_add_hand_and_welds)
    with world:
        cam_name = check_camera(t_obj, world, camera)
        labels = [*t_obj.object_labels, *[d for d in params.distractors if d not in t_obj.object_labels]]
        m, d = world.model, world.data
        hand = Hand(m, d)
        welds = {lab: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_EQUALITY, f"{WELD_PREFIX}{lab}")
                 for lab in t_obj.object_labels}
        seq = np.random.SeedSequence([int(seed), 0x68616E64])
        demo_rng, motion_rng = (np.random.default_rng(s) for s in seq.spawn(2))

        # Let the scene come to rest (the hand parked out of reach, pads off), then ask the task for its script.
        hand.enable_pads(False)
        world.step(int(round(SETTLE_S / world.timestep)))
        world.forward()
        script = t_obj.demonstration(world, params, demo_rng)
        timeline = plan_motion(script, motion_rng)
        for g in timeline.grasps:
            if g["target"] not in welds:
                raise DemonstrationError(
                    f"{t_obj.name}: the demonstration grasps {g['target']!r}, which is not one of the task's "
                    f"object labels ({', '.join(t_obj.object_labels)})"
                )
        _, T0, c0 = timeline.at(0.0)
        hand.place(T0, c0)
        hand.enable_pads(timeline.pressing)
        d.time = 0.0
        world.forward()

        duration = timeline.duration if max_seconds is None else min(timeline.duration, max_seconds)
        n_frames = int(np.floor(duration * fps + 1e-9)) + 1
        gt = _GroundTruth(world, labels)
        cam = world.camera(cam_name)
        kp_xyz = np.zeros((n_frames, len(HAND_KEYPOINT_NAMES), 3))
        kp_uv = np.zeros((n_frames, len(HAND_KEYPOINT_NAMES), 2))
        visible = np.zeros(n_frames, dtype=bool)
        grasp_frames: list[int] = []
        seg_index, holding = 0, ""
        dt = world.timestep
        meta_first: RGBDFrame | None = None

        def apply(t: float, frame_i: int) -> None:
            nonlocal seg_index, holding
            i, T, c = timeline.at(t)
            while seg_index < i:  # segment boundaries crossed: fire their events
                done = timeline.segments[seg_index]
                if done.kind == "close" and done.target:
                    eq = welds[done.target]
                    mujoco.mj_kinematics(m, d)
                    b1, b2 = int(m.eq_obj1id[eq]), int(m.eq_obj2id[eq])
                    R1 = d.xmat[b1].reshape(3, 3)
                    rel_p = R1.T @ (d.xpos[b2] - d.xpos[b1])
                    q1, q2 = d.xquat[b1], d.xquat[b2]
                    rel_q = np.zeros(4)
                    neg = np.zeros(4)
                    mujoco.mju_negQuat(neg, q1)
                    mujoco.mju_mulQuat(rel_q, neg, q2)
                    m.eq_data[eq, :3] = 0.0
                    m.eq_data[eq, 3:6] = rel_p
                    m.eq_data[eq, 6:10] = rel_q
                    d.eq_active[eq] = 1
                    holding = done.target
                    gt.hand_event(frame_i, t, "begin", done.target)
                    grasp_frames.append(frame_i)
                seg_index += 1
                nxt = timeline.segments[seg_index]
                if nxt.kind == "open" and holding:
                    d.eq_active[welds[holding]] = 0
                    gt.hand_event(frame_i, t, "end", holding)
                    holding = ""
            hand.place(T, c)

        with DemoWriter(Path(out_dir)) as writer, ThreadPoolExecutor(max_workers=1) as pool:
            pending: deque[Future] = deque()
            step_i = 0
            for fi in range(n_frames):
                t_frame = fi / fps
                while step_i * dt < t_frame - 1e-9:
                    apply(step_i * dt, fi)
                    world.step(1)
                    gt.sample_contacts()
                    step_i += 1
                apply(t_frame, fi)
                mujoco.mj_kinematics(m, d)
                mujoco.mj_camlight(m, d)
                frame = cam.capture()
                frame = frame.model_copy(update={"timestamp": t_frame})
                if meta_first is None:
                    meta_first = frame
                xyz = hand.keypoints_world()
                uv, inside = _project(frame, xyz)
                kp_xyz[fi], kp_uv[fi] = xyz, uv
                hand_id = world.label_ids["hand"]
                n_hand = int(np.count_nonzero(frame.segmentation == hand_id)) if frame.segmentation is not None else 0
                visible[fi] = bool(inside[:3].all() and n_hand >= MIN_HAND_PIXELS)
                gt.record_frame(fi, t_frame)
                pending.append(pool.submit(writer.add_frame, frame))
                while len(pending) > _MAX_FRAMES_IN_FLIGHT or (pending and pending[0].done()):
                    pending.popleft().result()
                if on_frame is not None:
                    on_frame(fi)
            while pending:
                pending.popleft().result()
            assert meta_first is not None
            if not visible.any():
                raise DemonstrationError(
                    f"{t_obj.name}: the hand is never visible from camera {cam_name!r}; choose another camera"
                )
            t_name = t_obj.name
            meta = DemoMeta(
                demo_id=Path(out_dir).name,
                task=t_obj.goal_text,
                source="sim",
                fps=float(fps),
                n_frames=n_frames,
                intrinsics=meta_first.intrinsics,
                T_world_camera=np.asarray(meta_first.T_world_camera).tolist(),
                timestamps=[],
                depth_scale=writer.depth_scale,
                labels=dict(world.labels),
                camera_name=cam_name,
                extra={"task_name": t_name, "variant": params.variant.value, "seed": int(seed), "hand": "adroit"},
            )
            hand_track = HandTrack(names=HAND_KEYPOINT_NAMES, uv=kp_uv, xyz=kp_xyz, visible=visible)
            grasps = []
            for g, f in zip(timeline.grasps, grasp_frames, strict=False):
                grasps.append({**g, "frame": f})
            world.forward()
            truth = gt.result({
                "task": t_name, "variant": params.variant.value, "seed": int(seed), "fps": float(fps),
                "camera": cam_name, "params": params.model_dump(mode="json"), "grasps": grasps,
                # Did the demonstration achieve the goal (the task's own success predicate, final state)?
                "success": bool(t_obj.success(world, params)),
                "subgoals": {k: bool(v) for k, v in t_obj.subgoals(world, params).items()},
            })
            return writer.commit(meta, hand_track, truth)


def record_demos(
    task: str,
    n: int,
    variant: str,
    seed: int,
    out: Path,
    camera: str | None = None,
    fps: float = 15.0,
) -> list[Path]:
    """Record `n` demos into out/<task>_<variant>_<seed+i>/; each has its own seed-derived scene and motion."""
    t = get_task(task)
    v = parse_variant(variant)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    targets = [Path(out) / f"{t.name}_{v.value}_{int(seed) + i}" for i in range(n)]
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        raise DemoFormatError(f"{', '.join(existing)}: already exists; refusing to overwrite (choose another --out "
                              "or --seed)")
    return [record_demo(t, v.value, int(seed) + i, p, camera=camera, fps=fps) for i, p in enumerate(targets)]
