"""The world a run acts in: the simulated scene or the real arm, wired into a RunContext.

- `build_sim` / `connect_real`: the robot (behind SafeRobot, every command traced) and the camera;
  in simulation also the ground-truth observers that only score a trial (ordered subgoals) and the
  execution video's frames.
- `TracedRobot`: every motion command and its result goes into the run's trace.
- `snapshot_sim` / `restore_sim`: the physics state before each step, so a resumed run continues
  from where the last finished step left the world.
- `stop_arm_on_interrupt`: Ctrl-C stops the arm before the interrupt propagates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.trace import Tracer

if TYPE_CHECKING:
    from agents.graph import RunContext

# --- simulation snapshots (resume in simulation) -----------------------------------------------


def _sim_dir(ctx: RunContext) -> Path:
    d = ctx.run_dir / "sim"
    d.mkdir(exist_ok=True)
    return d


def snapshot_sim(ctx: RunContext, step_index: int) -> None:
    """Save the full physics state before step `step_index` (so a resumed run continues from it)."""
    import numpy as np

    get = getattr(ctx.world, "get_state", None)
    if callable(get):
        state = np.asarray(get())
    else:
        import mujoco

        m, d = ctx.world.model, ctx.world.data
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(m, spec))
        mujoco.mj_getState(m, d, state, spec)
    path = _sim_dir(ctx) / f"before_step_{step_index:03d}.npy"
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, state)
    tmp.replace(path)
    ctx.sim_at = step_index


def restore_sim(ctx: RunContext, step_index: int) -> None:
    """Restore the snapshot taken before `step_index`, if the world is not already there."""
    import numpy as np

    path = ctx.run_dir / "sim" / f"before_step_{step_index:03d}.npy"
    if ctx.sim_at == step_index:
        return
    if not path.is_file():
        if step_index == 0:
            snapshot_sim(ctx, 0)
            ctx.sim_at = 0
        return
    state = np.load(path)
    put = getattr(ctx.world, "set_state", None)
    if callable(put):
        put(state)
    else:
        import mujoco

        m, d = ctx.world.model, ctx.world.data
        mujoco.mj_setState(m, d, state, mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(m, d)
    ctx.sim_at = step_index
    ctx.tracer.event("tool_result", tool="restore_sim", result={"before_step": step_index}, duration_s=0.0)



# --- Ctrl-C stops the arm ---------------------------------------------------------------------

class _NullCtx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return False


def stop_arm_on_interrupt(ctx: RunContext) -> Any:
    robot = ctx.robot
    if robot is None:
        return _NullCtx()
    try:
        from tools.robot.safety import stop_on_interrupt
    except ImportError:
        stop_on_interrupt = None
    if stop_on_interrupt is not None:
        return stop_on_interrupt(robot)
    method = getattr(robot, "stop_on_interrupt", None)
    return method() if callable(method) else _StopOnCtrlC(robot)


class _StopOnCtrlC:
    def __init__(self, robot: Any) -> None:
        self.robot = robot

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is KeyboardInterrupt:
            self.robot.stop()
        return False


# --- arm commands in the trace -----------------------------------------------------------------

_MOTIONS = ("move_to_joints", "follow_poses", "open_gripper", "grasp", "stop")


class TracedRobot:
    """Wraps a Robot: every motion command and its result goes into the trace (arm activity)."""

    def __init__(self, robot: Any, tracer: Tracer) -> None:
        self._robot = robot
        self._tracer = tracer

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._robot, name)
        if name not in _MOTIONS or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.time()
            summary = _describe_args(name, args, kwargs)
            self._tracer.event("robot_command", command=name, args=summary, status="started")
            try:
                res = attr(*args, **kwargs)
            except Exception as e:
                self._tracer.robot_command(name, result={"error": f"{type(e).__name__}: {e}"},
                                           duration_s=time.time() - t0, **summary)
                raise
            self._tracer.robot_command(name, result=_describe_result(res), duration_s=time.time() - t0, **summary)
            return res

        return call


def _describe_args(name: str, args: tuple, kwargs: dict) -> dict:
    out: dict[str, Any] = {k: v for k, v in kwargs.items() if isinstance(v, int | float | str | bool)}
    if name == "follow_poses" and args:
        poses = list(args[0])
        out["n_poses"] = len(poses)
        if poses and hasattr(poses[-1], "position"):
            out["target"] = [round(float(x), 4) for x in poses[-1].position]
    elif name == "move_to_joints" and args:
        out["q"] = [round(float(x), 3) for x in args[0]]
    elif args:
        out["args"] = [a for a in args if isinstance(a, int | float | str | bool)]
    return out


def _describe_result(res: Any) -> Any:
    if hasattr(res, "model_dump"):
        return res.model_dump(mode="json")
    return res if isinstance(res, int | float | str | bool | type(None)) else repr(res)


# --- the world a run acts in (simulation or the real arm) --------------------------------------

def build_sim(ctx: RunContext) -> None:
    from agents.planner import resolve_scene

    cfg = ctx.config
    scene, score = resolve_scene(cfg.goal, cfg.scene, getattr(ctx.memory, "embedder", None))
    if scene is None:
        ctx.tracer.event("tool_result", tool="match_task", result={"scene": None, "score": round(score, 3)},
                         duration_s=0.0)
        return
    ctx.tracer.event("tool_result", tool="match_task", result={"scene": scene, "score": round(score, 3)},
                     duration_s=0.0)
    from sim.show import build_scene, check_camera
    from tools.robot.safety import SafeRobot

    task, world, params = build_scene(scene, cfg.variant, cfg.seed, with_robot=True, render=True)
    ctx.closers.append(world.close)
    # Ground-truth observers (coverage, subgoal order) only score the trial; they never steer it.
    task.attach(world, params)
    ctx.world, ctx.task, ctx.params = world, task, params
    # The graph's approval node gates every step, so SafeRobot's own first-motion question is answered.
    robot = SafeRobot(world.robot, ctx.settings.safety, confirm=lambda _what: True)
    ctx.robot = TracedRobot(robot, ctx.tracer)
    ctx.camera = world.camera(check_camera(task, world, cfg.camera))
    if task.subgoal_names:
        _track_subgoals(ctx)
    if cfg.record_video:
        _record_frames(ctx, cfg.video_camera or cfg.camera or task.camera_names[0])


def _track_subgoals(ctx: RunContext, period_s: float = 0.1) -> None:
    """Feed the task's ordered subgoals to a SubgoalTracker every `period_s` of simulated time."""
    from sim.subgoals import SubgoalTracker

    tracker = SubgoalTracker(ctx.task.subgoal_names)
    ctx.subgoal_tracker = tracker
    nxt = [ctx.world.time]

    def update(world: Any) -> None:
        if world.time + 1e-9 < nxt[0]:
            return
        nxt[0] = world.time + period_s
        tracker.update(world.time, ctx.task.subgoals(world, ctx.params))

    ctx.closers.append(ctx.world.add_step_callback(update))


def _record_frames(ctx: RunContext, camera: str, fps: float = 8.0) -> None:
    cam = ctx.world.camera(camera)
    period = 1.0 / fps
    nxt = [ctx.world.time]

    def grab(world: Any) -> None:
        if world.time + 1e-9 < nxt[0]:
            return
        nxt[0] = world.time + period
        ctx.tracer.add_frame(cam.capture(segmentation=False).rgb, sim_time=world.time, force=True)

    ctx.closers.append(ctx.world.add_step_callback(grab))


def connect_real(ctx: RunContext) -> None:
    from tools.robot.factory import make_camera, make_robot
    from tools.robot.safety import SafeRobot

    cfg = ctx.config
    robot = make_robot(cfg.robot, ctx.settings)
    ctx.closers.append(getattr(robot, "close", lambda: None))
    # Each step passed the graph's approval node (operator, or --yes) before the adapter may move the arm.
    ctx.robot = TracedRobot(SafeRobot(robot, ctx.settings.safety, confirm=lambda _what: True), ctx.tracer)
    ctx.camera = make_camera(cfg.camera or "realsense", ctx.settings)
    ctx.closers.append(ctx.camera.close)
