"""What a camera hands to the rest of the system: aligned RGB-D with intrinsics and pose.

The same contract is produced by the MuJoCo camera, a RealSense and a demo recording, so nothing
downstream can tell (or needs to know) where a frame came from.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Intrinsics(BaseModel):
    """Pinhole intrinsics of the colour stream (depth is aligned to colour)."""

    model_config = ConfigDict(frozen=True)

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_fovy(cls, width: int, height: int, fovy_deg: float) -> Intrinsics:
        """Square-pixel intrinsics from a vertical field of view (MuJoCo's camera model)."""
        f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2.0)
        return cls(width=width, height=height, fx=f, fy=f, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0)

    def project(self, points_camera: np.ndarray) -> np.ndarray:
        """(N, 3) points in the optical frame -> (N, 2) pixel coordinates (u, v)."""
        p = np.asarray(points_camera, dtype=float)
        z = np.where(np.abs(p[:, 2]) < 1e-9, 1e-9, p[:, 2])
        return np.column_stack([self.fx * p[:, 0] / z + self.cx, self.fy * p[:, 1] / z + self.cy])

    def deproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """(N, 2) pixels and (N,) metric depths -> (N, 3) points in the optical frame."""
        uv = np.asarray(uv, dtype=float)
        d = np.asarray(depth, dtype=float)
        x = (uv[:, 0] - self.cx) / self.fx * d
        y = (uv[:, 1] - self.cy) / self.fy * d
        return np.column_stack([x, y, d])


class RGBDFrame(BaseModel):
    """One aligned RGB-D frame.

    rgb: (H, W, 3) uint8; depth: (H, W) float32 metres, 0 where invalid; T_world_camera: 4x4
    OpenCV optical frame in the world (robot base / table) frame; timestamp in seconds.
    segmentation/labels are present only when the source provides them (the simulator's perfect
    segmenter or a recorded channel).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: Intrinsics
    T_world_camera: np.ndarray
    timestamp: float = 0.0
    segmentation: np.ndarray | None = None
    labels: dict[int, str] | None = None

    @model_validator(mode="after")
    def _check_shapes(self) -> RGBDFrame:
        h, w = self.intrinsics.height, self.intrinsics.width
        if self.rgb.shape != (h, w, 3) or self.rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be uint8 of shape {(h, w, 3)}, got {self.rgb.dtype} {self.rgb.shape}")
        if self.depth.shape != (h, w):
            raise ValueError(f"depth must have shape {(h, w)}, got {self.depth.shape}")
        if self.depth.dtype != np.float32:
            raise ValueError(f"depth must be float32 metres, got {self.depth.dtype}")
        if np.asarray(self.T_world_camera).shape != (4, 4):
            raise ValueError("T_world_camera must be a 4x4 transform")
        if self.segmentation is not None and self.segmentation.shape != (h, w):
            raise ValueError(f"segmentation must have shape {(h, w)}, got {self.segmentation.shape}")
        return self

    def points_world(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Back-project valid depth pixels (optionally restricted by a boolean mask) to world points."""
        valid = self.depth > 0
        if mask is not None:
            valid &= mask
        v, u = np.nonzero(valid)
        pts_cam = self.intrinsics.deproject(np.column_stack([u, v]), self.depth[v, u])
        T = np.asarray(self.T_world_camera)
        return pts_cam @ T[:3, :3].T + T[:3, 3]
