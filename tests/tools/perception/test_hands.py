"""Hand keypoints -> gripper (the demonstrator's contract), and the optional trackers' errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.demo import HandTrack
from core.errors import BackendUnavailable, DemoFormatError
from core.geometry import make_transform, rotation_angle
from core.sensing import Intrinsics
from tools.perception.hands import (
    ArucoGripperTracker,
    MediaPipeHandTracker,
    gripper_from_hand,
    gripper_from_keypoints,
    keypoints_from_gripper,
)


def test_contract_recovers_the_gripper_pose_and_width() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        T = make_transform(Rotation.random(random_state=rng.integers(1e9)), rng.uniform(-1, 1, 3))
        w = float(rng.uniform(0.0, 0.1))
        kp = keypoints_from_gripper(T, w)
        wrist = kp["wrist"] + 0.02 * T[:3, 1]  # a wrist off the approach line: z is orthogonalised against y
        G, width = gripper_from_keypoints(wrist, kp["thumb_tip"], kp["index_tip"])
        if w > 1e-3:
            assert np.allclose(G[0], T, atol=1e-9)
        assert width[0] == pytest.approx(w)
        assert np.linalg.det(G[0, :3, :3]) == pytest.approx(1.0)


def test_contract_axes_by_hand() -> None:
    G, w = gripper_from_keypoints(np.array([0.0, 0, 0.1]), np.array([0.0, -0.02, 0]), np.array([0.0, 0.02, 0]))
    assert np.allclose(G[0, :3, 3], 0)  # grasp point between the tips
    assert np.allclose(G[0, :3, 1], [0, 1, 0])  # closing axis thumb -> index
    assert np.allclose(G[0, :3, 2], [0, 0, -1])  # approach: wrist -> grasp point
    assert np.allclose(G[0, :3, 0], np.cross([0, 1, 0], [0, 0, -1]))  # x = y cross z
    assert w[0] == pytest.approx(0.04)


def _track(visible: np.ndarray) -> HandTrack:
    n = len(visible)
    xyz = np.zeros((n, 3, 3))
    xyz[:, 0] = [0, 0, 0.1]
    xyz[:, 1] = [0, -0.02, 0]
    xyz[:, 2] = [0, 0.02, 0]
    xyz[:, :, 0] += np.arange(n)[:, None] * 0.01
    return HandTrack(names=("wrist", "thumb_tip", "index_tip"), uv=np.zeros((n, 3, 2)), xyz=xyz, visible=visible)


def test_invisible_frames_hold_the_nearest_visible_pose() -> None:
    g = gripper_from_hand(_track(np.array([True, False, False, True, False])))
    assert g.grasp_point[1, 0] == pytest.approx(0.0)  # frame 1 -> frame 0
    assert g.grasp_point[2, 0] == pytest.approx(0.03)  # frame 2 -> frame 3
    assert g.grasp_point[4, 0] == pytest.approx(0.03)
    assert list(g.visible) == [True, False, False, True, False]


def test_no_visible_hand_is_one_clear_error() -> None:
    with pytest.raises(DemoFormatError, match="not visible in any frame"):
        gripper_from_hand(_track(np.zeros(4, bool)), source="demo_x")


def test_missing_keypoint_names_the_keypoint() -> None:
    t = _track(np.ones(2, bool))
    t = HandTrack(names=("wrist", "thumb", "index_tip"), uv=t.uv, xyz=t.xyz, visible=t.visible)
    with pytest.raises(DemoFormatError, match="thumb_tip"):
        gripper_from_hand(t)


def test_mediapipe_without_a_model_names_the_setting(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(BackendUnavailable, match="perception.mediapipe_model_path"):
        MediaPipeHandTracker(None)
    with pytest.raises(BackendUnavailable, match="not found"):
        MediaPipeHandTracker(tmp_path / "hand_landmarker.task")


def test_mediapipe_not_installed_says_how_to_install(tmp_path) -> None:  # noqa: ANN001
    model = tmp_path / "hand_landmarker.task"
    model.write_bytes(b"x")
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailable, match="pip install mediapipe"):
            MediaPipeHandTracker(model)
    else:  # pragma: no cover - mediapipe is not a dependency
        pytest.skip("mediapipe is installed here")


def test_aruco_marker_pose_is_recovered_from_an_image() -> None:
    intr = Intrinsics(width=640, height=480, fx=600, fy=600, cx=319.5, cy=239.5)
    K = intr.matrix()
    length = 0.05
    tracker = ArucoGripperTracker(marker_id=7, marker_length_m=length)
    marker = cv2.aruco.generateImageMarker(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), 7, 200)
    marker = cv2.copyMakeBorder(marker, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)  # white quiet zone
    # the marker faces the camera (its z towards the viewer), tilted, 0.4 m in front
    R = Rotation.from_euler("x", 180, degrees=True) * Rotation.from_euler("xyz", [20, -15, 10], degrees=True)
    T_cm = make_transform(R, [0.02, -0.01, 0.4])
    s = length / 2 * 280 / 200  # half-size of the bordered image in metres
    corners_m = np.array([[-s, s, 0], [s, s, 0], [s, -s, 0], [-s, -s, 0]])
    pc = corners_m @ T_cm[:3, :3].T + T_cm[:3, 3]
    uv = intr.project(pc).astype(np.float32)
    src = np.array([[0, 0], [279, 0], [279, 279], [0, 279]], np.float32)
    H = cv2.getPerspectiveTransform(src, uv)
    img = cv2.warpPerspective(marker, H, (640, 480), borderValue=128)
    rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    poses = tracker.marker_poses(rgb, K)
    assert 7 in poses
    assert np.linalg.norm(poses[7][:3, 3] - T_cm[:3, 3]) < 0.005
    assert np.rad2deg(rotation_angle(poses[7][:3, :3], T_cm[:3, :3])) < 3.0
