"""Schema migrations (Alembic), run in code: by `Store` at start (`CXA_DATABASE_MIGRATE=auto`) and by `cxa db`.

The revisions live in `assistant/store/migrations/versions/` and ship with the package; there is no alembic.ini:
`alembic_config` builds the configuration and hands the connection to `env.py`.

- Several workers starting at once migrate once: the upgrade runs under a lock held for the whole upgrade,
  a PostgreSQL advisory lock (transaction-scoped, with PostgreSQL's transactional DDL the upgrade commits or
  not at all) or, for SQLite, an exclusive lock on a file next to the database. Whoever waited finds the
  schema at head and does nothing. A database already at head is recognised without taking the lock.
- A database created before migrations existed (by `create_all`: our tables, no `alembic_version`) is stamped
  at the baseline revision, which is exactly that schema, then upgraded; what still differs from the models
  afterwards is logged.
- A database at a revision this code does not know (newer code migrated it; this is an older worker in a
  rolling update) is left alone: `upgrade` raises `UnknownRevisionError`, and the `Store` logs it and runs.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine

from assistant.store import locks
from assistant.store.tables import Base

try:  # POSIX; elsewhere SQLite migrations run without the file lock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema `create_all` made before migrations: a database without a version is stamped here
# pg_advisory_xact_lock takes a bigint: "cxa-migr" as 8 bytes (below 2**63), unlikely to collide with another app.
LOCK_KEY = int.from_bytes(b"cxa-migr", "big")
_OUR_TABLE = "conversations"  # present in every database a cx-assistant has opened


class MigrationError(Exception):
    """The schema cannot be brought to this code's version (the message says why and what to do)."""


class UnknownRevisionError(MigrationError):
    """The database is at a revision this code does not have: newer code migrated it."""


@dataclass(frozen=True)
class Revision:
    id: str
    down: str | None
    message: str
    path: Path


@dataclass(frozen=True)
class UpgradeResult:
    before: str | None
    after: str | None
    stamped: bool = False  # a database from before migrations was stamped at the baseline first

    @property
    def changed(self) -> bool:
        return self.stamped or self.before != self.after


def alembic_config(
    connection: Connection | None = None, url: str | None = None, output: io.StringIO | None = None
) -> Config:
    """An in-memory alembic configuration: our script directory, and the connection (online) or URL (offline)."""
    cfg = Config(output_buffer=output)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("truncate_slug_length", "40")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    """The revisions on disk, read once per process (they do not change while it runs)."""
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    h = _scripts().get_current_head()
    if h is None:  # pragma: no cover - the baseline always exists
        raise MigrationError("no migration revisions found")
    return h


def revisions() -> list[Revision]:
    """Every revision, oldest first."""
    out = [
        Revision(s.revision, s.down_revision if isinstance(s.down_revision, str) else None, s.doc, Path(s.path))
        for s in _scripts().walk_revisions()
    ]
    return out[::-1]


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def current(engine: Engine) -> str | None:
    """The database's revision: None for an empty database or one from before migrations."""
    with engine.connect() as conn:
        return _current(conn)


def has_our_tables(engine_or_conn: Engine | Connection) -> bool:
    return bool(inspect(engine_or_conn).has_table(_OUR_TABLE))


def _known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


@contextmanager
def exclusive(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction, holding the migration lock until the transaction ends."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            yield conn
        return
    lock_path = locks.lock_file(engine, "migrate")
    if lock_path is None:
        with engine.begin() as conn:  # one connection's private database, or no file lock on this platform
            yield conn
        return
    with lock_path.open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        try:
            with engine.begin() as conn:
                yield conn
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> UpgradeResult:
    """Bring the schema to `revision` (default the head), under the migration lock. Raises
    `UnknownRevisionError` when the database is at a revision this code does not know."""
    target = head() if revision == "head" else revision
    before = current(engine)
    if before == target:
        return UpgradeResult(before, before)  # the usual start: nothing to do, no lock taken
    stamped = False
    with exclusive(engine) as conn:
        before = _current(conn)  # again, under the lock: another process may have just done it
        if before is not None and not _known(before):
            raise UnknownRevisionError(
                f"the database schema is at revision {before}, which this version of cx-assistant does not know "
                f"(its newest is {head()}): it was migrated by a newer version"
            )
        if before is None and has_our_tables(conn):
            logger.warning("database from before migrations: stamping it at the baseline revision %s", BASELINE)
            command.stamp(alembic_config(conn), BASELINE)
            stamped = True
        if before != target:
            command.upgrade(alembic_config(conn), target)
        after = _current(conn)
    if after != before:
        logger.info("database schema migrated from %s to %s", before or "nothing", after)
    if stamped:
        left = differences(engine)
        if left:
            logger.warning(
                "the database from before migrations still differs from the models (check with `cxa db check`): %s",
                "; ".join(describe(d) for d in left),
            )
    return UpgradeResult(before, after, stamped)


def stamp(engine: Engine, revision: str) -> None:
    """Record `revision` as the database's without running anything (for a schema made by hand)."""
    with exclusive(engine) as conn:
        command.stamp(alembic_config(conn), revision)


def require_head(engine: Engine) -> None:
    """For `CXA_DATABASE_MIGRATE=off`: raise `MigrationError` unless the schema is at this code's head (a newer,
    unknown revision is accepted with a warning: newer code migrated it, and migrations only add)."""
    now = current(engine)
    if now == head():
        return
    if now is not None and not _known(now):
        logger.warning("the database schema is at %s, newer than this code's %s; running as it is", now, head())
        return
    if now is None:
        where = "the database was created before migrations" if has_our_tables(engine) else "the database is empty"
    else:
        where = f"the database schema is at revision {now}"
    raise MigrationError(
        f"{where}; this version needs revision {head()}: run `cxa db upgrade` (or start with CXA_DATABASE_MIGRATE=auto)"
    )


def differences(engine: Engine) -> list[Any]:
    """What differs between the database's schema and the models (alembic's `compare_metadata` entries)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def describe(diff: Any) -> str:
    """One line for a `compare_metadata` entry (a tuple, or a list of column modifications)."""
    if isinstance(diff, list):
        return "; ".join(describe(d) for d in diff)
    kind, *rest = diff
    names = [getattr(x, "name", None) or getattr(x, "fullname", None) for x in rest]
    shown = [str(n) for n in names if n] or [str(x) for x in rest[:3]]
    return f"{kind} {' '.join(shown)}"


def offline_sql(url: str, revision: str = "head", start: str | None = None) -> str:
    """The SQL an upgrade would run (for a DBA to review or apply), without connecting."""
    out = io.StringIO()
    command.upgrade(alembic_config(url=url, output=out), f"{start}:{revision}" if start else revision, sql=True)
    return out.getvalue()


def next_revision_id() -> str:
    numbers = [int(r.id) for r in revisions() if r.id.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def _format_drafts_with_ruff(cfg: Config) -> None:
    """Where ruff is installed next to this interpreter (a development venv), drafts come out formatted and with
    their imports sorted, as the rest of the code base."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        return
    cfg.set_section_option("post_write_hooks", "hooks", "ruff_fix, ruff_format")
    for name, options in (("ruff_fix", "check --fix --quiet"), ("ruff_format", "format --quiet")):
        cfg.set_section_option("post_write_hooks", f"{name}.type", "exec")
        cfg.set_section_option("post_write_hooks", f"{name}.executable", str(ruff))
        cfg.set_section_option("post_write_hooks", f"{name}.options", f"{options} REVISION_SCRIPT_FILENAME")


def new_revision(message: str, autogenerate: bool = True) -> Path:
    """Draft the next revision file in `migrations/versions/` (a source checkout: this writes next to the code).
    With `autogenerate`, its operations are what the models add to a scratch SQLite database migrated to head."""
    if not re.search(r"\w", message):
        raise MigrationError("give the revision a message saying what it changes")
    with tempfile.TemporaryDirectory(prefix="cxa-revision-") as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'draft.db'}")
        try:
            if _scripts().get_current_head() is not None:  # (the very first revision starts from nothing)
                upgrade(engine)
            with engine.begin() as conn:
                cfg = alembic_config(conn)
                _format_drafts_with_ruff(cfg)
                script = command.revision(cfg, message=message, autogenerate=autogenerate, rev_id=next_revision_id())
        finally:
            engine.dispose()
    _scripts.cache_clear()
    if script is None or isinstance(script, list):  # pragma: no cover - one head, one script
        raise MigrationError("alembic did not write a revision")
    return Path(script.path)
