"""Ordered subgoals of long-horizon tasks, tracked over time.

A task's `subgoals(world, params)` says which subgoals hold *now*; `SubgoalTracker` turns that
stream of snapshots into "when was each subgoal first achieved, in the required order". Subgoal k
counts as met at the first update where it holds and subgoals 0..k-1 were already met (earlier or at
the same update). A subgoal that holds before its predecessors were met is noted in
`early` but does not count; it must hold again later. `all_met` is the task's ordered success.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from core.errors import VLMimicError


class SubgoalError(VLMimicError):
    """A subgoal snapshot that does not match the tracker's subgoal names."""


class SubgoalRecord(BaseModel):
    name: str
    met_at: float | None = None  # simulation time (s) it was met in order, None if never
    first_true_at: float | None = None  # first time it held at all, in order or not


class SubgoalTracker:
    """Records the time each subgoal is first met in the required order."""

    def __init__(self, names: Sequence[str]) -> None:
        if len(set(names)) != len(names):
            raise SubgoalError(f"subgoal names must be unique, got {list(names)}")
        self.names: tuple[str, ...] = tuple(names)
        self.met_at: dict[str, float | None] = {n: None for n in self.names}
        self.first_true_at: dict[str, float | None] = {n: None for n in self.names}
        self.early: list[str] = []  # subgoals that held before their predecessors were met
        self._last_t = float("-inf")

    def update(self, t: float, state: Mapping[str, bool]) -> None:
        """Feed the instantaneous truth of every subgoal at time `t` (non-decreasing)."""
        missing = [n for n in self.names if n not in state]
        extra = [n for n in state if n not in self.met_at]
        if missing or extra:
            raise SubgoalError(
                f"subgoal snapshot must name exactly {list(self.names)}; missing {missing}, unexpected {extra}"
            )
        if t < self._last_t:
            raise SubgoalError(f"subgoal updates must come in time order ({t} after {self._last_t})")
        self._last_t = t
        predecessors_met = True
        for name in self.names:
            holds = bool(state[name])
            if holds and self.first_true_at[name] is None:
                self.first_true_at[name] = t
            if self.met_at[name] is None:
                if holds and predecessors_met:
                    self.met_at[name] = t
                elif holds and name not in self.early:
                    self.early.append(name)
            predecessors_met = predecessors_met and self.met_at[name] is not None

    @property
    def all_met(self) -> bool:
        """True when every subgoal has been met in order (vacuously true with no subgoals)."""
        return all(v is not None for v in self.met_at.values())

    @property
    def n_met(self) -> int:
        """How many subgoals, counted from the first, have been met in order."""
        count = 0
        for name in self.names:
            if self.met_at[name] is None:
                break
            count += 1
        return count

    def records(self) -> list[SubgoalRecord]:
        return [SubgoalRecord(name=n, met_at=self.met_at[n], first_true_at=self.first_true_at[n]) for n in self.names]
