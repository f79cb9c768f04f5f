"""Opening the LangGraph store behind skill memory, with its vector index configured for an embedder.

- SQLite (default): LangGraph's `SqliteStore` on a file, its vectors in sqlite-vec. This Python's own
  `sqlite3` cannot load extensions, so the connection comes from `pysqlite3` (same file format).
  WAL journal, synchronous=FULL and foreign keys on: each batch is one transaction (a kill mid-write
  leaves the previous state), and replacing or deleting an item drops its old vectors with it.
- PostgreSQL (`settings.memory_url`): LangGraph's `PostgresStore` with pgvector, for a fleet sharing
  one library (package `langgraph-checkpoint-postgres`, imported only then). The search is exact
  (pgvector "flat", no ANN index): LangGraph keeps every namespace's vectors in one table and filters
  by namespace after pgvector's approximate HNSW scan, so with HNSW a plan search found the right plan
  for 18 of 36 queries among 1009 plans and 3 of 36 among 5009 (bench/results/memory_retrieval.md),
  against 36 of 36 for the exact search, which took 24 ms median at 5009 plans (query embedding included).
Both use cosine similarity, so a search score is the cosine of the query and the stored text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from langgraph.store.base import BaseStore

from core.errors import BackendUnavailable, ConfigError, VLMimicError
from memory.embeddings import Embedder

Backend = Literal["sqlite", "postgres"]
META = ("meta",)
INDEX_KEY = "index"  # ("meta", "index"): the embedder the stored vectors came from


class SkillMemoryError(VLMimicError):
    """Skill memory could not be read or written (the message names the item)."""


def index_config(embedder: Embedder, backend: Backend, pg_index: Literal["flat", "hnsw"] = "flat") -> dict[str, Any]:
    """LangGraph index settings: the store embeds the fields named at each put with this embedder."""

    def embed(texts: Any) -> list[list[float]]:
        return [[float(x) for x in row] for row in embedder.embed(list(texts))]

    config: dict[str, Any] = {"dims": int(embedder.dims), "embed": embed, "fields": ["text"], "distance_type": "cosine"}
    if backend == "postgres":
        config["ann_index_config"] = {"kind": pg_index}  # "flat" (exact) unless measuring: see the docstring
    return config


def open_sqlite_store(path: Path, embedder: Embedder) -> tuple[BaseStore, Any]:
    """A set-up SqliteStore with a sqlite-vec index on `path`, and the function that closes it."""
    from langgraph.store.sqlite import SqliteStore

    try:
        from pysqlite3 import dbapi2 as sqlite
    except ImportError as e:
        raise BackendUnavailable(
            "the skill memory's vector index needs pysqlite3 (this Python's sqlite3 cannot load sqlite-vec); "
            "install it with `pip install pysqlite3-binary`") from e
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        store = SqliteStore(conn, index=index_config(embedder, "sqlite"))  # type: ignore[arg-type]
        store.setup()
    except (sqlite.Error, OSError) as e:
        raise SkillMemoryError(f"{path}: cannot open the skill memory: {e}") from e
    return store, conn.close


def open_postgres_store(url: str, embedder: Embedder,
                        pg_index: Literal["flat", "hnsw"] = "flat") -> tuple[BaseStore, Any]:
    """A set-up PostgresStore with a pgvector index, and the function that closes it.

    The embedder recorded in the shared library is checked before the vector table is touched: its
    column has the first robot's dimensions, and another embedder's vectors would not fit (or worse,
    would fit and not compare). Errors never repeat `url`: it may hold a password.
    """
    if not url.startswith(("postgresql://", "postgres://")):
        scheme = url.split(":")[0]
        raise ConfigError(f"setting 'memory_url': expected postgresql://..., got {scheme}://")
    try:
        import psycopg
        from langgraph.store.postgres import PostgresStore
        from psycopg.rows import dict_row
    except ImportError as e:
        raise BackendUnavailable(
            "memory_url is a postgresql:// URL but LangGraph's PostgresStore is not installed; "
            "install it with `pip install -e '.[fleet]'` (langgraph-checkpoint-postgres; pgvector on the server)"
        ) from e
    try:
        conn = psycopg.Connection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
    except psycopg.Error as e:
        raise SkillMemoryError(f"the shared skill memory (memory_url) cannot be reached: {_first_line(e)}") from e
    try:
        plain = PostgresStore(conn)  # type: ignore[arg-type]
        plain.setup()
        refuse_another_embedder(plain, embedder)
        store = PostgresStore(conn, index=index_config(embedder, "postgres", pg_index))  # type: ignore[arg-type]
        store.setup()
    except psycopg.Error as e:
        conn.close()
        raise SkillMemoryError(f"the shared skill memory (memory_url) cannot be set up: {_first_line(e)}") from e
    except BaseException:
        conn.close()
        raise
    return store, conn.close


def index_meta(embedder: Embedder) -> dict[str, Any]:
    """What ("meta", "index") records about the embedder the stored vectors came from."""
    return {"embedder": embedder.name, "dims": int(embedder.dims)}


def refuse_another_embedder(store: BaseStore, embedder: Embedder) -> None:
    """A shared library indexed by another embedder is refused, whatever it holds.

    Re-indexing it from one robot would undo the index of every other robot, and pgvector's column
    keeps the dimensions it was made with.
    """
    item = store.get(META, INDEX_KEY)
    want = index_meta(embedder)
    if item is None or all(item.value.get(k) == v for k, v in want.items()):
        return
    have = item.value
    raise ConfigError(
        f"setting 'embedder_model_path': the shared skill memory is indexed with {have.get('embedder')} "
        f"({have.get('dims')} dims) but this robot embeds with {want['embedder']} ({want['dims']} dims); "
        "every robot sharing memory_url must use the same embedder")


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
