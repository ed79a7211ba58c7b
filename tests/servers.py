"""Servers mode: the whole suite against a PostgreSQL server and a Chroma server (`CXA_TEST_BACKENDS=servers`).

Both servers are started once per session by `tests/backends.py` (or given: `CXA_TEST_DATABASE_URL`, a
PostgreSQL URL whose user may create databases; `CXA_TEST_CHROMA_URL`). Every data dir a test uses still gets
state of its own: `tests.conftest.make_settings(data_dir)` asks `ServerBackends.settings_for(data_dir)` for a
database and a collection, allocated on first use and the same for later calls on that dir:

- a data dir copied from the session's sample template (it carries `TEMPLATE_MARKER`) gets
  `CREATE DATABASE ... TEMPLATE <template database>` and a copy of the template collection (its ids,
  embeddings, documents and metadata, read once per session), so no test embeds the help center again;
- any other data dir gets an empty database and a new collection name (created by the product on first use).

What a test allocates is dropped when it ends (`DROP DATABASE ... WITH (FORCE)`, `delete_collection`); what
session- or module-scoped fixtures allocate, when the session ends. Names carry a per-session token, so
sessions sharing given servers never meet. Files that are neither database nor index (keys.json, the topic
model cache, eval reports) stay in the data dir.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from assistant.services import build_index
from assistant.settings import Settings
from assistant.topics import TopicClassifier
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
    data_dir: Path
    database: str
    collection: str


@dataclass
class _TemplateCollection:
    """A template collection's content, read once: copied into each test's own collection."""

    metadata: dict[str, Any]
    ids: list[str]
    embeddings: list[Any]
    documents: list[str]
    metadatas: list[dict[str, Any]]


@dataclass
class ServerBackends:
    database_url: str  # a maintenance database on the server (e.g. .../postgres)
    chroma_url: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _by_dir: dict[Path, Allocation] = field(default_factory=dict)
    _scopes: list[list[Allocation]] = field(default_factory=lambda: [[]])  # [0]: until the session ends
    _templates: dict[str, _TemplateCollection] = field(default_factory=dict)
    _count: int = 0

    def __post_init__(self) -> None:
        # AUTOCOMMIT: CREATE/DROP DATABASE cannot run in a transaction. NullPool: no idle connection of ours
        # to a template database (CREATE DATABASE ... TEMPLATE refuses while anyone is connected to it).
        self._admin: Engine = create_engine(self.database_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self._chroma = open_client(url=self.chroma_url)

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

    def admin_execute(self, sql: str, **params: object) -> None:
        """Run `sql` on the server's maintenance database, outside any transaction (fault tests)."""
        with self._admin.connect() as conn:
            conn.execute(text(sql), params)

    # -- per-test scopes ------------------------------------------------------------------------------

    def begin_test(self) -> None:
        self._scopes.append([])

    def end_test(self) -> None:
        self._release(self._scopes.pop())

    def close(self) -> None:
        while self._scopes:
            self._release(self._scopes.pop())
        self._admin.dispose()

    # -- allocation -----------------------------------------------------------------------------------

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"cxa_{kind}_{self.token}_{self._count}"

    def _url(self, database: str) -> str:
        return make_url(self.database_url).set(database=database).render_as_string(hide_password=False)

    def _allocate(self, data_dir: Path) -> Allocation:
        template = self._template_of(data_dir)
        alloc = Allocation(data_dir, self._name("db"), self._name("col"))
        with self._admin.connect() as conn:
            if template is None:
                conn.execute(text(f'CREATE DATABASE "{alloc.database}"'))
            else:
                conn.execute(text(f'CREATE DATABASE "{alloc.database}" TEMPLATE "{template["database"]}"'))
        self._by_dir[data_dir] = alloc
        self._scopes[-1].append(alloc)
        if template is not None:
            self._copy_collection(template["collection"], alloc, data_dir)
        return alloc

    def _template_of(self, data_dir: Path) -> dict[str, str] | None:
        marker = data_dir / TEMPLATE_MARKER
        if not marker.is_file():
            return None
        found: dict[str, str] = json.loads(marker.read_text())
        if found.get("token") != self.token:
            raise RuntimeError(f"{data_dir} was copied from another session's template")
        return found

    def _settings(self, data_dir: Path, alloc: Allocation) -> Settings:
        return Settings(
            data_dir=data_dir,
            database_url=self._url(alloc.database),
            chroma_url=self.chroma_url,
            collection=alloc.collection,
        )

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

    def _copy_collection(self, template_name: str, alloc: Allocation, data_dir: Path) -> None:
        """The template collection's chunks into `alloc.collection`, created as the product creates it (its
        embedding function and metadata), with the template's revision; the copied topic-model cache is
        re-keyed to the new collection (what the product would have cached, without training it again)."""
        tpl = self._read_template(template_name)
        index = build_index(self._settings(data_dir, alloc))
        col = index.collection
        for i in range(0, len(tpl.ids), _COPY_BATCH):
            j = i + _COPY_BATCH
            col.add(
                ids=tpl.ids[i:j],
                embeddings=tpl.embeddings[i:j],
                documents=tpl.documents[i:j],
                metadatas=tpl.metadatas[i:j],  # type: ignore[arg-type]
            )
        col.modify(metadata=tpl.metadata)
        cache = data_dir / "topics" / "helpcenter.npz"
        if cache.is_file():
            clf = TopicClassifier.load(cache, index.embedder)
            if clf.meta.get("collection") == template_name:
                clf.save(cache, collection=alloc.collection)

    def _release(self, allocations: list[Allocation]) -> None:
        for alloc in reversed(allocations):
            self._by_dir.pop(alloc.data_dir, None)
            try:
                with self._admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{alloc.database}" WITH (FORCE)'))
            except Exception:  # a cleanup failure must not hide the test's own result
                logger.exception("could not drop database %s", alloc.database)
            try:
                self._chroma.delete_collection(alloc.collection)
            except Exception as exc:  # never created (the test did not use the index)
                logger.debug("collection %s not deleted: %s", alloc.collection, exc)


def start_servers(stack: ExitStack) -> ServerBackends:
    """The session's servers: the given URLs, or a PostgreSQL cluster and `chroma run` started here."""
    database_url = os.environ.get("CXA_TEST_DATABASE_URL") or stack.enter_context(postgres_server())
    chroma_url = os.environ.get("CXA_TEST_CHROMA_URL")
    if not chroma_url:
        root = Path(tempfile.mkdtemp(prefix="cxa-chroma-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        chroma_url = stack.enter_context(chroma_server(root))
    backends = ServerBackends(database_url, chroma_url.rstrip("/"))
    stack.callback(backends.close)
    return backends
