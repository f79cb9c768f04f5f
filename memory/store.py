"""Skill memory on LangGraph's store API (DESIGN §1.2, §3): plans, skills and outcomes.

Namespaces: ("plans",) key = task, ("skills",) key = skill id, ("outcomes",) key = time-ordered id.
Each plan/skill item keeps its text(s) and their embedding(s) (with the embedder's name); retrieval is
a cosine search over those vectors done here, so it works on any BaseStore (a different embedder
re-embeds the stored texts on the fly rather than mixing vector spaces).

Backends:
- default: LangGraph's `SqliteStore` on `settings.memory_path`, WAL journal, synchronous=FULL, each
  write one transaction (a kill mid-write leaves the previous state);
- `settings.memory_url = "postgresql://..."`: LangGraph's `PostgresStore` (package
  langgraph-checkpoint-postgres, imported only then).
`learn()` writes a task's skills and plan in ONE batch (one transaction): no partial skill set.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
from langgraph.store.base import BaseStore, PutOp
from pydantic import ValidationError

from core.errors import BackendUnavailable, ConfigError, VLMimicError
from core.settings import Settings
from core.skills import Outcome, Skill, TaskPlan
from memory.embeddings import Embedder, make_embedder

PLANS = ("plans",)
SKILLS = ("skills",)
OUTCOMES = ("outcomes",)
PAGE = 500


class SkillMemoryError(VLMimicError):
    """Skill memory could not be read or written (the message names the item)."""


class SkillMemory:
    """Typed access to plans, skills and outcomes in a LangGraph BaseStore."""

    def __init__(self, store: BaseStore, embedder: Embedder, *, location: str = "", closer: Any = None) -> None:
        self.store = store
        self.embedder = embedder
        self.location = location
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

    # --- writing ----------------------------------------------------------------------------------
    def _vectors(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self.embedder.embed(texts)]

    def learn(self, skills: list[Skill], plan: TaskPlan) -> None:
        """Store a task's skills and plan atomically (one transaction); replaces a previous plan of the task."""
        ids = {s.id for s in skills}
        missing = [st.skill_id for st in plan.steps if st.skill_id not in ids and self.get_skill(st.skill_id) is None]
        if missing:
            raise SkillMemoryError(f"plan {plan.task!r} refers to skills that are neither given nor stored: {missing}")
        ops: list[PutOp] = []
        skill_texts = [s.search_text() for s in skills]
        vecs = self._vectors(skill_texts) if skills else []
        for s, text, v in zip(skills, skill_texts, vecs, strict=True):
            ops.append(PutOp(SKILLS, s.id, {"skill": s.model_dump(mode="json"), "text": text, "embedding": v,
                                            "embedder": self.embedder.name}, index=False))
        ptexts = plan.search_texts()
        ops.append(PutOp(PLANS, plan.task, {"plan": plan.model_dump(mode="json"), "texts": ptexts,
                                             "embeddings": self._vectors(ptexts), "embedder": self.embedder.name},
                         index=False))
        self.store.batch(ops)

    def put_skill(self, skill: Skill) -> None:
        text = skill.search_text()
        self.store.put(SKILLS, skill.id, {"skill": skill.model_dump(mode="json"), "text": text,
                                          "embedding": self._vectors([text])[0], "embedder": self.embedder.name},
                       index=False)

    def forget_skill(self, skill_id: str) -> list[str]:
        """Delete a skill; returns the tasks whose plans used it (those plans are deleted too)."""
        if self.get_skill(skill_id) is None:
            raise SkillMemoryError(
                f"no skill {skill_id!r} in memory ({self.location}); see `python main.py skills list`")
        plans = [p.task for p in self.list_plans() if any(st.skill_id == skill_id for st in p.steps)]
        ops = [PutOp(SKILLS, skill_id, None)] + [PutOp(PLANS, t, None) for t in plans]
        self.store.batch(ops)
        return plans

    def record_outcome(self, outcome: Outcome) -> None:
        """Append an outcome and update the skill's statistics in one transaction."""
        ops = [PutOp(OUTCOMES, f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}", outcome.model_dump(mode="json"),
                     index=False)]
        skill = self.get_skill(outcome.skill_id)
        if skill is not None:
            stats = skill.stats.model_copy(update={"tries": skill.stats.tries + 1,
                                                   "successes": skill.stats.successes + int(outcome.success)})
            skill = skill.model_copy(update={"stats": stats})
            item = self.store.get(SKILLS, skill.id)
            value = dict(item.value) if item else {}
            value["skill"] = skill.model_dump(mode="json")
            ops.append(PutOp(SKILLS, skill.id, value, index=False))
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

    def _stored_vectors(self, value: dict, texts: list[str], key: str) -> np.ndarray:
        if value.get("embedder") == self.embedder.name and value.get(key) is not None:
            v = np.asarray(value[key], dtype=np.float32)
            return v if v.ndim == 2 else v[None, :]
        return self.embedder.embed(texts)

    def search_plans(self, goal: str, k: int = 3) -> list[tuple[TaskPlan, float]]:
        """Plans ranked by the best cosine similarity of the goal to their goal text or paraphrases."""
        items = self._all(PLANS)
        if not items:
            return []
        q = self.embedder.embed([goal])[0]
        scored = []
        for it in items:
            vecs = self._stored_vectors(it.value, list(it.value["texts"]), "embeddings")
            scored.append((TaskPlan.model_validate(it.value["plan"]), float(np.max(vecs @ q))))
        scored.sort(key=lambda t: -t[1])
        return scored[:k]

    def search_skills(self, text: str, k: int = 5) -> list[tuple[Skill, float]]:
        items = self._all(SKILLS)
        if not items:
            return []
        q = self.embedder.embed([text])[0]
        scored = []
        for it in items:
            v = self._stored_vectors(it.value, [it.value["text"]], "embedding")
            scored.append((self._skill(it.value, it.key), float(np.max(v @ q))))
        scored.sort(key=lambda t: -t[1])
        return scored[:k]


# --- opening ------------------------------------------------------------------------------------


def open_sqlite_store(path: Path) -> tuple[BaseStore, Any]:
    from langgraph.store.sqlite import SqliteStore

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        store = SqliteStore(conn)
        store.setup()
    except (sqlite3.Error, OSError) as e:
        raise SkillMemoryError(f"{path}: cannot open the skill memory: {e}") from e
    return store, conn.close


def open_postgres_store(url: str) -> tuple[BaseStore, Any]:
    try:
        from langgraph.store.postgres import PostgresStore
    except ImportError as e:
        raise BackendUnavailable(
            "memory_url is a postgresql:// URL but LangGraph's PostgresStore is not installed; "
            "install it with `pip install langgraph-checkpoint-postgres` (and pgvector on the server)"
        ) from e
    cm: AbstractContextManager = PostgresStore.from_conn_string(url)
    store = cm.__enter__()
    store.setup()
    return store, lambda: cm.__exit__(None, None, None)


def open_memory(settings: Settings, embedder: Embedder | None = None) -> SkillMemory:
    """The configured skill memory (SQLite file by default, Postgres when memory_url is set)."""
    emb = embedder if embedder is not None else make_embedder(settings.embedder_model_path)
    if settings.memory_url:
        if not settings.memory_url.startswith(("postgresql://", "postgres://")):
            scheme = settings.memory_url.split(":")[0]
            raise ConfigError(f"setting 'memory_url': expected postgresql://..., got {scheme}://")
        store, closer = open_postgres_store(settings.memory_url)
        return SkillMemory(store, emb, location="postgres", closer=closer)
    store, closer = open_sqlite_store(settings.memory_path)
    return SkillMemory(store, emb, location=str(settings.memory_path), closer=closer)


def iter_ids(skills: Iterable[Skill]) -> list[str]:
    return [s.id for s in skills]
