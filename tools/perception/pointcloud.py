"""Point clouds from masks + depth + intrinsics, voxel downsampling, outlier removal (Open3D).

Clouds are plain (N, 3) float64 arrays in the world frame; Open3D is used for the heavy lifting
(voxel grids, statistical outlier removal, normals) but never leaks into the interfaces.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from core.sensing import RGBDFrame


def to_o3d(points: np.ndarray) -> o3d.geometry.PointCloud:
    pc = o3d.geometry.PointCloud()
    pc.points = o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    return pc


def cloud_from_mask(frame: RGBDFrame, mask: np.ndarray, stride: int = 1) -> np.ndarray:
    """World points of the valid-depth pixels in `mask`, optionally on a pixel grid of `stride`."""
    if mask.shape != frame.depth.shape:
        raise ValueError(f"mask shape {mask.shape} does not match the frame {frame.depth.shape}")
    valid = mask & (frame.depth > 0)
    if stride > 1:
        grid = np.zeros_like(valid)
        grid[::stride, ::stride] = True
        valid &= grid
    return frame.points_world(valid)


def meets_image_edge(mask: np.ndarray, border_px: int = 2) -> bool:
    """Whether a mask reaches the image's edge (within `border_px`): part of the object may lie outside
    the view, so its outline there is the image's, not the object's."""
    m = np.asarray(mask, dtype=bool)
    b = max(1, int(border_px))
    return bool(m[:b].any() or m[-b:].any() or m[:, :b].any() or m[:, -b:].any())


def voxel_downsample(points: np.ndarray, voxel: float) -> np.ndarray:
    """One point (the centroid) per occupied voxel of edge `voxel` metres."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) == 0 or voxel <= 0:
        return pts
    return np.asarray(to_o3d(pts).voxel_down_sample(voxel).points)


def remove_outliers(points: np.ndarray, nb_neighbors: int = 16, std_ratio: float = 2.0) -> np.ndarray:
    """Statistical outlier removal: drop points whose mean neighbour distance is unusually large."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) <= nb_neighbors:
        return pts
    _, idx = to_o3d(pts).remove_statistical_outlier(nb_neighbors=nb_neighbors, std_ratio=std_ratio)
    return pts[np.asarray(idx, dtype=int)]


def clean_cloud(points: np.ndarray, voxel: float, outliers: bool = True) -> np.ndarray:
    """Voxel downsampling followed (optionally) by statistical outlier removal."""
    pts = voxel_downsample(points, voxel)
    return remove_outliers(pts) if outliers else pts


def estimate_normals(points: np.ndarray, radius: float, viewpoint: np.ndarray | None = None) -> np.ndarray:
    """Unit normals (N, 3), oriented towards `viewpoint` when given."""
    pc = to_o3d(points)
    pc.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=30))
    if viewpoint is not None:
        pc.orient_normals_towards_camera_location(np.asarray(viewpoint, dtype=np.float64))
    return np.asarray(pc.normals)
