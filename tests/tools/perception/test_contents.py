"""The contents of a container, measured from depth: an empty box-shaped cup vs one holding a layer."""

from __future__ import annotations

import numpy as np
import pytest

from core.geometry import look_at, make_transform
from core.sensing import Intrinsics, RGBDFrame
from tests.tools.perception.synth_scene import raycast
from tools.perception.contents import measure_contents, not_contents

INTR = Intrinsics(width=320, height=240, fx=260.0, fy=260.0, cx=159.5, cy=119.5)
CUP = np.array([0.10, 0.10, 0.08])  # outer size; walls 6 mm, floor 14 mm
CENTRE = np.array([0.5, 0.0, 0.04])  # bbox centre, standing on the table
CUP_ID, ROBOT_ID = 4, 2


def _box(label: int, centre: np.ndarray, size: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    return label, make_transform(np.eye(3), centre), np.asarray(size, float) / 2


def _frame(layer_m: float = 0.0, contents_label: int = 0, eye=(0.5, -0.25, 0.5), robot: bool = False) -> RGBDFrame:  # noqa: ANN001
    """A box cup (floor + 4 walls) seen from `eye`, holding a layer `layer_m` thick on its floor."""
    x, y, _ = CENTRE
    wall, floor, h = 0.006, 0.014, CUP[2]
    boxes = [_box(1, np.array([x, y, -0.005]), np.array([1.0, 1.0, 0.01])),  # table
             _box(CUP_ID, np.array([x, y, floor / 2]), np.array([CUP[0], CUP[1], floor]))]
    for sx, sy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        c = np.array([x + sx * (CUP[0] - wall) / 2, y + sy * (CUP[1] - wall) / 2, h / 2])
        size = np.array([wall if sx else CUP[0], wall if sy else CUP[1], h])
        boxes.append(_box(CUP_ID, c, size))
    if layer_m > 0:
        inner = CUP[:2] - 2 * wall - 0.001
        boxes.append(_box(contents_label, np.array([x, y, floor + layer_m / 2]), np.array([*inner, layer_m])))
    if robot:  # a gripper hanging into the cup, labelled as the robot
        boxes.append(_box(ROBOT_ID, np.array([x, y, 0.05]), np.array([0.02, 0.02, 0.06])))
    T_wc = look_at(eye, CENTRE)
    depth, seg = raycast(INTR, T_wc, boxes)
    labels = {1: "table", ROBOT_ID: "robot", CUP_ID: "cup"}
    return RGBDFrame(rgb=np.zeros((INTR.height, INTR.width, 3), np.uint8), depth=depth, intrinsics=INTR,
                     T_world_camera=T_wc, segmentation=seg, labels=labels)


def _masks(f: RGBDFrame) -> dict[str, np.ndarray]:
    assert f.segmentation is not None and f.labels is not None
    return {n: f.segmentation == i for i, n in f.labels.items()}


def _read(f: RGBDFrame):  # noqa: ANN202
    return measure_contents([(f, not_contents(_masks(f), "cup"))], make_transform(np.eye(3), CENTRE), CUP)


@pytest.mark.parametrize("contents_label", [0, CUP_ID], ids=["unlabelled", "in the cup's mask"])
def test_a_filled_cup_reads_higher_than_an_empty_one_by_the_layer(contents_label: int) -> None:
    empty, full = _read(_frame()), _read(_frame(0.02, contents_label))
    assert empty.seen and full.seen
    assert empty.level_m == pytest.approx(0.014, abs=0.002)  # its own floor
    assert full.level_m - empty.level_m == pytest.approx(0.02, abs=0.003)
    assert full.fill > empty.fill and full.volume_m3 > empty.volume_m3


def test_the_robot_in_the_cup_is_not_counted_as_contents() -> None:
    assert _read(_frame(robot=True)).level_m == pytest.approx(0.014, abs=0.002)


def test_a_view_that_cannot_see_inside_gives_no_level_rather_than_a_guess() -> None:
    low = _frame(eye=(0.5, -1.5, 0.12))  # nearly level with the rim: the inside is hidden
    r = _read(low)
    assert not r.seen and r.level_m is None and r.fill is None


def test_several_views_merge_and_see_more_of_the_inside() -> None:
    a, b = _frame(0.01, eye=(0.5, -0.3, 0.35)), _frame(0.01, eye=(0.5, 0.3, 0.35))
    T = make_transform(np.eye(3), CENTRE)
    one = measure_contents([(a, not_contents(_masks(a), "cup"))], T, CUP)
    both = measure_contents([(a, not_contents(_masks(a), "cup")), (b, not_contents(_masks(b), "cup"))], T, CUP)
    assert both.coverage >= one.coverage
    assert both.level_m == pytest.approx(0.024, abs=0.003)
