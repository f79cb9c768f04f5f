"""The planner (DESIGN §5): goal text + scene objects + memory -> ordered steps bound to objects.

1. It searches the skill memory for task plans whose goal (or a paraphrase) is close to the goal text
   (in simulation, plans learned for another simulated task are not offered), and perceives the
   scene's objects (segmenter masks -> canonical bbox sizes and colours).
2. It asks the reasoner's `plan` question (agents.reasoning: PlanQuestion -> PlanAnswer): which plan,
   if any, is the goal's (similarity >= `PLAN_THRESHOLD`), with each demonstrated object bound to a
   scene object. Found: the bound steps go to the adapter loop. A matching plan whose objects the
   scene lacks ends the run (not achieved), saying which are missing.
3. Not found, in simulation, and a simulated task matches the goal (best cosine similarity of the
   goal with each task's goal_text/paraphrases under the memory embedder, above `MATCH_THRESHOLD`):
   it records `n_demos` demonstrations with the synthetic demonstrator, hands them to the grounder
   and the skill learner, and plans again once they are learned — and says so.
4. Not found, demos given with `--demos DIR`: those are grounded and learned the same way.
5. Otherwise: it explains which demonstrations it needs and the exact commands that record and
   learn them; the run ends with outcome "needs_demos".
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.state import GraphState, StepBinding
from core.errors import VLMimicError

if TYPE_CHECKING:
    from agents.graph import RunContext

MATCH_THRESHOLD = 0.6  # cosine similarity (all-MiniLM-L6-v2) above which a goal names a sim task
PLAN_THRESHOLD = 0.75  # ... above which a remembered plan is taken to be the goal's plan
# Frame rate of the synthetic demos: a long-horizon task may be recorded at a lower rate so a demo stays
# near DEMO_FRAME_BUDGET frames (recording and grounding cost is per frame), but never below the 15 fps
# at which grounding is measured (bench/grounding_accuracy.py): with the tool-use split and the hold
# rules, wash_pan demos 1002 and 1004 recorded at 7.5 fps lost their scrub and put-down segments and
# the brush's put-down no longer fitted (4.5 cm), while at 15 fps all five learn. The floor is 15 fps.
DEMO_FPS_MAX, DEMO_FPS_MIN, DEMO_FRAME_BUDGET = 15.0, 15.0, 450.0


# --- text similarity ---------------------------------------------------------------------------


_EMBEDDER: list[Any] = []


def embedder() -> Any:
    """The memory's embedder (memory.embeddings.make_embedder), loaded once per process."""
    if not _EMBEDDER:
        from core.settings import load_settings
        from memory.embeddings import make_embedder

        _EMBEDDER.append(make_embedder(load_settings().embedder_model_path))
    return _EMBEDDER[0]


_CACHE: dict[tuple[str, str], np.ndarray] = {}


def embed(texts: Sequence[str], emb: Any = None) -> np.ndarray:
    """Unit-norm embeddings from the memory's embedder (one model for all text matching), cached by text."""
    emb = emb or embedder()
    name = getattr(emb, "name", type(emb).__name__)
    todo = list(dict.fromkeys(t for t in texts if (name, t) not in _CACHE))
    if todo:
        for t, vec in zip(todo, np.asarray(emb.embed(todo), dtype=float), strict=True):
            if len(_CACHE) > 4096:
                _CACHE.clear()
            _CACHE[(name, t)] = vec
    v = np.stack([_CACHE[(name, t)] for t in texts])
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(n < 1e-12, 1.0, n)


def best_match(query: str, candidates: dict[str, Sequence[str]], emb: Any = None) -> tuple[str | None, float]:
    """(key, cosine) of the candidate whose texts best match `query`; (None, 0) without candidates."""
    flat = [(k, t) for k, texts in candidates.items() for t in texts if t]
    if not flat:
        return None, 0.0
    vecs = embed([query, *(t for _, t in flat)], emb)
    sims = vecs[1:] @ vecs[0]
    i = int(np.argmax(sims))
    return flat[i][0], float(sims[i])


def match_task(goal: str, emb: Any = None) -> tuple[str | None, float]:
    """The simulated task that best matches the goal text, with its similarity."""
    from sim.tasks import TASKS

    return best_match(goal, {n: [t.goal_text, *t.paraphrases] for n, t in TASKS.items()}, emb)


def resolve_scene(goal: str, scene: str | None, emb: Any = None) -> tuple[str | None, float]:
    """The sim task to build: `scene` if given (validated), else the best match above threshold."""
    if scene:
        from sim.tasks import get_task

        get_task(scene)
        return scene, 1.0
    name, score = match_task(goal, emb)
    return (name, score) if score >= MATCH_THRESHOLD else (None, score)


# --- memory ------------------------------------------------------------------------------------


def plan_candidates(memory: Any, goal: str, k: int = 3, task: str | None = None) -> list[Any]:
    """Remembered plans closest to the goal as reasoner PlanCandidates (with demonstrated object sizes).

    In simulation `task` is the scene's task: a plan learned for another simulated task is not offered.
    """
    from agents.reasoning.questions import PlanCandidate

    if memory is None:
        return []
    out = []
    for plan, score in memory.search_plans(goal, k=k):
        if task is not None and plan.task != task and _is_sim_task(plan.task):
            continue
        sizes: dict[str, tuple[float, float, float]] = {}
        for st in plan.steps:
            skill = memory.get_skill(st.skill_id)
            if skill is None:
                continue
            for obj in (skill.master, skill.slave):
                if obj is not None:
                    sizes.setdefault(obj.name, tuple(obj.bbox_size))
        out.append(PlanCandidate(task=plan.task, goal=plan.goal, paraphrases=list(plan.paraphrases),
                                 score=float(score), steps=list(plan.steps), objects=sizes))
    return out


def _is_fallback(emb: Any) -> bool:
    return str(getattr(emb, "name", "")).startswith("lexical")


def _is_sim_task(name: str) -> bool:
    try:
        from sim.tasks import TASKS
    except Exception:  # noqa: BLE001 - no simulator: nothing is a sim task
        return False
    return name in TASKS


def perceive_scene(ctx: RunContext, prompts: Sequence[str] = ()) -> list[Any]:
    """Objects the camera sees now, with their canonical bbox sizes and mean colours.

    The segmenter is the configured one (in simulation the renderer's labels: the "perfect
    segmenter"; on the real robot Grounding DINO + SAM prompted with the plan's object names).
    """
    from agents.reasoning.questions import SceneObject
    from tools.perception.pointcloud import cloud_from_mask
    from tools.perception.segmenters import NON_OBJECT_LABELS, make_segmenter
    from tools.perception.tracking import canonical_frame

    if ctx.camera is None:
        return []
    frame = ctx.camera.capture()
    if frame.segmentation is None and ctx.settings.perception.segmenter == "channel":
        return []
    segmenter = make_segmenter(ctx.settings.perception, source=getattr(ctx.camera, "name", ""))
    # labelled channel: every labelled object; an open-vocabulary segmenter: the plan's object names
    masks = segmenter.segment(frame, () if ctx.settings.perception.segmenter == "channel" else prompts)
    out = []
    for name, mask in sorted(masks.items()):
        if name in NON_OBJECT_LABELS:
            continue
        pts = cloud_from_mask(frame, mask, stride=2)
        if len(pts) < 10:
            continue
        _, size = canonical_frame(pts)
        colour = frame.rgb[mask].mean(axis=0)
        out.append(SceneObject(name=name, bbox_size=tuple(float(x) for x in size),
                               color_rgb=tuple(float(c) for c in colour)))
    return out


def ask_plan(ctx: RunContext, goal: str, scene: list[Any], candidates: list[Any]) -> Any:
    """The reasoner's `plan` question: pick the plan and bind its objects to the scene's."""
    from agents.reasoning.questions import PlanQuestion, SceneObject

    if ctx.camera is None and candidates:  # no camera to perceive with: assume the demonstrated objects
        scene = [SceneObject(name=n, bbox_size=sz) for n, sz in candidates[0].objects.items()]
    q = PlanQuestion(goal=goal, scene=scene, candidates=candidates, min_score=PLAN_THRESHOLD)
    return ctx.reasoner.plan(q)


def to_bindings(answer: Any, candidate: Any) -> list[StepBinding]:
    demo = {st.index: st for st in candidate.steps}
    out = []
    for i, st in enumerate(answer.steps):
        d = demo.get(st.index)
        out.append(StepBinding(index=i, text=st.subtask, skill_id=st.skill_id, phase=str(st.phase),
                               master=st.master, slave=st.slave,
                               demo_master=d.master if d else None, demo_slave=d.slave if d else None))
    # A held object that the next manipulation step uses again stays in the hand between the two.
    for cur, nxt in zip(out, out[1:], strict=False):
        cur.keep_holding = (cur.phase == "manipulation" and nxt.phase == "manipulation"
                            and cur.slave is not None and cur.slave == nxt.slave)
    return out


# --- demos -------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "task"


def needs_demos_message(goal: str, closest: tuple[str | None, float] = (None, 0.0), simulated: bool = True) -> str:
    slug = _slug(goal)
    lines = [f"My memory has no skills for '{goal}'."]
    if simulated:
        name, score = closest
        from sim.tasks import TASKS

        tasks = ", ".join(f"{n} ('{t.goal_text}')" for n, t in TASKS.items())
        near = f" (closest: {name}, similarity {score:.2f})" if name else ""
        lines.append(f"No simulated task matches it{near}; the simulated tasks are: {tasks}.")
    lines += [
        "I need about 5 RGB-D videos of a person doing it, the whole task in each, seen by a fixed camera.",
        "Record them with a RealSense:",
        f'  python main.py demo record --camera realsense --task "{goal}" --n 5 --out demos/{slug}',
        "then run the goal again with them:",
        f'  python main.py --goal "{goal}" --demos demos/{slug}',
    ]
    return "\n".join(lines)


def demo_fps(task: str) -> float:
    """The frame rate the planner records a simulated task's demos at (see DEMO_FRAME_BUDGET)."""
    from sim.tasks import get_task

    seconds = float(get_task(task).episode_seconds)
    return float(np.clip(DEMO_FRAME_BUDGET / max(seconds, 1e-6), DEMO_FPS_MIN, DEMO_FPS_MAX))


def record_sim_demos(ctx: RunContext, task: str, n: int) -> list[str]:
    """Record `n` synthetic demonstrations of `task` into runs/<id>/demos (restarting a partial set)."""
    out = ctx.run_dir / "demos"
    if out.exists():
        done = sorted(d for d in out.iterdir() if (d / "meta.json").is_file())
        if len(done) >= n:
            return [str(d) for d in done[:n]]
        shutil.rmtree(out)
    from sim.demonstrator import record_demos

    t0 = time.time()
    seed = ctx.config.demo_seed
    workers = max(1, min(ctx.config.record_workers, n, os.cpu_count() or 1))
    fps = demo_fps(task)
    args = {"task": task, "n": n, "variant": "seen", "seed": seed, "out": str(out), "workers": workers, "fps": fps}
    ctx.tracer.event("tool_call", tool="record_demos", args=args)
    if workers == 1:
        paths = []
        for i in range(n):
            paths += record_demos(task=task, n=1, variant="seen", seed=seed + i, out=out, fps=fps)
            ctx.tracer.say("planner", f"recorded demonstration {i + 1}/{n}")
    else:  # one demo per process: the recorder is mostly single-threaded; seeds as in the serial order
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(record_demos, task=task, n=1, variant="seen", seed=seed + i, out=out, fps=fps)
                       for i in range(n)]
            for k, _ in enumerate(as_completed(futures), 1):
                ctx.tracer.say("planner", f"recorded demonstration {k}/{n}")
            paths = [f.result()[0] for f in futures]
    ctx.tracer.event("tool_result", tool="record_demos", result=[str(p) for p in paths],
                     duration_s=round(time.time() - t0, 3))
    return [str(p) for p in paths]


def demo_folders(path: Path) -> list[str]:
    """Demo folders under `path` (or `path` itself when it is one)."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return [str(path)]
    found = sorted(str(d) for d in path.iterdir() if (d / "meta.json").is_file()) if path.is_dir() else []
    if not found:
        raise VLMimicError(f"{path}: no demo folders (each needs a meta.json; see README 'Demo format')")
    return found


def learn_demos(demos: list[Path], ctx: RunContext, goal: str = "") -> str:
    """Skill-learn grounded demos into memory, under the goal text (and the sim task's paraphrases)."""
    from agents.skill_learner import learn_task

    task = ctx.task
    paraphrases = [goal] if goal else []
    if task is not None:
        paraphrases = [p for p in [task.goal_text, *task.paraphrases, goal] if p]
    name = task.name if task is not None else _slug(goal)
    t0 = time.time()
    ctx.tracer.event("tool_call", tool="learn_task", args={"demos": [str(d) for d in demos], "task": name})
    result = learn_task(
        demos=[Path(d) for d in demos],
        task=name,
        goal=paraphrases[0] if paraphrases else goal,
        paraphrases=paraphrases[1:],
        reasoner=ctx.reasoner,
        memory=ctx.memory,
    )
    ctx.tracer.event("tool_result", tool="learn_task", result=result, duration_s=round(time.time() - t0, 3))
    plan = getattr(result, "plan", None)
    n_steps = len(plan.steps) if plan is not None else "?"
    return f"learned task '{name}' from {len(demos)} demos: {n_steps} steps stored in memory"


# --- the node ----------------------------------------------------------------------------------


def plan_node(state: GraphState, ctx: RunContext) -> dict:
    goal = state["goal"]
    cfg = ctx.config
    say = ctx.tracer.say
    emb = getattr(ctx.memory, "embedder", None)
    for note in (getattr(ctx.memory, "note", ""), getattr(emb, "note", "") if _is_fallback(emb) else ""):
        if note:
            say("memory", note)
    scene = state.get("scene") or (ctx.task.name if ctx.task is not None else None)
    if ctx.task is not None and not cfg.scene and not state.get("scene"):
        say("planner", f"scene: simulated task '{ctx.task.name}' (the task that best matches the goal)")
    candidates = plan_candidates(ctx.memory, goal, task=scene if cfg.simulated else None)
    ctx.tracer.event("tool_result", tool="memory.search_plans", duration_s=0.0,
                     result=[{"task": c.task, "goal": c.goal, "score": round(c.score, 3)} for c in candidates])
    prompts = sorted({n for c in candidates[:1] for n in c.objects})
    objects = perceive_scene(ctx, prompts)
    if objects:
        say("planner", "I see: " + ", ".join(o.name for o in objects))
    answer = ask_plan(ctx, goal, objects, candidates) if candidates else None
    if answer is not None and answer.found:
        cand = next(c for c in candidates if c.task == answer.task)
        steps = to_bindings(answer, cand)
        listing = "; ".join(f"{s.index + 1}. {s.text}" for s in steps)
        say("planner", f"memory has the plan '{cand.goal}' (match {cand.score:.2f}): {listing}")
        return {"steps": [s.model_dump(mode="json") for s in steps], "plan_id": cand.task, "step_index": 0,
                "scene": scene, "scene_objects": [o.name for o in objects],
                "notes": [f"plan '{cand.goal}' from memory"]}
    if answer is not None and answer.task is not None:  # the plan matches but the scene lacks its objects
        say("planner", answer.message)
        return {"outcome": "not_achieved", "message": answer.message}
    if state.get("learned"):
        msg = f"learned the demonstrations, but memory still has no plan matching '{goal}'"
        say("planner", msg)
        return {"outcome": "error", "message": msg}
    if cfg.demos_dir:
        demos = demo_folders(Path(cfg.demos_dir))
        say("planner", f"memory has no skills for '{goal}'; I will learn the {len(demos)} demos in {cfg.demos_dir}")
        return {"demos": demos, "to_ground": demos, "notes": [f"learning {len(demos)} given demos"]}
    if cfg.simulated and scene:
        task = scene
        say("planner", f"memory has no skills for '{goal}'. The simulated task '{task}' matches it, so I am "
                       f"recording {cfg.n_demos} demonstrations with the synthetic human demonstrator, then "
                       "grounding and learning them before acting.")
        demos = record_sim_demos(ctx, task, cfg.n_demos)
        say("planner", f"recorded {len(demos)} demonstrations in {ctx.run_dir / 'demos'}")
        return {"demos": demos, "to_ground": demos, "scene": scene,
                "notes": [f"recorded {len(demos)} demos of {task}"]}
    closest = match_task(goal, emb) if cfg.simulated else (None, 0.0)
    msg = needs_demos_message(goal, closest, simulated=cfg.simulated)
    say("planner", msg)
    return {"outcome": "needs_demos", "message": msg}


