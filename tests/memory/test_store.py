import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import BackendUnavailable, ConfigError
from core.settings import load_settings
from core.skills import Outcome
from memory.embeddings import LexicalEmbedder, make_embedder
from memory.store import SkillMemory, SkillMemoryError, open_memory
from tests.memory.helpers import make_task

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def memory(tmp_path):
    mem = open_memory(load_settings(memory_path=tmp_path / "m.sqlite"), embedder=LexicalEmbedder())
    yield mem
    mem.close()


def test_learn_then_list_get_and_search(memory):
    skills, plan = make_task("open_drawer", "open the drawer", ["pull the drawer out"])
    memory.learn(skills, plan)
    memory.learn(*make_task("stack_blocks", "stack the blocks", ["put one block on another"]))
    assert [s.id for s in memory.list_skills() if s.task == "open_drawer"] == sorted(s.id for s in skills)
    assert memory.get_skill(skills[0].id) == skills[0]
    assert memory.get_plan("open_drawer") == plan
    top, score = memory.search_plans("pull the drawer out", k=1)[0]
    assert top.task == "open_drawer" and score > 0.9
    assert memory.search_skills("stack blocks grasp", k=1)[0][0].task == "stack_blocks"


def test_memory_persists_across_processes_on_disk(tmp_path):
    path = tmp_path / "m.sqlite"
    skills, plan = make_task("open_drawer", "open the drawer")
    with open_memory(load_settings(memory_path=path), embedder=LexicalEmbedder()) as mem:
        mem.learn(skills, plan)
    with open_memory(load_settings(memory_path=path), embedder=LexicalEmbedder()) as mem:
        assert mem.get_plan("open_drawer") == plan


def test_plan_with_unknown_skill_stores_nothing(memory):
    skills, plan = make_task("open_drawer", "open the drawer")
    with pytest.raises(SkillMemoryError, match="neither given nor stored"):
        memory.learn(skills[:1], plan)
    assert memory.list_skills() == [] and memory.list_plans() == []


def test_forget_removes_the_skill_and_the_plans_using_it(memory):
    skills, plan = make_task("open_drawer", "open the drawer")
    memory.learn(skills, plan)
    assert memory.forget_skill(skills[0].id) == ["open_drawer"]
    assert memory.get_skill(skills[0].id) is None and memory.get_plan("open_drawer") is None
    with pytest.raises(SkillMemoryError, match="no skill"):
        memory.forget_skill("nope")


def test_outcomes_update_statistics(memory):
    skills, plan = make_task("open_drawer", "open the drawer")
    memory.learn(skills, plan)
    memory.record_outcome(Outcome(skill_id=skills[0].id, success=True))
    memory.record_outcome(Outcome(skill_id=skills[0].id, success=False, message="slipped"))
    s = memory.get_skill(skills[0].id)
    assert (s.stats.tries, s.stats.successes) == (2, 1)
    assert [o.message for o in memory.outcomes(skills[0].id)] == ["", "slipped"]


def test_vectors_from_another_embedder_are_not_mixed(tmp_path):
    path = tmp_path / "m.sqlite"
    with open_memory(load_settings(memory_path=path), embedder=LexicalEmbedder()) as mem:
        mem.learn(*make_task("open_drawer", "open the drawer"))

    class Other(LexicalEmbedder):
        name = "other"

    with open_memory(load_settings(memory_path=path), embedder=Other()) as mem:
        assert mem.search_plans("open the drawer")[0][1] == pytest.approx(1.0, abs=1e-5)


def test_postgres_url_without_the_package_names_it(tmp_path):
    settings = load_settings(memory_path=tmp_path / "m.sqlite", memory_url="postgresql://u@localhost/db")
    try:
        import langgraph.store.postgres  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailable, match="pip install langgraph-checkpoint-postgres"):
            open_memory(settings, embedder=LexicalEmbedder())
    else:  # pragma: no cover - the package is not installed here
        pytest.skip("langgraph-checkpoint-postgres is installed")
    with pytest.raises(ConfigError, match="memory_url"):
        open_memory(load_settings(memory_url="mysql://x"), embedder=LexicalEmbedder())


def test_lexical_fallback_says_why(tmp_path):
    e = make_embedder(tmp_path / "no-model-here")
    assert isinstance(e, LexicalEmbedder) and "fallback" in e.note and "no-model-here" in e.note


def test_sentence_model_retrieves_paraphrases(tmp_path):
    emb = make_embedder()
    assert emb.name.startswith("sentence-transformers"), emb.note
    with open_memory(load_settings(memory_path=tmp_path / "m.sqlite"), embedder=emb) as mem:
        mem.learn(*make_task("wash_pan", "wash the pan", ["scrub the pan clean"]))
        mem.learn(*make_task("open_microwave", "open the microwave", ["open the microwave door"]))
        mem.learn(*make_task("stack_blocks", "stack the blocks", []))
        assert mem.search_plans("clean the frying pan", k=1)[0][0].task == "wash_pan"
        assert mem.search_plans("swing the microwave open", k=1)[0][0].task == "open_microwave"


WRITER = textwrap.dedent("""
    import sys
    from core.settings import load_settings
    from memory.embeddings import LexicalEmbedder
    from memory.store import open_memory
    from tests.memory.helpers import make_task
    mem = open_memory(load_settings(memory_path=sys.argv[1]), embedder=LexicalEmbedder())
    i = 0
    while True:
        mem.learn(*make_task(f"task{i}", f"goal number {i}", n=6))
        if i == 3:
            print("writing", flush=True)
        i += 1
""")


def test_a_kill_mid_write_leaves_a_consistent_memory(tmp_path):
    path = tmp_path / "m.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"writing"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    mem = open_memory(load_settings(memory_path=path), embedder=LexicalEmbedder())
    try:
        plans = mem.list_plans()
        skills = mem.list_skills()
        assert len(plans) >= 4
        # every plan has all its skills and every skill belongs to a stored plan: no half-written task
        assert {s.task for s in skills} == {p.task for p in plans}
        assert len(skills) == 6 * len(plans)
    finally:
        mem.close()


def test_memory_is_a_langgraph_store(memory):
    from langgraph.store.base import BaseStore

    assert isinstance(memory, SkillMemory) and isinstance(memory.store, BaseStore)
    memory.learn(*make_task("open_drawer", "open the drawer"))
    assert memory.store.get(("plans",), "open_drawer") is not None
