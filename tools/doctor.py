"""`python main.py doctor`: which optional components work on this machine, each check bounded in time.

Checks never contact anything that the user did not configure: without a robot address the robot is
reported as "not configured" and nothing is contacted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Status = Literal["ok", "missing", "not configured", "error"]


class Check(BaseModel):
    name: str
    status: Status
    detail: str = ""


def run_checks(robot: str = "sim") -> list[Check]:
    """Checks of the non-simulator components (filled in by the perception, memory and hardware code)."""
    return []
