"""Canonical object frames and ICP tracking on synthetic clouds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.geometry import make_transform, rotation_angle, transform_points
from tools.perception.tracking import ObjectTracker, canonical_frame


def box_surface(size: tuple[float, float, float], step: float = 0.004, top_and_sides_only: bool = True) -> np.ndarray:
    """Points on a box's surface in its own frame (centred), without the bottom face."""
    sx, sy, sz = size
    xs, ys, zs = (np.arange(-s / 2, s / 2 + 1e-9, step) for s in size)
    faces = []
    X, Y = np.meshgrid(xs, ys)
    faces.append(np.column_stack([X.ravel(), Y.ravel(), np.full(X.size, sz / 2)]))
    if not top_and_sides_only:
        faces.append(np.column_stack([X.ravel(), Y.ravel(), np.full(X.size, -sz / 2)]))
    for sgn in (-1, 1):
        X, Z = np.meshgrid(xs, zs)
        faces.append(np.column_stack([X.ravel(), np.full(X.size, sgn * sy / 2), Z.ravel()]))
        Y, Z = np.meshgrid(ys, zs)
        faces.append(np.column_stack([np.full(Y.size, sgn * sx / 2), Y.ravel(), Z.ravel()]))
    return np.vstack(faces)


def placed(size, xy, yaw_deg) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    T = make_transform(Rotation.from_euler("z", yaw_deg, degrees=True), [xy[0], xy[1], size[2] / 2])
    return transform_points(T, box_surface(size)), T


@pytest.mark.parametrize("yaw", [0.0, 25.0, 90.0, 160.0, -70.0])
def test_canonical_frame_is_the_same_for_a_rotated_elongated_object(yaw: float) -> None:
    size = (0.20, 0.06, 0.05)
    pts, _ = placed(size, (0.6, 0.2), yaw)
    T, ext = canonical_frame(pts)
    assert np.allclose(T[:3, 2], [0, 0, 1])
    assert np.allclose(np.linalg.det(T[:3, :3]), 1.0)
    # x is the box axis (long or short) that points most towards the robot base
    to_base = -np.array([0.6, 0.2]) / np.linalg.norm([0.6, 0.2])
    R_box = Rotation.from_euler("z", yaw, degrees=True).as_matrix()
    cands = [s * R_box[:2, k] for k in (0, 1) for s in (1, -1)]
    expect = max(cands, key=lambda c: float(c @ to_base))
    assert np.allclose(T[:2, 0], expect, atol=1e-3)
    # extent along x/y is the box's size along those axes, z is the height
    axis = 0 if abs(R_box[:2, 0] @ expect) > 0.5 else 1
    assert ext[0] == pytest.approx(size[axis], abs=0.005)
    assert ext[1] == pytest.approx(size[1 - axis], abs=0.005)
    assert ext[2] == pytest.approx(size[2], abs=0.005)
    assert np.allclose(T[:3, 3], [0.6, 0.2, size[2] / 2], atol=0.003)


def test_canonical_frame_of_a_round_object_points_at_the_base() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 2 * np.pi, 3000)
    h = rng.uniform(0, 0.03, 3000)
    pts = np.column_stack([0.4 + 0.05 * np.cos(a), -0.3 + 0.05 * np.sin(a), h])
    T, ext = canonical_frame(pts)
    assert np.allclose(T[:2, 0], -np.array([0.4, -0.3]) / 0.5, atol=1e-6)
    assert ext[0] == pytest.approx(0.10, abs=0.004)


@pytest.mark.parametrize(("size", "yaw"), [((0.25, 0.25, 0.05), 0.0), ((0.25, 0.24, 0.05), 10.0),
                                           ((0.05, 0.05, 0.05), 40.0), ((0.34, 0.31, 0.02), -20.0)])
def test_canonical_frame_of_a_square_box_follows_its_edges(size: tuple[float, float, float], yaw: float) -> None:
    # a rack, a cube, a sink nearly as wide as long: a frame pointed at the base instead of along the edges
    # fits a box up to 35 % too large, and what is written in fractions of it lands centimetres off
    pts, _ = placed(size, (0.6, -0.33), yaw)
    T, ext = canonical_frame(pts)
    R_box = Rotation.from_euler("z", yaw, degrees=True).as_matrix()
    assert max(abs(float(T[:2, 0] @ R_box[:2, k])) for k in (0, 1)) == pytest.approx(1.0, abs=1e-3)
    assert sorted(ext[:2]) == pytest.approx(sorted(size[:2]), abs=0.005)
    to_base = -np.array([0.6, -0.33]) / np.linalg.norm([0.6, -0.33])
    assert float(T[:2, 0] @ to_base) > np.cos(np.deg2rad(45.5))  # of the four edges, the one facing the base


def pan_footprint(yaw_deg: float, xy: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Points on a pan seen from above: a disc (radius 10 cm) and a handle (12 x 2 cm) along its local x."""
    disc = rng.uniform(0, 1, (4000, 2))
    r, a = 0.1 * np.sqrt(disc[:, 0]), 2 * np.pi * disc[:, 1]
    bowl = np.column_stack([r * np.cos(a), r * np.sin(a), rng.uniform(0.0, 0.04, len(a))])
    handle = np.column_stack([rng.uniform(0.1, 0.22, 600), rng.uniform(-0.01, 0.01, 600), rng.uniform(0.03, 0.04, 600)])
    T = make_transform(Rotation.from_euler("z", yaw_deg, degrees=True), [xy[0], xy[1], 0.0])
    return transform_points(T, np.vstack([bowl, handle]))


@pytest.mark.parametrize("yaw", [180.0, 172.0, 188.0, 150.0, 95.0, -30.0])
def test_canonical_frame_of_a_pan_lies_along_its_handle(yaw: float) -> None:
    # its minimum-area rectangle tilts ~25 deg to either side of the handle (two mirror-image fits, equally
    # small): the frame follows the shape's axis instead, so the same pan gets the same frame in every view
    pts = pan_footprint(yaw, (0.5, -0.05), np.random.default_rng(int(yaw) % 7))
    T, ext = canonical_frame(pts)
    handle = Rotation.from_euler("z", yaw, degrees=True).as_matrix()[:2, 0]
    along = max(abs(float(T[:2, 0] @ handle)), abs(float(T[:2, 1] @ handle)))
    assert along > np.cos(np.deg2rad(2.0))
    assert sorted(ext[:2]) == pytest.approx([0.2, 0.32], abs=0.006)
    # the box's centre lies on the handle's axis, 6 cm from the bowl's centre towards the handle
    assert np.allclose(T[:2, 3], np.array([0.5, -0.05]) + 0.06 * handle, atol=0.004)


def test_tracker_follows_a_moving_partly_occluded_box() -> None:
    size = (0.12, 0.08, 0.06)
    pts, T0 = placed(size, (0.5, 0.0), 10.0)
    tr = ObjectTracker("box", pts, T0, voxel=0.004)
    rng = np.random.default_rng(1)
    T = T0.copy()
    local = box_surface(size)
    for k in range(1, 25):
        step = make_transform(Rotation.from_euler("z", 2.0, degrees=True), [0.004, -0.003, 0.002])
        T = T @ step
        visible = local[local[:, 0] < 0.03 + 0.02 * np.sin(k)]  # a hand hides one end, differently each frame
        obs = transform_points(T, visible) + rng.normal(0, 0.0005, (len(visible), 3))
        res = tr.step(obs)
        assert res.tracked
    dt = np.linalg.norm(res.T_world_object[:3, 3] - T[:3, 3])
    dr = np.rad2deg(rotation_angle(res.T_world_object[:3, :3], T[:3, :3]))
    assert dt < 0.003 and dr < 1.5


def test_tracker_keeps_pose_and_flags_untracked_when_hidden() -> None:
    pts, T0 = placed((0.1, 0.1, 0.1), (0.5, 0.1), 0.0)
    tr = ObjectTracker("box", pts, T0)
    res = tr.step(np.zeros((3, 3)))
    assert not res.tracked and np.allclose(res.T_world_object, T0)
    still = tr.step(pts)
    assert still.tracked and not still.icp  # unchanged cloud: no ICP needed


def test_a_box_cut_off_by_the_picture_keeps_its_edges_when_told() -> None:
    # a 34 x 30 cm sink whose corner lies outside the view: a pentagon whose hull's axes follow the cut
    g = np.arange(-0.17, 0.17, 0.004)
    xy = np.stack(np.meshgrid(g, np.arange(-0.15, 0.15, 0.004)), axis=-1).reshape(-1, 2)
    xy = xy[xy[:, 0] + xy[:, 1] < 0.1]  # the corner at +x +y is outside the picture
    pts = np.column_stack([xy + [0.49, 0.28], np.full(len(xy), 0.016)])
    T_hull, _ = canonical_frame(pts)
    T, ext = canonical_frame(pts, whole_outline=False)
    assert abs(float(T[0, 0])) == pytest.approx(1.0, abs=1e-3)
    assert ext[:2] == pytest.approx([0.336, 0.296], abs=0.006)
    assert abs(float(T_hull[0, 0])) < 0.99  # the hull's axes: off the walls
