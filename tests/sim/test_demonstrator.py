"""The synthetic human demonstrator: hand model, human-like motion, recording and ground truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import sim.render
from core.demo import HAND_KEYPOINT_NAMES, DemoReader, read_ground_truth
from core.errors import VLMimicError
from core.geometry import Pose
from sim.demonstrator import record_demo, record_demos
from sim.hand import HAND_ROOT, PAD_BIT, Hand, add_hand, hand_kinematics
from sim.hand_motion import Timeline, min_jerk, plan_motion
from sim.script import Grasp, Move, Release, Script, Wait
from tools.perception.hands import gripper_from_keypoints

needs_render = pytest.mark.skipif(not sim.render.rendering_available(), reason="no MuJoCo rendering backend")
TASK = "open_drawer"


def _random_pose(rng: np.random.Generator) -> Pose:
    return Pose.from_rotation(Rotation.random(random_state=int(rng.integers(1 << 31))),
                              rng.uniform([0.3, -0.3, 0.05], [0.7, 0.3, 0.4]))


# --- hand model and the keypoint -> gripper contract -------------------------------------------------


def test_hand_never_collides_and_every_body_is_named_hand() -> None:
    spec = mujoco.MjSpec()
    add_hand(spec)
    m = spec.compile()
    names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(1, m.nbody)]
    assert names and all(n.startswith("hand") for n in names)
    assert m.ngeom > 10
    pads = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f"{HAND_ROOT}_{s}_pad") for s in ("thtip", "fftip")]
    others = np.setdiff1d(np.arange(m.ngeom), pads)
    assert (m.geom_contype[others] == 0).all() and (m.geom_conaffinity == 0).all()
    assert (m.geom_contype[pads] == PAD_BIT).all()  # pads touch only geoms marked with PAD_BIT
    assert m.nmocap == 1 and m.njnt == 0  # kinematic hand: no extra degrees of freedom


def test_placing_the_hand_makes_keypoints_yield_the_requested_gripper_pose() -> None:
    spec = mujoco.MjSpec()
    add_hand(spec)
    m = spec.compile()
    d = mujoco.MjData(m)
    hand = Hand(m, d)
    kin = hand_kinematics()
    rng = np.random.default_rng(0)
    for _ in range(20):
        target, width = _random_pose(rng), float(rng.uniform(0.015, 0.09))
        closure = kin.closure_for_width(width)
        hand.place(target, closure)
        # Measure the keypoints from the simulator itself (site positions), not from the planner's math.
        mujoco.mj_kinematics(m, d)
        kp = {k: d.site_xpos[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, f"{HAND_ROOT}_{s}")]
              for k, s in (("wrist", "kp_wrist"), ("thumb_tip", "thtip"), ("index_tip", "fftip"))}
        T, w = gripper_from_keypoints(kp["wrist"], kp["thumb_tip"], kp["index_tip"])  # perception's side
        dt, dr = Pose.from_matrix(T[0]).distance_to(target)
        assert dt < 1e-6 and dr < 1e-6
        assert float(w[0]) == pytest.approx(width, abs=1e-4)
        np.testing.assert_allclose(hand.keypoints_world()[1:3], [kp["thumb_tip"], kp["index_tip"]], atol=1e-6)


def test_pinch_closes_and_open_hand_is_wide() -> None:
    kin = hand_kinematics()
    widths = [kin.width(c) for c in np.linspace(0, 1, 11)]
    assert widths[0] > 0.08 and widths[-1] < 0.02
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False))  # closing is monotone


# --- motion ------------------------------------------------------------------------------------------


def _script() -> tuple[Script, Pose, Pose]:
    grasp = Pose.from_rotation(Rotation.from_euler("x", np.pi), [0.5, 0.0, 0.03])
    above = Pose(position=(0.5, 0.0, 0.15), quaternion=grasp.quaternion)
    place = Pose.from_rotation(Rotation.from_euler("xz", [np.pi, 0.5]), [0.5, 0.2, 0.08])
    steps = [Release(width=0.08), Move(path=[above], duration=1.5), Move(path=[grasp], duration=1.0),
             Grasp(target="block", width=0.04), Move(path=[above, place], duration=2.0), Wait(duration=0.3),
             Release(width=0.08), Move(path=[Pose(position=(0.5, 0.2, 0.2), quaternion=place.quaternion)],
                                       duration=1.0)]
    return Script(steps=steps), grasp, place


def test_min_jerk_starts_and_ends_at_rest() -> None:
    assert min_jerk(0.0) == 0.0 and min_jerk(1.0) == 1.0 and min_jerk(0.5) == pytest.approx(0.5)
    h = 1e-4
    assert (min_jerk(h) - min_jerk(0.0)) / h < 1e-3 and (min_jerk(1.0) - min_jerk(1.0 - h)) / h < 1e-3


def test_timeline_is_smooth_hits_the_grasp_exactly_and_varies_per_demo() -> None:
    script, grasp, place = _script()
    tl = plan_motion(script, np.random.default_rng(1))
    assert isinstance(tl, Timeline) and len(tl.grasps) == 1
    g = tl.grasps[0]
    _, T, c = tl.at(g["time"])
    dt, dr = Pose.from_matrix(T).distance_to(grasp)
    assert dt < 1e-9 and dr < 1e-9
    assert hand_kinematics().width(c) == pytest.approx(0.04, abs=1e-4)
    # Continuous positions (no jumps > 1 cm per 2 ms) and bounded speed, with stops at the ends.
    ts = np.arange(0.0, tl.duration, 0.002)
    pos = np.array([tl.at(t)[1][:3, 3] for t in ts])
    step = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    assert step.max() < 0.004
    assert step[:20].max() < 1e-9 and step[-20:].max() < 1e-9
    # The wobble is real (the path is not a straight line) but small (a few mm).
    seg = next(s for s in tl.segments if s.kind == "move" and len(s.poses) == 2)
    mids = np.array([seg.at(seg.t0 + f * seg.duration)[0][:3, 3] for f in np.linspace(0, 1, 41)])
    a, b = seg.poses[0][:3, 3], seg.poses[1][:3, 3]
    u = (b - a) / np.linalg.norm(b - a)
    off = np.linalg.norm((mids - a) - np.outer((mids - a) @ u, u), axis=1)
    assert 0.0003 < off.max() < 0.006
    # Another demo (another rng) moves at another speed.
    tl2 = plan_motion(script, np.random.default_rng(2))
    assert abs(tl2.duration - tl.duration) > 0.05
    # The place pose is reached exactly at the end of the transport move.
    transport = [s for s in tl.segments if s.kind == "move"][2]
    dt, dr = Pose.from_matrix(transport.at(transport.t1)[0]).distance_to(place)
    assert dt < 1e-9 and dr < 1e-9


# --- recording -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not sim.render.rendering_available():
        pytest.skip("no MuJoCo rendering backend")
    out = tmp_path_factory.mktemp("demos")
    # Long enough to include the grasp of the drawer handle and the start of the pull.
    return record_demo(TASK, "seen", 0, out / "d0", fps=10.0, max_seconds=6.0)


@needs_render
def test_recorded_demo_reads_back_with_hand_and_separate_ground_truth(demo: Path) -> None:
    from sim.tasks import get_task

    r = DemoReader(demo)
    assert r.meta.source == "sim" and r.meta.task == get_task(TASK).goal_text
    assert r.meta.has_hand and r.meta.has_segmentation and r.meta.camera_name == "cam_front"
    assert "hand" in r.meta.labels.values() and "drawer" in r.meta.labels.values()
    np.testing.assert_allclose(np.diff(r.meta.timestamps), 0.1, atol=1e-9)
    hand = r.hand()
    assert hand is not None and hand.names == HAND_KEYPOINT_NAMES and hand.visible.mean() > 0.8
    gt = read_ground_truth(demo)
    assert len(gt["frames"]) == len(r)
    assert "contacts" not in (demo / "meta.json").read_text()


@needs_render
def test_keypoints_project_onto_hand_pixels(demo: Path) -> None:
    r = DemoReader(demo)
    hand = r.hand()
    assert hand is not None
    hand_id = next(i for i, n in r.meta.labels.items() if n == "hand")
    checked = hits = 0
    for i in range(0, len(r), 3):
        if not hand.visible[i]:
            continue
        mask = (r.frame(i).segmentation == hand_id).astype(np.uint8)
        dist = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3)  # pixels to the nearest hand pixel
        for k in range(3):  # wrist, thumb tip, index tip
            u, v = np.round(hand.uv[i, k]).astype(int)
            checked += 1
            hits += dist[v, u] <= 4.0
    assert checked >= 20 and hits / checked >= 0.9


@needs_render
def test_keypoint_gripper_contract_holds_at_grasp_time(demo: Path) -> None:
    gt = read_ground_truth(demo)
    hand = DemoReader(demo).hand()
    assert hand is not None and len(gt["grasps"]) == 1
    g = gt["grasps"][0]
    kp = dict(zip(hand.names, hand.xyz[g["frame"]].astype(float), strict=True))
    T, width = gripper_from_keypoints(kp["wrist"], kp["thumb_tip"], kp["index_tip"])  # perception's side
    dt, dr = Pose.from_matrix(T[0]).distance_to(Pose.model_validate(g["T_world_gripper"]))
    assert dt < 0.002 and np.degrees(dr) < 2.0
    assert float(width[0]) == pytest.approx(g["width"], abs=0.002)
    begin = [e for e in gt["contacts"] if e["a"] == "hand" and e["kind"] == "begin"]
    assert [(e["b"], e["frame"]) for e in begin] == [("drawer", g["frame"])]
    # The weld drags the drawer along its slide joint once held.
    values = [f["joints"]["drawer_slide"] for f in gt["frames"]]
    assert abs(values[g["frame"]] - values[0]) < 0.003 and abs(values[-1] - values[0]) > 0.01


@needs_render
def test_interrupted_recording_leaves_nothing(tmp_path: Path) -> None:
    def stop(i: int) -> None:
        if i == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        record_demo(TASK, "seen", 1, tmp_path / "d", fps=10.0, max_seconds=1.0, on_frame=stop)
    assert list(tmp_path.iterdir()) == []


@needs_render
def test_each_seed_gets_its_own_scene(tmp_path: Path) -> None:
    a = record_demo(TASK, "seen", 5, tmp_path / f"{TASK}_seen_5", fps=4.0, max_seconds=2.5)
    b = record_demo(TASK, "seen", 6, tmp_path / f"{TASK}_seen_6", fps=4.0, max_seconds=2.5)
    pa, pb = (read_ground_truth(p)["frames"][0]["bodies"]["drawer"]["position"] for p in (a, b))
    assert np.linalg.norm(np.subtract(pa, pb)) > 1e-3


def test_unknown_names_give_one_clear_error_listing_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(VLMimicError, match=r"unknown task 'nope'.*open_drawer"):
        record_demos("nope", 1, "seen", 0, tmp_path)
    with pytest.raises(VLMimicError, match=r"unknown variant 'hard'.*seen, unseen"):
        record_demos(TASK, 1, "hard", 0, tmp_path)
    if sim.render.rendering_available():
        with pytest.raises(VLMimicError, match=r"no camera named 'cam_nope'.*cam_front"):
            record_demos(TASK, 1, "seen", 0, tmp_path, camera="cam_nope")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@needs_render
def test_full_demos_via_record_demos(tmp_path: Path) -> None:
    paths = record_demos(TASK, 2, "seen", 3, tmp_path)
    assert [p.name for p in paths] == [f"{TASK}_seen_3", f"{TASK}_seen_4"]
    for p in paths:
        gt = read_ground_truth(p)
        kinds = [(e["a"], e["kind"]) for e in gt["contacts"] if e["a"] == "hand"]
        assert kinds == [("hand", "begin"), ("hand", "end")]
        assert DemoReader(p).meta.n_frames == len(gt["frames"])
        assert gt["success"] is True  # the human demonstration achieves the task


@needs_render
def test_render_scene_writes_a_png_with_the_robot(tmp_path: Path) -> None:
    from sim.show import render_scene

    path = render_scene(TASK, "seen", 0, None, tmp_path / "scene.png")
    img = cv2.imread(str(path))
    assert img is not None and img.shape == (480, 640, 3) and img.std() > 10


@pytest.mark.parametrize("task_name", sorted(__import__("sim.tasks", fromlist=["TASKS"]).TASKS))
def test_every_task_demonstration_plays_with_the_hand(task_name: str) -> None:
    """Each registered task's demonstration turns into a timeline whose grasps the hand can weld."""
    from sim.demonstrator import _add_hand_and_welds
    from sim.show import build_scene

    task, world, params = build_scene(task_name, "seen", 0, with_robot=False, render=False,
                                      extend=_add_hand_and_welds)
    with world:
        script = task.demonstration(world, params, np.random.default_rng(0))
        tl = plan_motion(script, np.random.default_rng(1))
        assert tl.duration > 1.0
        for g in tl.grasps:
            assert g["target"] in task.object_labels
            eq = mujoco.mj_name2id(world.model, mujoco.mjtObj.mjOBJ_EQUALITY, f"hand_weld_{g['target']}")
            assert eq >= 0
        assert tl.pressing == (not tl.grasps)


@pytest.mark.slow
@needs_render
def test_pressing_demo_presses_the_button_physically(tmp_path: Path) -> None:
    path = record_demo("press_button", "seen", 0, tmp_path / "press", fps=3.0)
    gt = read_ground_truth(path)
    threshold = gt["params"]["values"]["threshold"]
    assert max(f["joints"]["button_slide"] for f in gt["frames"]) >= threshold
    touches = [(e["a"], e["b"], e["kind"]) for e in gt["contacts"] if e["a"] == "hand"]
    assert touches[:2] == [("hand", "button", "begin"), ("hand", "button", "end")]
    assert gt["success"] is True


def test_ground_truth_records_object_contacts_debounced_and_object_poses() -> None:
    from sim.ground_truth import _GroundTruth
    from sim.world import SimWorld, base_spec

    spec = base_spec(with_robot=False)
    for name, z in (("box_a", 0.12), ("box_b", 0.021)):
        body = spec.worldbody.add_body(name=name, pos=[0.5, 0.0, z])
        body.add_freejoint()
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.02, 0.02, 0.02], mass=0.1)
    with SimWorld(spec, render=False, labels=["box_a", "box_b"]) as world:
        gt = _GroundTruth(world, ["box_a", "box_b"])
        per_frame = int(round(1 / 15 / world.timestep))
        for i in range(30):
            if i == 20:  # lift box_a off box_b: the contact ends
                world.set_free_body_pose("box_a", Pose(position=(0.3, 0.3, 0.021)))
            for _ in range(per_frame):
                world.step(1)
                gt.sample_contacts()
            gt.record_frame(i, i / 15)
        out = gt.result({})
    pairs = [(e["a"], e["b"], e["kind"], e["frame"]) for e in out["contacts"]]
    assert [p[:3] for p in pairs] == [("box_a", "box_b", "begin"), ("box_a", "box_b", "end")]
    assert 0 < pairs[0][3] < 10 and pairs[1][3] == 20
    assert out["frames"][-1]["bodies"]["box_a"]["position"][:2] == pytest.approx([0.3, 0.3], abs=0.01)
    assert set(out["frames"][0]["bodies"]) == {"box_a", "box_b"}
