"""Warming: the vectors of every text a turn embeds for a chunk (`grounding.chunk_texts`), embedded ahead of the turns
and kept in the persistent store (`knowledge.textvectors`), so that a turn retrieving a chunk for the first time reads
its sentences' vectors instead of embedding them (the tail of a turn's overhead: issue 16).

Three callers: `cxa ingest` (a second stage, after the chunk index is written and searchable: the chunk index's
ingest throughput is unchanged), a server after a document upload (`BackgroundWarmer.submit`), and a server at start
for whatever is missing (`BackgroundWarmer.start`). The server's warmer runs on one thread, in small embedding runs
with a rest after each, so that live turns keep the cores; `CXA_EMBEDDING__WARM=off` turns it off.

A completed walk over an index records the index's revision in the store (`marker`): a server starting on an index
that has not changed since skips the walk. Of the workers of one machine starting together, one walks (an advisory
lock on a file beside the store); the others read what it writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from assistant.models import Chunk
from assistant.turn.grounding import TEXTS_VERSION, chunk_texts
from knowledge.embeddings import MiniLMEmbedder
from knowledge.errors import KnowledgeError
from knowledge.textvectors import TextVectorStore

logger = logging.getLogger(__name__)

PAGE = 2000  # chunks read, turned into texts and checked against the store at a time
Progress = Callable[[int, int], None]  # (chunks done, chunks in all; 0 when not known)


@dataclass
class WarmReport:
    chunks: int = 0
    texts: int = 0  # distinct texts of those chunks (within each page; a text shared across pages counts once a page)
    embedded: int = 0  # of them, not stored before: embedded now
    seconds: float = 0.0
    complete: bool = True  # False: stopped before the end (a server shutting down), or the store cannot be written

    @property
    def texts_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Warming:
    """How to warm a store: the embedder, the pace (`batch` texts per call to the embedder, which cuts them into its
    own runs; after each call, a rest of `rest` times as long as it took: 0 = flat out), what to report to
    (`progress(chunks done, chunks in all)`), and `stop`: set, a walk ends after the current call."""

    store: TextVectorStore
    embedder: MiniLMEmbedder
    batch: int = 256
    rest: float = 0.0
    progress: Progress | None = None
    stop: threading.Event | None = None

    def chunks(self, chunks: Iterable[Chunk], total: int = 0) -> WarmReport:
        """Embed and store the texts of `chunks` that the store does not hold yet (`total`: how many chunks, for
        `progress`)."""
        started = time.perf_counter()
        report = WarmReport()
        if self.progress:
            self.progress(0, total)
        for page in _pages(chunks, PAGE):
            if self._stopped() or not self.store.writable:
                report.complete = False
                break
            t = time.perf_counter()
            texts = list(dict.fromkeys(text for chunk in page for text in chunk_texts(chunk)))
            todo = sorted(self.store.missing(texts), key=len)  # similar lengths in a call: little padding in its runs
            self._rest(time.perf_counter() - t)
            report.texts += len(texts)
            for i in range(0, len(todo), self.batch):
                if self._stopped():
                    break
                t = time.perf_counter()
                part = todo[i : i + self.batch]
                self.store.put(dict(zip(part, self.embedder.embed(part), strict=True)))
                report.embedded += len(part)
                self._rest(time.perf_counter() - t)
            report.chunks += len(page)
            if self.progress:
                self.progress(report.chunks, max(total, report.chunks))
        if self._stopped():
            report.complete = False
        report.seconds = time.perf_counter() - started
        return report

    def index(
        self, chunks: Callable[[], Iterable[Chunk]], revision: Callable[[], str], collection: str, total: int = 0
    ) -> WarmReport | None:
        """The walk over a whole index (`chunks()`, at `revision()` read before it starts), unless its revision was
        walked already or another process of the machine is walking it now (None then); a complete walk is
        marked."""
        rev = revision()
        if is_warm(self.store, collection, rev):
            return None
        with walk_lock(self.store) as mine:
            if not mine:
                logger.info("sentence vectors: another process is warming %s", collection)
                return None
            report = self.chunks(chunks(), total)
            if report.complete:
                mark_warm(self.store, collection, rev)
            return report

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _rest(self, busy: float) -> None:
        if self.rest <= 0 or busy <= 0:
            return
        if self.stop is not None:
            self.stop.wait(self.rest * busy)
        else:
            time.sleep(self.rest * busy)


def _pages(chunks: Iterable[Chunk], size: int) -> Iterator[list[Chunk]]:
    page: list[Chunk] = []
    for chunk in chunks:
        page.append(chunk)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def warmed_marker(store: TextVectorStore, collection: str) -> tuple[str, str]:
    """(name, value prefix) of the marker a complete walk over `collection` leaves: the value is the prefix and the
    index revision walked. Text derivation and model are part of it, so a change of either walks again."""
    return f"warmed:{collection}", f"{TEXTS_VERSION}|{store.fingerprint}|"


def is_warm(store: TextVectorStore, collection: str, revision: str) -> bool:
    name, prefix = warmed_marker(store, collection)
    return store.marker(name) == prefix + revision


def mark_warm(store: TextVectorStore, collection: str, revision: str) -> None:
    name, prefix = warmed_marker(store, collection)
    store.set_marker(name, prefix + revision)


@contextmanager
def walk_lock(store: TextVectorStore) -> Iterator[bool]:
    """An advisory lock beside the store, held for the walk: True if this process has it, False when another one
    of the machine is walking now (or the lock cannot be taken: then every process walks, which is only wasteful)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock, each process walks
        yield True
        return
    path = Path(f"{store.path}.warm.lock")
    try:
        f = path.open("a")
    except OSError:
        yield True
        return
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    finally:
        f.close()


class BackgroundWarmer:
    """One thread that warms the store in small, paced runs (`warming`'s pace; its `stop` is this warmer's): the whole
    index once (`start`: `chunks()` at `revision()`), then the chunks of each document put since (`submit`).
    Failures are logged; turns never wait for it (they embed what is missing)."""

    def __init__(
        self,
        warming: Warming,
        chunks: Callable[[], Iterable[Chunk]],
        revision: Callable[[], str],
        collection: str,
        count: Callable[[], int] | None = None,
    ) -> None:
        self._stop = threading.Event()
        self.warming = replace(warming, stop=self._stop)
        self.chunks = chunks
        self.revision = revision
        self.collection = collection
        self.count = count
        self.last: WarmReport | None = None  # the latest walk or document warmed
        self._pending: list[list[Chunk]] = []
        self._wake = threading.Condition()
        self._walk = False
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Walk the index in the background (unless it is marked warm), then wait for documents."""
        with self._wake:
            self._walk = True
            self._idle.clear()
            self._wake.notify()
        self._ensure_thread()

    def submit(self, chunks: list[Chunk]) -> None:
        """Warm these chunks (a document just put) in the background."""
        if not chunks or self._stop.is_set():
            return
        with self._wake:
            self._pending.append(chunks)
            self._idle.clear()
            self._wake.notify()
        self._ensure_thread()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or running (tests, benchmarks); False on timeout."""
        return self._idle.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _ensure_thread(self) -> None:
        with self._wake:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="sentence-warmer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                while not self._walk and not self._pending and not self._stop.is_set():
                    self._idle.set()
                    self._wake.wait()
                if self._stop.is_set():
                    break
                walk, self._walk = self._walk, False
                pending, self._pending = self._pending, []
            try:
                if walk:
                    self._walk_index()
                for chunks in pending:
                    self.last = self.warming.chunks(chunks)
            except KnowledgeError as exc:  # the index is not ready: the turns embed what is missing, as before
                logger.warning("sentence vectors not warmed: %s", exc)
            except Exception:  # a bug: the same
                logger.exception("warming the sentence vectors failed")
        self._idle.set()

    def _walk_index(self) -> None:
        total = 0
        if self.count is not None:
            try:
                total = self.count()
            except Exception:  # only for the log line
                logger.debug("chunk count unavailable", exc_info=True)
        report = self.warming.index(self.chunks, self.revision, self.collection, total)
        if report is None:
            return
        self.last = report
        if report.embedded or not report.complete:
            logger.info(
                "sentence vectors: %d of %d texts of %d chunks embedded in %.1f s%s",
                report.embedded,
                report.texts,
                report.chunks,
                report.seconds,
                "" if report.complete else " (stopped before the end)",
            )
