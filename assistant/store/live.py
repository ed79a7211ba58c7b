"""Wake-ups for live streams (`/v1/conversations/{id}/events`): a conversation got a new message or a new
status, in whichever process wrote it.

The database stays the source of truth. A wake-up carries only the conversation id; the stream then reads
what is new from the database (messages after the last number it sent, the status). A lost wake-up costs
latency, never a message: streams also read again on a slow timer (the safety net).

Which writes wake streams is decided in one place, the store: it marks a conversation `touch`ed when it numbers
a message or changes a status (`messages.next_seq` and `conversations.update_status`, the two statements every
such write goes through), and `Database.session` (`assistant.store.db`) hands the marks to the bus around the
commit:

- `PostgresBus`: before the commit, `SELECT pg_notify('cxa_live', <conversation id>)` in the writer's own
  transaction, so PostgreSQL delivers it when, and only if, the write commits, to every process. Each process
  keeps one listener connection (a background thread, started by its first subscriber) that LISTENs and wakes
  that process's streams. A dropped listener connection is logged and opened again, and every stream is woken
  then: what was sent in between is read from the database.
- `LocalBus` (SQLite, or `CXA_LIVE__LISTEN=false`): woken after the commit, in this process only. One SQLite
  process sees everything at once; with several workers, each sees the others' writes on the timer only.

Streams live in asyncio; writes and the listener run in threads: a wake-up crosses into the stream's event
loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

CHANNEL = "cxa_live"
TOUCHED = "cxa_live_touched"  # key in Session.info: the conversation ids this transaction changed


def touch(s: Session, conversation_id: str) -> None:
    """Mark `conversation_id` as changed by this transaction (a new message or status): its streams are woken
    once the transaction commits."""
    s.info.setdefault(TOUCHED, set()).add(conversation_id)


class Subscription:
    """One stream's interest in one conversation. Use as a context manager (or `close()` it); `wait` returns
    True when woken, False when the timeout passed."""

    def __init__(self, bus: LocalBus, conversation_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.conversation_id = conversation_id
        self._bus = bus
        self._loop = loop
        self._event = asyncio.Event()

    def wake(self) -> None:
        """From any thread."""
        with contextlib.suppress(RuntimeError):  # the stream's loop is closed: nobody is listening any more
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> bool:
        """True as soon as woken (at once if a wake-up came since the last wait), False after `timeout`."""
        if not self._event.is_set():  # (wait_for with a timeout of 0 would not even look)
            try:
                await asyncio.wait_for(self._event.wait(), timeout=max(0.0, timeout))
            except TimeoutError:
                return False
        self._event.clear()  # a wake-up after this is kept for the next wait; the caller reads the database now
        return True

    def close(self) -> None:
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class LocalBus:
    """Wakes this process's streams after a commit in this process."""

    crosses_processes = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscription]] = {}

    def subscribe(self, conversation_id: str) -> Subscription:
        """Call from the stream's event loop, before its first read of the database (so a change between that
        read and the first wait still wakes it)."""
        sub = Subscription(self, conversation_id, asyncio.get_running_loop())
        with self._lock:
            self._subscribers.setdefault(conversation_id, set()).add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subscribers.get(sub.conversation_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[sub.conversation_id]

    def subscribers(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subscribers.values())

    def wake(self, conversation_ids: Iterable[str]) -> None:
        with self._lock:
            subs = [sub for cid in conversation_ids for sub in self._subscribers.get(cid, ())]
        for sub in subs:
            sub.wake()

    def wake_all(self) -> None:
        with self._lock:
            subs = [sub for group in self._subscribers.values() for sub in group]
        for sub in subs:
            sub.wake()

    def before_commit(self, s: Session, conversation_ids: set[str]) -> None:
        """In the writer's transaction, just before it commits."""

    def after_commit(self, conversation_ids: set[str]) -> None:
        """After the writer's transaction committed."""
        self.wake(conversation_ids)

    def close(self) -> None:
        """Nothing to release: the in-process bus holds no connection or thread."""


class PostgresBus(LocalBus):
    """NOTIFY in the writer's transaction, LISTEN on one connection per process."""

    crosses_processes = True

    def __init__(self, url: URL, *, reconnect_s: float = 1.0, max_reconnect_s: float = 30.0, check_s: float = 30.0):
        super().__init__()
        # Its own engine without a pool: the listener holds one connection for the life of the process, outside
        # the request pool, in autocommit (LISTEN takes effect at once, and nothing else runs on it).
        self._engine: Engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self._reconnect_s, self._max_reconnect_s, self._check_s = reconnect_s, max_reconnect_s, check_s
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in effect (tests and /readyz-like checks)
        self.connections = 0  # how many times the listener connected (1 + reconnections)
        self.backend_pid: int | None = None  # the listener connection's server process (pg_stat_activity)

    def before_commit(self, s: Session, conversation_ids: set[str]) -> None:
        for cid in sorted(conversation_ids):
            s.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": cid})

    def after_commit(self, conversation_ids: set[str]) -> None:
        """Nothing: the notification comes back through the listener, to this process as to every other."""

    def subscribe(self, conversation_id: str) -> Subscription:
        sub = super().subscribe(conversation_id)
        self.start()
        return sub

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._listen_forever, name="cxa-live-listener", daemon=True)
                self._thread.start()

    def _listen_forever(self) -> None:
        delay = self._reconnect_s
        while not self._stop.is_set():
            try:
                self._listen_once()
                delay = self._reconnect_s
            except Exception as exc:  # the server restarted, the network dropped, the backend was terminated
                self.listening.clear()
                if self._stop.is_set():
                    return
                logger.warning(
                    "live notifications: the listener connection failed (%s: %s); reconnecting in %.0f s, "
                    "streams poll meanwhile",
                    exc.__class__.__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                    delay,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, self._max_reconnect_s)

    def _listen_once(self) -> None:
        with self._engine.connect() as conn:
            conn.exec_driver_sql(f"LISTEN {CHANNEL}")
            # the listener's engine is always PostgreSQL through psycopg (SQLAlchemy types the driver's as Any | None)
            raw = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
            self.backend_pid = raw.info.backend_pid
            self.connections += 1
            self.listening.set()
            if self.connections > 1:
                logger.warning("live notifications: the listener is connected again")
            self.wake_all()  # whatever was committed while nobody listened is in the database: read it now
            quiet = 0.0
            while not self._stop.is_set():
                heard = False
                # Yields each notification as it arrives; ends after a second of silence (to check `_stop`).
                for note in raw.notifies(timeout=1.0):
                    self.wake((note.payload,))
                    heard = True
                quiet = 0.0 if heard else quiet + 1.0
                if quiet >= self._check_s:  # a connection dropped without a word (a dead peer) shows up here
                    conn.exec_driver_sql("SELECT 1")
                    quiet = 0.0

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self._engine.dispose()


def make_bus(engine: Engine, listen: bool = True) -> LocalBus:
    """`PostgresBus` for PostgreSQL through psycopg 3 (unless `listen` is off), `LocalBus` otherwise."""
    if engine.dialect.name != "postgresql" or not listen:
        return LocalBus()
    if engine.dialect.driver != "psycopg":
        logger.warning(
            "live notifications need the psycopg (3) driver (postgresql+psycopg://); with %s, streams of other "
            "workers' messages poll",
            engine.dialect.driver,
        )
        return LocalBus()
    return PostgresBus(engine.url)
