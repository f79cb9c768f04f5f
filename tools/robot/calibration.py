"""Camera-to-robot-base calibration with a ChArUco board (OpenCV aruco, 5.0 API).

Two procedures, both ending in T_base_camera stored in vlmimic.toml (hardware.T_base_camera):

(a) eye-to-hand: the board is fixed to the gripper and the arm visits several poses; with G_i = T_base_gripper
    (robot) and C_i = T_camera_board (board detection), G_i Y = X C_i for the unknown X = T_base_camera and
    Y = T_gripper_board. This is the classic AX = XB problem on motion pairs (A = G_j G_i^-1, B = C_j C_i^-1),
    solved in closed form (Park & Martin: rotation by an SVD over rotation logarithms, translation by linear
    least squares) and refined by nonlinear least squares over all poses. (The opencv-contrib 5.0 wheel
    here exports the CALIB_HAND_EYE_* constants but not calibrateHandEye, so the solver is implemented with
    numpy/scipy; inverting the robot poses, as one does for a fixed camera with calibrateHandEye, is what
    the A/B construction above does.)
(b) board at a known pose in the base frame: T_base_camera = T_base_board @ T_camera_board^-1.

Residuals are reported in pixels (board corners reprojected through the solved chain) and in mm/deg.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tomli_w
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from core.errors import ConfigError, HardwareError, VLMimicError
from core.geometry import Pose, invert_transform, make_transform
from core.sensing import Intrinsics
from core.settings import config_path


class CalibrationError(VLMimicError):
    """Calibration could not be computed from the data given (the message says what to change)."""


class BoardSpec(BaseModel):
    """A ChArUco board as printed: squares, their size, the marker size and the ArUco dictionary."""

    model_config = ConfigDict(frozen=True)

    squares_x: int = Field(7, ge=3)
    squares_y: int = Field(5, ge=3)
    square_m: float = Field(0.04, gt=0)
    marker_m: float = Field(0.03, gt=0)
    dictionary: str = "DICT_5X5_100"
    legacy_pattern: bool = Field(False, description="boards printed with OpenCV < 4.6 and an even row count")

    def board(self) -> Any:
        if self.marker_m >= self.square_m:
            raise ConfigError(f"marker size {self.marker_m} m must be smaller than the square {self.square_m} m")
        ids = getattr(cv2.aruco, self.dictionary, None)
        if ids is None or not self.dictionary.startswith("DICT_"):
            raise ConfigError(f"unknown ArUco dictionary {self.dictionary!r} (e.g. DICT_5X5_100, DICT_4X4_50)")
        b = cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m,
                                   cv2.aruco.getPredefinedDictionary(ids))
        b.setLegacyPattern(self.legacy_pattern)
        return b

    @property
    def size_m(self) -> tuple[float, float]:
        return self.squares_x * self.square_m, self.squares_y * self.square_m

    def image(self, px_per_square: int = 100, margin_px: int = 0) -> np.ndarray:
        """The board as an 8-bit grey image (for printing at exactly square_m per square)."""
        w, h = self.squares_x * px_per_square, self.squares_y * px_per_square
        return self.board().generateImage((w + 2 * margin_px, h + 2 * margin_px), marginSize=margin_px, borderBits=1)


class BoardObservation(BaseModel):
    """One detection: T_camera_board, the matched board/image points, and the PnP reprojection error."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    T_camera_board: np.ndarray
    object_points: np.ndarray  # (N, 3) board frame, m
    image_points: np.ndarray  # (N, 2) pixels
    reprojection_px: float


def detect_board(image_rgb: np.ndarray, intrinsics: Intrinsics, spec: BoardSpec,
                 distortion: Sequence[float] | None = None, min_corners: int = 6) -> BoardObservation:
    """Find the board in an RGB (or grey) image and solve its pose in the camera's optical frame."""
    grey = image_rgb if image_rgb.ndim == 2 else cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    board = spec.board()
    corners, ids, _, marker_ids = cv2.aruco.CharucoDetector(board).detectBoard(grey)
    n = 0 if ids is None else len(ids)
    if n < min_corners:
        markers = 0 if marker_ids is None else len(marker_ids)
        raise CalibrationError(
            f"ChArUco board not found: {n} corners from {markers} markers (need {min_corners}); check the "
            f"board ({spec.squares_x}x{spec.squares_y} squares, {spec.dictionary}), lighting and focus"
        )
    obj, img = board.matchImagePoints(corners, ids)
    obj, img = obj.reshape(-1, 3).astype(np.float64), img.reshape(-1, 2).astype(np.float64)
    K = intrinsics.matrix()
    dist = np.zeros(5) if distortion is None else np.asarray(distortion, dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CalibrationError("the board's pose could not be solved from its corners (PnP failed)")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, dist, rvec, tvec)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, dist)
    err = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img) ** 2, axis=1))))
    T = make_transform(cv2.Rodrigues(rvec)[0], tvec.ravel())
    return BoardObservation(T_camera_board=T, object_points=obj, image_points=img, reprojection_px=err)


def render_board_view(spec: BoardSpec, intrinsics: Intrinsics, T_camera_board: np.ndarray,
                      supersample: int = 3, background: int = 255) -> np.ndarray:
    """A synthetic RGB image of the board seen through `intrinsics` at `T_camera_board` (pinhole, no
    distortion): the generated board image warped by the plane homography, rendered at `supersample`x
    and area-averaged down, as a camera integrates light over each pixel."""
    px_per_m = 4000.0
    w_m, h_m = spec.size_m
    board_img = spec.board().generateImage((round(w_m * px_per_m), round(h_m * px_per_m)), marginSize=0,
                                           borderBits=1)
    # board pixel (u, v) (centre convention) -> board plane (x, y) in metres
    S = np.array([[1 / px_per_m, 0, 0.5 / px_per_m], [0, 1 / px_per_m, 0.5 / px_per_m], [0, 0, 1]])
    s = supersample
    K = intrinsics.matrix().copy()
    K[:2] *= s
    K[0, 2] += (s - 1) / 2.0  # keep pixel centres aligned after area-averaging
    K[1, 2] += (s - 1) / 2.0
    T = np.asarray(T_camera_board, dtype=float)
    H = K @ np.column_stack([T[:3, 0], T[:3, 1], T[:3, 3]]) @ S
    big = cv2.warpPerspective(board_img, H, (intrinsics.width * s, intrinsics.height * s), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    small = cv2.resize(big, (intrinsics.width, intrinsics.height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)


# --- solving -------------------------------------------------------------------------------------


class HandEyeResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    T_base_camera: np.ndarray
    T_gripper_board: np.ndarray
    translation_residuals_m: list[float]
    rotation_residuals_deg: list[float]
    reprojection_px: list[float] = Field(default_factory=list)

    def summary(self) -> str:
        t = np.asarray(self.translation_residuals_m) * 1000
        r = np.asarray(self.rotation_residuals_deg)
        out = (f"{len(t)} poses; residual median {np.median(t):.2f} mm / {np.median(r):.3f} deg, "
               f"max {t.max():.2f} mm / {r.max():.3f} deg")
        if self.reprojection_px:
            out += f"; reprojection RMS median {np.median(self.reprojection_px):.2f} px"
        return out


def _pose_vec(T: np.ndarray) -> np.ndarray:
    return np.concatenate([Rotation.from_matrix(T[:3, :3]).as_rotvec(), T[:3, 3]])


def _vec_pose(v: np.ndarray) -> np.ndarray:
    return make_transform(Rotation.from_rotvec(v[:3]), v[3:])


def solve_eye_to_hand(T_base_gripper: Sequence[np.ndarray], T_camera_board: Sequence[np.ndarray],
                      rotation_weight_m: float = 0.1) -> HandEyeResult:
    """X = T_base_camera and Y = T_gripper_board from G_i Y = X C_i over n >= 3 poses (see module doc)."""
    G = [np.asarray(g, dtype=float) for g in T_base_gripper]
    C = [np.asarray(c, dtype=float) for c in T_camera_board]
    if len(G) != len(C):
        raise CalibrationError(f"{len(G)} robot poses but {len(C)} board detections")
    if len(G) < 3:
        raise CalibrationError(f"hand-eye calibration needs at least 3 poses (5+ recommended), got {len(G)}")
    alphas, betas, As, Bs = [], [], [], []
    for i in range(len(G)):
        for j in range(i + 1, len(G)):
            A = G[j] @ invert_transform(G[i])
            B = C[j] @ invert_transform(C[i])
            a = Rotation.from_matrix(A[:3, :3]).as_rotvec()
            b = Rotation.from_matrix(B[:3, :3]).as_rotvec()
            if np.linalg.norm(a) < np.deg2rad(2) or np.linalg.norm(b) < np.deg2rad(2):
                continue  # nearly pure translations carry no rotation information
            alphas.append(a)
            betas.append(b)
            As.append(A)
            Bs.append(B)
    if len(alphas) < 2:
        raise CalibrationError("the arm poses are too similar: rotate the gripper by 15+ degrees between poses, "
                               "about at least two different axes")
    # R_X: alpha = R_X beta for every pair -> orthogonal Procrustes (Kabsch).
    H = np.asarray(betas).T @ np.asarray(alphas)
    U, _, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R_X = Vt.T @ D @ U.T
    sv = np.linalg.svd(np.asarray(alphas), compute_uv=False)
    if sv[1] < 0.05 * sv[0]:
        raise CalibrationError("all arm rotations are about one axis, which leaves the camera pose undetermined: "
                               "tilt the gripper about a second axis too")
    # (R_A - I) t_X = R_X t_B - t_A
    M = np.vstack([A[:3, :3] - np.eye(3) for A in As])
    rhs = np.concatenate([R_X @ B[:3, 3] - A[:3, 3] for A, B in zip(As, Bs, strict=True)])
    t_X = np.linalg.lstsq(M, rhs, rcond=None)[0]
    X = make_transform(R_X, t_X)
    Ys = [invert_transform(g) @ X @ c for g, c in zip(G, C, strict=True)]
    Y = make_transform(Rotation.from_matrix([y[:3, :3] for y in Ys]).mean(), np.mean([y[:3, 3] for y in Ys], axis=0))

    def residuals(v: np.ndarray) -> np.ndarray:
        Xv, Yv = _vec_pose(v[:6]), _vec_pose(v[6:])
        out = []
        for g, c in zip(G, C, strict=True):
            lhs, rhs_ = g @ Yv, Xv @ c
            out.append(lhs[:3, 3] - rhs_[:3, 3])
            out.append(rotation_weight_m * Rotation.from_matrix(lhs[:3, :3].T @ rhs_[:3, :3]).as_rotvec())
        return np.concatenate(out)

    sol = least_squares(residuals, np.concatenate([_pose_vec(X), _pose_vec(Y)]), method="lm")
    X, Y = _vec_pose(sol.x[:6]), _vec_pose(sol.x[6:])
    t_res, r_res = [], []
    for g, c in zip(G, C, strict=True):
        dt, dr = Pose.from_matrix(g @ Y).distance_to(Pose.from_matrix(X @ c))
        t_res.append(dt)
        r_res.append(float(np.rad2deg(dr)))
    return HandEyeResult(T_base_camera=X, T_gripper_board=Y, translation_residuals_m=t_res,
                         rotation_residuals_deg=r_res)


def reprojection_errors(result: HandEyeResult, T_base_gripper: Sequence[np.ndarray],
                        observations: Sequence[BoardObservation], intrinsics: Intrinsics) -> list[float]:
    """RMS pixel error of each view's detected corners against the board predicted by the solved chain."""
    X_inv = invert_transform(result.T_base_camera)
    out = []
    for g, obs in zip(T_base_gripper, observations, strict=True):
        T_cb = X_inv @ np.asarray(g) @ result.T_gripper_board
        pts = obs.object_points @ T_cb[:3, :3].T + T_cb[:3, 3]
        uv = intrinsics.project(pts)
        out.append(float(np.sqrt(np.mean(np.sum((uv - obs.image_points) ** 2, axis=1)))))
    return out


def camera_from_known_board(T_base_board: np.ndarray, observations: Sequence[BoardObservation]) -> np.ndarray:
    """T_base_camera from detections of a board lying at a known pose in the base frame (poses averaged)."""
    if not observations:
        raise CalibrationError("no board detections")
    Ts = [np.asarray(T_base_board) @ invert_transform(o.T_camera_board) for o in observations]
    R = Rotation.from_matrix([T[:3, :3] for T in Ts]).mean()
    return make_transform(R, np.mean([T[:3, 3] for T in Ts], axis=0))


# --- capture ---------------------------------------------------------------------------------------


def capture_observation(camera: Any, spec: BoardSpec, attempts: int = 5) -> BoardObservation:
    """Capture frames until the board is detected (up to `attempts`)."""
    last: CalibrationError | None = None
    distortion = getattr(camera, "distortion", None)
    for _ in range(attempts):
        frame = camera.capture()
        try:
            return detect_board(frame.rgb, frame.intrinsics, spec, distortion)
        except CalibrationError as e:
            last = e
    assert last is not None
    raise last


def calibrate_eye_to_hand(
    robot: Any,
    camera: Any,
    spec: BoardSpec,
    *,
    joint_poses: Sequence[Sequence[float]] | None = None,
    n_poses: int = 8,
    speed_factor: float = 0.15,
    wait: Callable[[str], object] = input,
    echo: Callable[[str], None] = print,
) -> HandEyeResult:
    """Board on the gripper, camera fixed. With `joint_poses` the robot (wrap it in SafeRobot) visits
    them; otherwise the user poses the arm by hand (teaching mode where the robot offers it) and presses
    Enter at each of `n_poses` poses."""
    poses: list[np.ndarray] = []
    observations: list[BoardObservation] = []
    manual = joint_poses is None
    targets: list[Any] = [None] * n_poses if manual else list(joint_poses)  # type: ignore[arg-type]
    teach = getattr(robot, "set_teaching_mode", None) if manual else None
    if teach is not None:
        teach(True)
    try:
        for k, q in enumerate(targets):
            if manual:
                wait(f"pose {k + 1}/{len(targets)}: move the arm so the camera sees the board, then press Enter ")
            else:
                r = robot.move_to_joints(q, speed_factor=speed_factor)
                if not r.ok:
                    raise HardwareError(f"calibration pose {k + 1}: {r.status}: {r.message}")
            try:
                obs = capture_observation(camera, spec)
            except CalibrationError as e:
                echo(f"pose {k + 1}: skipped ({e})")
                continue
            poses.append(robot.ee_pose().matrix())
            observations.append(obs)
            echo(f"pose {k + 1}: board at {np.linalg.norm(obs.T_camera_board[:3, 3]):.2f} m, "
                 f"{len(obs.image_points)} corners, {obs.reprojection_px:.2f} px")
    finally:
        if teach is not None:
            teach(False)
    result = solve_eye_to_hand(poses, [o.T_camera_board for o in observations])
    result.reprojection_px = reprojection_errors(result, poses, observations, camera.intrinsics())
    return result


def calibrate_known_board(camera: Any, spec: BoardSpec, T_base_board: np.ndarray,
                          n_frames: int = 10) -> tuple[np.ndarray, list[BoardObservation]]:
    observations = [capture_observation(camera, spec) for _ in range(n_frames)]
    return camera_from_known_board(T_base_board, observations), observations


# --- storing -------------------------------------------------------------------------------------


def save_T_base_camera(T_base_camera: np.ndarray, path: Path | None = None) -> Path:
    """Write hardware.T_base_camera into the TOML settings file atomically, keeping every other key."""
    path = Path(path) if path is not None else config_path()
    T = np.asarray(T_base_camera, dtype=float)
    if T.shape != (4, 4) or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6):
        raise CalibrationError("T_base_camera must be a 4x4 rigid transform")
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML, not overwriting it: {e}") from e
    data.setdefault("hardware", {})["T_base_camera"] = [[float(v) for v in row] for row in T]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            tomli_w.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- the `calibrate` command -----------------------------------------------------------------------


def parse_board_pose(text: str) -> np.ndarray:
    """'x,y,z,roll,pitch,yaw' (metres, degrees, extrinsic xyz) -> T_base_board."""
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 6:
        raise ConfigError(f"--board-pose {text!r}: expected x,y,z,roll,pitch,yaw (m, deg)")
    return make_transform(Rotation.from_euler("xyz", vals[3:], degrees=True), vals[:3])


def parse_squares(text: str) -> tuple[int, int]:
    try:
        sx, sy = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--squares {text!r}: expected COLUMNSxROWS, e.g. 7x5") from None
    return sx, sy


def run_calibrate(
    *,
    mode: str,
    spec: BoardSpec,
    panda_host: str | None,
    joint_poses_file: Path | None,
    n_poses: int,
    board_pose: str | None,
    yes: bool,
    save: bool,
    settings: Any,
    echo: Callable[[str], None] = print,
    ask: Callable[[str], str] = input,
) -> np.ndarray:
    """What `python main.py calibrate` does; returns T_base_camera (and stores it unless save=False)."""
    import json

    from tools.robot.realsense import RealSenseCamera

    if mode not in ("hand-eye", "board"):
        raise ConfigError(f"--mode {mode!r}: expected hand-eye or board")
    camera = RealSenseCamera.from_settings(settings, require_calibration=False)
    try:
        if mode == "board":
            if board_pose is None:
                raise ConfigError("--mode board needs --board-pose x,y,z,roll,pitch,yaw of the board in the base frame")
            T, obs = calibrate_known_board(camera, spec, parse_board_pose(board_pose))
            echo(f"{len(obs)} detections, PnP reprojection RMS median "
                 f"{np.median([o.reprojection_px for o in obs]):.2f} px")
        else:
            from tools.robot.factory import make_robot
            from tools.robot.safety import SafeRobot, stop_on_interrupt

            joint_poses = None
            if joint_poses_file is not None:
                try:
                    joint_poses = [list(map(float, q)) for q in json.loads(Path(joint_poses_file).read_text())]
                except (OSError, ValueError, TypeError) as e:
                    raise ConfigError(f"{joint_poses_file}: expected a JSON list of 7-joint lists: {e}") from None
            raw = make_robot("panda", settings, host=panda_host)

            def confirm(what: str) -> bool:
                return yes or ask(f"about to move the arm: {what}. Proceed? [y/N] ").strip().lower() in ("y", "yes")

            robot = SafeRobot(raw, settings.safety, confirm=confirm)
            try:
                with stop_on_interrupt(robot):
                    result = calibrate_eye_to_hand(robot, camera, spec, joint_poses=joint_poses, n_poses=n_poses,
                                                   wait=ask, echo=echo)
            finally:
                getattr(raw, "close", lambda: None)()
            echo(result.summary())
            T = result.T_base_camera
    finally:
        camera.close()
    echo("T_base_camera =\n" + np.array2string(T, precision=4, suppress_small=True))
    if save:
        echo(f"saved hardware.T_base_camera to {save_T_base_camera(T)}")
    return T
