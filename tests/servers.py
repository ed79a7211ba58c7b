"""Servers mode: the whole suite against a PostgreSQL server and a Chroma server (`CXA_TEST_BACKENDS=servers`).

Both servers are started once per session by `tests/backends.py` (or given: `CXA_TEST_DATABASE_URL`, a
PostgreSQL URL whose user may create databases; `CXA_TEST_CHROMA_URL`). Every data dir a test uses still gets
state of its own: `tests.conftest.make_settings(data_dir)` asks `ServerBackends.settings_for(data_dir)` for a
database and a collection, allocated on first use and the same for later calls on that dir:

- a data dir copied from the session's sample template (it carries `TEMPLATE_MARKER`) gets
  `CREATE DATABASE ... TEMPLATE <template database>` and a copy of the template collection (its ids,
  embeddings, documents and metadata, read once per session), so no test embeds the help center again;
- any other data dir gets an empty database and a new collection name (created by the product on first use).

What a test allocates is dropped when it ends (`DROP DATABASE ... WITH (FORCE)`, `delete_collection`, in the
background; a copy of the template collection the test did not write to is kept for a later test instead);
what session- or module-scoped fixtures allocate, when the session ends. Names carry a
per-session token, so sessions sharing given servers never meet. Files that are neither database nor index
(keys.json, the topic model cache, eval reports) stay in the data dir.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from assistant.services import build_index
from assistant.settings import Settings
from assistant.telemetry.topics import TopicClassifier
from knowledge.index import open_client
from tests.backends import chroma_server, postgres_server

logger = logging.getLogger(__name__)

MODE_VARIABLE = "CXA_TEST_BACKENDS"
TEMPLATE_MARKER = "test-backends-template.json"  # copied along with the template's data dir
_COPY_BATCH = 1000


def servers_mode() -> bool:
    """True when `CXA_TEST_BACKENDS=servers`: the suite runs on PostgreSQL and a Chroma server."""
    mode = os.environ.get(MODE_VARIABLE, "").strip().lower()
    if mode not in ("", "embedded", "servers"):
        raise RuntimeError(f"{MODE_VARIABLE}={mode!r}: use `servers`, or leave it unset for SQLite + on-disk Chroma")
    return mode == "servers"


@dataclass
class Allocation:
    database: str
    collection: str
    template: tuple[str, str] | None = None  # (database, collection) it was copied from
    data_dir: Path | None = None


@dataclass
class _TemplateCollection:
    """A template collection's content, read once: copied into each test's own collection."""

    metadata: dict[str, Any]
    ids: list[str]
    embeddings: list[Any]
    documents: list[str]
    metadatas: list[dict[str, Any]]


class ServerBackends:
    """Databases and collections on the session's servers, one pair per data dir.

    Making a pair costs more than most tests (copying the template collection is ~0.15-0.5 s of the Chroma
    server's time, CREATE DATABASE ~0.1-0.5 s, more on a busy machine): one worker thread prepares the next
    pair of each kind (template copy, empty) while the current test runs, and drops what ended tests used.
    A copy of the template collection that a test left as it was (the product bumps the collection's
    `revision` on every write, and the count is the template's) is not deleted but handed to a later test."""

    def __init__(self, database_url: str, chroma_url: str) -> None:
        self.database_url = database_url  # a maintenance database on the server (e.g. .../postgres)
        self.chroma_url = chroma_url
        self.token = uuid.uuid4().hex[:8]
        # AUTOCOMMIT: CREATE/DROP DATABASE cannot run in a transaction. NullPool: no idle connection of ours
        # to a template database (CREATE DATABASE ... TEMPLATE refuses while anyone is connected to it).
        self._admin: Engine = create_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self._chroma = open_client(url=chroma_url)
        self._by_dir: dict[Path, Allocation] = {}
        self._scopes: list[list[Allocation]] = [[]]  # [0]: until the session ends
        self._templates: dict[str, _TemplateCollection] = {}
        self._spare: dict[str, list[str]] = {}  # template collection -> untouched copies of it
        self._next: dict[tuple[str, str] | None, Future[Allocation]] = {}  # prepared ahead, by template
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="cxa-test-backends")
        self._lock = threading.Lock()
        self._count = 0

    # -- what make_settings uses ----------------------------------------------------------------------

    def settings_for(self, data_dir: Path) -> dict[str, object]:
        """`database_url`, `chroma_url` and `collection` of `data_dir` (allocated on first use)."""
        key = Path(data_dir).expanduser().resolve()
        alloc = self._by_dir.get(key)
        if alloc is None:
            alloc = self._allocate(key)
        return {
            "database_url": self._url(alloc.database),
            "chroma_url": self.chroma_url,
            "collection": alloc.collection,
        }

    def environment(self, data_dir: Path) -> dict[str, str]:
        """The same, as CXA_* variables for a `cxa` process (a subprocess, or typer's CliRunner)."""
        s = self.settings_for(data_dir)
        return {
            "CXA_DATABASE_URL": str(s["database_url"]),
            "CXA_CHROMA_URL": str(s["chroma_url"]),
            "CXA_COLLECTION": str(s["collection"]),
        }

    def mark_template(self, settings: Settings) -> None:
        """`settings.data_dir` is the session's sample template: copies of it start from its database and
        collection. Call once its store is closed (a template database must have no connections)."""
        alloc = self._by_dir[settings.data_dir]
        (settings.data_dir / TEMPLATE_MARKER).write_text(
            json.dumps({"database": alloc.database, "collection": alloc.collection, "token": self.token})
        )
        self._prepare_next((alloc.database, alloc.collection))

    def admin_execute(self, sql: str, **params: object) -> None:
        """Run `sql` on the server's maintenance database, outside any transaction (fault tests)."""
        with self._admin.connect() as conn:
            conn.execute(text(sql), params)

    # -- per-test scopes ------------------------------------------------------------------------------

    def begin_test(self) -> None:
        self._scopes.append([])

    def end_test(self) -> None:
        ended = self._scopes.pop()
        for alloc in ended:
            self._by_dir.pop(alloc.data_dir, None)  # type: ignore[arg-type]
        self._worker.submit(self._drop, ended)

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        unused = [f.result() for f in self._next.values() if f.exception() is None]
        self._drop([a for scope in self._scopes for a in scope] + unused)
        self._scopes = []
        for name in (n for spare in self._spare.values() for n in spare):
            self._delete_collection(name)
        self._admin.dispose()

    # -- allocation -----------------------------------------------------------------------------------

    def _name(self, kind: str) -> str:
        with self._lock:
            self._count += 1
            return f"cxa_{kind}_{self.token}_{self._count}"

    def _url(self, database: str) -> str:
        return make_url(self.database_url).set(database=database).render_as_string(hide_password=False)

    def _allocate(self, data_dir: Path) -> Allocation:
        template = self._template_of(data_dir)
        ready = self._next.pop(template, None)
        alloc = ready.result() if ready is not None else self._make(template)
        self._prepare_next(template)
        alloc.data_dir = data_dir
        self._by_dir[data_dir] = alloc
        self._scopes[-1].append(alloc)
        if template is not None:
            self._rekey_topic_cache(data_dir, template[1], alloc.collection)
        return alloc

    def _prepare_next(self, template: tuple[str, str] | None) -> None:
        self._next[template] = self._worker.submit(self._make, template)

    def _make(self, template: tuple[str, str] | None) -> Allocation:
        """A new database (empty, or a copy of the template's) and collection name (with the template's
        chunks copied in, or left for the product to create on first use)."""
        database = self._name("db")
        with self._admin.connect() as conn:
            if template is None:
                conn.execute(text(f'CREATE DATABASE "{database}"'))
            else:
                conn.execute(text(f'CREATE DATABASE "{database}" TEMPLATE "{template[0]}"'))
        if template is None:
            return Allocation(database, self._name("col"))
        with self._lock:
            spare = self._spare.get(template[1], [])
            collection = spare.pop() if spare else None
        if collection is None:
            collection = self._name("col")
            self._copy_collection(template[1], collection)
        return Allocation(database, collection, template)

    def _template_of(self, data_dir: Path) -> tuple[str, str] | None:
        marker = data_dir / TEMPLATE_MARKER
        if not marker.is_file():
            return None
        found: dict[str, str] = json.loads(marker.read_text())
        if found.get("token") != self.token:
            raise RuntimeError(f"{data_dir} was copied from another session's template")
        return found["database"], found["collection"]

    def _read_template(self, name: str) -> _TemplateCollection:
        if name not in self._templates:
            col = self._chroma.get_collection(name)
            got = col.get(include=["embeddings", "documents", "metadatas"])  # type: ignore[list-item]
            self._templates[name] = _TemplateCollection(
                metadata={k: v for k, v in (col.metadata or {}).items() if not k.startswith("hnsw:")},
                ids=list(got["ids"]),
                embeddings=list(got["embeddings"] if got["embeddings"] is not None else []),
                documents=list(got["documents"] or []),
                metadatas=[dict(m) for m in got["metadatas"] or []],
            )
        return self._templates[name]

    def _copy_collection(self, template_name: str, name: str) -> None:
        """The template collection's chunks into collection `name`, created as the product creates it (its
        embedding function and metadata), with the template's revision."""
        tpl = self._read_template(template_name)
        col = build_index(Settings(chroma_url=self.chroma_url, collection=name)).collection
        for i in range(0, len(tpl.ids), _COPY_BATCH):
            j = i + _COPY_BATCH
            col.add(
                ids=tpl.ids[i:j],
                embeddings=tpl.embeddings[i:j],
                documents=tpl.documents[i:j],
                metadatas=tpl.metadatas[i:j],  # type: ignore[arg-type]
            )
        col.modify(metadata=tpl.metadata)

    @staticmethod
    def _rekey_topic_cache(data_dir: Path, template_name: str, name: str) -> None:
        """The copied topic-model cache names the template collection: re-keyed to the copy, it is what the
        product would have cached for it (same chunks, same revision), so no test trains it again."""
        cache = data_dir / "topics" / "helpcenter.npz"
        if cache.is_file():
            clf = TopicClassifier.load(cache)
            if clf.meta.get("collection") == template_name:
                clf.save(cache, collection=name)

    def _untouched(self, template_name: str, name: str) -> bool:
        """The copy is still the template's: same revision (bumped by every write through the product's index,
        and gone if the collection was rebuilt) and the same number of chunks."""
        tpl = self._read_template(template_name)
        try:
            col = self._chroma.get_collection(name)
            return (col.metadata or {}).get("revision") == tpl.metadata.get("revision") and col.count() == len(tpl.ids)
        except Exception:  # deleted by the test
            return False

    def _drop(self, allocations: list[Allocation]) -> None:
        for alloc in reversed(allocations):
            try:
                with self._admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{alloc.database}" WITH (FORCE)'))
            except Exception:  # a cleanup failure must not hide the test's own result
                logger.exception("could not drop database %s", alloc.database)
            if alloc.template is not None and self._untouched(alloc.template[1], alloc.collection):
                with self._lock:
                    self._spare.setdefault(alloc.template[1], []).append(alloc.collection)
            else:
                self._delete_collection(alloc.collection)

    def _delete_collection(self, name: str) -> None:
        try:
            self._chroma.delete_collection(name)
        except Exception as exc:  # never created (the test did not use the index)
            logger.debug("collection %s not deleted: %s", name, exc)


def start_servers(stack: ExitStack) -> ServerBackends:
    """The session's servers: the given URLs, or a PostgreSQL cluster and `chroma run` started here (side by
    side: each takes a few seconds), stopped when `stack` closes."""
    database_url = os.environ.get("CXA_TEST_DATABASE_URL")
    chroma_url = os.environ.get("CXA_TEST_CHROMA_URL")
    starting: dict[str, Any] = {}
    if not database_url:
        starting["database"] = postgres_server()
    if not chroma_url:
        root = Path(tempfile.mkdtemp(prefix="cxa-chroma-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        starting["chroma"] = chroma_server(root)
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(cm.__enter__) for name, cm in starting.items()}
    started: dict[str, str] = {}
    for name, future in futures.items():
        if future.exception() is None:
            started[name] = future.result()
            stack.push(starting[name])  # its __exit__ stops it
    for future in futures.values():
        if (exc := future.exception()) is not None:
            stack.close()
            raise exc
    backends = ServerBackends(database_url or started["database"], (chroma_url or started["chroma"]).rstrip("/"))
    stack.callback(backends.close)
    return backends
