"""The Panda's kinematic model and damped-least-squares inverse kinematics for its TCP.

The model is built from gymnasium-robotics' Franka assets found in site-packages (never copied into
the repo). The kitchen model is re-expressed in the real Panda's joint convention (its link6/link7
frames carry +90/+45 deg offsets in the original), uses the datasheet joint limits, and gets the
actuation a real Panda offers: joint position control (PD with velocity feed-forward, torque limits)
and a force-limited, mechanically coupled parallel gripper. Robot geoms collide with the scene but
not with each other (contype 2 / conaffinity 1).

The IK works on any MuJoCo model that holds this robot (the simulated world or `panda_model()`, the
robot alone, which the real-Panda path uses). `mujoco` is imported lazily so that importing this
module never fixes MuJoCo's GL platform before sim.render has chosen it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import BackendUnavailable
from core.geometry import Pose
from core.motion import PANDA_GRIPPER_MAX_WIDTH, PANDA_HOME_Q, PANDA_Q_MAX, PANDA_Q_MIN

if TYPE_CHECKING:
    import mujoco

ARM_JOINTS: tuple[str, ...] = tuple(f"robot:panda0_joint{i}" for i in range(1, 8))
FINGER_JOINTS: tuple[str, str] = ("robot:panda0_finger_joint1", "robot:panda0_finger_joint2")
ARM_ACTUATORS: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))
GRIPPER_ACTUATOR = "panda_gripper"
GRIPPER_TENDON = "panda_gripper_width"
TCP_SITE = "end_effector"
ROBOT_ROOT_BODY = "panda0_link0"
ROBOT_BODY_PREFIX = "panda0_"
FINGER_BODIES: tuple[str, str] = ("panda0_leftfinger", "panda0_rightfinger")
# Joint PD gains (N m/rad, N m s/rad) and torque limits (N m, the Panda datasheet).
ARM_KP = np.array([4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0])
ARM_KV = np.array([450.0, 450.0, 350.0, 350.0, 200.0, 200.0, 200.0])
ARM_TAU_MAX = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])
GRIPPER_KP = 4000.0  # N/m on the opening width; the force is limited to the grasp force
GRIPPER_KV = 60.0
GRIPPER_FORCE_MAX = 70.0
ROBOT_CONTYPE, ROBOT_CONAFFINITY = 2, 1
FINGER_PAD_HALF = (0.0105, 0.004, 0.0095)  # half sizes of a fingertip pad (x, y = closing axis, z), m


def franka_assets_dir() -> Path:
    """gymnasium-robotics' Franka asset folder in site-packages."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable("gymnasium-robotics is not installed; it provides the Franka Panda assets")
    root = Path(next(iter(spec.submodule_search_locations)))
    folder = root / "envs" / "assets" / "kitchen_franka" / "franka_assets"
    for name in ("chain.xml", "assets.xml"):
        if not (folder / name).is_file():
            raise BackendUnavailable(f"{folder / name}: missing; reinstall gymnasium-robotics==1.4.2")
    return folder


VISUAL_FACES = 2000  # triangles per decimated visual link mesh (the originals have 7k-22k)
_VISUAL_CACHE_VERSION = 2


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vlmimic"


@functools.cache
def decimated_visual_meshes(faces: int = VISUAL_FACES) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Visual link meshes simplified to about `faces` triangles each: {mesh file stem: (verts, faces)}.

    The Panda's visual meshes (136k triangles) cost half of each software-rendered frame. Decimation
    (open3d, quadric) runs once per machine; the result is cached in ~/.cache/vlmimic (never in the
    repo). Returns {} when open3d is unavailable or fails, and the original meshes are used instead.
    """
    folder = franka_assets_dir() / "meshes" / "visual"
    files = sorted(folder.glob("*.stl"))
    key = hashlib.sha1(
        repr([(f.name, f.stat().st_size) for f in files] + [faces, _VISUAL_CACHE_VERSION]).encode()
    ).hexdigest()[:12]
    cache = _cache_dir() / f"panda_visual_{key}.npz"
    try:
        with np.load(cache) as data:
            return {name[:-2]: (data[name], data[name[:-2] + ".f"]) for name in data.files if name.endswith(".v")}
    except (OSError, ValueError, KeyError):
        pass
    try:
        import open3d as o3d
    except ImportError:
        return {}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        for f in files:
            mesh = o3d.io.read_triangle_mesh(str(f))
            mesh = mesh.merge_close_vertices(1e-7)  # STL is a triangle soup: weld it first
            mesh.remove_duplicated_vertices()
            mesh.remove_degenerate_triangles()
            if len(mesh.triangles) > faces:
                mesh = mesh.simplify_quadric_decimation(faces)
            mesh.remove_unreferenced_vertices()
            out[f.stem] = (np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.triangles, dtype=np.int32))
    except Exception:  # a broken decimation must never break the robot model: keep the originals
        return {}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for stem, (v, t) in out.items():
            arrays[stem + ".v"], arrays[stem + ".f"] = v, t
        with tempfile.NamedTemporaryFile(dir=cache.parent, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, **arrays)
        os.replace(tmp.name, cache)
    except OSError:
        pass
    return out


def _quat_wxyz_rx90() -> list[float]:
    return [np.sqrt(0.5), np.sqrt(0.5), 0.0, 0.0]


def panda_spec(light_visuals: bool = True) -> mujoco.MjSpec:
    """A spec holding only the Panda (base at the world origin) and its actuators: no table, floor or
    lights. The simulated world is built on top of it (sim.world.base_spec). light_visuals: use the
    decimated visual meshes (faster rendering; collision geometry and kinematics are unchanged)."""
    import mujoco

    folder = franka_assets_dir()
    xml = f"""<mujoco model="panda">
  <compiler angle="radian" autolimits="true"/>
  <include file="{folder / 'assets.xml'}"/>
  <worldbody><include file="{folder / 'chain.xml'}"/></worldbody>
</mujoco>"""
    panda = mujoco.MjSpec.from_string(xml)
    panda.modelname = "panda"
    for mesh in panda.meshes:  # absolute paths: the include's relative meshdir means nothing here
        rel = Path(mesh.file).relative_to(folder) if Path(mesh.file).is_absolute() else Path(mesh.file)
        mesh.file = str(folder / "meshes" / rel)
    if light_visuals:
        simplified = decimated_visual_meshes()
        for mesh in panda.meshes:
            stem = Path(mesh.file).stem
            if mesh.name.endswith("_viz") and Path(mesh.file).parent.name == "visual" and stem in simplified:
                verts, faces = simplified[stem]
                mesh.file = ""
                mesh.uservert = verts.reshape(-1)
                mesh.userface = faces.reshape(-1)
    panda.nuser_actuator = -1
    # Real Panda joint convention: link6/link7 hang off their parents by a plain +90 deg about x.
    for name in ("panda0_link6", "panda0_link7"):
        body = panda.body(name)
        body.alt.type = mujoco.mjtOrientation.mjORIENTATION_QUAT
        body.quat = _quat_wxyz_rx90()
    for i, jname in enumerate(ARM_JOINTS):
        j = panda.joint(jname)
        j.range = [PANDA_Q_MIN[i], PANDA_Q_MAX[i]]
        j.damping = [0.5, 0.0, 0.0]
        j.armature = 0.1
        j.frictionloss = 0.0
    for jname in FINGER_JOINTS:
        j = panda.joint(jname)
        j.range = [0.0, PANDA_GRIPPER_MAX_WIDTH / 2]
        j.damping = [2.0, 0.0, 0.0]
        j.armature = 0.01
    for body in panda.bodies:
        if body.name.startswith(ROBOT_BODY_PREFIX):
            body.gravcomp = 1.0
    for geom in panda.geoms:
        if geom.contype or geom.conaffinity:  # collision geoms (visual ones have both 0)
            geom.contype, geom.conaffinity = ROBOT_CONTYPE, ROBOT_CONAFFINITY
    # The kitchen model's fingers are stretched 1.75x (tips 5 cm below the TCP). Restore the real
    # finger (tips ~1 cm beyond the TCP) with box collision geoms: a pad whose inner face is the
    # closing plane (opening = sum of the finger joints) and the finger's body behind it.
    for mesh in panda.meshes:
        if mesh.name in ("finger_viz", "finger_col"):
            mesh.scale = [1.0, 1.0, 1.0]
    for body_name, side in zip(FINGER_BODIES, (1.0, -1.0), strict=True):
        body = panda.body(body_name)
        for geom in list(body.geoms):
            if geom.contype or geom.conaffinity:
                panda.delete(geom)
        for gname, pos, size in (
            ("pad", [0.0, side * FINGER_PAD_HALF[1], 0.0445], FINGER_PAD_HALF),
            ("back", [0.0, side * 0.013, 0.0175], [0.0105, 0.009, 0.0175]),
        ):
            g = body.add_geom()
            g.name = f"{body_name}_{gname}"
            g.type = mujoco.mjtGeom.mjGEOM_BOX
            g.pos = pos
            g.size = list(size)
            g.contype, g.conaffinity = ROBOT_CONTYPE, ROBOT_CONAFFINITY
            g.group = 3
            g.mass = 0.0
            g.friction = [1.2, 0.02, 0.0002]
            g.condim = 4
            g.solref = [0.004, 1.0]
            g.solimp = [0.95, 0.99, 0.001, 0.5, 2.0]
            g.priority = 1
            g.margin = 0.0
            g.gap = 0.0
            g.rgba = [0.5, 0.6, 0.7, 0.4]

    spec = panda
    for i, jname in enumerate(ARM_JOINTS):
        act = spec.add_actuator()
        act.name = ARM_ACTUATORS[i]
        act.target = jname
        act.trntype = mujoco.mjtTrn.mjTRN_JOINT
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        act.gainprm[0] = ARM_KP[i]
        act.biasprm[:3] = [0.0, -ARM_KP[i], -ARM_KV[i]]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-ARM_TAU_MAX[i], ARM_TAU_MAX[i]]
    tendon = spec.add_tendon()
    tendon.name = GRIPPER_TENDON
    for jname in FINGER_JOINTS:
        tendon.wrap_joint(jname, 1.0)
    eq = spec.add_equality()
    eq.type = mujoco.mjtEq.mjEQ_JOINT
    eq.name1, eq.name2 = FINGER_JOINTS
    eq.data[:5] = [0.0, 1.0, 0.0, 0.0, 0.0]
    eq.solref = [0.005, 1.0]
    grip = spec.add_actuator()
    grip.name = GRIPPER_ACTUATOR
    grip.target = GRIPPER_TENDON
    grip.trntype = mujoco.mjtTrn.mjTRN_TENDON
    grip.gaintype = mujoco.mjtGain.mjGAIN_FIXED
    grip.biastype = mujoco.mjtBias.mjBIAS_AFFINE
    grip.gainprm[0] = GRIPPER_KP
    grip.biasprm[:3] = [0.0, -GRIPPER_KP, -GRIPPER_KV]
    grip.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
    grip.ctrlrange = [-0.02, PANDA_GRIPPER_MAX_WIDTH]
    grip.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    grip.forcerange = [-GRIPPER_FORCE_MAX, GRIPPER_FORCE_MAX]
    return spec


@functools.cache
def panda_model() -> mujoco.MjModel:
    """The robot-only MjModel (cached; treat as read-only), e.g. for IK on the real Panda."""
    return panda_spec(light_visuals=False).compile()


@dataclass(frozen=True)
class IKResult:
    q: np.ndarray
    success: bool
    pos_err: float  # m
    rot_err: float  # rad
    iterations: int = 0


class _ArmIndex:
    """Addresses of the arm joints and the TCP site in one model."""

    def __init__(self, model: mujoco.MjModel) -> None:
        import mujoco

        ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ARM_JOINTS]
        site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, TCP_SITE)
        if min(ids) < 0 or site < 0:
            raise ValueError("the model holds no Panda (joints robot:panda0_joint1..7 and site end_effector)")
        self.qpos_adr = np.array([model.jnt_qposadr[i] for i in ids])
        self.dof_adr = np.array([model.jnt_dofadr[i] for i in ids])
        self.lo = np.array([model.jnt_range[i][0] for i in ids])
        self.hi = np.array([model.jnt_range[i][1] for i in ids])
        self.site = site


_index_cache: dict[int, tuple[object, _ArmIndex, object]] = {}


def _index_and_data(model: mujoco.MjModel) -> tuple[_ArmIndex, mujoco.MjData]:
    import mujoco

    hit = _index_cache.get(id(model))
    if hit is None or hit[0] is not model:
        hit = (model, _ArmIndex(model), mujoco.MjData(model))
        if len(_index_cache) > 16:
            _index_cache.clear()
        _index_cache[id(model)] = hit
    return hit[1], hit[2]  # type: ignore[return-value]


def tcp_pose(model: mujoco.MjModel, q: np.ndarray) -> Pose:
    """Forward kinematics: T_base_tcp at arm configuration q (7,)."""
    import mujoco

    idx, data = _index_and_data(model)
    data.qpos[idx.qpos_adr] = q
    mujoco.mj_kinematics(model, data)
    R = data.site_xmat[idx.site].reshape(3, 3)
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = data.site_xpos[idx.site]
    return Pose.from_matrix(T)


def _orientation_error(q_target: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Rotation vector (world frame) taking rotation matrix R to the orientation q_target (w, x, y, z)."""
    import mujoco

    q_cur = np.empty(4)
    mujoco.mju_mat2Quat(q_cur, R.reshape(9))
    q_inv = np.empty(4)
    mujoco.mju_negQuat(q_inv, q_cur)
    q_err = np.empty(4)
    mujoco.mju_mulQuat(q_err, q_target, q_inv)
    if q_err[0] < 0:
        q_err = -q_err
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, q_err, 1.0)
    return vel


def solve_ik(
    model: mujoco.MjModel,
    target: Pose,
    q_init: np.ndarray | None = None,
    *,
    pos_tol: float = 1e-3,
    rot_tol: float = np.deg2rad(0.5),
    max_iters: int = 200,
    damping: float = 1e-3,
    limit_margin: float = 0.0,
    restarts: int = 10,
    seed: int = 0,
    nullspace_gain: float = 0.05,
) -> IKResult:
    """Damped-least-squares IK for the TCP site; joint limits are respected by clamping each step.

    Starts at q_init (the home pose if None), then on failure from `restarts` seeded random
    configurations. Uses one scratch MjData per model (not thread-safe for the same model).
    `success` is True only if the final error is within both tolerances; otherwise
    the best configuration found is returned with its errors (no silent near-misses).
    """
    import mujoco

    idx, data = _index_and_data(model)
    lo, hi = idx.lo + limit_margin, idx.hi - limit_margin
    p_t = target.translation
    x, y, z, w = target.quaternion
    q_t = np.array([w, x, y, z])
    q0 = np.asarray(PANDA_HOME_Q if q_init is None else q_init, dtype=float).copy()
    if q0.shape != (7,):
        raise ValueError(f"q_init must have 7 joint values, got shape {q0.shape}")
    rng = np.random.default_rng(seed)
    jacp = np.zeros((3, model.nv))
    jacr = np.zeros((3, model.nv))
    q_mid = 0.5 * (lo + hi)
    eye6, eye7 = np.eye(6), np.eye(7)
    best: IKResult | None = None
    total_iters = 0
    starts = [np.clip(q0, lo, hi)] + [rng.uniform(lo, hi) for _ in range(restarts)]
    for start in starts:
        q = start.copy()
        pos_err = rot_err = np.inf
        for _ in range(max_iters):
            total_iters += 1
            data.qpos[idx.qpos_adr] = q
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            p = data.site_xpos[idx.site]
            R = data.site_xmat[idx.site].reshape(3, 3)
            e_p = p_t - p
            e_r = _orientation_error(q_t, R)
            pos_err, rot_err = float(np.linalg.norm(e_p)), float(np.linalg.norm(e_r))
            if pos_err < pos_tol * 0.5 and rot_err < rot_tol * 0.5:
                break
            mujoco.mj_jacSite(model, data, jacp, jacr, idx.site)
            J = np.vstack([jacp[:, idx.dof_adr], jacr[:, idx.dof_adr]])
            err = np.concatenate([e_p, e_r])
            # Limit the task-space step so the linearisation holds.
            n = np.linalg.norm(err)
            if n > 0.2:
                err *= 0.2 / n
            # Joints sitting on a limit and pushed further are frozen for this step (active set).
            free = np.ones(7, dtype=bool)
            for _pass in range(2):
                Jf = J * free
                J_pinv = Jf.T @ np.linalg.inv(Jf @ Jf.T + damping * eye6)  # damped pseudo-inverse
                dq = J_pinv @ err
                # Secondary task near the goal-free phase only: drift towards mid-range in the
                # (approximate) null space; faded out close to the target so it cannot bias the result.
                fade = min(1.0, pos_err / 0.02)
                if nullspace_gain > 0 and fade > 0:
                    dq += (eye7 - J_pinv @ Jf) @ (nullspace_gain * fade * (q_mid - q) * free)
                blocked = ((q <= lo + 1e-9) & (dq < 0)) | ((q >= hi - 1e-9) & (dq > 0))
                if not np.any(blocked & free):
                    break
                free &= ~blocked
            q = np.clip(q + dq, lo, hi)
        result = IKResult(
            q=q.copy(),
            success=bool(pos_err <= pos_tol and rot_err <= rot_tol),
            pos_err=pos_err,
            rot_err=rot_err,
            iterations=total_iters,
        )
        if result.success:
            return result
        if best is None or (result.pos_err + 0.1 * result.rot_err) < (best.pos_err + 0.1 * best.rot_err):
            best = result
    assert best is not None
    return IKResult(q=best.q, success=False, pos_err=best.pos_err, rot_err=best.rot_err, iterations=total_iters)


def home_tcp_pose() -> Pose:
    """The TCP pose at PANDA_HOME_Q (on the robot-only model)."""
    return tcp_pose(panda_model(), PANDA_HOME_Q)
