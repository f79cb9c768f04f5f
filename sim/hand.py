"""The synthetic human hand of the demonstrator: the Adroit hand, skin-coloured, on a mocap body.

The hand's geometry comes from the Adroit model shipped in gymnasium-robotics
(``gymnasium_robotics/envs/assets/adroit_hand``), read from site-packages at run time, never copied.
Only its visual meshes are used and they never collide (contype = conaffinity = 0). The joints are
dropped; finger postures are set kinematically by rewriting the finger bodies' rest orientations
(``model.body_quat``), so the hand adds no degrees of freedom. All hand bodies are named ``hand*``
(the root mocap body is ``hand``), which the segmentation labels ``hand``. Objects are held by a weld
equality constraint owned by the demonstrator (sim/demonstrator.py). The one exception to "never
collides": two small fingertip pads (thumb, index), enabled by the demonstrator only for pressing
demonstrations (scripts without a Grasp), which then touch only the moving parts of articulated
objects (geoms with PAD_BIT in conaffinity), so a button is pressed physically.

Keypoints (``core.demo.HAND_KEYPOINT_NAMES``): wrist (base of the palm), thumb_tip, index_tip,
middle_tip, thumb_base (thumb CMC joint), index_base (index MCP joint).

The contract with grounding (tools/perception implements the forward direction, this module only
places the hand so that it holds):

    grasp point   p     = (thumb_tip + index_tip) / 2
    closing axis  y     = unit(index_tip - thumb_tip)                  (gripper y)
    approach axis z     = unit(p - wrist) minus its y component, normalised (gripper z)
    third axis    x     = y cross z                                      (right-handed frame)
    T_world_gripper     = [x y z | p],   opening width = |index_tip - thumb_tip|

`Hand.place(T_world_gripper, closure)` puts the mocap so that this keypoint-derived frame equals the
requested gripper pose exactly (up to float rounding) for any finger closure.
"""

from __future__ import annotations

import functools
import importlib.util
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np
from scipy.optimize import brentq
from scipy.spatial.transform import Rotation

import sim.render  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)
from core.demo import HAND_KEYPOINT_NAMES
from core.errors import BackendUnavailable
from core.geometry import Pose, invert_transform, make_transform

HAND_ROOT = "hand"
PREFIX = "hand_"
SKIN_RGBA = (0.87, 0.66, 0.53, 1.0)
FOREARM_RGBA = (0.83, 0.62, 0.50, 1.0)
FOREARM_LENGTH = 0.09
# Fingertip pads (thumb and index): the only hand geoms that can ever collide. They start disabled
# (contype 0) and, when enabled, collide only with geoms whose conaffinity has PAD_BIT set, which
# the demonstrator sets on the moving parts of articulated objects (a button to press).
PAD_BIT = 2
PAD_RADIUS = 0.0075
PAD_INSET = 0.005  # pad centre this far back from the tip keypoint, along the finger

# Finger joint angles (radians) of the two key postures; intermediate closures interpolate linearly.
# "open": a relaxed open hand with the thumb abducted; "pinch": thumb and index tips touching, the
# other three fingers curled out of the way.
OPEN_POSTURE: dict[str, float] = {
    "FFJ3": -0.436, "FFJ2": 0.962, "FFJ1": 0.418, "FFJ0": 0.433,
    "MFJ2": 0.25, "MFJ1": 0.2, "MFJ0": 0.1,
    "RFJ2": 0.35, "RFJ1": 0.3, "RFJ0": 0.15,
    "LFJ4": 0.1, "LFJ2": 0.45, "LFJ1": 0.35, "LFJ0": 0.2,
    "THJ4": 0.211, "THJ3": 0.085, "THJ2": -0.262, "THJ1": -0.299, "THJ0": -0.832,
}
PINCH_POSTURE: dict[str, float] = {
    "FFJ3": 0.436, "FFJ2": 0.317, "FFJ1": 1.2, "FFJ0": 1.263,
    "MFJ2": 1.3, "MFJ1": 1.4, "MFJ0": 0.9,
    "RFJ2": 1.4, "RFJ1": 1.5, "RFJ0": 0.9,
    "LFJ4": 0.3, "LFJ2": 1.45, "LFJ1": 1.5, "LFJ0": 0.9,
    "THJ4": 0.451, "THJ3": 0.616, "THJ2": -0.018, "THJ1": -0.281, "THJ0": -0.752,
}

_KEYPOINT_SITES = {
    "wrist": "kp_wrist",
    "thumb_tip": "thtip",
    "index_tip": "fftip",
    "middle_tip": "mftip",
    "thumb_base": "kp_thumb_base",
    "index_base": "kp_index_base",
}


def adroit_dir() -> Path:
    """The Adroit asset folder inside the installed gymnasium-robotics package (never copied)."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable("gymnasium-robotics is not installed; it provides the demonstrator's hand model")
    path = Path(list(spec.submodule_search_locations)[0]) / "envs" / "assets" / "adroit_hand"
    if not (path / "adroit_model.xml").is_file():
        raise BackendUnavailable(f"{path}/adroit_model.xml: missing from the gymnasium-robotics install")
    return path


@dataclass
class _BodyDef:
    name: str
    parent: str | None
    pos: tuple[float, ...]
    quat: tuple[float, ...]  # MuJoCo order (w, x, y, z)
    joint: str | None = None
    axis: tuple[float, ...] = (0.0, 0.0, 1.0)
    meshes: list[tuple[str, tuple[float, ...]]] = field(default_factory=list)
    sites: dict[str, tuple[float, ...]] = field(default_factory=dict)


def _floats(text: str | None, default: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split()) if text else default


@functools.cache
def _adroit_bodies() -> tuple[_BodyDef, ...]:
    """The Adroit body tree from adroit_model.xml (from the wrist down), visual meshes and tip sites."""
    root = ET.parse(adroit_dir() / "adroit_model.xml").getroot()
    out: list[_BodyDef] = []

    def walk(el: ET.Element, parent: str | None) -> None:
        name = el.get("name", "")
        b = _BodyDef(
            name=name,
            parent=parent,
            pos=(0.0, 0.0, 0.0) if parent is None else _floats(el.get("pos"), (0.0, 0.0, 0.0)),
            quat=_floats(el.get("quat"), (1.0, 0.0, 0.0, 0.0)),
        )
        for child in el:
            if child.tag == "joint":
                b.joint = child.get("name")
                b.axis = _floats(child.get("axis"), (0.0, 0.0, 1.0))
            elif child.tag == "geom" and child.get("class") == "D_Vizual":
                b.meshes.append((child.get("mesh", ""), _floats(child.get("pos"), (0.0, 0.0, 0.0))))
            elif child.tag == "site" and child.get("name", "").startswith("S_") and "tip" in child.get("name", ""):
                b.sites[child.get("name", "")[2:]] = _floats(child.get("pos"), (0.0, 0.0, 0.0))
        out.append(b)
        for child in el:
            if child.tag == "body":
                walk(child, name)

    wrist = root.find("body")
    if wrist is None:
        raise BackendUnavailable(f"{adroit_dir() / 'adroit_model.xml'}: no wrist body found")
    walk(wrist, None)
    return tuple(out)


def _mesh_files() -> dict[str, Path]:
    names = {m for b in _adroit_bodies() for m, _ in b.meshes}
    return {m: adroit_dir() / "resources" / "meshes" / f"{m}.stl" for m in names}


def _quat_wxyz(r: Rotation) -> np.ndarray:
    x, y, z, w = r.as_quat()
    return np.array([w, x, y, z])


def _rot_wxyz(q: tuple[float, ...] | np.ndarray) -> Rotation:
    w, x, y, z = q
    return Rotation.from_quat([x, y, z, w])


def add_hand(spec: mujoco.MjSpec, name: str = HAND_ROOT) -> mujoco.MjsBody:
    """Add the skin-coloured, non-colliding hand on a mocap body called `name` to `spec`.

    The mocap frame: origin at the wrist joint, +z along the fingers, -y out of the palm, +x towards
    the thumb (the Adroit wrist frame). Returns the mocap body.
    """
    skin = f"{name}_skin"
    spec.add_material(name=skin, rgba=list(SKIN_RGBA), specular=0.2, shininess=0.2)
    spec.add_material(name=f"{name}_forearm", rgba=list(FOREARM_RGBA), specular=0.1, shininess=0.1)
    for mesh, path in _mesh_files().items():
        spec.add_mesh(name=f"{name}_mesh_{mesh}", file=str(path), scale=[0.001, 0.001, 0.001])
    root = spec.worldbody.add_body(name=name, mocap=True)
    root.add_geom(
        name=f"{name}_forearm",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        fromto=[0.0, 0.0, -0.02, 0.0, 0.0, -0.02 - FOREARM_LENGTH],
        size=[0.025, 0, 0],
        material=f"{name}_forearm",
        contype=0,
        conaffinity=0,
        group=1,
        mass=0.0,
    )
    bodies: dict[str | None, mujoco.MjsBody] = {None: root}
    for b in _adroit_bodies():
        body = bodies[b.parent].add_body(name=f"{name}_{b.name}", pos=list(b.pos), quat=list(b.quat))
        bodies[b.name] = body
        for i, (mesh, pos) in enumerate(b.meshes):
            body.add_geom(
                name=f"{name}_{b.name}_vis{i}",
                type=mujoco.mjtGeom.mjGEOM_MESH,
                meshname=f"{name}_mesh_{mesh}",
                pos=list(pos),
                material=skin,
                contype=0,
                conaffinity=0,
                group=1,
                mass=0.0,
            )
        for site, pos in b.sites.items():
            body.add_site(name=f"{name}_{site}", pos=list(pos), size=[0.004, 0, 0], group=4)
            if site in ("thtip", "fftip"):
                body.add_geom(
                    name=f"{name}_{site}_pad",
                    type=mujoco.mjtGeom.mjGEOM_SPHERE,
                    size=[PAD_RADIUS, 0, 0],
                    pos=[pos[0], pos[1], pos[2] - PAD_INSET],
                    material=skin,
                    # Compiled with PAD_BIT so MuJoCo's per-body collision filter keeps them; nothing has
                    # PAD_BIT in its conaffinity unless the demonstrator sets it, and enable_pads(False)
                    # zeroes contype at run time.
                    contype=PAD_BIT,
                    conaffinity=0,
                    group=1,
                    mass=0.0,
                    condim=3,
                )
        if b.name == "palm":
            body.add_site(name=f"{name}_kp_wrist", pos=[0.004, -0.004, 0.0], size=[0.004, 0, 0], group=4)
        if b.name == "thbase":
            body.add_site(name=f"{name}_kp_thumb_base", pos=[0.0, 0.0, 0.0], size=[0.004, 0, 0], group=4)
        if b.name == "ffknuckle":
            body.add_site(name=f"{name}_kp_index_base", pos=[0.0, 0.0, 0.0], size=[0.004, 0, 0], group=4)
    return root


def posture_angles(closure: float) -> dict[str, float]:
    """Joint angles of the posture `closure` in [0, 1]: 0 = open hand, 1 = thumb-index pinch closed."""
    c = float(np.clip(closure, 0.0, 1.0))
    names = set(OPEN_POSTURE) | set(PINCH_POSTURE)
    return {j: (1 - c) * OPEN_POSTURE.get(j, 0.0) + c * PINCH_POSTURE.get(j, 0.0) for j in names}


def _gripper_from_keypoints(kp: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """The contract applied to the hand model's own keypoints (to find T_mocap_gripper). The public
    forward direction for demos lives in tools/perception/hands.py (gripper_from_keypoints)."""
    thumb, index, wrist = (np.asarray(kp[k], dtype=float) for k in ("thumb_tip", "index_tip", "wrist"))
    p = 0.5 * (thumb + index)
    d = index - thumb
    width = float(np.linalg.norm(d))
    y = d / max(width, 1e-9)
    z = p - wrist
    z = z - np.dot(z, y) * y
    z /= max(float(np.linalg.norm(z)), 1e-9)
    x = np.cross(y, z)
    return make_transform(np.column_stack([x, y, z]), p), width


class _Posable:
    """Finger posture on a compiled model that contains `add_hand(...)`: rewrites body_quat."""

    def __init__(self, model: mujoco.MjModel, name: str = HAND_ROOT) -> None:
        self.model = model
        self.name = name
        self.root_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        if self.root_id < 0:
            raise ValueError(f"the model has no hand body {name!r}; build the spec with sim.hand.add_hand")
        self.mocap_id = int(model.body_mocapid[self.root_id])
        ids, joints, axes, rests = [], [], [], []
        for b in _adroit_bodies():
            if b.joint is None:
                continue
            ids.append(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"{name}_{b.name}"))
            joints.append(b.joint)
            axis = np.asarray(b.axis, dtype=float)
            axes.append(axis / np.linalg.norm(axis))
            rests.append(_rot_wxyz(b.quat).as_quat())
        self._body_ids = np.asarray(ids, dtype=int)
        self._joint_names = joints
        self._axes = np.asarray(axes)
        self._rest = Rotation.from_quat(np.asarray(rests))
        self._open = np.array([OPEN_POSTURE.get(j, 0.0) for j in joints])
        self._pinch = np.array([PINCH_POSTURE.get(j, 0.0) for j in joints])
        self._site_ids = [
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, f"{name}_{_KEYPOINT_SITES[k]}")
            for k in HAND_KEYPOINT_NAMES
        ]
        self.closure = 0.0
        self._set = False

    def set_closure(self, closure: float) -> None:
        c = float(np.clip(closure, 0.0, 1.0))
        if c == self.closure and self._set:
            return
        angles = (1.0 - c) * self._open + c * self._pinch
        xyzw = (self._rest * Rotation.from_rotvec(self._axes * angles[:, None])).as_quat()
        self.model.body_quat[self._body_ids] = xyzw[:, [3, 0, 1, 2]]
        self.closure, self._set = c, True


class HandKinematics:
    """Forward kinematics of the hand alone (mocap at the origin): keypoints in the mocap frame."""

    def __init__(self) -> None:
        spec = mujoco.MjSpec()
        add_hand(spec)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self._pose = _Posable(self.model)

    @functools.lru_cache(maxsize=4096)  # noqa: B019  (one instance per process, see hand_kinematics())
    def _local(self, closure: float) -> np.ndarray:
        self._pose.set_closure(closure)
        mujoco.mj_kinematics(self.model, self.data)
        return np.array([self.data.site_xpos[i] for i in self._pose._site_ids])

    def keypoints_local(self, closure: float) -> dict[str, np.ndarray]:
        """Keypoint positions in the mocap frame for a finger closure in [0, 1]."""
        pts = self._local(round(float(np.clip(closure, 0.0, 1.0)), 6))
        return dict(zip(HAND_KEYPOINT_NAMES, pts, strict=True))

    def width(self, closure: float) -> float:
        kp = self.keypoints_local(closure)
        return float(np.linalg.norm(kp["index_tip"] - kp["thumb_tip"]))

    def closure_for_width(self, width: float) -> float:
        """The closure whose thumb-index tip distance is `width` (clamped to the hand's range)."""
        w_open, w_closed = self.width(0.0), self.width(1.0)
        if width >= w_open:
            return 0.0
        if width <= w_closed:
            return 1.0
        return float(brentq(lambda c: self.width(c) - width, 0.0, 1.0, xtol=1e-6))

    def T_mocap_gripper(self, closure: float) -> np.ndarray:
        """The keypoint-derived gripper frame in the mocap frame for a finger closure (cached)."""
        return self._T_mocap_gripper(round(float(np.clip(closure, 0.0, 1.0)), 6)).copy()

    @functools.lru_cache(maxsize=4096)  # noqa: B019  (one instance per process, see hand_kinematics())
    def _T_mocap_gripper(self, closure: float) -> np.ndarray:
        T, _ = _gripper_from_keypoints(self.keypoints_local(closure))
        return T


@functools.cache
def hand_kinematics() -> HandKinematics:
    return HandKinematics()


class Hand:
    """The hand inside a compiled world (model, data): posture, placement, keypoints."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, name: str = HAND_ROOT) -> None:
        self.model, self.data = model, data
        self.kin = hand_kinematics()
        self._pose = _Posable(model, name)
        self.body_id = self._pose.root_id
        self.mocap_id = self._pose.mocap_id
        self.T_world_mocap = np.eye(4)
        self.set_closure(0.0)

    @property
    def closure(self) -> float:
        return self._pose.closure

    def set_closure(self, closure: float) -> None:
        self._pose.set_closure(closure)

    @property
    def pad_geoms(self) -> list[int]:
        return [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"{self._pose.name}_{s}_pad")
                for s in ("thtip", "fftip")]

    def enable_pads(self, on: bool) -> None:
        """Let the fingertip pads push moving parts (geoms with PAD_BIT in conaffinity), or not."""
        for g in self.pad_geoms:
            self.model.geom_contype[g] = PAD_BIT if on else 0

    def set_mocap(self, T_world_mocap: np.ndarray) -> None:
        self.T_world_mocap = np.asarray(T_world_mocap, dtype=float)
        self.data.mocap_pos[self.mocap_id] = self.T_world_mocap[:3, 3]
        q = np.empty(4)  # runs at every physics step of a recording: mujoco's conversion, not scipy's
        mujoco.mju_mat2Quat(q, np.ascontiguousarray(self.T_world_mocap[:3, :3]).ravel())
        self.data.mocap_quat[self.mocap_id] = q

    def place(self, T_world_gripper: Pose | np.ndarray, closure: float | None = None) -> None:
        """Set the posture (if given) and put the mocap so the keypoint gripper frame is T_world_gripper."""
        if closure is not None:
            self.set_closure(closure)
        T = T_world_gripper.matrix() if isinstance(T_world_gripper, Pose) else np.asarray(T_world_gripper)
        self.set_mocap(T @ invert_transform(self.kin.T_mocap_gripper(self.closure)))

    def keypoints_world(self) -> np.ndarray:
        """(K, 3) keypoints in HAND_KEYPOINT_NAMES order, from the current mocap pose and posture."""
        local = self.kin.keypoints_local(self.closure)
        pts = np.array([local[k] for k in HAND_KEYPOINT_NAMES])
        return pts @ self.T_world_mocap[:3, :3].T + self.T_world_mocap[:3, 3]

    def gripper_pose(self) -> tuple[np.ndarray, float]:
        """The keypoint-derived gripper frame (4x4) and opening width of the hand as it is now."""
        return _gripper_from_keypoints(dict(zip(HAND_KEYPOINT_NAMES, self.keypoints_world(), strict=True)))
