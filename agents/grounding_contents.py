"""What the containers of a manipulation segment hold at its start and end (the grounder's step 6b).

A pour moves no object into another, only what one holds: the segment's master and slave are measured
with tools.perception.contents at the segment's first and last frames only (two frames per segment,
so grounding stays fast), each in its tracked pose at that frame with its first-frame bbox, so the two
readings of one object share one frame and their difference is what it gained or lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.contents import SegmentContents
from core.grounding import HAND, ObjectDescriptor
from core.sensing import RGBDFrame
from tools.perception.contents import measure_contents, not_contents
from tools.perception.parsing import TABLE
from tools.perception.segmenters import Segmenter


class ContentsMeter:
    """Contents readings at key frames of a demo; masks segmented once per frame and reused."""

    def __init__(self, frames: dict[int, RGBDFrame], segmenter: Segmenter, prompts: Sequence[str],
                 poses: dict[str, np.ndarray], descriptors: Sequence[ObjectDescriptor]) -> None:
        self.frames = frames
        self.segmenter = segmenter
        self.prompts = [*prompts, HAND, TABLE]
        self.poses = poses
        self.by_name = {d.name: d for d in descriptors}
        self._masks: dict[int, dict[str, np.ndarray]] = {}

    def _masks_at(self, f: int) -> dict[str, np.ndarray]:
        if f not in self._masks:
            self._masks[f] = self.segmenter.segment(self.frames[f], self.prompts)
        return self._masks[f]

    def segment(self, name: str | None, start: int, end: int) -> SegmentContents | None:
        """`name`'s contents at frames `start` and `end`; None for the hand or an object not grounded."""
        if name is None or name == HAND or name not in self.by_name or name not in self.poses:
            return None
        size = self.by_name[name].bbox_size
        readings = []
        for f in (start, end):
            frame = self.frames[f]
            readings.append(measure_contents([(frame, not_contents(self._masks_at(f), name))],
                                             self.poses[name][f], size))
        return SegmentContents(start=readings[0], end=readings[1])
