import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

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


def test_search_runs_on_the_stores_vector_index(memory):
    memory.learn(*make_task("open_drawer", "open the drawer", ["pull the drawer out"]))
    conn = memory.store.conn
    rows = conn.execute("SELECT prefix, key, length(embedding) FROM store_vectors ORDER BY prefix, key").fetchall()
    # one float32 vector per skill text and per plan text, none for the plan item itself
    assert [(p, k) for p, k, _ in rows] == [("plan_texts", "open_drawer#000"), ("plan_texts", "open_drawer#001"),
                                            *[("skills", s.id) for s in memory.list_skills()]]
    assert {n for _, _, n in rows} == {4 * LexicalEmbedder.dims}
    hit = memory.store.search(("plan_texts",), query="pull the drawer out", limit=1)[0]
    assert hit.value["task"] == "open_drawer" and hit.score == pytest.approx(1.0, abs=1e-5)


def test_relearning_with_fewer_paraphrases_drops_the_old_ones(memory):
    memory.learn(*make_task("open_drawer", "open the drawer", ["yank the cabinet handle"]))
    memory.learn(*make_task("stack_blocks", "stack the blocks", []))
    assert memory.search_plans("yank the cabinet handle", k=1)[0][1] == pytest.approx(1.0, abs=1e-5)
    memory.learn(*make_task("open_drawer", "open the drawer", []))
    assert memory.search_plans("yank the cabinet handle", k=1)[0][1] < 0.9
    n = memory.store.conn.execute("SELECT count(*) FROM store_vectors WHERE prefix = 'plan_texts'").fetchone()[0]
    assert n == 2


def test_another_embedder_reindexes_the_file_and_says_so(tmp_path):
    path = tmp_path / "m.sqlite"
    with open_memory(load_settings(memory_path=path), embedder=LexicalEmbedder()) as mem:
        mem.learn(*make_task("open_drawer", "open the drawer"))
        assert mem.note == ""

    class Other(LexicalEmbedder):
        name = "other"

    with open_memory(load_settings(memory_path=path), embedder=Other()) as mem:
        assert mem.note == "skill memory re-indexed for other (was lexical:hashed-ngrams): 1 plans, 2 skills"
        assert mem.indexed_with() == {"embedder": "other", "dims": Other.dims}
        assert mem.search_plans("open the drawer")[0][1] == pytest.approx(1.0, abs=1e-5)
    with open_memory(load_settings(memory_path=path), embedder=Other()) as mem:
        assert mem.note == ""


LEGACY_WRITE = textwrap.dedent("""
    import sqlite3, sys
    from langgraph.store.sqlite import SqliteStore
    from tests.memory.helpers import make_task
    # the format before the vector index: vectors inside the values, a plain (unindexed) store
    store = SqliteStore(sqlite3.connect(sys.argv[1], isolation_level=None))
    store.setup()
    skills, plan = make_task("open_drawer", "open the drawer", ["pull the drawer out"])
    for s in skills:
        store.put(("skills",), s.id, {"skill": s.model_dump(mode="json"), "text": s.search_text(),
                                      "embedding": [0.0] * 8, "embedder": "old"}, index=False)
    store.put(("plans",), plan.task, {"plan": plan.model_dump(mode="json"), "texts": plan.search_texts(),
                                      "embeddings": [[0.0] * 8] * 2, "embedder": "old"}, index=False)
""")


def test_a_memory_from_before_the_index_is_indexed_on_open(tmp_path):
    path = tmp_path / "m.sqlite"
    subprocess.run([sys.executable, "-c", LEGACY_WRITE, str(path)], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    with open_memory(load_settings(memory_path=path), embedder=LexicalEmbedder()) as mem:
        assert mem.note.startswith("skill memory re-indexed for lexical:hashed-ngrams (was no index)")
        assert mem.search_plans("pull the drawer out", k=1)[0][0].task == "open_drawer"
        assert mem.search_skills("grasp part 1", k=1)[0][0].subtask.startswith("grasp part 1")
        assert "embedding" not in mem.store.get(("skills",), mem.list_skills()[0].id).value


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
