"""The review of a step that moves contents (a pour): did the master receive what the demos poured?

Moving the slave over the master and back proves nothing about what was poured: a spilled pour ends in
the same place. So, for a skill whose demos moved contents (`ManipulationConstraint.content_transfer`),
the master's contents are read before the motion and after it (with the arm folded out of the view),
in the master's frame perceived before the step (one frame for both readings, so their difference is
what it gained), and the step counts only when it gained at least `min_share` of the demos' median gain.
"""

from __future__ import annotations

from typing import Any

from core.contents import ContentsReading, ContentTransfer
from tools.perception.contents import measure_contents, not_contents
from tools.perception.scene import PerceivedObject


def read_contents(camera: Any, segmenter: Any, obj: PerceivedObject) -> ContentsReading:
    """`obj`'s contents in a fresh frame of `camera` (every labelled thing but `obj` excluded)."""
    frame = camera.capture()
    masks = segmenter.segment(frame, ())
    return measure_contents([(frame, not_contents(masks, obj.name))], obj.T_world_object, obj.size)


def judge_transfer(transfer: ContentTransfer, start: ContentsReading | None, end: ContentsReading,
                   master: str) -> dict[str, Any]:
    """ExecutionFacts fields (and a message) for the contents the master received."""
    nice = master.replace("_", " ")
    if start is None or start.volume_m3 is None or end.volume_m3 is None:
        # the camera does not see into the master (a deep cup from a low view): no verdict either way
        return {"contents_expected_m3": transfer.master_gain_m3,
                "message": f"the inside of the {nice} is not seen well enough to check what it received"}
    gained = end.volume_m3 - start.volume_m3
    share = gained / transfer.master_gain_m3
    ok = share >= transfer.min_share
    msg = (f"the {nice} holds {max(share, 0.0):.0%} of what the demos poured into it "
           f"({gained * 1e6:.1f} of {transfer.master_gain_m3 * 1e6:.1f} cm^3 seen; at least "
           f"{transfer.min_share:.0%} needed)")
    return {"contents_expected_m3": transfer.master_gain_m3, "contents_gained_m3": round(gained, 9),
            "contents_share": round(share, 3), "contents_transferred": ok, "message": msg}
