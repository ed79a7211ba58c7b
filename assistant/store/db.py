"""The database under the repositories: the engine, the transaction every repository method runs in, and what
happens around its commit.

One `Database` per process holds one SQLAlchemy engine (never one per turn). Every write is its own short
transaction (`session()`), so a customer's message is committed before anything else of the turn runs. SQLite
runs in WAL mode with a busy timeout, so readers never block the writer.

At start the schema is migrated to this code's version (`assistant.store.migrate`, unless `migrate_schema="off"`).
Every write that numbers a message (`messages.next_seq`) or changes a conversation's status
(`conversations.update_status`) marks the conversation touched, and `session()` hands the marks to the live bus
(`assistant.store.live`) around the commit, which wakes the conversation's `/events` streams in every process.

Repositories own a transaction per public method. A helper that takes a `Session` as its first argument runs its
statements in the caller's transaction instead: that is how one repository writes across seams atomically (a
turn's message and record, a handoff claim and the conversation's status).
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import Session, sessionmaker

from assistant.errors import StoreUnavailableError
from assistant.store import live, locks, migrate

logger = logging.getLogger(__name__)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. `Session.execute` is typed to return any `Result`; for those
    statements it is a `CursorResult`, the one that counts them."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def _wal(cur: Any, busy_timeout_s: float) -> None:
    """Put the database in WAL mode (persistent: once per database file, a no-op read afterwards). The switch needs
    an exclusive lock and SQLite does not call the busy handler for it, so two processes opening a new database
    at once would see "database is locked" at once: it is retried here for up to the busy timeout."""
    deadline = time.monotonic() + busy_timeout_s
    delay = 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def make_engine(url: str, busy_timeout_s: float = 15.0, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    """One engine per process. A writer finding what it must change locked by another connection waits up
    to `busy_timeout_s`, then gets an `OperationalError` that `Database.session` turns into a 503: SQLite's busy
    timeout ("database is locked"), PostgreSQL's `lock_timeout` (a row held by a stuck transaction would
    otherwise hold the request forever). A server database: connections are pinged before use, so one
    dropped while idle (a restart) is replaced, not reported; each process keeps up to `pool_size` connections
    open and opens up to `max_overflow` more at a peak."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            _wal(cur, busy_timeout_s)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cur.close()

        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _postgres_session(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"SET lock_timeout = {int(busy_timeout_s * 1000)}")
            cur.close()
            dbapi_conn.commit()  # a SET rolled back with its transaction would not last the session

    return engine


class Database:
    def __init__(
        self,
        url: str,
        busy_timeout_s: float = 15.0,
        *,
        migrate_schema: Literal["auto", "off"] = "auto",
        listen: bool = True,
        pool_size: int = 10,
        max_overflow: int = 20,
        keep_originals: bool = False,
    ) -> None:
        """`migrate_schema`: auto = upgrade the schema to this code's head now (under a lock: workers starting
        together migrate once); off = only check it is there (`StoreUnavailableError` if it is behind: run
        `cxa db upgrade`). `listen`: PostgreSQL LISTEN/NOTIFY wakes live streams across processes.
        `keep_originals`: a message whose payment data was masked keeps its typed text beside it (for an audit)."""
        self.url = url
        self.keep_originals = keep_originals
        try:
            self.engine = make_engine(url, busy_timeout_s, pool_size, max_overflow)
            if migrate_schema == "auto":
                migrate.upgrade(self.engine)
            else:
                migrate.require_head(self.engine)
        except migrate.UnknownRevisionError as exc:  # newer code migrated it: this older worker runs as it is
            logger.warning("%s; running without migrating", exc)
        except migrate.MigrationError as exc:
            raise StoreUnavailableError(str(exc)) from exc
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(f"the database cannot be opened ({exc.__class__.__name__}: {exc})") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.live = live.make_bus(self.engine, listen)

    @contextmanager
    def try_exclusive(self, name: str) -> Iterator[bool]:
        """True when this process got the lock `name` among every process on this database, for the block;
        False when another holds it (skip the work). For periodic jobs one worker should run at a time."""
        try:
            with locks.try_exclusive(self.engine, name) as held:
                yield held
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(f"the database cannot be reached ({exc.__class__.__name__})") from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self._sessions()
        try:
            yield s
            touched = s.info.pop(live.TOUCHED, None)
            if touched:
                self.live.before_commit(s, touched)  # PostgreSQL: NOTIFY inside the transaction (sent on commit)
            s.commit()
            if touched:
                self.live.after_commit(touched)
        except (OperationalError, SATimeoutError) as exc:  # locked, unreachable, or no pooled connection free
            s.rollback()
            # The driver's words are for the log, not the caller (they name files and internals).
            logger.warning("database unavailable: %s", getattr(exc, "orig", None) or exc)
            raise StoreUnavailableError("the database is unavailable (locked or unreachable); retry shortly") from exc
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def ping(self) -> None:
        with self.session() as s:
            s.execute(text("SELECT 1"))

    def close(self) -> None:
        self.live.close()
        self.engine.dispose()


class Repository:
    """One seam of the store over the shared `Database`: each public method is one `db.session()` transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
