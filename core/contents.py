"""What a container holds, as perception measures it (tools/perception/contents.py), and what a skill
expects to happen to it (a content transfer, e.g. a pour).

A `ContentsReading` is measured from depth alone, in the container's canonical frame: the surface the
camera sees inside the container's interior footprint (its bbox footprint inset from the walls), below
its rim. It does not need the contents to carry a label: balls, water or beans are whatever surface
lies inside the walls. Changes of `volume_m3` between two readings of the same container are the volume
added to (or taken out of) it; the absolute value includes the container's own floor.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ContentsReading(BaseModel):
    """One container's contents at one moment."""

    level_m: float | None = Field(
        None, description="mean height (m) of the surface seen inside the interior footprint, above the bbox bottom "
        "(the container's own floor included); None when too little of the interior is seen")
    fill: float | None = Field(None, description="level_m as a share of the container's height (0 bottom, 1 rim)")
    volume_m3: float | None = Field(
        None, description="level_m times the interior footprint's area: the volume below the seen surface (m^3)")
    coverage: float = Field(0.0, ge=0, le=1, description="share of the interior footprint's cells seen")
    n_points: int = Field(0, ge=0, description="depth points inside the interior footprint")

    @property
    def seen(self) -> bool:
        return self.volume_m3 is not None


class SegmentContents(BaseModel):
    """A container's contents at a segment's start and end frames."""

    start: ContentsReading
    end: ContentsReading

    def gain_m3(self) -> float | None:
        """Volume added over the segment (negative: taken out); None when either end was not seen."""
        if self.start.volume_m3 is None or self.end.volume_m3 is None:
            return None
        return self.end.volume_m3 - self.start.volume_m3


class ContentTransfer(BaseModel):
    """The demos moved contents from the slave into the master (a pour): what the review checks."""

    master_gain_m3: float = Field(gt=0, description="median volume the master gained over the step in the demos")
    master_gain_fill: float = Field(description="the same as a share of the master's height (median over the demos)")
    slave_gain_m3: float | None = Field(
        None, description="median volume the slave gained (negative: it emptied); None when its inside was not seen")
    demos: int = Field(ge=1, description="demos that showed the transfer")
    of_demos: int = Field(ge=1, description="demos whose master was seen at both ends of the step")
    min_share: float = Field(
        0.4, gt=0, le=1, description="the master must gain at least this share of master_gain_m3 for the step to count")
