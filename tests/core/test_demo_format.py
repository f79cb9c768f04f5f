"""The on-disk demo format: round trip through DemoWriter/DemoReader and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.demo import (
    GROUND_TRUTH_FILE,
    HAND_FILE,
    HAND_KEYPOINT_NAMES,
    META_FILE,
    DemoMeta,
    DemoReader,
    DemoWriter,
    HandTrack,
    read_ground_truth,
)
from core.errors import DemoFormatError
from core.sensing import Intrinsics, RGBDFrame

W, H, N = 64, 48, 4
INTR = Intrinsics.from_fovy(W, H, 58.0)
T_WC = np.array([[0.0, -1.0, 0.0, 0.1], [-0.6, 0.0, -0.8, 0.2], [0.8, 0.0, -0.6, 0.9], [0.0, 0.0, 0.0, 1.0]])
LABELS = {1: "table", 3: "hand", 4: "block_red"}


def _frames(rng: np.random.Generator, n: int = N) -> list[RGBDFrame]:
    out = []
    for i in range(n):
        depth = rng.uniform(0.3, 2.0, (H, W)).astype(np.float32)
        depth[0, :5] = 0.0  # invalid pixels stay invalid
        seg = rng.choice(np.array(list(LABELS) + [0]), size=(H, W)).astype(np.int32)
        out.append(RGBDFrame(rgb=rng.integers(0, 256, (H, W, 3), dtype=np.uint8), depth=depth, intrinsics=INTR,
                             T_world_camera=T_WC, timestamp=i / 15.0, segmentation=seg, labels=LABELS))
    return out


def _hand(rng: np.random.Generator, n: int = N, visible: bool = True) -> HandTrack:
    k = len(HAND_KEYPOINT_NAMES)
    return HandTrack(names=HAND_KEYPOINT_NAMES, uv=rng.uniform(0, W, (n, k, 2)), xyz=rng.normal(size=(n, k, 3)),
                     visible=np.full(n, visible))


def _meta(demo_id: str = "demo") -> DemoMeta:
    return DemoMeta(demo_id=demo_id, task="stack the red block on the blue block", source="sim", fps=15.0,
                    n_frames=1, intrinsics=INTR, T_world_camera=T_WC.tolist(), timestamps=[], depth_scale=1.0,
                    labels=LABELS, camera_name="cam_front")


def _write(tmp: Path, frames: list[RGBDFrame], hand: HandTrack | None, gt: dict | None = None,
           depth_scale: float = 0.0001) -> Path:
    with DemoWriter(tmp / "demo", depth_scale=depth_scale) as w:
        for f in frames:
            w.add_frame(f)
        return w.commit(_meta(), hand, gt)


def test_round_trip_keeps_frames_depth_seg_labels_hand_and_timestamps(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames, hand = _frames(rng), _hand(rng)
    path = _write(tmp_path, frames, hand, gt={"contacts": []})
    r = DemoReader(path)
    assert len(r) == N and r.meta.has_segmentation and r.meta.has_hand
    assert r.meta.labels == LABELS
    np.testing.assert_allclose(r.T_world_camera, T_WC)
    for i, (orig, back) in enumerate(zip(frames, r.frames(), strict=True)):
        np.testing.assert_array_equal(back.rgb, orig.rgb)
        assert back.depth.dtype == np.float32
        assert np.abs(back.depth - orig.depth).max() <= r.meta.depth_scale / 2 + 1e-6
        assert (back.depth[0, :5] == 0).all()
        np.testing.assert_array_equal(back.segmentation, orig.segmentation)
        assert back.labels == LABELS
        assert back.timestamp == pytest.approx(i / 15.0)
        assert back.intrinsics == INTR
    h = r.hand()
    assert h is not None and h.names == HAND_KEYPOINT_NAMES
    np.testing.assert_allclose(h.uv, hand.uv, atol=1e-4)
    np.testing.assert_allclose(h.xyz, hand.xyz, atol=1e-5)
    assert h.visible.all()
    # Ground truth sits in its own file, never in the metadata the learner reads.
    assert GROUND_TRUTH_FILE not in (path / META_FILE).read_text()
    assert "contacts" not in json.loads((path / META_FILE).read_text())
    assert read_ground_truth(path) == {"contacts": []}


def test_frames_without_segmentation_or_hand_are_optional(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [f.model_copy(update={"segmentation": None, "labels": None}) for f in _frames(rng, 2)]
    r = DemoReader(_write(tmp_path, frames, None))
    assert not r.meta.has_segmentation and r.frame(1).segmentation is None and r.hand() is None
    with pytest.raises(DemoFormatError, match="no ground truth"):
        read_ground_truth(r.dir)


def test_missing_depth_frame_names_the_folder_and_counts(tmp_path: Path) -> None:
    path = _write(tmp_path, _frames(np.random.default_rng(2)), None)
    (path / "depth" / "000002.png").unlink()
    with pytest.raises(DemoFormatError, match=r"depth: 3 frames, but meta.json says n_frames=4"):
        DemoReader(path)


def test_mismatched_timestamp_count_names_meta_json(tmp_path: Path) -> None:
    path = _write(tmp_path, _frames(np.random.default_rng(3)), None)
    meta = json.loads((path / META_FILE).read_text())
    meta["timestamps"] = meta["timestamps"][:-1]
    (path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(DemoFormatError, match=r"meta.json: 3 timestamps for n_frames=4"):
        DemoReader(path)


def test_wrong_depth_unit_is_caught_with_file_and_frame(tmp_path: Path) -> None:
    # Depth written in millimetres, but the metadata claims metres per unit = 1.0.
    path = _write(tmp_path, _frames(np.random.default_rng(4)), None, depth_scale=0.001)
    meta = json.loads((path / META_FILE).read_text())
    meta["depth_scale"] = 1.0
    (path / META_FILE).write_text(json.dumps(meta))
    r = DemoReader(path)
    with pytest.raises(DemoFormatError, match=r"depth/000001.png: median depth .* in frame 1 is implausible"):
        r.frame(1)


def test_depth_stored_as_colour_image_is_rejected(tmp_path: Path) -> None:
    import cv2

    path = _write(tmp_path, _frames(np.random.default_rng(5)), None)
    cv2.imwrite(str(path / "depth" / "000000.png"), np.zeros((H, W, 3), dtype=np.uint8))
    with pytest.raises(DemoFormatError, match=r"depth/000000.png: depth must be 16-bit single-channel"):
        DemoReader(path).frame(0)


def test_unreadable_image_names_file_and_frame(tmp_path: Path) -> None:
    path = _write(tmp_path, _frames(np.random.default_rng(6)), None)
    (path / "rgb" / "000003.png").write_bytes(b"not a png")
    r = DemoReader(path)
    with pytest.raises(DemoFormatError, match=r"rgb/000003.png: unreadable image \(frame 3\)"):
        r.frame(3)


def test_hand_never_visible_is_an_error_naming_hand_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    path = _write(tmp_path, _frames(rng), _hand(rng, visible=False))
    with pytest.raises(DemoFormatError, match=rf"{HAND_FILE}: the hand is not visible in any frame"):
        DemoReader(path).hand()


def test_corrupt_hand_file_and_wrong_keypoint_count(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    path = _write(tmp_path, _frames(rng), _hand(rng))
    (path / HAND_FILE).write_bytes(b"garbage")
    with pytest.raises(DemoFormatError, match=rf"{HAND_FILE}: unreadable hand keypoints"):
        DemoReader(path).hand()
    path2 = tmp_path / "second"
    with DemoWriter(path2) as w:
        for f in _frames(rng):
            w.add_frame(f)
        w.commit(_meta("second"), _hand(rng, n=N - 1))
    with pytest.raises(DemoFormatError, match=rf"{HAND_FILE}: 3 frames of keypoints, expected 4"):
        DemoReader(path2).hand()


def test_missing_meta_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DemoFormatError, match=r"meta.json: missing; is .*empty a demo folder"):
        DemoReader(tmp_path / "empty")


def test_aborted_recording_leaves_no_folder(tmp_path: Path) -> None:
    frames = _frames(np.random.default_rng(9))
    with pytest.raises(RuntimeError, match="camera unplugged"):
        with DemoWriter(tmp_path / "demo") as w:
            w.add_frame(frames[0])
            w.add_frame(frames[1])
            raise RuntimeError("camera unplugged")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_to_overwrite_and_empty_commit(tmp_path: Path) -> None:
    path = _write(tmp_path, _frames(np.random.default_rng(10), 1), None)
    with pytest.raises(DemoFormatError, match="already exists"):
        DemoWriter(path)
    with pytest.raises(DemoFormatError, match="no frames were recorded"):
        with DemoWriter(tmp_path / "nothing") as w:
            w.commit(_meta("nothing"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
