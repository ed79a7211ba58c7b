"""Locks shared by every process on one database: who migrates the schema (blocking, `migrate.exclusive`) and
who runs a periodic job such as the background scorer (non-blocking, `try_exclusive`).

PostgreSQL: advisory locks, whose holders are database sessions, so they work across processes and machines.
SQLite: an `flock` on a file next to the database (the processes share a machine when they share an SQLite
file). An in-memory or URI database belongs to one connection: nothing to exclude.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

try:
    import fcntl
except ImportError:  # not on Windows: SQLite processes are then not excluded from each other
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """A stable bigint for PostgreSQL's advisory locks, from a lock's name."""
    return int.from_bytes(hashlib.blake2b(f"cx-assistant:{name}".encode(), digest_size=8).digest(), "big") >> 1


def lock_file(engine: Engine, name: str) -> Path | None:
    """The lock file of an SQLite database file (None: not SQLite, one connection's database, or no flock)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:") or fcntl is None:
        return None
    path = Path(database).with_name(f"{Path(database).name}.{name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def try_exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Whether this process holds the lock `name` for the duration of the block (True), or another process holds
    it now (False: skip the work this time). Never waits. Released when the block ends, or when the process
    (or its database session) dies."""
    if engine.dialect.name == "postgresql":
        key = lock_key(name)
        with engine.connect() as conn:  # the lock belongs to this session: unlocked on the same connection
            got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()
        return
    path = lock_file(engine, name)
    if path is None:
        yield True
        return
    with path.open("a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
