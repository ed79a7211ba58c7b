"""A persistent text -> vector store: the sentence vectors of the help center, kept across processes.

A turn embeds texts derived from the chunks it retrieves (their sentences and list items for grounding and
quoting, their sentences and page titles for answerability). Embedding ~30 short texts is 100-250 ms on 2 cores,
which was the whole tail of a turn's overhead the first time a chunk was retrieved. Those texts are known as soon
as a chunk is indexed, so they are embedded once (after ingest, in the background) and read from here.

**Keys.** A row is keyed by sha256(model fingerprint, NUL, text), truncated to 128 bits: the fingerprint names the
embedding model, its version, its truncation length and the content of its files (`MiniLMEmbedder.fingerprint`),
so a changed model finds none of the old rows and never serves a stale vector (the old rows stay until the file
is deleted; they cost disk only). The text itself is not stored.

**Why a SQLite file.** Shared by every worker of one machine (WAL mode: readers never wait for the writer, nor the
writer for them), nothing to run beside the product, and one batched read of 30 keys costs ~0.2 ms (measured on
the 2-vCPU test machine; `tests/unit/test_textvectors.py` holds it under a few ms). A Chroma collection would also
work but answers a `get` of 30 ids in milliseconds, and a server (Redis) is one more thing to run for what is a
cache. Workers of several machines each keep their own file (warmed at start).

**Why float32 blobs.** Stored as the embedder returns them, a vector read here is the one embedding gives, so a warm
and a cold deployment take the same decisions (thresholds and the answerability model were fitted on float32).
float16 would halve the disk (1,667 bytes a text on disk now, ~58 MB for the 34,557 distinct texts of the 100k-chunk
benchmark index) and was measured to move cosine similarities by at most 1.2e-4 on help-center sentences; not worth
a cache that changes outcomes.

**Rejected alternatives** (issue 16). Pooling a sentence's tokens from its chunk's own forward pass gives vectors at
cosine 0.72 (median; 5th percentile 0.50) from the sentence embedded alone: every grounding similarity and the
answerability model's features would change, and a chunk truncated at 256 tokens has no vectors for its last
sentences. Embedding sentences inside `ingest` itself would halve the chunk index's ingest throughput; here they
are a second stage, after the chunks are searchable.

**Failure.** This is a cache: a file that cannot be opened, is corrupt or is read-only is logged once and then
ignored (reads find nothing, writes are dropped), and the caller embeds as it would without it. A write that
finds the file locked by another writer beyond the busy timeout is dropped (the texts are embedded again next
time, and written then).

Writes are synchronous (`put`, for warming, in batches) or queued (`put_later`, for a turn: a small writer thread
commits them, so the turn never waits for a write lock).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

READ_BATCH = 500  # keys per SELECT (SQLite's variable limit is 999 on old builds)
# Rows go to a rowid table in the order written, found through the index on their key. Measured with 34,557 vectors
# inserted in random key order (what hashed keys are): this layout takes 1,667 bytes a row with 8 KB pages and reads
# 30 rows in 0.2 ms; the same rows keyed WITHOUT ROWID took 4,690 bytes a row (1.5 KB rows split pages half
# empty) and 0.8 ms.
PAGE_SIZE = 8192
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS vectors (key BLOB NOT NULL UNIQUE, vector BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


class TextVectorStore:
    """Vectors of texts under one embedding model, in the SQLite file at `path` (created when missing).

    Thread-safe: each thread reads through its own connection; `put_later` hands writes to one writer thread."""

    def __init__(self, path: Path, fingerprint: str, dimensions: int = 384, busy_timeout_s: float = 2.0) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.dimensions = dimensions
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._broken: str | None = None  # why reads and writes are off (logged once)
        self._read_only: str | None = None  # why writes are off
        self._queue: queue.Queue[dict[bytes, bytes] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = self._connection()
            con.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file only (an existing one keeps its own)
            con.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                con.execute(statement)
            con.commit()
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc, writing=True)

    # -- keys ---------------------------------------------------------------------------------------------

    def key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.fingerprint}\0{text}".encode()).digest()[:16]

    # -- reading ------------------------------------------------------------------------------------------

    def get(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those of `texts` that are stored (read-only float32 arrays)."""
        keys = {self.key(t): t for t in texts}
        out: dict[str, np.ndarray] = {}
        for key, blob in self._select(list(keys), "key, vector"):
            vec = np.frombuffer(blob, dtype=np.float32)
            if vec.shape == (self.dimensions,):
                out[keys[key]] = vec
        return out

    def missing(self, texts: Iterable[str]) -> list[str]:
        """Those of `texts` that are not stored, in order, each once (only keys are read). All of them when the
        store is unusable."""
        keys = {self.key(t): t for t in dict.fromkeys(texts)}
        found = {row[0] for row in self._select(list(keys), "key")}
        return [t for k, t in keys.items() if k not in found]

    def count(self) -> int:
        """Rows stored (every model's); 0 when the store is unusable."""
        try:
            if self._broken is None:
                return int(self._connection().execute("SELECT count(*) FROM vectors").fetchone()[0])
        except sqlite3.Error as exc:
            self._fail(exc, writing=False)
        return 0

    def _select(self, keys: list[bytes], columns: str) -> list[tuple[bytes, ...]]:
        if self._broken is not None or not keys:
            return []
        rows: list[tuple[bytes, ...]] = []
        try:
            con = self._connection()
            for i in range(0, len(keys), READ_BATCH):
                part = keys[i : i + READ_BATCH]
                marks = ",".join("?" * len(part))
                rows.extend(con.execute(f"SELECT {columns} FROM vectors WHERE key IN ({marks})", part))  # noqa: S608
        except sqlite3.Error as exc:
            self._fail(exc, writing=False)
            return []
        return rows

    # -- writing ------------------------------------------------------------------------------------------

    def put(self, vectors: Mapping[str, np.ndarray]) -> int:
        """Store `vectors` now (text -> vector; texts already stored keep theirs); returns the rows written, 0 when
        writes are off or the file stayed locked."""
        return self._write({self.key(t): _blob(v) for t, v in vectors.items()})

    def put_later(self, vectors: Mapping[str, np.ndarray]) -> None:
        """`put` on the writer thread: returns at once (a turn must not wait for the write lock)."""
        if self._broken is not None or self._read_only is not None or self._closed or not vectors:
            return
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_queued, name="text-vectors", daemon=True)
                self._writer.start()
        self._queue.put({self.key(t): _blob(v) for t, v in vectors.items()})

    def flush(self) -> None:
        """Wait until everything given to `put_later` so far is written (or dropped)."""
        if self._writer is not None:
            self._queue.join()

    def _write_queued(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                while True:  # what else has queued up meanwhile goes in the same transaction
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    self._queue.task_done()
                    if more is None:
                        self._write(batch)
                        return
                    batch.update(more)
                self._write(batch)
            finally:
                self._queue.task_done()

    def _write(self, rows: dict[bytes, bytes]) -> int:
        if self._broken is not None or self._read_only is not None or not rows:
            return 0
        try:
            con = self._connection()
            with con:
                cur = con.executemany("INSERT OR IGNORE INTO vectors (key, vector) VALUES (?, ?)", rows.items())
            return max(0, cur.rowcount)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):  # another writer held it too long: dropped, not fatal
                logger.info("text vectors: %d not written (%s)", len(rows), exc)
                return 0
            self._fail(exc, writing=True)
        except sqlite3.Error as exc:
            self._fail(exc, writing=True)
        return 0

    # -- markers ------------------------------------------------------------------------------------------

    def marker(self, name: str) -> str | None:
        """A value stored with `set_marker` (what a warmer finished), or None."""
        if self._broken is not None:
            return None
        try:
            row = self._connection().execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        except sqlite3.Error as exc:
            self._fail(exc, writing=False)
            return None
        return str(row[0]) if row else None

    def set_marker(self, name: str, value: str) -> None:
        if self._broken is not None or self._read_only is not None:
            return
        try:
            con = self._connection()
            with con:
                con.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))
        except sqlite3.Error as exc:
            self._fail(exc, writing=True)

    # -- state --------------------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Reads work (writes may still be off: `writable`)."""
        return self._broken is None

    @property
    def writable(self) -> bool:
        return self._broken is None and self._read_only is None

    def close(self) -> None:
        """Write what is queued, stop the writer, close every connection."""
        self._closed = True
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=10)
        with self._lock:
            for con in self._connections:
                try:
                    con.close()
                except sqlite3.Error:
                    logger.debug("text vectors: closing a connection failed", exc_info=True)
            self._connections.clear()
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=self.busy_timeout_s, check_same_thread=False)
            con.execute("PRAGMA synchronous=NORMAL")  # WAL: durable enough for a cache, no fsync per commit
            self._local.con = con
            with self._lock:
                self._connections.append(con)
        return con

    def _fail(self, exc: BaseException, writing: bool) -> None:
        """Turn reads and writes (or only writes) off, and say so once."""
        message = f"{type(exc).__name__}: {exc}"
        readonly = writing and isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc).lower()
        if readonly:
            if self._read_only is None:
                self._read_only = message
                logger.warning(
                    "sentence vectors at %s cannot be written (%s): texts not stored are embedded each time",
                    self.path,
                    message,
                )
            return
        if self._broken is None:
            self._broken = message
            logger.error(
                "sentence vectors at %s are not used (%s): every text is embedded instead. The file is a cache: "
                "delete it and run `cxa ingest` (or restart the server) to fill it again",
                self.path,
                message,
            )


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()
