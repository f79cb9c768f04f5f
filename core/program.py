"""The trajectory-program vocabulary (DESIGN §4): data, never code.

A program describes the slave object's pose in the master object's canonical frame, T_master_slave(t)
for t in [0, 1]: a start pose, then an ordered list of steps that each move the slave from where the
previous step left it. Every numeric parameter is a number or an arithmetic expression over the
objects' bbox sizes (see core.expr), so a program learned on one pan transfers to a
larger pan: ``pivot=("-master.x*0.5", "master.y*0.5", 0)``.

Steps (the paper's vocabulary):
- waypoints: straight segments through points (master frame), orientation held or slerped to given ones;
- line: translate along a direction (master frame) by a distance;
- arc: rotate the slave rigidly about an axis through a pivot (doors, lids, drawers' hinges);
- rotation: rotate the slave about its own origin, axis in the master frame (knobs, turning);
- tilt: rotate the slave about its own origin, axis in the slave frame (pouring);
- spiral: circle about an axis through a centre, with advance along the axis and radius growth (stirring);
- zigzag: travel along a direction while oscillating across it (wiping, brushing, sweeping).
Each step has a relative duration `weight`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from core.expr import ExpressionError, validate


def _check(value: float | str) -> float | str:
    try:
        return validate(value)
    except ExpressionError as e:  # pydantic reports ValueError as a validation error with the field path
        raise ValueError(str(e)) from None


Num = Annotated[float | str, AfterValidator(_check)]
Vec3 = tuple[Num, Num, Num]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(1.0, gt=0, description="relative duration of this step")


class Waypoints(_Step):
    kind: Literal["waypoints"] = "waypoints"
    points: list[Vec3] = Field(min_length=1, description="positions of the slave origin, master frame, m")
    quaternions: list[tuple[float, float, float, float]] | None = Field(
        None, description="optional slave orientation at each point (master frame, x y z w), slerped between; "
        "None keeps the orientation")

    @model_validator(mode="after")
    def _same_length(self) -> Waypoints:
        if self.quaternions is not None and len(self.quaternions) != len(self.points):
            raise ValueError("waypoints: quaternions must match points one to one")
        return self


class Line(_Step):
    kind: Literal["line"] = "line"
    direction: Vec3 = Field(description="direction in the master frame (normalised when used)")
    distance: Num = Field(description="m")


class Arc(_Step):
    kind: Literal["arc"] = "arc"
    axis: Vec3 = Field(description="rotation axis in the master frame")
    pivot: Vec3 = Field(description="a point on the axis, master frame, m")
    angle_deg: Num


class Rotation(_Step):
    kind: Literal["rotation"] = "rotation"
    axis: Vec3 = Field(description="axis in the master frame, through the slave origin")
    angle_deg: Num


class Tilt(_Step):
    kind: Literal["tilt"] = "tilt"
    axis: Vec3 = Field(description="axis in the slave frame, through the slave origin")
    angle_deg: Num


class Spiral(_Step):
    kind: Literal["spiral"] = "spiral"
    axis: Vec3 = Field(description="spiral axis in the master frame")
    center: Vec3 = Field(description="a point on the axis, master frame, m")
    turns: Num
    pitch: Num = Field(0.0, description="advance along the axis per turn, m")
    growth: Num = Field(0.0, description="radius change per turn, m")


class Zigzag(_Step):
    kind: Literal["zigzag"] = "zigzag"
    direction: Vec3 = Field(description="travel direction, master frame")
    across: Vec3 = Field(description="oscillation direction, master frame (made orthogonal to direction)")
    length: Num = Field(description="travel distance, m")
    amplitude: Num = Field(description="oscillation half-width, m")
    cycles: Num


Step = Annotated[Waypoints | Line | Arc | Rotation | Tilt | Spiral | Zigzag, Field(discriminator="kind")]
STEP_KINDS = ("waypoints", "line", "arc", "rotation", "tilt", "spiral", "zigzag")


class StartPose(BaseModel):
    model_config = ConfigDict(extra="forbid")
    position: Vec3 = Field(description="slave origin in the master frame at t=0, m")
    quaternion: tuple[float, float, float, float] = Field(
        (0.0, 0.0, 0.0, 1.0), description="slave orientation in the master frame at t=0 (x, y, z, w)"
    )


class TrajectoryProgram(BaseModel):
    """T_master_slave(t), t in [0, 1]: a start pose and steps. Pure data; see instantiate.py."""

    model_config = ConfigDict(extra="forbid")
    family: str = Field("", description="name of the family this program was fitted from, e.g. 'arc'")
    start: StartPose
    steps: list[Step] = Field(default_factory=list)
    description: str = ""
