"""Where a rigid object seen before an action lies after it: its earlier cloud registered onto what is
seen now.

The review of a turned handle or an opened door must not take the hand's word for how far the part
moved: a grasp that slips about the part (a gripper turning 72 degrees around a lever that turned 29)
reports the hand's motion, not the part's. Registering the part's earlier cloud onto its new one
measures the part itself. ICP only converges near its start, so it starts from several priors (the
poses the part would have along the planned motion, the pose the hand implies, the pose before), each
also moved so that the earlier cloud's centre lies on the new one's, plus turns about the vertical
through that centre (a plan scaled by a revision puts its poses centimetres off a part that turned
about its own hinge), and keeps the best-supported answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial.transform import Rotation as Rot

from core.geometry import invert_transform, rotation_angle, transform_points
from tools.perception.tracking import ObjectTracker

# a registration is trusted only where most of what is seen now lies on the earlier cloud, close to it
MIN_INLIER_SHARE = 0.6
MAX_MEDIAN_M = 0.004
TIE_SHARE = 0.05  # registrations this close in support are equally good answers
YAW_STEP_DEG = 15.0  # spacing of the turns about the vertical tried as priors (ICP pulls in ~+-10 deg)


class RegisteredPose(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    T_world_object: np.ndarray = Field(description="(4, 4) the object's pose now, in its earlier frame's convention")
    inlier_share: float = Field(description="share of the points seen now within 2 voxels of the posed earlier cloud")
    median_m: float = Field(description="median distance of the points seen now to the posed earlier cloud, m")
    prior_index: int = Field(description="which start the winning registration came from: the priors given, "
                             "then the same centred, then turns about the vertical")

    @property
    def confident(self) -> bool:
        return self.inlier_share >= MIN_INLIER_SHARE and self.median_m <= MAX_MEDIAN_M


def register_after(
    before_points: np.ndarray,
    T_world_before: np.ndarray,
    after_points: np.ndarray,
    priors: Sequence[np.ndarray],
    voxel: float = 0.004,
    seed: int = 0,
    tie_share: float = TIE_SHARE,
) -> RegisteredPose | None:
    """The pose that lays the earlier cloud (`before_points`, world, seen with the object at
    `T_world_before`) best onto `after_points` (world), by ICP from each prior world pose; None when too
    little is seen now to register. Registrations within `tie_share` of the best support count as
    equally good, and the one nearest the priors wins: a whole object whose telling part is small (a
    pan's handle, 5 % of its points) needs a tighter tie than a part seen in part."""
    if len(after_points) < 25 or len(before_points) < 25 or not priors:
        return None
    before_points = np.asarray(before_points, float)
    after_points = np.asarray(after_points, float)
    T_world_before = np.asarray(T_world_before, float)
    starts = [np.asarray(p, float) for p in priors]
    # the same priors with the posed earlier cloud's centre put on the new cloud's centre
    c_before_obj = transform_points(invert_transform(T_world_before), before_points).mean(axis=0)
    c_after = after_points.mean(axis=0)

    def centred(T: np.ndarray) -> np.ndarray:
        T = T.copy()
        T[:3, 3] += c_after - (T[:3, :3] @ c_before_obj + T[:3, 3])
        return T

    starts += [centred(T) for T in starts]
    for yaw in np.arange(-180.0, 180.0, YAW_STEP_DEG):
        T = T_world_before.copy()
        T[:3, :3] = Rot.from_euler("z", yaw, degrees=True).as_matrix() @ T[:3, :3]
        starts.append(centred(T))
    tracker = ObjectTracker("registered", before_points, T_world_before, voxel=voxel, seed=seed)
    cands: list[RegisteredPose] = []
    for i, prior in enumerate(starts):
        step = tracker.step(after_points, prior=prior)
        med, inl = tracker.residual(after_points, step.T_world_object)
        cands.append(RegisteredPose(T_world_object=step.T_world_object, inlier_share=inl, median_m=med, prior_index=i))
    top = max(c.inlier_share for c in cands)
    # a part seen in part fits several poses about as well (a lever's half turned the other way): of the
    # well-supported ones, the one nearest what the priors expected
    near = [c for c in cands if c.inlier_share >= top - tie_share]

    def surprise(c: RegisteredPose) -> float:
        return min(rotation_angle(c.T_world_object[:3, :3], p[:3, :3])
                   + float(np.linalg.norm(c.T_world_object[:3, 3] - p[:3, 3])) / 0.05 for p in starts[:len(priors)])

    return min(near, key=lambda c: (surprise(c), c.median_m))
