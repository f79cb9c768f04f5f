"""SE(3) helpers on scipy's Rotation.

Conventions used everywhere in VLMimic:
- A `Pose` is a rigid transform T_a_b: it maps coordinates expressed in frame b into frame a.
  Name variables after the two frames (`T_world_camera`, `T_master_slave`) so composition reads
  left to right: T_world_slave = T_world_master @ T_master_slave.
- Quaternions are stored scalar-last (x, y, z, w), scipy's convention.
- Cameras use the OpenCV optical frame: x right, y down, z forward (MuJoCo's -z view is converted
  where the camera is defined, never downstream).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator
from scipy.spatial.transform import Rotation, Slerp


def make_transform(rotation: np.ndarray | Rotation, translation: Sequence[float] | np.ndarray) -> np.ndarray:
    """A 4x4 homogeneous matrix from a rotation (3x3 matrix or scipy Rotation) and a translation."""
    T = np.eye(4)
    T[:3, :3] = rotation.as_matrix() if isinstance(rotation, Rotation) else np.asarray(rotation, dtype=float)
    T[:3, 3] = np.asarray(translation, dtype=float)
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (uses R^T rather than a general matrix inverse)."""
    R = T[:3, :3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ T[:3, 3]
    return out


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to an (N, 3) array of points."""
    pts = np.asarray(points, dtype=float)
    return pts @ T[:3, :3].T + T[:3, 3]


def rotation_angle(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Geodesic angle in radians between two rotation matrices."""
    R = np.asarray(R_a).T @ np.asarray(R_b)
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.arccos(cos))


class Pose(BaseModel):
    """A rigid transform as position (m) and unit quaternion (x, y, z, w)."""

    model_config = ConfigDict(frozen=True)

    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quaternion: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)

    @field_validator("quaternion")
    @classmethod
    def _unit_quaternion(cls, q: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        n = float(np.linalg.norm(q))
        if not np.isfinite(n) or n < 1e-9:
            raise ValueError("quaternion must be a non-zero finite (x, y, z, w) vector")
        return tuple(float(v) / n for v in q)  # type: ignore[return-value]

    @classmethod
    def identity(cls) -> Pose:
        return cls()

    @classmethod
    def from_matrix(cls, T: np.ndarray) -> Pose:
        T = np.asarray(T, dtype=float)
        if T.shape != (4, 4):
            raise ValueError(f"expected a 4x4 transform, got shape {T.shape}")
        q = Rotation.from_matrix(T[:3, :3]).as_quat()
        return cls(position=tuple(T[:3, 3]), quaternion=tuple(q))

    @classmethod
    def from_rotation(cls, rotation: Rotation, position: Sequence[float]) -> Pose:
        return cls(position=tuple(float(v) for v in position), quaternion=tuple(rotation.as_quat()))

    @property
    def rotation(self) -> Rotation:
        return Rotation.from_quat(self.quaternion)

    @property
    def translation(self) -> np.ndarray:
        return np.asarray(self.position, dtype=float)

    def matrix(self) -> np.ndarray:
        return make_transform(self.rotation, self.position)

    def inverse(self) -> Pose:
        return Pose.from_matrix(invert_transform(self.matrix()))

    def __matmul__(self, other: Pose) -> Pose:
        return Pose.from_matrix(self.matrix() @ other.matrix())

    def apply(self, points: np.ndarray) -> np.ndarray:
        return transform_points(self.matrix(), points)

    def distance_to(self, other: Pose) -> tuple[float, float]:
        """(translation error in m, rotation error in rad) between two poses."""
        dt = float(np.linalg.norm(self.translation - other.translation))
        dr = rotation_angle(self.rotation.as_matrix(), other.rotation.as_matrix())
        return dt, dr


def interpolate_poses(a: Pose, b: Pose, fractions: Sequence[float]) -> list[Pose]:
    """Linear position and slerp orientation between two poses at the given fractions in [0, 1]."""
    slerp = Slerp([0.0, 1.0], Rotation.from_quat([a.quaternion, b.quaternion]))
    out = []
    for s in fractions:
        s = float(np.clip(s, 0.0, 1.0))
        p = (1.0 - s) * a.translation + s * b.translation
        out.append(Pose.from_rotation(slerp([s])[0], p))
    return out


def look_at(eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """T_world_camera for an OpenCV camera at `eye` looking at `target` (z forward, y down)."""
    eye_v = np.asarray(eye, dtype=float)
    z = np.asarray(target, dtype=float) - eye_v
    z /= np.linalg.norm(z)
    up_v = np.asarray(up, dtype=float)
    x = np.cross(z, up_v)
    if np.linalg.norm(x) < 1e-6:  # looking straight along `up`: pick any perpendicular
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_transform(np.column_stack([x, y, z]), eye_v)
