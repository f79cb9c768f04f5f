"""The simulated world: layout, labels, cameras (projection, depth, segmentation), no-render mode."""

from __future__ import annotations

import sim.render  # noqa: F401

# isort: split

import mujoco
import numpy as np
import pytest

from core.errors import BackendUnavailable, VLMimicError
from core.geometry import Pose
from sim.world import DEFAULT_CAMERAS, SimNameError, SimWorld, add_camera, base_spec
from tools.robot.protocols import Camera

needs_render = pytest.mark.skipif(not sim.render.rendering_available(), reason="no MuJoCo rendering backend")

CUBE_POS = (0.5, 0.08, 0.025)
CUBE_HALF = 0.025


def _cube_spec(with_robot: bool = True) -> mujoco.MjSpec:
    spec = base_spec(with_robot=with_robot)
    body = spec.worldbody.add_body()
    body.name = "cube"
    body.pos = list(CUBE_POS)
    body.add_freejoint()
    geom = body.add_geom()
    geom.type = mujoco.mjtGeom.mjGEOM_BOX
    geom.size = [CUBE_HALF] * 3
    geom.rgba = [0.9, 0.1, 0.1, 1.0]
    # A child part without its own label inherits "cube"; a "hand*" body is the demonstrator's hand.
    part = body.add_body()
    part.name = "cube_knob"
    part.pos = [CUBE_HALF - 0.006, CUBE_HALF - 0.006, CUBE_HALF + 0.004]  # a corner of the top face
    knob = part.add_geom()
    knob.type = mujoco.mjtGeom.mjGEOM_SPHERE
    knob.size = [0.005, 0, 0]
    hand = spec.worldbody.add_body()
    hand.name = "hand_palm"
    hand.pos = [0.4, -0.3, 0.3]
    hand.mocap = True
    hg = hand.add_geom()
    hg.type = mujoco.mjtGeom.mjGEOM_SPHERE
    hg.size = [0.03, 0, 0]
    hg.contype = hg.conaffinity = 0
    handle = spec.worldbody.add_body()
    handle.name = "handle_bar"
    handle.pos = [0.7, -0.3, 0.02]
    bar = handle.add_geom()
    bar.type = mujoco.mjtGeom.mjGEOM_BOX
    bar.size = [0.02, 0.02, 0.02]
    return spec


@pytest.fixture(scope="module")
def world():
    if not sim.render.rendering_available():
        pytest.skip("no MuJoCo rendering backend")
    w = SimWorld(_cube_spec(), labels=["cube"])
    w.step(50)  # let the cube settle on the table
    yield w
    w.close()


def _geom_label(world: SimWorld, body: str) -> int:
    b = world.body_id(body)
    return int(world.geom_label[np.nonzero(world.model.geom_bodyid == b)[0][0]])


def test_layout_robot_at_origin_table_top_at_zero_and_default_cameras() -> None:
    w = SimWorld(_cube_spec(), render=False, labels=["cube"])
    assert np.allclose(w.body_pose("panda0_link0").position, 0.0)
    table_top = w.model.geom("table_top")
    top_z = w.data.geom_xpos[table_top.id][2] + table_top.size[2]
    assert abs(top_z) < 1e-9
    for name in DEFAULT_CAMERAS:
        assert name in w.camera_names
    w.step(200)
    assert abs(w.body_pose("cube").position[2] - CUBE_HALF) < 1e-3  # resting on the table
    assert w.robot is not None


def test_labels_follow_the_nearest_labelled_ancestor() -> None:
    w = SimWorld(_cube_spec(), render=False, labels=["cube"])
    ids = w.label_ids
    assert ids["table"] == 1 and ids["robot"] == 2 and ids["hand"] == 3 and ids["cube"] == 4
    assert _geom_label(w, "cube") == ids["cube"]
    assert _geom_label(w, "cube_knob") == ids["cube"]
    assert _geom_label(w, "hand_palm") == ids["hand"]
    assert _geom_label(w, "handle_bar") == 0  # "handle..." is not the hand, and not a task label
    assert _geom_label(w, "panda0_link3") == ids["robot"]
    assert _geom_label(w, "table") == ids["table"]
    floor = w.model.geom("floor").id
    assert w.geom_label[floor] == 0
    with pytest.raises(ValueError, match="fixed labels"):
        SimWorld(_cube_spec(), render=False, labels=["robot"])
    with pytest.raises(SimNameError, match="'cub'.*did you mean cube"):
        SimWorld(_cube_spec(), render=False, labels=["cub"])


def test_world_without_robot_has_no_robot() -> None:
    w = SimWorld(base_spec(with_robot=False), render=False)
    assert w.robot is None
    assert "panda0_link0" not in w.body_names


def test_no_render_mode_steps_and_refuses_to_capture_with_a_clear_message() -> None:
    w = SimWorld(_cube_spec(), render=False, labels=["cube"])
    t0 = w.time
    w.step(10)
    assert w.time == pytest.approx(t0 + 10 * w.timestep)
    cam = w.camera("cam_front")
    assert cam.intrinsics().width == 640
    with pytest.raises(VLMimicError, match="render=False"):
        cam.capture()


def test_require_rendering_error_names_mujoco_gl_and_the_no_render_mode(monkeypatch) -> None:
    monkeypatch.setattr(sim.render, "_backend", sim.render.NO_RENDER)
    monkeypatch.setattr(sim.render, "_detail", "probe failed")
    with pytest.raises(BackendUnavailable, match="MUJOCO_GL") as e:
        SimWorld(base_spec(with_robot=False), render=True)
    assert "render=False" in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_names_list_the_valid_ones() -> None:
    w = SimWorld(_cube_spec(), render=False, labels=["cube"])
    with pytest.raises(SimNameError, match="cam_front") as e:
        w.camera("cam_top")
    assert "cam_left" in str(e.value) and "cam_right" in str(e.value)
    with pytest.raises(SimNameError, match="cube"):
        w.body_pose("cubee")
    with pytest.raises(SimNameError, match="no free joint"):
        w.set_free_body_pose("table", Pose())


def test_state_setters_and_step_callbacks() -> None:
    w = SimWorld(_cube_spec(), render=False, labels=["cube"])
    target = Pose(position=(0.6, -0.1, 0.2), quaternion=(0.0, 0.0, 0.3826834, 0.9238795))
    w.set_free_body_pose("cube", target)
    dt, dr = w.body_pose("cube").distance_to(target)
    assert dt < 1e-9 and dr < 1e-6
    w.set_joint_qpos("robot:panda0_joint1", 0.3)
    assert w.joint_qpos("robot:panda0_joint1") == pytest.approx(0.3)
    times: list[float] = []
    remove = w.add_step_callback(lambda world: times.append(world.time))
    w.step(5)
    remove()
    w.step(5)
    assert len(times) == 5 and times == sorted(times)


def test_add_camera_rejects_a_silly_fov() -> None:
    with pytest.raises(ValueError, match="fovy"):
        add_camera(base_spec(with_robot=False), "cam_x", (1, 0, 1), (0, 0, 0), fovy=179.0)


@needs_render
def test_sim_camera_is_a_camera_and_frames_are_well_formed(world: SimWorld) -> None:
    cam = world.camera("cam_front")
    assert isinstance(cam, Camera)
    frame = cam.capture()
    assert frame.rgb.shape == (480, 640, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.dtype == np.float32
    assert frame.timestamp == pytest.approx(world.time)
    assert frame.labels is not None and frame.labels[world.label_ids["cube"]] == "cube"
    # The camera frame is OpenCV's: z (forward) points from the camera towards the workspace.
    T = frame.T_world_camera
    to_target = np.asarray(DEFAULT_CAMERAS["cam_front"][1]) - T[:3, 3]
    assert np.dot(T[:3, 2], to_target / np.linalg.norm(to_target)) > 0.999
    assert T[2, 1] < 0  # image y (down) points downwards in the world


@needs_render
@pytest.mark.parametrize("camera", ["cam_front", "cam_left", "cam_right"])
def test_projection_and_depth_back_projection_agree_within_2mm(world: SimWorld, camera: str) -> None:
    frame = world.camera(camera).capture()
    intr = frame.intrinsics
    T = frame.T_world_camera
    cube = world.body_pose("cube").translation
    top = cube + np.array([0.0, 0.0, CUBE_HALF])
    # The cube's top-face centre projects onto a pixel labelled "cube" ...
    p_cam = (top - T[:3, 3]) @ T[:3, :3]
    u, v = np.round(intr.project(p_cam[None])[0]).astype(int)
    assert frame.segmentation[v, u] == world.label_ids["cube"]
    # ... and the exact world point seen through that pixel centre (ray / top-face plane) is what
    # the rendered depth back-projects to.
    ray_cam = np.array([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, 1.0])
    ray = T[:3, :3] @ ray_cam
    s = (top[2] - T[2, 3]) / ray[2]
    expected = T[:3, 3] + s * ray
    assert np.hypot(*(expected[:2] - top[:2])) < 0.01  # still on the top face
    mask = np.zeros(frame.depth.shape, dtype=bool)
    mask[v, u] = True
    got = frame.points_world(mask)[0]
    assert np.linalg.norm(got - expected) < 0.002


@needs_render
def test_depth_of_table_pixels_lies_on_the_table_plane(world: SimWorld) -> None:
    frame = world.camera("cam_left").capture()
    table = frame.segmentation == world.label_ids["table"]
    assert table.sum() > 10000
    pts = frame.points_world(table)
    inside = (pts[:, 0] > 0.2) & (pts[:, 0] < 0.9) & (np.abs(pts[:, 1]) < 0.6)
    assert inside.sum() > 5000
    assert np.percentile(np.abs(pts[inside, 2]), 99) < 0.002


@needs_render
def test_segmentation_marks_robot_cube_and_background(world: SimWorld) -> None:
    frame = world.camera("cam_left").capture()
    seg = frame.segmentation
    present = set(np.unique(seg).tolist())
    assert {0, world.label_ids["table"], world.label_ids["robot"], world.label_ids["cube"]} <= present
    assert world.label_ids["hand"] in present  # the mocap "hand_palm" sphere is in view
    # Background pixels have no depth on them (beyond the far plane) or lie on the floor.
    assert np.all(frame.depth[seg == world.label_ids["cube"]] > 0)
    # The cube's pixels back-project onto the cube.
    pts = frame.points_world(seg == world.label_ids["cube"])
    cube = world.body_pose("cube").translation
    assert np.max(np.abs(pts - cube), axis=0).max() < CUBE_HALF + 0.01


def test_mujoco_gl_is_honoured_and_disabled_rendering_still_simulates() -> None:
    """A fresh process with MUJOCO_GL=disable: no probe, physics works, rendering says what to do."""
    import os
    import subprocess
    import sys

    code = (
        "import sim.render\n"
        "from core.errors import BackendUnavailable\n"
        "from sim.world import SimWorld, base_spec\n"
        "print(sim.render.ensure_backend())\n"
        "w = SimWorld(base_spec(), render=False)\n"
        "w.step(10)\n"
        "print(round(w.time, 3))\n"
        "try:\n"
        "    SimWorld(base_spec(), render=True)\n"
        "except BackendUnavailable as e:\n"
        "    print('refused:', e)\n"
    )
    env = dict(os.environ, MUJOCO_GL="disable")
    env.pop("PYOPENGL_PLATFORM", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "none"
    assert out[1] == "0.02"
    assert out[2].startswith("refused:") and "MUJOCO_GL" in out[2] and "render=False" in out[2]


def test_a_backend_that_cannot_create_a_context_gives_one_clear_error() -> None:
    """MUJOCO_GL=glfw without a display: the first capture fails with BackendUnavailable, not a crash."""
    import os
    import subprocess
    import sys

    code = (
        "import sim.render\n"
        "from core.errors import BackendUnavailable\n"
        "from sim.world import SimWorld, base_spec\n"
        "w = SimWorld(base_spec(with_robot=False))\n"
        "try:\n"
        "    w.camera('cam_front').capture()\n"
        "    print('rendered')\n"
        "except BackendUnavailable as e:\n"
        "    print('refused:', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYOPENGL_PLATFORM")}
    env["MUJOCO_GL"] = "glfw"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("refused:") and "MUJOCO_GL=glfw" in last and "render=False" in last


@needs_render
def test_task_cameras_use_their_own_fov_and_a_closed_world_refuses_to_render() -> None:
    spec = base_spec(with_robot=False)
    add_camera(spec, "cam_side", (0.5, -0.8, 0.4), (0.5, 0.0, 0.0), fovy=42.0)
    w = SimWorld(spec, width=320, height=240)
    cam = w.camera("cam_side")
    intr = cam.intrinsics()
    assert (intr.width, intr.height) == (320, 240)
    assert intr.fy == pytest.approx(120.0 / np.tan(np.deg2rad(21.0)))
    frame = cam.capture()
    assert frame.rgb.shape == (240, 320, 3)
    # The table fills the lower part of this view: its depth grows towards the top of the image.
    col = frame.depth[:, 160]
    table_rows = np.nonzero(frame.segmentation[:, 160] == w.label_ids["table"])[0]
    assert len(table_rows) > 20
    assert col[table_rows[0]] > col[table_rows[-1]]
    w.close()
    with pytest.raises(VLMimicError, match="closed"):
        cam.capture()


@needs_render
def test_doctor_reports_the_backend_and_a_measured_frame_rate() -> None:
    (check,) = sim.render.doctor_checks()
    assert check.name == "mujoco rendering"
    assert check.status == "ok", check.detail
    assert f"MUJOCO_GL={sim.render.ensure_backend()}" in check.detail
    fps = float(check.detail.split(" fps")[0].rsplit(" ", 1)[-1])
    assert fps > 0
