"""The scripted-motion vocabulary shared by the robot solutions and the synthetic human demonstrator.

A task writes what should happen as a list of steps in *gripper* terms (T_world_gripper: the Panda's
TCP between the fingertips; z = approach direction out of the palm, y = closing axis, x = y cross z).
The robot executes a script through the Robot protocol (IK, physical grasp); the demonstrator
executes the same kind of script with a human hand on a mocap body that holds objects by a weld.
Scripts are data: a task computes them from the scene it built, never from demo recordings.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from core.geometry import Pose


class Move(BaseModel):
    """Move the gripper through `path` (the last pose is the target) in `duration` seconds."""

    kind: Literal["move"] = "move"
    path: list[Pose] = Field(min_length=1)
    duration: float = Field(gt=0)
    label: str = ""


class Grasp(BaseModel):
    """Close the gripper on `target` (a segmentation label: object or moving part)."""

    kind: Literal["grasp"] = "grasp"
    target: str
    width: float = Field(0.0, ge=0, description="expected opening when closed on the object, m")
    force: float = 40.0


class Release(BaseModel):
    kind: Literal["release"] = "release"
    width: float = 0.08


class Wait(BaseModel):
    kind: Literal["wait"] = "wait"
    duration: float = Field(gt=0)


Step = Annotated[Move | Grasp | Release | Wait, Field(discriminator="kind")]


class Script(BaseModel):
    steps: list[Step]
