"""The skill learner (DESIGN §1.2): 1..N grounded demos of one task -> skills + the task's plan -> memory.

1. Align the demos' segments by order and label: the reference is the sequence of (phase, master,
   slave) with the most steps that at least two demos show (ties: the most common sequence); each
   demo's segments are matched to it in order (a demo missing a step simply does not contribute to it).
2. Per subtask, ask the reasoner for the hierarchical constraint:
   grasping -> `group_grasps` (grasps as bbox fractions in the object's canonical frame);
   manipulation -> `fit_trajectory` (10 keypoints of T_master_slave per demo, both objects' sizes; for a
   motion that turns back and forth in most demos (scrubbing), 40 lightly smoothed ones, since 10
   cannot sample the strokes; its zigzag is then measured phase-free, see tools.constraints.fit).
3. Check each answer geometrically: the program is instantiated with each demo's sizes and its
   keypoint error against the demonstrated trajectory must stay under `max_fit_error_m`; grasp
   regions must contain the demonstrated grasps. A failing subtask raises `SkillLearningError`
   naming it, and NOTHING is stored (skills and plan go to memory in one transaction at the end).
   One exception, said in the notes and the semantic constraint: when the demos end at clearly
   different places relative to the master (a brush put back wherever it was picked up), the place
   is a free choice, so the shape is checked with each demo's own end (fit.fit_error `free_end`).
4. A manipulation whose demos consistently moved contents from the slave into the master (a pour:
   the master's seen surface rose) stores the expected transfer (agents/skill_contents.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agents.reasoning.protocol import Reasoner
from agents.reasoning.questions import GraspQuestion, GraspSample, KeypointTrack, TrajectoryQuestion
from agents.skill_contents import content_transfer
from core.errors import VLMimicError
from core.grounding import HAND, GraspInteraction, GroundedDemo, ManipulationInteraction, Phase, Segment
from core.skills import (
    ManipulationConstraint,
    PlanStep,
    Provenance,
    Skill,
    SkillObject,
    TaskPlan,
)
from tools.constraints.fit import (
    FREE_PLACE_SPREAD_M,
    N_KEYPOINTS,
    N_SWEEP_KEYPOINTS,
    end_spread,
    fit_error,
    keypoints,
    oscillates,
    sweep_keypoints,
)
from tools.constraints.grasp import containment, to_fractions

MAX_FIT_ERROR_M = 0.02
MIN_CONTAINMENT = 0.6
OUTLIER_FACTOR = 3.0  # a demo whose fit error is this many times the others' median is left out ...
OUTLIER_MIN_M = 0.015  # ... when its error is also above this
HAND_SIZE = (0.08, 0.02, 0.1)
MIN_STEP_SUPPORT = 2  # demos (all of them when fewer) that must show a step for it to enter the plan


class SkillLearningError(VLMimicError):
    """A skill could not be learned (the message names the subtask and why); nothing was stored."""


class LearnResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    task: str
    plan: TaskPlan
    skills: list[Skill]
    timings_s: dict[str, float] = Field(default_factory=dict)
    reasoner: str = ""
    notes: list[str] = Field(default_factory=list)


Key = tuple[str, str, str | None]


def _key(s: Segment) -> Key:
    return (str(s.phase), s.master, s.slave)


def align_segments(demos: Sequence[GroundedDemo]) -> tuple[list[Segment], list[list[Segment | None]]]:
    """(reference segments, per demo the segment matched to each reference step or None)."""
    seqs = [tuple(_key(s) for s in d.segments if _interaction_of(d, s) is not None) for d in demos]
    if not any(seqs):
        raise SkillLearningError("no demo has a segment with an interaction; nothing to learn (ground them first?)")
    counts = Counter(s for s in seqs if s)
    need = min(MIN_STEP_SUPPORT, len(demos))

    def score(cand: tuple[Key, ...]) -> tuple[int, int, int]:
        support = np.sum([[k is not None for k in _match(cand, s)] for s in seqs], axis=0)
        return int(np.sum(support >= need)), -int(np.sum(support < need)), counts[cand]

    # The reference: the sequence with the most steps that several demos show, then the fewest steps
    # only one demo shows, then the most common. A short step that some demos lost (a faucet turn whose
    # hand path fell under the grounder's 10 cm rule) is thus not outvoted by the demos lacking it,
    # while a spurious segment of a single demo still cannot enter the plan.
    ref_seq = max(counts, key=score)
    ref_demo = demos[seqs.index(ref_seq)]
    ref = [s for s in ref_demo.segments if _interaction_of(ref_demo, s) is not None]
    matched: list[list[Segment | None]] = []
    for d in demos:
        segs = [s for s in d.segments if _interaction_of(d, s) is not None]
        matched.append([None if k is None else segs[k] for k in _match(ref_seq, tuple(_key(s) for s in segs))])
    return ref, matched


def _match(ref: Sequence[Key], seq: Sequence[Key]) -> list[int | None]:
    """Per reference step, the index of the demo's segment matched to it in order (or None)."""
    out: list[int | None] = []
    j = 0
    for r in ref:
        found = None
        for k in range(j, len(seq)):
            if seq[k] == r:
                found, j = k, k + 1
                break
        out.append(found)
    return out


def _interaction_of(d: GroundedDemo, s: Segment) -> GraspInteraction | ManipulationInteraction | None:
    for i in d.interactions:
        if i.segment == s.index:
            if s.phase == Phase.grasping and isinstance(i, GraspInteraction):
                return i
            if s.phase == Phase.manipulation and isinstance(i, ManipulationInteraction):
                return i
    return None


def _skill_object(d: GroundedDemo, name: str | None) -> SkillObject | None:
    if name is None:
        return None
    if name == HAND:
        return SkillObject(name=HAND, bbox_size=HAND_SIZE)
    try:
        desc = d.object(name)
    except KeyError as e:
        raise SkillLearningError(str(e)) from None
    root = str(Path(d.demo_dir) / "grounded") if d.demo_dir else None
    return SkillObject.from_descriptor(desc, crop_root=root)


def _mean_object(objs: list[SkillObject]) -> SkillObject:
    size = tuple(float(v) for v in np.mean([o.bbox_size for o in objs], axis=0))
    colour = tuple(float(v) for v in np.mean([o.color_rgb for o in objs], axis=0))
    return objs[0].model_copy(update={"bbox_size": size, "color_rgb": colour})


def load_demos(demos: Sequence[Path | GroundedDemo], reasoner: Reasoner | None = None) -> list[GroundedDemo]:
    """GroundedDemos from objects or folders.

    A demo folder is grounded unless its grounded/ was written by this grounder version (a stale one,
    from an older grounder, is grounded again); a grounding with no demo to ground again is loaded as is.
    """
    from agents.grounder import load_or_ground

    out = []
    for d in demos:
        if isinstance(d, GroundedDemo):
            out.append(d)
            continue
        p = Path(d)
        if not (p / "meta.json").is_file() and ((p / "grounded.json").is_file()
                                               or (p / "grounded" / "grounded.json").is_file()):
            out.append(GroundedDemo.load(p))
        else:
            out.append(load_or_ground(p, reasoner))  # type: ignore[arg-type]
    return out


def learn_task(
    demos: Sequence[Path | GroundedDemo],
    task: str | None = None,
    goal: str = "",
    paraphrases: Sequence[str] = (),
    reasoner: Reasoner | None = None,
    memory: Any = None,
    *,
    max_fit_error_m: float = MAX_FIT_ERROR_M,
    render_dir: Path | None = None,
) -> LearnResult:
    """Learn one skill per subtask from demos of one task and store them with the plan (atomically)."""
    if reasoner is None:
        from agents.reasoning import make_reasoner

        reasoner = make_reasoner("offline")
    if not demos:
        raise SkillLearningError("no demos given")
    t0 = time.perf_counter()
    gds = load_demos(demos, reasoner)
    t_ground = time.perf_counter() - t0
    tasks = Counter(g.task for g in gds if g.task)
    task_name = task or (tasks.most_common(1)[0][0] if tasks else "task")
    goal = goal or task_name.replace("_", " ")
    ref, matched = align_segments(gds)
    notes = []
    skills: list[Skill] = []
    steps: list[PlanStep] = []
    t1 = time.perf_counter()
    for i, seg in enumerate(ref):
        rows = [(g, row[i]) for g, row in zip(gds, matched, strict=True) if row[i] is not None]
        if len(rows) < len(gds):
            notes.append(f"step {i} ({seg.text or seg.phase}): {len(gds) - len(rows)} demo(s) lack it")
        subtask = seg.text or f"{seg.phase} {seg.master}"
        sid = Skill.make_id(task_name, i, subtask)
        if seg.phase == Phase.grasping:
            skill = _learn_grasp(sid, task_name, subtask, rows, reasoner, render_dir)
        else:
            skill = _learn_manipulation(sid, task_name, subtask, rows, reasoner, render_dir, max_fit_error_m, notes)
        if skill.provenance.excluded_demos:
            notes.append(f"step {i} ({subtask}): left out demo(s) {', '.join(skill.provenance.excluded_demos)} "
                         "whose trajectory disagrees with the others")
        skills.append(skill)
        steps.append(PlanStep(index=i, subtask=subtask, skill_id=sid, phase=seg.phase, master=seg.master,
                              slave=seg.slave))
    plan = TaskPlan(task=task_name, goal=goal, paraphrases=[p for p in paraphrases if p and p != goal],
                    steps=steps, demo_ids=[g.demo_id for g in gds])
    t_learn = time.perf_counter() - t1
    if memory is not None:
        memory.learn(skills, plan)
    return LearnResult(
        task=task_name, plan=plan, skills=skills, notes=notes, reasoner=getattr(reasoner, "name", ""),
        timings_s={"load_or_ground": round(t_ground, 3), "learn": round(t_learn, 3),
                   "total": round(time.perf_counter() - t0, 3)},
    )


def _learn_grasp(sid: str, task: str, subtask: str, rows: list[tuple[GroundedDemo, Segment]],
                 reasoner: Reasoner, render_dir: Path | None) -> Skill:
    samples, poses, objs, sizes = [], [], [], []
    for g, seg in rows:
        inter = _interaction_of(g, seg)
        assert isinstance(inter, GraspInteraction)
        obj = _skill_object(g, inter.object)
        assert obj is not None
        T = inter.T_object_gripper
        frac = to_fractions(np.asarray(T.position), obj.bbox_size)
        approach = T.rotation.as_matrix()[:, 2]
        samples.append(GraspSample(demo_id=g.demo_id, position_frac=tuple(float(v) for v in frac),
                                   approach=tuple(float(v) for v in approach), quaternion=T.quaternion,
                                   width=inter.width))
        poses.append(T)
        objs.append(obj)
        sizes.append(obj.bbox_size)
    obj = _mean_object(objs)
    images = []
    if render_dir is not None:
        from tools.constraints.render import render_grasps

        images.append(str(render_grasps(obj.bbox_size, np.array([np.asarray(p.position) for p in poses]),
                                        np.array([s.approach for s in samples]), Path(render_dir) / f"{sid}.grasps.png",
                                        title=subtask)))
    ans = reasoner.group_grasps(GraspQuestion(subtask=subtask, object=obj, grasps=samples, image_paths=images))
    # containment measured per demo with its own object size
    inside = [containment(ans.constraint, [p], s) for p, s in zip(poses, sizes, strict=True)]
    share = float(np.mean(inside))
    if share < MIN_CONTAINMENT:
        raise SkillLearningError(f"subtask {subtask!r}: the grasp regions hold only {share:.0%} of the demonstrated "
                                 f"grasps (need {MIN_CONTAINMENT:.0%}); reasoner {getattr(reasoner, 'name', '')}")
    return Skill(
        id=sid, task=task, subtask=subtask, phase=Phase.grasping, master=obj, slave=None, semantic=ans.semantic,
        grasp=ans.constraint,
        provenance=Provenance(demo_ids=[g.demo_id for g, _ in rows], containment=share,
                              reasoner=ans.source or getattr(reasoner, "name", "")),
    )


def _learn_manipulation(sid: str, task: str, subtask: str, rows: list[tuple[GroundedDemo, Segment]],
                        reasoner: Reasoner, render_dir: Path | None, max_err: float,
                        notes: list[str] | None = None) -> Skill:
    from scipy.spatial.transform import Rotation as Rot

    notes = notes if notes is not None else []
    tracks, trajs, size_list, masters, slaves, grippers = [], [], [], [], [], []
    demo_mats = []
    for g, seg in rows:
        inter = _interaction_of(g, seg)
        if isinstance(inter, ManipulationInteraction) and len(inter.trajectory) >= 2:
            demo_mats.append(inter.matrices())
    # one keypoint count for all demos of the subtask (their keypoints are averaged below)
    sweep = 2 * sum(oscillates(m) for m in demo_mats) > len(demo_mats)
    for g, seg in rows:
        inter = _interaction_of(g, seg)
        assert isinstance(inter, ManipulationInteraction)
        if len(inter.trajectory) < 2:
            raise SkillLearningError(f"subtask {subtask!r}: demo {g.demo_id} has a trajectory of "
                                     f"{len(inter.trajectory)} pose(s)")
        master = _skill_object(g, inter.master)
        slave = _skill_object(g, inter.slave)
        assert master is not None and slave is not None
        mats = inter.matrices()
        kp = sweep_keypoints(mats, N_SWEEP_KEYPOINTS) if sweep else keypoints(mats, N_KEYPOINTS)
        tracks.append(KeypointTrack(
            demo_id=g.demo_id, master_size=master.bbox_size, slave_size=slave.bbox_size,
            positions=[tuple(float(v) for v in p) for p in kp[:, :3, 3]],
            quaternions=[tuple(float(v) for v in q) for q in Rot.from_matrix(kp[:, :3, :3]).as_quat()],
        ))
        trajs.append(mats)
        size_list.append({"master": master.bbox_size, "slave": slave.bbox_size})
        masters.append(master)
        slaves.append(slave)
        grippers.append(inter.T_slave_gripper)
    master, slave = _mean_object(masters), _mean_object(slaves)
    images = []
    if render_dir is not None:
        from tools.constraints.render import render_trajectory

        images.append(str(render_trajectory(master.bbox_size, [np.array(t.positions) for t in tracks],
                                            Path(render_dir) / f"{sid}.trajectory.png", title=subtask)))
    keep = list(range(len(tracks)))
    excluded: list[str] = []
    while True:
        ans = reasoner.fit_trajectory(TrajectoryQuestion(subtask=subtask, master=master, slave=slave,
                                                         tracks=[tracks[k] for k in keep], image_paths=images))
        try:
            report = fit_error(ans.program, [trajs[k] for k in keep], [size_list[k] for k in keep], anchored=True)
            free = fit_error(ans.program, [trajs[k] for k in keep], [size_list[k] for k in keep])
        except VLMimicError as e:
            raise SkillLearningError(f"subtask {subtask!r}: the trajectory program cannot be instantiated: {e}") from e
        per = np.asarray(report.per_demo_median_m)
        worst = int(np.argmax(per))
        others = np.delete(per, worst)
        # one demo far off the others (a tracking glitch, a different motion): leave it out and ask again
        if len(keep) > 2 and per[worst] > max(OUTLIER_MIN_M, OUTLIER_FACTOR * float(np.median(others))):
            excluded.append(tracks[keep[worst]].demo_id)
            keep.pop(worst)
            continue
        break
    place_spread = None
    if report.measure == "keypoints" and slave.parent is None and slave.name != HAND:
        # demos that end at clearly different places relative to the master (a brush put back wherever it
        # was picked up): the place is the demonstrator's free choice, not a function of the master, and
        # no program can hit every demo's; the motion's shape still must match, with each demo's own end.
        # Only for a free object: how far a door or a drawer ends up open is the motion itself.
        spread = end_spread([trajs[k] for k in keep])
        if spread > FREE_PLACE_SPREAD_M:
            both = fit_error(ans.program, [trajs[k] for k in keep], [size_list[k] for k in keep], anchored=True,
                             free_end=True)
            if both.median_m < report.median_m:
                place_spread, report = spread, both
                notes.append(f"{subtask}: the demos end at places {spread * 100:.1f} cm apart (median from their "
                             f"mean) relative to the {master.name}: a free choice of place, not a target; the "
                             f"program ends at their mean place and its fit ({both.median_m * 1000:.1f} mm) is "
                             "measured with each demo's own end")
    transfer = content_transfer([seg for _, seg in rows], slave_free=slave.parent is None and slave.name != HAND)
    if transfer is not None:
        notes.append(f"{subtask}: the {master.name} gained contents in {transfer.demos} of the {transfer.of_demos} "
                     f"demos that show its inside (median {transfer.master_gain_m3 * 1e6:.0f} cm^3): the review "
                     f"checks it receives at least {transfer.min_share:.0%} of that")
    if report.median_m > max_err:
        raise SkillLearningError(
            f"subtask {subtask!r}: trajectory fit error {report.median_m * 100:.1f} cm is over the "
            f"{max_err * 100:.1f} cm threshold (program family {ans.program.family or '?'}, reasoner "
            f"{getattr(reasoner, 'name', '')}); nothing was stored"
        )
    tracks = [tracks[k] for k in keep]
    grippers = [grippers[k] for k in keep]
    if excluded:  # the objects as the demos the program was fitted to saw them
        master, slave = _mean_object([masters[k] for k in keep]), _mean_object([slaves[k] for k in keep])
    from core.geometry import Pose

    g_pos = np.mean([p.position for p in grippers], axis=0)
    g_rot = Rot.from_quat([p.quaternion for p in grippers]).mean()
    mean_kp = np.mean([np.array(t.positions) for t in tracks], axis=0)
    ref = tracks[0]
    if report.measure == "sweep":
        # strokes of different demos fall at different path fractions: their mean would be a blob in the
        # middle of the pan; the demo the program reproduces best stands for the demonstrated sweep
        ref = tracks[int(np.argmin(report.per_demo_median_m))]
        mean_kp = np.array(ref.positions)
    semantic = ans.semantic
    if place_spread is not None:
        semantic += (f" (at a free place near the {master.name}: the demos chose places "
                     f"{place_spread * 100:.0f} cm apart)")
    return Skill(
        id=sid, task=task, subtask=subtask, phase=Phase.manipulation, master=master, slave=slave,
        semantic=semantic,
        manipulation=ManipulationConstraint(
            program=ans.program, T_slave_gripper=Pose.from_rotation(g_rot, g_pos),
            keypoints=[Pose(position=tuple(float(v) for v in p), quaternion=ref.quaternions[k])
                       for k, p in enumerate(mean_kp)],
            free_place_spread_m=None if place_spread is None else round(float(place_spread), 4),
            content_transfer=transfer,
        ),
        provenance=Provenance(demo_ids=[t.demo_id for t in tracks], fit_error_m=report.median_m,
                              fit_error_start_m=free.median_m, excluded_demos=excluded,
                              reasoner=ans.source or getattr(reasoner, "name", "")),
    )


# --- command-line helpers ---------------------------------------------------------------------


def demo_folders(paths: Sequence[Path]) -> list[Path]:
    """Demo folders from arguments that are demo folders or folders holding demo folders (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / "meta.json").is_file() or (p / "grounded" / "grounded.json").is_file():
            out.append(p)
            continue
        subs = sorted(d for d in p.iterdir() if d.is_dir() and ((d / "meta.json").is_file()
                                                                 or (d / "grounded" / "grounded.json").is_file())) \
            if p.is_dir() else []
        if not subs:
            raise SkillLearningError(f"{p}: not a demo folder (no meta.json) and holds none")
        out.extend(subs)
    return out


def learn_from_dirs(paths: Sequence[Path], task: str | None, reasoner: Reasoner, memory: Any) -> LearnResult:
    """`python main.py learn`: the sim task's goal text and paraphrases when the task is a sim task."""
    demos = demo_folders(paths)
    gds = load_demos(demos, reasoner)
    known = Counter(g.task for g in gds if g.task)
    name = task or (known.most_common(1)[0][0] if known else None)
    goal, paraphrases = (task or "").replace("_", " "), []
    try:
        from sim.tasks import TASKS

        sim_task = TASKS.get(name or "") or next((t for t in TASKS.values() if t.goal_text == name), None)
        if sim_task is not None:
            name, goal, paraphrases = sim_task.name, sim_task.goal_text, list(sim_task.paraphrases)
    except ImportError:
        pass
    render_dir = None
    if getattr(reasoner, "name", "") == "llm":  # a VLM gets the labelled renders of grasps and trajectories
        from core.settings import load_settings

        render_dir = load_settings().home / "renders" / (name or "task")
    return learn_task(gds, task=name, goal=goal, paraphrases=paraphrases, reasoner=reasoner, memory=memory,
                      render_dir=render_dir)


def skills_table(skills: Sequence[Skill], title: str = "skills") -> Any:
    """A rich table: one row per skill (id, phase, objects, geometric constraint, quality), semantic below."""
    from rich.table import Table

    table = Table("#", "skill id", "phase", "objects", "geometry", "quality", "ok/tries", title=title,
                  caption="semantic constraints:\n" + "\n".join(f"{i}. {s.semantic}" for i, s in enumerate(skills)),
                  caption_justify="left")
    table.columns[1].no_wrap = True
    for i, s in enumerate(skills):
        objects = s.master.name + (f" <- {s.slave.name}" if s.slave else "")
        if s.grasp is not None:
            geo = f"{len(s.grasp.regions)} region(s)"
            q = "" if s.provenance.containment is None else f"{s.provenance.containment:.0%} in"
        else:
            assert s.manipulation is not None
            geo = s.manipulation.program.family or "program"
            q = "" if s.provenance.fit_error_m is None else f"{s.provenance.fit_error_m * 1000:.1f} mm"
        table.add_row(str(i), s.id, "grasp" if s.phase == Phase.grasping else "manip", objects, geo, q,
                      f"{s.stats.successes}/{s.stats.tries}")
    return table
