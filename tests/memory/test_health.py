"""`doctor`'s skill memory checks: what they report, that they change nothing, that they hide secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import load_settings
from memory.embeddings import LexicalEmbedder
from memory.health import memory_checks
from memory.store import open_memory
from tests.memory.helpers import make_task


def by_name(checks):
    return {c.name: c for c in checks}


def test_skill_memory_is_reported_without_being_changed(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite"
    checks = by_name(memory_checks(load_settings(memory_path=path)))
    assert checks["skill memory"].status == "ok" and "(new, empty)" in checks["skill memory"].detail
    assert checks["embedder"].status == "ok" and "384 dims" in checks["embedder"].detail
    assert not path.exists()
    # a memory indexed by another embedder (the lexical one) is described, not re-indexed
    with open_memory(load_settings(memory_path=path), embedder=LexicalEmbedder()) as mem:
        mem.learn(*make_task("open_drawer", "open the drawer"))
    detail = by_name(memory_checks(load_settings(memory_path=path)))["skill memory"].detail
    assert "1 plans, 2 skills" in detail and "indexed with lexical:hashed-ngrams, re-indexed on next use" in detail
    with open_memory(load_settings(memory_path=path), embedder=LexicalEmbedder()) as mem:
        assert mem.note == "" and mem.indexed_with()["embedder"] == "lexical:hashed-ngrams"


def test_a_missing_sentence_model_is_reported_as_the_fallback(tmp_path: Path) -> None:
    settings = load_settings(memory_path=tmp_path / "m.sqlite", embedder_model_path=tmp_path / "no-model")
    check = by_name(memory_checks(settings))["embedder"]
    assert check.status == "missing" and "lexical fallback" in check.detail and "no-model" in check.detail


def test_unreachable_shared_memory_is_an_error_without_its_password(tmp_path: Path) -> None:
    pytest.importorskip("langgraph.store.postgres", reason="the fleet extra: langgraph-checkpoint-postgres")
    settings = load_settings(memory_path=tmp_path / "m.sqlite",
                             memory_url="postgresql://robot:s3cret@127.0.0.1:1/skills?connect_timeout=2")
    check = by_name(memory_checks(settings))["skill memory"]
    assert check.status == "error" and "cannot be reached" in check.detail and "s3cret" not in check.detail
