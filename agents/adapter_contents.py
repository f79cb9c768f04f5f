"""The review of a step that moves contents (a pour): did the master receive what the demos poured?

Moving the slave over the master and back proves nothing about what was poured: a spilled pour ends in
the same place. So, for a skill whose demos moved contents (`ManipulationConstraint.content_transfer`),
the master's contents are read before the motion and after it (with the arm folded out of the view),
both in one frame of the master, so their difference is what it gained; the step counts only when it
gained at least the transfer's `min_share` of the demos' median gain.

"Before" is read at the step's start; when the arm holding the slave hides the master's inside then,
the run's last reading of it that saw inside (its first clear look, or an earlier review) stands in,
provided the master has not moved since (`SAME_PLACE_M`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from agents.adapter_state import SAME_PLACE_M
from agents.skill_contents import CLEAR_RISE_FILL
from core.contents import ContentsReading, ContentTransfer
from tools.perception.contents import measure_contents, not_contents
from tools.perception.scene import PerceivedObject

Reading = tuple[np.ndarray, ContentsReading]  # (T_world_object it was measured in, the reading)


def read_contents(camera: Any, segmenter: Any, objects: Iterable[tuple[str, np.ndarray, Any]]) -> dict[str, Reading]:
    """(name, T_world_object, bbox size) -> its contents in ONE fresh frame of `camera` (one segmentation)."""
    frame = camera.capture()
    masks = segmenter.segment(frame, ())
    out: dict[str, Reading] = {}
    for name, T, size in objects:
        out[name] = (np.asarray(T, dtype=float), measure_contents([(frame, not_contents(masks, name))], T, size))
    return out


def remember(store: dict[str, Reading], readings: dict[str, Reading]) -> None:
    """Keep the readings that saw inside (a hidden inside says nothing about what it holds)."""
    for name, (T, r) in readings.items():
        if r.seen:
            store[name] = (T, r)


def baseline(store: dict[str, Reading], obj: PerceivedObject, fresh: Reading | None) -> Reading | None:
    """The master's "before": the fresh reading if it saw inside, else the run's last one in the same place."""
    if fresh is not None and fresh[1].seen:
        return fresh
    old = store.get(obj.name)
    if old is not None and float(np.linalg.norm(old[0][:3, 3] - obj.T_world_object[:3, 3])) < SAME_PLACE_M:
        return old
    return fresh


def slave_emptied(before: ContentsReading, after: ContentsReading, height_m: float) -> bool | None:
    """Did the slave pour out what it held? True: its seen level fell clearly; False: it did not (it still
    holds it: the pour did not happen, and another try may work); None: its inside was not seen both times."""
    if before.level_m is None or after.level_m is None:
        return None
    return before.level_m - after.level_m >= CLEAR_RISE_FILL * height_m


def judge_transfer(transfer: ContentTransfer, start: ContentsReading | None, end: ContentsReading,
                   master: str, slave: tuple[ContentsReading, ContentsReading, float] | None = None) -> dict[str, Any]:
    """ExecutionFacts fields (and a message) for the contents the master received (`slave`: its readings
    before and after and its height, when it was seen)."""
    nice = master.replace("_", " ")
    emptied = None if slave is None else slave_emptied(*slave)
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
    if not ok and emptied is not None:
        msg += "; the slave " + ("is emptied: its contents went elsewhere" if emptied else "still holds its contents")
    return {"contents_expected_m3": transfer.master_gain_m3, "contents_gained_m3": round(gained, 9),
            "contents_share": round(share, 3), "contents_transferred": ok, "slave_emptied": emptied, "message": msg}
