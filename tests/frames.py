"""Hand-built rigid frames for tests: a position and a turn about the world's z axis."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from core.geometry import make_transform


def frame(position: Sequence[float], yaw_deg: float = 0.0) -> np.ndarray:
    """The 4x4 transform at `position`, turned `yaw_deg` degrees about z."""
    return make_transform(Rotation.from_euler("z", yaw_deg, degrees=True), position)
