import numpy as np
import pytest

from core.geometry import Pose
from core.skills import GraspConstraint, GraspRegion
from tools.constraints.grasp import containment, describe_region, grid_cells, sample_candidates, to_fractions

SIZE = (0.1, 0.2, 0.3)


def constraint(**kw):
    return GraspConstraint(regions=[GraspRegion(center=(0.0, 0.25, 0.4), extent=(0.2, 0.2, 0.1))],
                           approach=(0, 0, -1), width=0.04, **kw)


def test_containment_counts_grasps_inside_regions():
    inside = Pose(position=tuple(np.array([0.0, 0.25, 0.4]) * SIZE))
    outside = Pose(position=tuple(np.array([0.0, -0.25, 0.4]) * SIZE))
    assert containment(constraint(), [inside, inside, outside], SIZE) == pytest.approx(2 / 3)


def test_candidates_lie_on_a_5x5_grid_inside_the_region_centre_first():
    c = constraint()
    cells = grid_cells(c.regions[0], c.approach)
    assert cells.shape == (25, 3)
    cands = sample_candidates(c, SIZE, n=4, seed=0)
    assert len(cands) == 4
    assert cands[0].cell == 12  # the centre cell
    f = to_fractions(np.array([k.T_object_gripper.position for k in cands]), SIZE)
    assert containment(c, [k.T_object_gripper for k in cands], SIZE) == 1.0
    assert np.allclose(f[:, 2], 0.4)  # the grid spans x and y, not the approach axis z
    again = sample_candidates(c, SIZE, n=4, seed=0)
    assert [k.cell for k in again] == [k.cell for k in cands]


def test_excluded_cells_and_offsets_revise_candidates():
    c = constraint()
    first = sample_candidates(c, SIZE, n=1)[0]
    nxt = sample_candidates(c, SIZE, n=1, exclude=[(first.region, first.cell)])[0]
    assert nxt.cell != first.cell
    shifted = sample_candidates(c, SIZE, n=1, offset=(0, 0, -0.1))[0]
    assert shifted.T_object_gripper.position[2] == pytest.approx(first.T_object_gripper.position[2] - 0.03)


def test_region_words_follow_the_canonical_frame():
    assert describe_region((0.4, 0.0, 0.4)) == "top, front"
    assert describe_region((0.0, 0.4, 0.0)) == "middle height, right"


def test_invalid_regions_are_refused():
    with pytest.raises(ValueError):
        GraspRegion(center=(0, 0, 5), extent=(0.1, 0.1, 0.1))
    with pytest.raises(ValueError):
        GraspConstraint(regions=[GraspRegion(center=(0, 0, 0), extent=(0.1, 0.1, 0.1))], approach=(0, 0, 0), width=0)
