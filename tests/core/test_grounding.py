"""The grounded-demo contract: JSON + npz round trip, atomic replacement, clear load errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import DemoFormatError
from core.geometry import Pose
from core.grounding import (
    GROUNDED_DIR,
    GraspInteraction,
    GroundedDemo,
    ManipulationInteraction,
    ObjectDescriptor,
    Phase,
    Segment,
    Tracks,
)


def _demo(n: int = 4) -> GroundedDemo:
    obj = ObjectDescriptor(
        name="mug",
        T_world_object=Pose(position=(0.5, 0, 0.05)),
        bbox_size=(0.08, 0.08, 0.1),
        color_rgb=(200, 10, 10),
        crop_path="crops/mug.png",
    )
    return GroundedDemo(
        demo_id="d",
        task="put the mug on the plate",
        fps=15,
        n_frames=n,
        objects=[obj],
        segments=[
            Segment(
                index=0, start_frame=0, end_frame=2, start_time=0, end_time=0.13, phase=Phase.grasping, master="mug"
            )
        ],
        interactions=[
            GraspInteraction(
                segment=0, object="mug", T_object_gripper=Pose(position=(0, 0, 0.03)), width=0.05, frame=2, time=0.13
            ),
            ManipulationInteraction(
                segment=1,
                master="plate",
                slave="mug",
                frames=[2, 3],
                times=[0.13, 0.2],
                trajectory=[Pose(), Pose(position=(0, 0, 0.1))],
                T_slave_gripper=Pose(),
            ),
        ],
        sources={"segmenter": "perfect segmenter (simulator channel)"},
        tracks=Tracks(
            times=np.arange(n) / 15,
            object_poses={"mug": np.tile(np.eye(4), (n, 1, 1))},
            object_valid={"mug": np.ones(n, bool)},
            gripper_width=np.full(n, 0.05),
        ),
    )


def test_round_trip(tmp_path: Path) -> None:
    gd = _demo()
    folder = gd.save(tmp_path, extra_files={"crops/mug.png": b"png"})
    assert folder == tmp_path / GROUNDED_DIR and (folder / "crops" / "mug.png").read_bytes() == b"png"
    back = GroundedDemo.load(tmp_path)
    assert back.model_dump() == gd.model_dump()
    assert isinstance(back.interactions[1], ManipulationInteraction)
    assert back.manipulations()[0].matrices().shape == (2, 4, 4)
    assert np.allclose(back.tracks.gripper_width, 0.05)
    assert back.object("mug").bbox_size == (0.08, 0.08, 0.1)
    with pytest.raises(KeyError, match="plate"):
        back.object("plate")


def test_a_failed_save_keeps_the_previous_result_and_leaves_no_temp(tmp_path: Path) -> None:
    _demo().save(tmp_path)
    other = _demo().model_copy(update={"task": "something else"})
    with pytest.raises(ValueError, match="escapes"):
        other.save(tmp_path, extra_files={"../outside.png": b"x"})
    assert GroundedDemo.load(tmp_path).task == "put the mug on the plate"
    assert sorted(p.name for p in tmp_path.iterdir()) == [GROUNDED_DIR]
    other.save(tmp_path)  # replacing an existing result works
    assert GroundedDemo.load(tmp_path).task == "something else"
    assert sorted(p.name for p in tmp_path.iterdir()) == [GROUNDED_DIR]


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DemoFormatError, match="grounded.json: missing"):
        GroundedDemo.load(tmp_path)
    (tmp_path / GROUNDED_DIR).mkdir()
    (tmp_path / GROUNDED_DIR / "grounded.json").write_text("{not json")
    with pytest.raises(DemoFormatError, match="invalid grounded demo"):
        GroundedDemo.load(tmp_path)
