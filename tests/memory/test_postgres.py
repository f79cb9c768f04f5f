"""The fleet backend: LangGraph's PostgresStore with pgvector, against a real local PostgreSQL.

The server is pgserver's bundled PostgreSQL 16 with pgvector (a dev dependency), started on a Unix
socket in a temporary folder; nothing leaves the machine.
"""

import shutil
import sys
import tempfile

import pytest

from core.errors import BackendUnavailable, ConfigError
from core.settings import load_settings
from core.skills import Outcome
from memory.embeddings import LexicalEmbedder, make_embedder
from memory.store import SkillMemoryError, open_memory
from tests.memory.helpers import make_task

pgserver = pytest.importorskip("pgserver", reason="pgserver (dev dependency) runs the local PostgreSQL")
pytest.importorskip("langgraph.store.postgres", reason="the fleet extra: langgraph-checkpoint-postgres")


@pytest.fixture(scope="module")
def server():
    folder = tempfile.mkdtemp(prefix="vlmpg")  # short: the server's Unix socket path has a length limit
    srv = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield srv
    finally:
        srv.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def url(server, request):
    name = f"t_{request.node.name[:40].lower()}"
    server.psql(f'DROP DATABASE IF EXISTS "{name}"; CREATE DATABASE "{name}";')
    return server.get_uri(database=name)


def test_fleet_memory_learns_searches_and_forgets_through_pgvector(url, tmp_path):
    settings = load_settings(memory_path=tmp_path / "unused.sqlite", memory_url=url)
    emb = make_embedder()
    with open_memory(settings, embedder=emb) as mem:
        assert mem.backend == "postgres" and mem.note == ""
        skills, plan = make_task("wash_pan", "wash the pan", ["scrub the pan clean"])
        mem.learn(skills, plan)
        mem.learn(*make_task("open_microwave", "open the microwave", ["open the microwave door"]))
        mem.learn(*make_task("stack_blocks", "stack the blocks", []))
    # a second robot of the fleet opens the same database and sees the same library
    with open_memory(settings, embedder=emb) as other:
        top = other.search_plans("clean the frying pan", k=3)
        assert [p.task for p, _ in top][0] == "wash_pan" and len(top) == 3
        assert top[0][1] > top[1][1] > 0.0
        assert other.search_plans("swing the microwave open", k=1)[0][0].task == "open_microwave"
        assert other.get_plan("wash_pan") == plan
        other.record_outcome(Outcome(skill_id=skills[0].id, success=True))
        assert other.get_skill(skills[0].id).stats.tries == 1
        assert other.forget_skill(skills[0].id) == ["wash_pan"]
        assert [p.task for p, _ in other.search_plans("clean the frying pan", k=3)] == ["open_microwave",
                                                                                       "stack_blocks"]
        # the vectors live in pgvector (384-dim sentence vectors), searched exactly: no ANN index
        with other.store.conn.cursor() as cur:
            cur.execute("SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute "
                        "WHERE attrelid = 'store_vectors'::regclass AND attname = 'embedding'")
            assert cur.fetchone()["t"] == "vector(384)"
            cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'store_vectors'")
            assert not any("hnsw" in row["indexdef"] or "ivfflat" in row["indexdef"] for row in cur.fetchall())


def test_relearning_with_fewer_paraphrases_drops_the_old_ones(url, tmp_path):
    settings = load_settings(memory_path=tmp_path / "unused.sqlite", memory_url=url)
    with open_memory(settings, embedder=LexicalEmbedder()) as mem:
        mem.learn(*make_task("open_drawer", "open the drawer", ["yank the cabinet handle"]))
        mem.learn(*make_task("stack_blocks", "stack the blocks", ["yank the blocks upward"]))
        assert mem.search_plans("yank the cabinet handle", k=1)[0][1] == pytest.approx(1.0, abs=1e-5)
        mem.learn(*make_task("open_drawer", "open the drawer", []))
        hits = dict((p.task, s) for p, s in mem.search_plans("yank the cabinet handle", k=2))
        assert hits["open_drawer"] < 0.9  # only its goal text is left to match


def test_a_robot_with_another_embedder_is_refused(url, tmp_path):
    settings = load_settings(memory_path=tmp_path / "unused.sqlite", memory_url=url)
    with open_memory(settings, embedder=LexicalEmbedder()) as mem:
        mem.learn(*make_task("open_drawer", "open the drawer"))
    with pytest.raises(ConfigError, match="every robot sharing memory_url must use the same embedder"):
        open_memory(settings, embedder=make_embedder())
    with open_memory(settings, embedder=LexicalEmbedder()) as mem:  # nothing was changed
        assert mem.search_plans("open the drawer", k=1)[0][0].task == "open_drawer"


def test_an_unreachable_server_is_one_line_without_the_password(tmp_path):
    settings = load_settings(memory_path=tmp_path / "m.sqlite",
                             memory_url="postgresql://robot:s3cret@127.0.0.1:1/skills?connect_timeout=3")
    with pytest.raises(SkillMemoryError, match="cannot be reached") as err:
        open_memory(settings, embedder=LexicalEmbedder())
    assert "s3cret" not in str(err.value) and "\n" not in str(err.value)


def test_without_the_fleet_extra_the_error_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "langgraph.store.postgres", None)  # as if not installed
    settings = load_settings(memory_path=tmp_path / "m.sqlite", memory_url="postgresql://u@localhost/db")
    with pytest.raises(BackendUnavailable, match=r"pip install -e '\.\[fleet\]'"):
        open_memory(settings, embedder=LexicalEmbedder())
    with pytest.raises(ConfigError, match="memory_url"):
        open_memory(load_settings(memory_url="mysql://x"), embedder=LexicalEmbedder())
