import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.geometry import Pose, interpolate_poses, invert_transform, look_at, rotation_angle, transform_points


def random_pose(rng: np.random.Generator) -> Pose:
    return Pose.from_rotation(Rotation.random(random_state=rng.integers(1 << 31)), rng.normal(size=3))


def test_composition_matches_matrix_product_and_inverse_is_identity():
    rng = np.random.default_rng(0)
    a, b = random_pose(rng), random_pose(rng)
    np.testing.assert_allclose((a @ b).matrix(), a.matrix() @ b.matrix(), atol=1e-9)
    ident = a @ a.inverse()
    dt, dr = ident.distance_to(Pose.identity())
    assert dt < 1e-9 and dr < 1e-6
    np.testing.assert_allclose(invert_transform(a.matrix()), np.linalg.inv(a.matrix()), atol=1e-9)


def test_quaternion_is_normalised_and_zero_quaternion_rejected():
    p = Pose(position=(1, 2, 3), quaternion=(0, 0, 0, 2))
    assert p.quaternion == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="non-zero"):
        Pose(quaternion=(0, 0, 0, 0))


def test_apply_transforms_points():
    p = Pose.from_rotation(Rotation.from_euler("z", 90, degrees=True), (1.0, 0.0, 0.0))
    out = p.apply(np.array([[1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(out, [[1.0, 1.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(transform_points(p.matrix(), [[0, 0, 1]]), [[1, 0, 1]], atol=1e-12)


def test_interpolation_endpoints_and_midpoint_angle():
    a = Pose()
    b = Pose.from_rotation(Rotation.from_euler("x", 90, degrees=True), (0.2, 0, 0))
    mid = interpolate_poses(a, b, [0.0, 0.5, 1.0])
    assert mid[0].distance_to(a)[0] < 1e-12
    assert mid[2].distance_to(b)[1] < 1e-9
    assert abs(np.rad2deg(rotation_angle(np.eye(3), mid[1].rotation.as_matrix())) - 45.0) < 1e-6
    assert abs(mid[1].position[0] - 0.1) < 1e-12


def test_look_at_points_optical_axis_at_target_with_image_y_down():
    T = look_at(eye=(1.0, 0.0, 1.0), target=(0.0, 0.0, 0.0))
    z = T[:3, 2]
    np.testing.assert_allclose(z, np.array([-1.0, 0.0, -1.0]) / np.sqrt(2), atol=1e-12)
    assert T[2, 1] < 0  # image y (down) points towards world -z
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
