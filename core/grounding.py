"""What grounding a demo produces (DESIGN §1 step 1, §4): objects, segments and interactions.

The grounder (agents/grounder.py) turns one demo folder into a `GroundedDemo`; the skill learner
consumes it. Conventions:

- Object frames are *canonical*: origin at the centre of the object's oriented bounding box at the
  first frame, z up along gravity, x/y along the box's horizontal edges with x the horizontal axis
  pointing most towards the robot base (the world origin), so the same object gets the same frame in
  every scene. `bbox_size` is the extent along (x, y, z) of that frame.
- Moving parts (e.g. "microwave_door") name their `parent` ("microwave"); their interactions are
  expressed in the parent's frame.
- Gripper frames follow the Panda TCP: origin between the fingertips, y = closing axis (thumb ->
  index), z = approach axis (out of the palm), x = y cross z.
- Phase "grasping": the hand reaches and takes `master` (slave is None). Phase "manipulation": the
  held `slave` acts on `master` (slave may be "hand" when nothing is held, e.g. a push); for a moving
  part the slave is the part and the master its parent.

On disk a grounded demo lives in `<demo>/grounded/`: `grounded.json` (this model) plus `tracks.npz`
(per-frame arrays: object poses, gripper poses and widths), written atomically (temp folder, rename).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.contents import SegmentContents
from core.errors import DemoFormatError
from core.geometry import Pose

GROUNDED_DIR = "grounded"
GROUNDED_JSON = "grounded.json"
TRACKS_NPZ = "tracks.npz"
HAND = "hand"  # the slave name used when the hand itself acts (nothing held)


class Phase(StrEnum):
    grasping = "grasping"
    manipulation = "manipulation"


class ObjectDescriptor(BaseModel):
    """One perceived object (or moving part) as the skill learner and adapter see it."""

    name: str
    T_world_object: Pose = Field(description="canonical object frame in the world at the first frame")
    bbox_size: tuple[float, float, float] = Field(description="extent (m) along the canonical x, y, z axes")
    color_rgb: tuple[float, float, float] = Field(description="mean colour, 0..255 per channel")
    crop_path: str | None = Field(None, description="image crop, relative to the grounded/ folder")
    parent: str | None = Field(None, description="fixed body a moving part belongs to, e.g. microwave")
    n_points: int = Field(0, ge=0, description="points in the first-frame cloud")


class SpatialRelation(BaseModel):
    subject: str
    relation: str = Field(description="on | in | near | left_of | right_of | in_front_of | behind | part_of")
    object: str


class ContactEvent(BaseModel):
    """A detected contact change between two clouds (distance crossing 2 cm); `a` < `b` by name."""

    frame: int
    time: float
    kind: Literal["begin", "end"]
    a: str
    b: str


class Segment(BaseModel):
    """One subtask of the demo, between two contact boundaries."""

    index: int = Field(ge=0)
    start_frame: int = Field(ge=0)
    end_frame: int = Field(ge=0)
    start_time: float
    end_time: float
    phase: Phase
    master: str
    slave: str | None = None
    text: str = ""
    keyframes: list[int] = Field(default_factory=list, description="frames that summarise the segment")
    hand_path_m: float = Field(0.0, ge=0, description="length of the hand's path during the segment")
    master_contents: SegmentContents | None = Field(
        None, description="what the master holds at the segment's start and end frames (tools.perception.contents); "
        "manipulation segments only; None in groundings older than grounder version 11")
    slave_contents: SegmentContents | None = Field(
        None, description="the same for the slave (None for the hand)")


class GraspInteraction(BaseModel):
    """How the hand took an object: the gripper pose in the object's frame at contact."""

    kind: Literal["grasp"] = "grasp"
    segment: int
    object: str
    T_object_gripper: Pose
    width: float = Field(ge=0, description="gripper opening (m) at contact")
    frame: int
    time: float


class ManipulationInteraction(BaseModel):
    """How a held slave moved relative to a master: T_master_slave over time."""

    kind: Literal["manipulation"] = "manipulation"
    segment: int
    master: str
    slave: str
    frames: list[int]
    times: list[float]
    trajectory: list[Pose] = Field(description="T_master_slave at each of `times`")
    T_slave_gripper: Pose = Field(description="gripper in the slave frame (constant while held; median)")

    def matrices(self) -> np.ndarray:
        return np.stack([p.matrix() for p in self.trajectory])


Interaction = Annotated[GraspInteraction | ManipulationInteraction, Field(discriminator="kind")]


# --- reasoner questions and answers (agents/grounder.GroundingReasoner) -------------------------


class TaskQuestion(BaseModel):
    """Asked once per demo: what task is shown, and how are the objects arranged?"""

    task_hint: str = Field("", description="task text from the demo's metadata, may be empty")
    objects: list[ObjectDescriptor]
    relations: list[SpatialRelation] = Field(default_factory=list, description="measured at the first frame")
    image_path: str | None = Field(None, description="first frame, for a VLM")


class TaskRecognition(BaseModel):
    task: str
    objects: list[str]
    relations: list[SpatialRelation] = Field(default_factory=list)


class SegmentQuestion(BaseModel):
    """Asked per segment: which phase, which objects, what is happening? Facts are geometric."""

    task: str
    segment_index: int
    start_frame: int
    end_frame: int
    objects: list[ObjectDescriptor]
    held_before: str | None = Field(None, description="object held by the hand at the segment start")
    held_after: str | None = Field(None, description="object held by the hand at the segment end")
    grasped_at_end: str | None = Field(None, description="object the hand closes on at the segment end")
    pushed: str | None = Field(None, description="object the hand moves by pushing, without closing on it")
    contacts_with_held: list[str] = Field(default_factory=list, description="objects the held one touches")
    moved_m: dict[str, float] = Field(default_factory=dict, description="object displacement in the segment")
    rotated_deg: dict[str, float] = Field(default_factory=dict, description="object rotation in the segment")
    approach_target: str | None = Field(None, description="object the hand (or held object) ends nearest to")
    end_relations: dict[str, str] = Field(
        default_factory=dict, description="held object's relation to each object at the end: on | in | near"
    )
    contact_counts: dict[str, int] = Field(default_factory=dict, description="contacts begun by the held object")
    part_opening_m: float | None = Field(
        None, description="for a held moving part: change of its distance from the parent's centre (+ = away)"
    )
    parents: dict[str, str] = Field(default_factory=dict, description="moving part -> parent body")
    hold_part: Literal["to", "on", "away"] | None = Field(
        None, description="a hold cut at a tool use: carried to `hold_partner`, used on it, or carried away from it"
    )
    hold_partner: str | None = Field(None, description="the object the held one is used on (a cut hold)")
    fixed_objects: list[str] = Field(
        default_factory=list, description="objects that stayed put during the whole demo (landmarks; not moving parts)"
    )
    end_distances_m: dict[str, float] = Field(
        default_factory=dict, description="held object's surface distance to each other object at the segment end"
    )
    released_on_table: bool = Field(False, description="the held object is let go at the end, resting on the table")
    image_paths: list[str] = Field(default_factory=list)


class SegmentLabel(BaseModel):
    text: str
    phase: Phase
    master: str
    slave: str | None = None


# --- the grounded demo -------------------------------------------------------------------------


class Tracks(BaseModel):
    """Per-frame arrays (stored in tracks.npz, not in the JSON)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    times: np.ndarray  # (T,)
    object_poses: dict[str, np.ndarray] = Field(default_factory=dict)  # name -> (T, 4, 4) T_world_object
    object_valid: dict[str, np.ndarray] = Field(default_factory=dict)  # name -> (T,) bool, tracked
    gripper_poses: np.ndarray | None = None  # (T, 4, 4) T_world_gripper from the hand
    gripper_width: np.ndarray | None = None  # (T,)
    hand_visible: np.ndarray | None = None  # (T,) bool


class GroundedDemo(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    demo_id: str
    demo_dir: str = ""
    task: str
    fps: float
    n_frames: int
    objects: list[ObjectDescriptor]
    recognition: TaskRecognition | None = None
    segments: list[Segment]
    interactions: list[Interaction]
    events: list[ContactEvent] = Field(default_factory=list)
    sources: dict[str, str] = Field(
        default_factory=dict,
        description='where each result came from, e.g. {"segmenter": "perfect segmenter (simulator channel)"}',
    )
    timings_s: dict[str, float] = Field(default_factory=dict)
    grounder_version: str = Field(
        "", description="the grounder's version stamp (agents.grounder.GROUNDER_VERSION); '' = written before stamps"
    )
    tracks: Tracks | None = Field(None, exclude=True)

    def object(self, name: str) -> ObjectDescriptor:
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(f"no object {name!r} in grounded demo {self.demo_id} (have {[o.name for o in self.objects]})")

    def grasps(self) -> list[GraspInteraction]:
        return [i for i in self.interactions if isinstance(i, GraspInteraction)]

    def manipulations(self) -> list[ManipulationInteraction]:
        return [i for i in self.interactions if isinstance(i, ManipulationInteraction)]

    # --- persistence ---------------------------------------------------------------------------

    def save(self, demo_dir: Path | None = None, extra_files: dict[str, bytes] | None = None) -> Path:
        """Write `<demo_dir>/grounded/` atomically (temp folder, then rename); returns that folder.

        `extra_files` (relative path -> bytes, e.g. crops and renders) land in the same folder.
        """
        base = Path(demo_dir if demo_dir is not None else self.demo_dir)
        if not base.is_dir():
            raise DemoFormatError(f"{base}: not a folder; cannot write {GROUNDED_DIR}/")
        target = base / GROUNDED_DIR
        tmp = Path(tempfile.mkdtemp(prefix=f".{GROUNDED_DIR}.partial-", dir=base))
        try:
            (tmp / GROUNDED_JSON).write_text(self.model_dump_json(indent=1))
            if self.tracks is not None:
                _save_tracks(tmp / TRACKS_NPZ, self.tracks)
            for rel, data in (extra_files or {}).items():
                p = tmp / rel
                if tmp.resolve() not in p.resolve().parents:
                    raise ValueError(f"extra file {rel!r} escapes the grounded folder")
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
            old = None
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{GROUNDED_DIR}.old-", dir=base))
                os.replace(target, old / GROUNDED_DIR)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, path: Path) -> GroundedDemo:
        """Load from a demo folder or its grounded/ folder."""
        path = Path(path)
        folder = path if (path / GROUNDED_JSON).is_file() else path / GROUNDED_DIR
        js = folder / GROUNDED_JSON
        if not js.is_file():
            raise DemoFormatError(f"{js}: missing; run `python main.py ground {path}` first")
        try:
            gd = cls.model_validate_json(js.read_text())
        except (ValidationError, ValueError) as e:
            raise DemoFormatError(f"{js}: invalid grounded demo: {e}") from e
        npz = folder / TRACKS_NPZ
        if npz.is_file():
            gd.tracks = _load_tracks(npz)
        return gd


def _save_tracks(path: Path, tr: Tracks) -> None:
    arrays: dict[str, np.ndarray] = {"times": np.asarray(tr.times, dtype=np.float64)}
    names = sorted(tr.object_poses)
    arrays["object_names"] = np.array(names, dtype=str)
    for i, n in enumerate(names):
        arrays[f"obj{i}_poses"] = np.asarray(tr.object_poses[n], dtype=np.float64)
        arrays[f"obj{i}_valid"] = np.asarray(tr.object_valid.get(n, np.ones(len(tr.times), bool)), dtype=bool)
    for key in ("gripper_poses", "gripper_width", "hand_visible"):
        v = getattr(tr, key)
        if v is not None:
            arrays[key] = np.asarray(v)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _load_tracks(path: Path) -> Tracks:
    try:
        with np.load(path) as d:
            names = [str(n) for n in d["object_names"]]
            return Tracks(
                times=d["times"],
                object_poses={n: d[f"obj{i}_poses"] for i, n in enumerate(names)},
                object_valid={n: d[f"obj{i}_valid"] for i, n in enumerate(names)},
                gripper_poses=d["gripper_poses"] if "gripper_poses" in d else None,
                gripper_width=d["gripper_width"] if "gripper_width" in d else None,
                hand_visible=d["hand_visible"] if "hand_visible" in d else None,
            )
    except (OSError, KeyError, ValueError) as e:
        raise DemoFormatError(f"{path}: unreadable tracks: {e}") from e
