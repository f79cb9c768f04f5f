"""`python main.py doctor`'s view of the skill memory: the embedder and what the memory holds.

Read only: a memory indexed by another embedder is reported, not re-indexed (the next run or `learn`
re-indexes a local file). A shared database is contacted only when `memory_url` is configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memory.backends import index_meta
from memory.embeddings import make_embedder
from memory.store import open_as_is
from tools.doctor import Check, bounded

MODEL_LOAD_S = 30.0  # the first load of the sentence model takes seconds on a busy machine


def memory_checks(settings: Any, timeout_s: float = 5.0) -> list[Check]:
    """The "embedder" and "skill memory" checks, bounded in time like every doctor check."""
    return bounded("skill memory", lambda: _check_memory(settings), timeout_s + MODEL_LOAD_S)


def _check_memory(settings: Any) -> list[Check]:
    emb = make_embedder(settings.embedder_model_path)
    lexical = emb.name.startswith("lexical")
    out = [Check(name="embedder", status="missing" if lexical else "ok",
                 detail=emb.note if lexical else f"{emb.name}, {emb.dims} dims")]
    if not settings.memory_url and not Path(settings.memory_path).exists():  # looking creates no file
        return [*out, Check(name="skill memory", status="ok", detail=f"{settings.memory_path} (new, empty)")]
    with open_as_is(settings, emb) as mem:
        have, n_plans, n_skills = mem.indexed_with(), len(mem.list_plans()), len(mem.list_skills())
    held = f"{mem.location}: {n_plans} plans, {n_skills} skills"
    if have is not None and have != index_meta(emb):
        return [*out, Check(name="skill memory", status="ok",
                            detail=f"{held}; indexed with {have.get('embedder')}, re-indexed on next use")]
    return [*out, Check(name="skill memory", status="ok", detail=f"{held}; vector index {emb.name}")]
