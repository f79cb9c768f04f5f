"""Skill memory on LangGraph's store API (DESIGN §1.2, §3): plans, skills and outcomes.

Namespaces (keys): ("plans",) task; ("plan_texts",) "task#i", one item per goal text or paraphrase of
a plan; ("skills",) skill id; ("outcomes",) time-ordered id; ("meta",) "index".
Retrieval is the store's own vector search (sqlite-vec or pgvector, memory/backends.py): skills are
indexed on their search text, plan texts one vector each, so re-learning a plan with fewer
paraphrases deletes the old ones in the same transaction. ("meta", "index") names the embedder the
vectors came from; opening with another one re-indexes a local file and refuses a shared database
(robots of a fleet must agree on one embedder, or they would undo each other's index).
Every write of a task is one batch, hence one transaction: no partial skill set.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from langgraph.store.base import BaseStore, PutOp
from pydantic import ValidationError

from core.settings import Settings
from core.skills import Outcome, Skill, TaskPlan
from memory.backends import (
    INDEX_KEY,
    META,
    Backend,
    SkillMemoryError,
    index_meta,
    open_postgres_store,
    open_sqlite_store,
    refuse_another_embedder,
)
from memory.embeddings import Embedder, make_embedder

PLANS = ("plans",)
PLAN_TEXTS = ("plan_texts",)
SKILLS = ("skills",)
OUTCOMES = ("outcomes",)
PAGE = 500
TEXT = ["text"]  # the one field of a skill or plan-text item that the store embeds

__all__ = ["SkillMemory", "SkillMemoryError", "open_memory"]


def _plan_text_key(task: str, i: int) -> str:
    return f"{task}#{i:03d}"


class SkillMemory:
    """Typed access to plans, skills and outcomes in a LangGraph BaseStore with a vector index."""

    def __init__(self, store: BaseStore, embedder: Embedder, *, location: str = "", closer: Any = None,
                 backend: Backend = "sqlite") -> None:
        self.store = store
        self.embedder = embedder
        self.location = location
        self.backend = backend
        self.note = ""  # what opening did to the index, for the user ('' when nothing)
        self._closer = closer

    # --- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> SkillMemory:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- the vector index -------------------------------------------------------------------------
    def indexed_with(self) -> dict[str, Any] | None:
        """The embedder the stored vectors came from (None for a memory written before the index)."""
        item = self.store.get(META, INDEX_KEY)
        return None if item is None else dict(item.value)

    def sync_index(self) -> str:
        """Make the stored vectors this embedder's; returns what was done ('' when they already were)."""
        want, have = index_meta(self.embedder), self.indexed_with()
        if have is not None and all(have.get(k) == v for k, v in want.items()):
            return ""
        if self.backend == "postgres":
            refuse_another_embedder(self.store, self.embedder)
        plans, skills = self._all(PLANS), self._all(SKILLS)
        if not plans and not skills:
            self.store.put(META, INDEX_KEY, want, index=False)
            return ""
        ops: list[PutOp] = [PutOp(META, INDEX_KEY, want, index=False)]
        for it in skills:
            skill = self._skill(it.value, it.key)
            ops.append(self._skill_op(skill))
        for it in plans:
            ops += self._plan_ops(TaskPlan.model_validate(it.value["plan"]), previous=None)
        self.store.batch(ops)
        was = "no index" if have is None else str(have.get("embedder"))
        return (f"skill memory re-indexed for {want['embedder']} (was {was}): "
                f"{len(plans)} plans, {len(skills)} skills")

    # --- writing ----------------------------------------------------------------------------------
    def _skill_op(self, skill: Skill) -> PutOp:
        return PutOp(SKILLS, skill.id, {"skill": skill.model_dump(mode="json"), "text": skill.search_text()},
                     index=TEXT)

    def _plan_ops(self, plan: TaskPlan, previous: TaskPlan | None) -> list[PutOp]:
        texts = plan.search_texts()
        ops = [PutOp(PLANS, plan.task, {"plan": plan.model_dump(mode="json"), "texts": texts}, index=False)]
        ops += [PutOp(PLAN_TEXTS, _plan_text_key(plan.task, i), {"task": plan.task, "text": t}, index=TEXT)
                for i, t in enumerate(texts)]
        old = len(previous.search_texts()) if previous is not None else 0
        ops += [PutOp(PLAN_TEXTS, _plan_text_key(plan.task, i), None) for i in range(len(texts), old)]
        return ops

    def learn(self, skills: list[Skill], plan: TaskPlan) -> None:
        """Store a task's skills and plan atomically (one transaction); replaces a previous plan of the task."""
        ids = {s.id for s in skills}
        missing = [st.skill_id for st in plan.steps if st.skill_id not in ids and self.get_skill(st.skill_id) is None]
        if missing:
            raise SkillMemoryError(f"plan {plan.task!r} refers to skills that are neither given nor stored: {missing}")
        ops = [self._skill_op(s) for s in skills] + self._plan_ops(plan, previous=self.get_plan(plan.task))
        self.store.batch(ops)

    def put_skill(self, skill: Skill) -> None:
        self.store.batch([self._skill_op(skill)])

    def forget_skill(self, skill_id: str) -> list[str]:
        """Delete a skill; returns the tasks whose plans used it (those plans are deleted too)."""
        if self.get_skill(skill_id) is None:
            raise SkillMemoryError(
                f"no skill {skill_id!r} in memory ({self.location}); see `python main.py skills list`")
        plans = [p for p in self.list_plans() if any(st.skill_id == skill_id for st in p.steps)]
        ops = [PutOp(SKILLS, skill_id, None)]
        for p in plans:
            ops.append(PutOp(PLANS, p.task, None))
            ops += [PutOp(PLAN_TEXTS, _plan_text_key(p.task, i), None) for i in range(len(p.search_texts()))]
        self.store.batch(ops)
        return [p.task for p in plans]

    def record_outcome(self, outcome: Outcome) -> None:
        """Append an outcome and update the skill's statistics in one transaction."""
        ops = [PutOp(OUTCOMES, f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}", outcome.model_dump(mode="json"),
                     index=False)]
        skill = self.get_skill(outcome.skill_id)
        if skill is not None:
            stats = skill.stats.model_copy(update={"tries": skill.stats.tries + 1,
                                                   "successes": skill.stats.successes + int(outcome.success)})
            ops.append(self._skill_op(skill.model_copy(update={"stats": stats})))
        self.store.batch(ops)

    # --- reading ----------------------------------------------------------------------------------
    def _all(self, ns: tuple[str, ...]) -> list[Any]:
        out, offset = [], 0
        while True:
            page = self.store.search(ns, limit=PAGE, offset=offset)
            out.extend(page)
            if len(page) < PAGE:
                return out
            offset += PAGE

    def get_skill(self, skill_id: str) -> Skill | None:
        item = self.store.get(SKILLS, skill_id)
        return None if item is None else self._skill(item.value, skill_id)

    def _skill(self, value: dict, key: str) -> Skill:
        try:
            return Skill.model_validate(value["skill"])
        except (KeyError, ValidationError) as e:
            raise SkillMemoryError(f"skill {key!r} in {self.location} is unreadable: {e}") from e

    def list_skills(self) -> list[Skill]:
        return sorted((self._skill(i.value, i.key) for i in self._all(SKILLS)), key=lambda s: s.id)

    def get_plan(self, task: str) -> TaskPlan | None:
        item = self.store.get(PLANS, task)
        return None if item is None else TaskPlan.model_validate(item.value["plan"])

    def list_plans(self) -> list[TaskPlan]:
        return sorted((TaskPlan.model_validate(i.value["plan"]) for i in self._all(PLANS)), key=lambda p: p.task)

    def outcomes(self, skill_id: str | None = None) -> list[Outcome]:
        out = [Outcome.model_validate(i.value) for i in sorted(self._all(OUTCOMES), key=lambda i: i.key)]
        return [o for o in out if skill_id is None or o.skill_id == skill_id]

    def search_plans(self, goal: str, k: int = 3) -> list[tuple[TaskPlan, float]]:
        """Plans ranked by the best cosine similarity of the goal to their goal text or paraphrases."""
        # several texts per plan: ask for enough text hits to rank k distinct plans
        best: dict[str, float] = {}
        for hit in self.store.search(PLAN_TEXTS, query=goal, limit=max(8 * k, 24)):
            task = str(hit.value["task"])
            best[task] = max(best.get(task, -1.0), float(hit.score or 0.0))
        out = []
        for task, score in sorted(best.items(), key=lambda t: -t[1]):
            plan = self.get_plan(task)
            if plan is not None:
                out.append((plan, score))
            if len(out) == k:
                break
        return out

    def search_skills(self, text: str, k: int = 5) -> list[tuple[Skill, float]]:
        return [(self._skill(hit.value, hit.key), float(hit.score or 0.0))
                for hit in self.store.search(SKILLS, query=text, limit=k)]


# --- opening ------------------------------------------------------------------------------------


def open_memory(settings: Settings, embedder: Embedder | None = None) -> SkillMemory:
    """The configured skill memory (SQLite file by default, Postgres when memory_url is set), its index in sync.

    `SkillMemory.note` says when opening re-indexed the stored texts for this embedder.
    """
    mem = open_as_is(settings, embedder if embedder is not None else make_embedder(settings.embedder_model_path))
    try:
        mem.note = mem.sync_index()
    except BaseException:
        mem.close()
        raise
    return mem


def open_as_is(settings: Settings, embedder: Embedder) -> SkillMemory:
    """The configured skill memory with its vectors as they are (no re-index): for looking, not using."""
    if settings.memory_url:
        store, closer = open_postgres_store(settings.memory_url, embedder)
        return SkillMemory(store, embedder, location="postgres (memory_url)", closer=closer, backend="postgres")
    store, closer = open_sqlite_store(settings.memory_path, embedder)
    return SkillMemory(store, embedder, location=str(settings.memory_path), closer=closer)
