"""Skill memory: plans, skills and outcomes on LangGraph's store API, with text embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memory.store import SkillMemory

__all__ = ["open_memory"]


def open_memory(settings: Any = None, embedder: Any = None) -> SkillMemory:
    """The configured skill memory (memory.store.open_memory); settings default to load_settings()."""
    from core.settings import load_settings
    from memory.store import open_memory as _open

    return _open(settings or load_settings(), embedder)
