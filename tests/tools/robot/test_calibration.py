"""ChArUco detection, eye-to-hand and known-board calibration on synthetic images with known truth."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.geometry import Pose, invert_transform, look_at, make_transform
from core.motion import MotionResult, MotionStatus
from core.sensing import Intrinsics, RGBDFrame
from core.settings import load_settings
from tools.robot.calibration import (
    BoardSpec,
    CalibrationError,
    calibrate_eye_to_hand,
    calibrate_known_board,
    detect_board,
    render_board_view,
    save_T_base_camera,
    solve_eye_to_hand,
)

SPEC = BoardSpec(squares_x=7, squares_y=5, square_m=0.04, marker_m=0.03, dictionary="DICT_5X5_100")
K = Intrinsics(width=1280, height=720, fx=910.0, fy=908.0, cx=640.3, cy=359.7)
# A camera 1.2 m in front of the robot, looking back at the workspace.
T_BASE_CAMERA = look_at(eye=(1.3, 0.25, 0.7), target=(0.45, 0.0, 0.2))
# The board bolted to the gripper: 6 cm in front of the fingers, facing along the gripper's -z... roughly.
T_GRIPPER_BOARD = make_transform(Rotation.from_euler("xyz", [180, 0, 90], degrees=True), (-0.10, -0.14, 0.06))


def errors(T_est: np.ndarray, T_true: np.ndarray) -> tuple[float, float]:
    dt, dr = Pose.from_matrix(T_est).distance_to(Pose.from_matrix(T_true))
    return dt * 1000.0, float(np.rad2deg(dr))


def board_pose_facing_camera(rng: np.random.Generator) -> np.ndarray:
    """A T_camera_board the camera sees well: 0.5-0.9 m away, tilted up to ~30 degrees."""
    R = Rotation.from_euler("xyz", rng.uniform([-30, -30, -60], [30, 30, 60]), degrees=True)
    centre = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.06, 0.06), rng.uniform(0.5, 0.9)])
    half = np.array([*SPEC.size_m, 0.0]) / 2
    return make_transform(R, centre - R.apply(half))


def test_detect_board_recovers_a_rendered_pose(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for _ in range(6):
        T = board_pose_facing_camera(rng)
        img = render_board_view(SPEC, K, T).astype(np.float64)
        img = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)  # sensor noise
        obs = detect_board(img, K, SPEC)
        dt_mm, dr_deg = errors(obs.T_camera_board, T)
        assert dt_mm < 2.0 and dr_deg < 0.5, (dt_mm, dr_deg)
        assert obs.reprojection_px < 0.5
        assert len(obs.image_points) >= 20


def test_no_board_is_a_clear_error() -> None:
    with pytest.raises(CalibrationError, match="ChArUco board not found: 0 corners"):
        detect_board(np.full((720, 1280, 3), 200, np.uint8), K, SPEC)


def test_wrong_dictionary_finds_nothing() -> None:
    T = board_pose_facing_camera(np.random.default_rng(1))
    img = render_board_view(SPEC, K, T)
    with pytest.raises(CalibrationError, match="board not found"):
        detect_board(img, K, SPEC.model_copy(update={"dictionary": "DICT_4X4_50"}))


def _synthetic_hand_eye(n: int, rng: np.random.Generator, noise_mm: float, noise_deg: float
                        ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    G, C = [], []
    for _ in range(n):
        C_true = board_pose_facing_camera(rng)
        G.append(T_BASE_CAMERA @ C_true @ invert_transform(T_GRIPPER_BOARD))
        noise = make_transform(Rotation.from_rotvec(rng.normal(0, np.deg2rad(noise_deg), 3)),
                               rng.normal(0, noise_mm / 1000.0, 3))
        C.append(C_true @ noise)
    return G, C


def test_eye_to_hand_recovers_the_camera_from_noisy_poses() -> None:
    rng = np.random.default_rng(7)
    G, C = _synthetic_hand_eye(12, rng, noise_mm=1.0, noise_deg=0.2)
    res = solve_eye_to_hand(G, C)
    dt_mm, dr_deg = errors(res.T_base_camera, T_BASE_CAMERA)
    assert dt_mm < 3.0 and dr_deg < 0.3, (dt_mm, dr_deg)
    dt_mm, dr_deg = errors(res.T_gripper_board, T_GRIPPER_BOARD)
    assert dt_mm < 3.0 and dr_deg < 0.3
    assert np.median(res.translation_residuals_m) < 0.003
    assert "12 poses" in res.summary()


def test_eye_to_hand_is_exact_without_noise() -> None:
    G, C = _synthetic_hand_eye(5, np.random.default_rng(3), 0.0, 0.0)
    res = solve_eye_to_hand(G, C)
    dt_mm, dr_deg = errors(res.T_base_camera, T_BASE_CAMERA)
    assert dt_mm < 1e-3 and dr_deg < 1e-4


def test_degenerate_pose_sets_are_refused() -> None:
    G, C = _synthetic_hand_eye(2, np.random.default_rng(0), 0.0, 0.0)
    with pytest.raises(CalibrationError, match="at least 3 poses"):
        solve_eye_to_hand(G, C)
    # Pure translations: no rotation information.
    G = [make_transform(np.eye(3), (0.4 + 0.05 * i, 0.0, 0.3)) for i in range(5)]
    C = [invert_transform(T_BASE_CAMERA) @ g @ T_GRIPPER_BOARD for g in G]
    with pytest.raises(CalibrationError, match="too similar"):
        solve_eye_to_hand(G, C)


class PosedRobot:
    """A fake robot whose 'joint positions' select a known gripper pose (the hand-eye fixture)."""

    def __init__(self, poses: Sequence[np.ndarray]) -> None:
        self.poses = list(poses)
        self.current = 0
        self.moves: list[int] = []

    def move_to_joints(self, q: Sequence[float], speed_factor: float = 0.2) -> MotionResult:
        self.current = int(round(q[0]))
        self.moves.append(self.current)
        return MotionResult(status=MotionStatus.done)

    def ee_pose(self) -> Pose:
        return Pose.from_matrix(self.poses[self.current])


class BoardCamera:
    """A fixed camera that renders the board where the robot's gripper holds it (or at a fixed pose)."""

    name = "synthetic"

    def __init__(self, robot: PosedRobot | None = None, T_camera_board: np.ndarray | None = None,
                 spec: BoardSpec = SPEC) -> None:
        self.robot, self.T_camera_board, self.spec = robot, T_camera_board, spec

    def intrinsics(self) -> Intrinsics:
        return K

    def capture(self) -> RGBDFrame:
        if self.robot is not None:
            T = invert_transform(T_BASE_CAMERA) @ self.robot.ee_pose().matrix() @ T_GRIPPER_BOARD
        else:
            T = self.T_camera_board
        rgb = render_board_view(self.spec, K, T)
        return RGBDFrame(rgb=rgb, depth=np.ones(rgb.shape[:2], np.float32), intrinsics=K,
                         T_world_camera=np.eye(4))

    def close(self) -> None:
        pass


def test_eye_to_hand_end_to_end_from_rendered_images() -> None:
    rng = np.random.default_rng(11)
    G, _ = _synthetic_hand_eye(8, rng, 0.0, 0.0)
    robot = PosedRobot(G)
    lines: list[str] = []
    res = calibrate_eye_to_hand(robot, BoardCamera(robot), SPEC, joint_poses=[[i] + [0.0] * 6 for i in range(8)],
                                echo=lines.append)
    assert robot.moves == list(range(8))
    dt_mm, dr_deg = errors(res.T_base_camera, T_BASE_CAMERA)
    assert dt_mm < 2.0 and dr_deg < 0.5, (dt_mm, dr_deg)
    assert max(res.reprojection_px) < 1.0
    assert len(lines) == 8


def test_known_board_pose() -> None:
    # Lying face up on the table: OpenCV's board z axis points into the board, i.e. down here.
    T_base_board = make_transform(Rotation.from_euler("zx", [90, 180], degrees=True), (0.35, -0.14, 0.0))
    T_camera_board = invert_transform(T_BASE_CAMERA) @ T_base_board
    # ~1 m away at 30 degrees elevation: an A3 board (10x7 squares of 4 cm) keeps the error within 2 mm.
    spec = SPEC.model_copy(update={"squares_x": 10, "squares_y": 7})
    T, obs = calibrate_known_board(BoardCamera(T_camera_board=T_camera_board, spec=spec), spec, T_base_board,
                                   n_frames=2)
    dt_mm, dr_deg = errors(T, T_BASE_CAMERA)
    assert dt_mm < 2.0 and dr_deg < 0.5, (dt_mm, dr_deg)
    assert len(obs) == 2


def test_saving_keeps_other_settings_and_loads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "vlmimic.toml"
    cfg.write_text('seed = 5\n[safety]\nmax_speed_factor = 0.3\n[hardware]\npanda_host = "172.16.0.2"\n')
    monkeypatch.setenv("VLMIMIC_CONFIG", str(cfg))
    save_T_base_camera(T_BASE_CAMERA)
    data = tomllib.loads(cfg.read_text())
    assert data["seed"] == 5 and data["safety"]["max_speed_factor"] == 0.3
    assert data["hardware"]["panda_host"] == "172.16.0.2"
    s = load_settings()
    np.testing.assert_allclose(np.asarray(s.hardware.T_base_camera), T_BASE_CAMERA, atol=1e-12)
    assert [p.name for p in tmp_path.iterdir()] == ["vlmimic.toml"]  # no temp file left


def test_saving_refuses_to_clobber_a_broken_file(tmp_path: Path) -> None:
    cfg = tmp_path / "vlmimic.toml"
    cfg.write_text("this is = = not toml")
    with pytest.raises(Exception, match="not valid TOML"):
        save_T_base_camera(T_BASE_CAMERA, cfg)
    assert cfg.read_text() == "this is = = not toml"


def test_calibrate_command_board_mode_stores_the_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.robot.calibration import run_calibrate
    from tools.robot.realsense import RealSenseCamera

    cfg = tmp_path / "vlmimic.toml"
    monkeypatch.setenv("VLMIMIC_CONFIG", str(cfg))
    spec = SPEC.model_copy(update={"squares_x": 10, "squares_y": 7})
    T_base_board = make_transform(Rotation.from_euler("zx", [90, 180], degrees=True), (0.35, -0.14, 0.0))
    camera = BoardCamera(T_camera_board=invert_transform(T_BASE_CAMERA) @ T_base_board, spec=spec)
    monkeypatch.setattr(RealSenseCamera, "from_settings", classmethod(lambda cls, s, **kw: camera))
    lines: list[str] = []
    # roll, pitch, yaw are extrinsic x, y, z: R = Rz(-90) Rx(180) = Rx(180) Rz(90), the pose above.
    run_calibrate(mode="board", spec=spec, panda_host=None, joint_poses_file=None, n_poses=0,
                  board_pose="0.35,-0.14,0,180,0,-90", yes=False, save=True, settings=load_settings(),
                  echo=lines.append)
    dt_mm, dr_deg = errors(np.asarray(load_settings().hardware.T_base_camera), T_BASE_CAMERA)
    assert dt_mm < 2.0 and dr_deg < 0.5
    assert any("saved hardware.T_base_camera" in line for line in lines)
