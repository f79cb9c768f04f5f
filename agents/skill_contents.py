"""Does a manipulation skill move contents from the slave into the master (a pour)? From the demos'
contents readings (agents/grounding_contents.py), for the skill learner.

A demo shows a transfer when its master's seen surface rose by at least `CLEAR_RISE_FILL` of the
master's height over the step and its slave did not gain (it emptied, or its inside was not seen: a
narrow cup seen from the side). The skill expects a transfer when most of the demos whose master was
seen at both ends show one, and at least `MIN_DEMOS` do: a single camera sees only a strip of a deep
cup's floor, so some demos cannot tell, and those are not counted against it. Nor are demos whose two
readings saw clearly different shares of the master's inside (`COMPARABLE_VIEW`): a brush held in a pan
hides half its floor, and the strip still seen (its rim's slope, the brush's shadowed edge) reads
centimetres "higher" than the whole floor did, a rise that is the view, not contents.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.contents import ContentTransfer
from core.grounding import Segment

CLEAR_RISE_FILL = 0.02  # share of the master's height: 1.6 mm in an 8 cm cup, ~8x the static jitter
MIN_DEMOS = 2
COMPARABLE_VIEW = 0.8  # the smaller of a demo's two seen shares of the master's inside, over the larger
MIN_SHARE = 0.4
# Why 0.4: the success of a pour is a share of what the source held (>= 60 % in the simulator); the
# volume a cup gains is measured from one view with a few millimetres of error, and the source's own
# amount may differ from the demos' (20-40 balls vs 30). A master that gained less than 40 % of the
# demos' median gain received clearly less than they did; above it, the measure cannot tell.


def content_transfer(segments: Sequence[Segment], *, slave_free: bool = True) -> ContentTransfer | None:
    """The expected transfer of a skill learned from these (aligned) demo segments, or None.

    `slave_free`: the slave is an object held in the hand. Only such an object can carry contents to pour:
    the hand holds none, nor does a fixture's part (a faucet's lever), and what the master then "gains" is
    water running from its spout or a change of view (wash_pan: a turn of the faucet's handle learned as a
    pour into the faucet, which the review then failed wherever the water ran outside the faucet's box)."""
    if not slave_free:
        return None
    seen, shown = [], []
    for seg in segments:
        mc = seg.master_contents
        if mc is None or mc.gain_m3() is None or mc.start.fill is None or mc.end.fill is None:
            continue
        views = sorted((mc.start.coverage, mc.end.coverage))
        if views[0] < COMPARABLE_VIEW * views[1]:  # the inside seen at one end is not what was seen at the other
            continue
        seen.append(seg)
        sc = seg.slave_contents
        slave_gain = sc.gain_m3() if sc is not None else None
        if mc.end.fill - mc.start.fill >= CLEAR_RISE_FILL and (slave_gain is None or slave_gain <= 0):
            shown.append(seg)
    if len(shown) < MIN_DEMOS or 2 * len(shown) <= len(seen):
        return None
    gains = [s.master_contents.gain_m3() for s in shown]  # type: ignore[union-attr]
    fills = [s.master_contents.end.fill - s.master_contents.start.fill for s in shown]  # type: ignore[union-attr,operator]
    slaves = [g for s in shown if s.slave_contents is not None and (g := s.slave_contents.gain_m3()) is not None]
    return ContentTransfer(
        master_gain_m3=float(f"{np.median(gains):.4g}"), master_gain_fill=round(float(np.median(fills)), 4),
        slave_gain_m3=float(f"{np.median(slaves):.4g}") if slaves else None, demos=len(shown), of_demos=len(seen),
        min_share=MIN_SHARE,
    )
