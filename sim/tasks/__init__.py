"""The task registry: `TASKS` maps each simulated task's name to its `Task` instance."""

from __future__ import annotations

import sim.render  # noqa: F401  (first: chooses MUJOCO_GL before any task module imports mujoco)
from core.errors import VLMimicError
from sim.tasks.base import SceneParams, Task, Variant
from sim.tasks.brush_pan import BrushPan
from sim.tasks.open_drawer import OpenDrawer
from sim.tasks.open_microwave import OpenMicrowave
from sim.tasks.pour_cup_to_cup import PourCupToCup
from sim.tasks.press_button import PressButton
from sim.tasks.put_fruit_on_plate import PutFruitOnPlate
from sim.tasks.stack_block import StackBlock
from sim.tasks.turn_faucet import TurnFaucet
from sim.tasks.wash_pan import WashPan


class UnknownTaskError(VLMimicError):
    """A task or variant name that is not registered (the message lists the valid ones)."""


TASKS: dict[str, Task] = {t.name: t for t in (OpenDrawer(), OpenMicrowave(), PressButton(), TurnFaucet())}
# part B (kitchen objects): sim/tasks/objects.py
TASKS.update({t.name: t for t in (PutFruitOnPlate(), StackBlock(), PourCupToCup(), BrushPan(), WashPan())})


def get_task(name: str) -> Task:
    """The registered task called `name`; an unknown name raises UnknownTaskError listing valid ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}") from None


def parse_variant(name: str | Variant) -> Variant:
    """'seen' or 'unseen' as a Variant; anything else raises UnknownTaskError listing the valid ones."""
    try:
        return Variant(str(name).strip().lower())
    except ValueError:
        valid = ", ".join(v.value for v in Variant)
        raise UnknownTaskError(f"unknown variant {name!r}; valid variants: {valid}") from None


__all__ = ["TASKS", "SceneParams", "Task", "UnknownTaskError", "Variant", "get_task", "parse_variant"]
