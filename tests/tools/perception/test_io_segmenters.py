"""Readers, point clouds and segmenters: the contracts and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import BackendUnavailable, ConfigError, DemoFormatError
from core.geometry import look_at
from core.sensing import Intrinsics, RGBDFrame
from core.settings import PerceptionSettings
from tools.perception.pointcloud import clean_cloud, cloud_from_mask, remove_outliers, voxel_downsample
from tools.perception.readers import DemoSource, bag_to_demo, iter_bag_frames, open_demo
from tools.perception.segmenters import (
    CHANNEL_SEGMENTER_NAME,
    ChannelSegmenter,
    GroundedSamSegmenter,
    make_segmenter,
)


def _frame(seg: bool = True) -> RGBDFrame:
    intr = Intrinsics(width=64, height=48, fx=60, fy=60, cx=31.5, cy=23.5)
    depth = np.full((48, 64), 0.5, np.float32)
    s = np.zeros((48, 64), np.int32)
    s[10:20, 10:30] = 3
    s[30:40, 40:60] = 4
    return RGBDFrame(
        rgb=np.zeros((48, 64, 3), np.uint8),
        depth=depth,
        intrinsics=intr,
        T_world_camera=look_at((0, 0, 0.5), (0, 0, 0), up=(0, 1, 0)),
        timestamp=0.0,
        segmentation=s if seg else None,
        labels={3: "cube", 4: "plate", 1: "table"} if seg else None,
    )


def test_cloud_from_mask_lies_on_the_plane_and_downsamples() -> None:
    f = _frame()
    m = f.segmentation == 3
    pts = cloud_from_mask(f, m)
    assert pts.shape == (200, 3) and np.allclose(pts[:, 2], 0.0, atol=1e-6)
    assert len(cloud_from_mask(f, m, stride=2)) == 50
    assert len(voxel_downsample(pts, 0.02)) < len(pts)
    with_outlier = np.vstack([pts, [[1.0, 1.0, 1.0]]])
    assert len(remove_outliers(with_outlier)) == len(pts)
    assert len(clean_cloud(with_outlier, 0.001)) <= len(pts)


def test_channel_segmenter_masks_by_name() -> None:
    seg = ChannelSegmenter()
    assert seg.name == CHANNEL_SEGMENTER_NAME == "perfect segmenter (simulator channel)"
    masks = seg.segment(_frame(), ["cube", "plate", "hand"])
    assert set(masks) == {"cube", "plate"}  # the hand is not in view
    assert masks["cube"].sum() == 200 and masks["plate"].sum() == 200
    with pytest.raises(DemoFormatError, match="perception.segmenter"):
        seg.segment(_frame(seg=False), ["cube"])


def test_grounded_sam_without_weights_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="perception.grounding_dino_path"):
        GroundedSamSegmenter(None, None)
    with pytest.raises(BackendUnavailable, match="perception.sam_path"):
        (tmp_path / "dino").mkdir()
        (tmp_path / "dino" / "config.json").write_text("{}")
        GroundedSamSegmenter(tmp_path / "dino", tmp_path / "nosam")
    with pytest.raises(BackendUnavailable, match="grounding_dino_path"):
        make_segmenter(PerceptionSettings(segmenter="grounded_sam", grounding_dino_path=tmp_path / "empty"))


def test_open_demo_rejects_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DemoFormatError, match="no such demo folder"):
        open_demo(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DemoFormatError, match="meta.json"):
        DemoSource(tmp_path / "empty")


def test_bag_errors_name_the_file_and_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DemoFormatError, match="no such RealSense recording"):
        list(iter_bag_frames(tmp_path / "x.bag", np.eye(4)))
    bad = tmp_path / "bad.bag"
    bad.write_bytes(b"not a bag")
    monkeypatch.setenv("VLMIMIC_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match="hardware.T_base_camera"):
        bag_to_demo(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
