"""The simulated world: table, floor, lights, default cameras and the Franka Panda (DESIGN §6).

World frame = robot base frame: the Panda's base sits at the origin on a table whose top is z = 0;
objects go in front of it (x 0.3..0.75, y -0.4..0.4). Tasks add their objects to `base_spec()` and
compile it into a `SimWorld`, which gives poses, joint states, cameras (`SimCamera`) and the robot
(`SimRobot`).

Physics is set up for physical grasping: elliptic friction cones, impratio 10, 2 ms steps with the
implicit-fast integrator. Rendering is set up for speed on a CPU (no shadows, reflections or MSAA).
"""

from __future__ import annotations

import sim.render  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)

# isort: split

import difflib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from core.errors import VLMimicError
from core.geometry import Pose, look_at
from tools.robot.ik import ARM_JOINTS, ROBOT_BODY_PREFIX, ROBOT_ROOT_BODY, panda_spec

if TYPE_CHECKING:
    from sim.camera import SimCamera
    from sim.robot import SimRobot

TABLE_BODY = "table"
TABLE_TOP_Z = 0.0
TABLE_HEIGHT = 0.75
# Table extent (x from the robot's back to the far edge, y across), metres.
TABLE_X = (-0.45, 1.05)
TABLE_Y = (-0.9, 0.9)
WORKSPACE_MIN = (0.3, -0.4, 0.0)
WORKSPACE_MAX = (0.75, 0.4, 0.5)
DEFAULT_FOVY = 58.0
# Default views of the workspace centre (eye, target); a task may add or replace cameras.
DEFAULT_CAMERAS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cam_front": ((1.2, 0.0, 0.62), (0.5, 0.0, 0.05)),
    "cam_left": ((0.62, 0.72, 0.6), (0.52, 0.0, 0.05)),
    "cam_right": ((0.62, -0.72, 0.6), (0.52, 0.0, 0.05)),
}
FIXED_LABELS: tuple[str, ...] = ("table", "robot", "hand")
BACKGROUND_LABEL = 0
_SCALAR_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


class SimNameError(VLMimicError, ValueError):
    """A body, joint or camera name that the world does not have (the message lists valid ones)."""


def unknown_name_error(kind: str, name: str, valid: Sequence[str]) -> SimNameError:
    close = difflib.get_close_matches(name, list(valid), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    shown = ", ".join(sorted(valid)[:40]) + (" ..." if len(valid) > 40 else "")
    return SimNameError(f"no {kind} named {name!r}{hint} (valid: {shown})")


def _mj_quat_from_matrix(R: np.ndarray) -> list[float]:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=float).reshape(9))
    return q.tolist()


def add_camera(
    spec: mujoco.MjSpec,
    name: str,
    eye: Sequence[float],
    target: Sequence[float],
    fovy: float = DEFAULT_FOVY,
) -> mujoco.MjsCamera:
    """Add (or re-aim, if it exists) a fixed world camera at `eye` looking at `target`.

    fovy is the vertical field of view in degrees (a RealSense colour stream has ~42-58).
    """
    if not 10.0 <= fovy <= 120.0:
        raise ValueError(f"camera {name!r}: fovy={fovy} deg outside 10..120")
    T_cv = look_at(eye, target)
    R_mj = T_cv[:3, :3] @ np.diag([1.0, -1.0, -1.0])  # OpenCV (z forward, y down) -> MuJoCo (-z forward, y up)
    cam = spec.camera(name)
    if cam is None:
        cam = spec.worldbody.add_camera()
        cam.name = name
    cam.pos = list(map(float, eye))
    cam.alt.type = mujoco.mjtOrientation.mjORIENTATION_QUAT
    cam.quat = _mj_quat_from_matrix(R_mj)
    cam.fovy = float(fovy)
    cam.mode = mujoco.mjtCamLight.mjCAMLIGHT_FIXED
    return cam


def _add_table(spec: mujoco.MjSpec) -> None:
    wood = spec.add_material()
    wood.name = "table_top"
    wood.rgba = [0.62, 0.5, 0.38, 1.0]
    wood.specular = 0.1
    wood.reflectance = 0.0
    leg = spec.add_material()
    leg.name = "table_leg"
    leg.rgba = [0.25, 0.25, 0.27, 1.0]
    body = spec.worldbody.add_body()
    body.name = TABLE_BODY
    hx, hy, hz = (TABLE_X[1] - TABLE_X[0]) / 2, (TABLE_Y[1] - TABLE_Y[0]) / 2, 0.025
    body.pos = [(TABLE_X[0] + TABLE_X[1]) / 2, (TABLE_Y[0] + TABLE_Y[1]) / 2, TABLE_TOP_Z]
    top = body.add_geom()
    top.name = "table_top"
    top.type = mujoco.mjtGeom.mjGEOM_BOX
    top.size = [hx, hy, hz]
    top.pos = [0.0, 0.0, -hz]
    top.material = "table_top"
    top.friction = [1.0, 0.005, 0.0001]
    leg_h = (TABLE_HEIGHT - 2 * hz) / 2
    for sx in (-1, 1):
        for sy in (-1, 1):
            g = body.add_geom()
            g.type = mujoco.mjtGeom.mjGEOM_BOX
            g.size = [0.03, 0.03, leg_h]
            g.pos = [sx * (hx - 0.05), sy * (hy - 0.05), -2 * hz - leg_h]
            g.material = "table_leg"
            g.contype = g.conaffinity = 0


def base_spec(with_robot: bool = True) -> mujoco.MjSpec:
    """A fresh spec with the table (top at z=0), floor, lights, physics/visual options, the default
    cameras cam_front/cam_left/cam_right and (unless with_robot=False) the Panda at the origin."""
    spec = panda_spec() if with_robot else mujoco.MjSpec()
    spec.modelname = "vlmimic_world"
    spec.compiler.degree = False
    opt = spec.option
    opt.timestep = 0.002
    opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    opt.impratio = 10.0
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    opt.iterations = 50
    opt.ls_iterations = 20
    opt.noslip_iterations = 10  # keeps friction grasps from creeping during fast motions
    vis = spec.visual
    vis.global_.offwidth = 640
    vis.global_.offheight = 480
    vis.quality.shadowsize = 0
    vis.quality.offsamples = 0
    vis.headlight.ambient = [0.35, 0.35, 0.35]
    vis.headlight.diffuse = [0.45, 0.45, 0.45]
    vis.headlight.specular = [0.05, 0.05, 0.05]
    vis.map.znear = 0.01
    vis.map.zfar = 30.0
    spec.stat.extent = 2.0
    spec.stat.center = [0.4, 0.0, 0.2]

    floor_mat = spec.add_material()
    floor_mat.name = "floor"
    floor_mat.rgba = [0.42, 0.44, 0.47, 1.0]
    floor_mat.reflectance = 0.0
    floor = spec.worldbody.add_geom()
    floor.name = "floor"
    floor.type = mujoco.mjtGeom.mjGEOM_PLANE
    floor.size = [4.0, 4.0, 0.1]
    floor.pos = [0.0, 0.0, TABLE_TOP_Z - TABLE_HEIGHT]
    floor.material = "floor"
    _add_table(spec)
    for pos, direction in (((0.3, 1.0, 2.5), (0.1, -0.3, -1.0)), ((0.3, -1.0, 2.5), (0.1, 0.3, -1.0))):
        light = spec.worldbody.add_light()
        light.type = mujoco.mjtLightType.mjLIGHT_DIRECTIONAL
        light.pos = list(pos)
        light.dir = list(direction)
        light.diffuse = [0.35, 0.35, 0.35]
        light.specular = [0.1, 0.1, 0.1]
        light.castshadow = False
    for name, (eye, target) in DEFAULT_CAMERAS.items():
        add_camera(spec, name, eye, target)
    return spec


def _name(model: mujoco.MjModel, obj: mujoco.mjtObj, i: int) -> str:
    return mujoco.mj_id2name(model, obj, i) or ""


def _is_hand_body(name: str) -> bool:
    # The demonstrator's hand ("hand", "hand_palm", ...); "handle..." is an object part, not a hand.
    return name.startswith("hand") and not name.startswith("handle")


class SimWorld:
    """A compiled world: physics state, poses, cameras and (if present) the robot.

    labels: the task's object labels (body names); each geom gets the label of its nearest ancestor
    body named in `labels`, else "robot" (Panda bodies), "hand" (bodies named hand*), "table", else
    background (0). Label ids: table=1, robot=2, hand=3, then `labels` in order from 4.
    """

    def __init__(
        self,
        spec: mujoco.MjSpec,
        *,
        render: bool = True,
        width: int = 640,
        height: int = 480,
        labels: Sequence[str] = (),
    ) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        bad = [name for name in labels if name in FIXED_LABELS]
        if bad:
            raise ValueError(f"labels {bad} clash with the fixed labels {FIXED_LABELS}")
        if render:
            sim.render.require_rendering()
        spec.visual.global_.offwidth = max(int(spec.visual.global_.offwidth), width)
        spec.visual.global_.offheight = max(int(spec.visual.global_.offheight), height)
        self.model: mujoco.MjModel = spec.compile()
        self.data: mujoco.MjData = mujoco.MjData(self.model)
        self.render_enabled = render
        self.width, self.height = width, height
        missing = [n for n in labels if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, n) < 0]
        if missing:
            bodies = self._names(mujoco.mjtObj.mjOBJ_BODY, self.model.nbody)
            raise unknown_name_error("body for label", missing[0], bodies)
        self.label_ids: dict[str, int] = {name: i + 1 for i, name in enumerate(FIXED_LABELS)}
        for name in labels:
            self.label_ids.setdefault(name, len(self.label_ids) + 1)
        self.labels: dict[int, str] = {i: n for n, i in self.label_ids.items()}
        self.geom_label = self._geom_labels(tuple(labels))
        self._callbacks: list[Callable[[SimWorld], None]] = []
        self._cameras: dict[str, SimCamera] = {}
        self._renderer = None
        self._closed = False
        self.robot: SimRobot | None = None
        if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, ARM_JOINTS[0]) >= 0:
            from sim.robot import SimRobot

            self.robot = SimRobot(self)
        mujoco.mj_forward(self.model, self.data)

    # --- labels ------------------------------------------------------------------------------------

    def _geom_labels(self, labels: tuple[str, ...]) -> np.ndarray:
        m = self.model
        label_set = set(labels)
        body_label = np.zeros(m.nbody, dtype=np.int32)
        for b in range(m.nbody):
            i = b
            while i > 0:
                name = _name(m, mujoco.mjtObj.mjOBJ_BODY, i)
                if name in label_set:
                    body_label[b] = self.label_ids[name]
                    break
                if name.startswith(ROBOT_BODY_PREFIX) or name == ROBOT_ROOT_BODY:
                    body_label[b] = self.label_ids["robot"]
                    break
                if _is_hand_body(name):
                    body_label[b] = self.label_ids["hand"]
                    break
                if name == TABLE_BODY:
                    body_label[b] = self.label_ids["table"]
                    break
                i = int(m.body_parentid[i])
        return body_label[m.geom_bodyid].astype(np.int32)

    # --- time and stepping ---------------------------------------------------------------------------

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def step(self, n: int = 1) -> None:
        """Advance physics by n steps; step callbacks run after every step."""
        if not self._callbacks:
            mujoco.mj_step(self.model, self.data, n)
            return
        for _ in range(n):
            mujoco.mj_step(self.model, self.data)
            for fn in self._callbacks:
                fn(self)

    def forward(self) -> None:
        mujoco.mj_forward(self.model, self.data)

    def add_step_callback(self, fn: Callable[[SimWorld], None]) -> Callable[[], None]:
        """Call fn(world) after every physics step (e.g. a recorder sampling frames at a fixed rate).
        Returns a function that removes the callback."""
        self._callbacks.append(fn)

        def remove() -> None:
            if fn in self._callbacks:
                self._callbacks.remove(fn)

        return remove

    # --- names ---------------------------------------------------------------------------------------

    def _names(self, obj: mujoco.mjtObj, count: int) -> list[str]:
        return [n for n in (_name(self.model, obj, i) for i in range(count)) if n]

    def body_id(self, name: str) -> int:
        i = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if i < 0:
            raise unknown_name_error("body", name, self._names(mujoco.mjtObj.mjOBJ_BODY, self.model.nbody))
        return i

    def joint_id(self, name: str) -> int:
        i = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if i < 0:
            raise unknown_name_error("joint", name, self._names(mujoco.mjtObj.mjOBJ_JOINT, self.model.njnt))
        return i

    @property
    def camera_names(self) -> list[str]:
        return self._names(mujoco.mjtObj.mjOBJ_CAMERA, self.model.ncam)

    @property
    def body_names(self) -> list[str]:
        return self._names(mujoco.mjtObj.mjOBJ_BODY, self.model.nbody)

    # --- state ---------------------------------------------------------------------------------------

    def body_pose(self, name: str) -> Pose:
        """T_world_body of a body (from the last step/forward)."""
        i = self.body_id(name)
        w, x, y, z = self.data.xquat[i]
        return Pose(position=tuple(float(v) for v in self.data.xpos[i]), quaternion=(x, y, z, w))

    def joint_qpos(self, name: str) -> float:
        """Position of a hinge (rad) or slide (m) joint."""
        j = self.joint_id(name)
        if int(self.model.jnt_type[j]) not in _SCALAR_JOINTS:
            raise SimNameError(f"joint {name!r} is not a hinge or slide joint")
        return float(self.data.qpos[self.model.jnt_qposadr[j]])

    def set_joint_qpos(self, name: str, value: float) -> None:
        j = self.joint_id(name)
        if int(self.model.jnt_type[j]) not in _SCALAR_JOINTS:
            raise SimNameError(f"joint {name!r} is not a hinge or slide joint")
        self.data.qpos[self.model.jnt_qposadr[j]] = float(value)
        self.data.qvel[self.model.jnt_dofadr[j]] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def set_free_body_pose(self, name: str, pose: Pose) -> None:
        """Teleport a body with a free joint (velocity zeroed)."""
        b = self.body_id(name)
        j = int(self.model.body_jntadr[b])
        if j < 0 or int(self.model.jnt_type[j]) != int(mujoco.mjtJoint.mjJNT_FREE):
            raise SimNameError(f"body {name!r} has no free joint")
        adr, dof = self.model.jnt_qposadr[j], self.model.jnt_dofadr[j]
        x, y, z, w = pose.quaternion
        self.data.qpos[adr : adr + 7] = [*pose.position, w, x, y, z]
        self.data.qvel[dof : dof + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def contacts_between(self, body_a: str, body_b: str) -> int:
        """Number of active contacts between the subtrees rooted at two bodies."""
        a, b = self.body_id(body_a), self.body_id(body_b)
        m, d = self.model, self.data

        def under(body: int, anc: int) -> bool:
            while body > 0:
                if body == anc:
                    return True
                body = int(m.body_parentid[body])
            return anc == 0

        n = 0
        for c in d.contact[: d.ncon]:
            b1, b2 = int(m.geom_bodyid[c.geom1]), int(m.geom_bodyid[c.geom2])
            if (under(b1, a) and under(b2, b)) or (under(b1, b) and under(b2, a)):
                n += 1
        return n

    # --- cameras -------------------------------------------------------------------------------------

    def camera(self, name: str) -> SimCamera:
        cam = self._cameras.get(name)
        if cam is None:
            i = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, name)
            if i < 0:
                raise unknown_name_error("camera", name, self.camera_names)
            from sim.camera import SimCamera

            cam = SimCamera(self, name)
            self._cameras[name] = cam
        return cam

    def _get_renderer(self):  # -> sim.camera._Renderer
        if self._closed:
            raise VLMimicError("this SimWorld is closed")
        if not self.render_enabled:
            raise VLMimicError("this SimWorld was built with render=False; build it with render=True to capture")
        if self._renderer is None:
            from sim.camera import _Renderer

            self._renderer = _Renderer(self.model, self.width, self.height)
        return self._renderer

    def close(self) -> None:
        """Free the renderer (GL context); the world must not capture afterwards."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._closed = True

    def __enter__(self) -> SimWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
