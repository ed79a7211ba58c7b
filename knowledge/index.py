"""The help-center index: chunks and their vectors in a Chroma collection (the only chromadb import
besides the registered embedding function).

Incremental by content hash: each chunk carries its document's hash (text, title, url, metadata,
chunking parameters and embedding model), so re-ingesting an unchanged document embeds nothing, a
changed one gets new chunks (written before the old ones are deleted, so a crash in between leaves
the old version findable, never nothing), and `prune=True` removes the documents of the same
`origin` that are no longer there. The collection's metadata names the embedding model; opening it
with another model raises `IndexMismatchError` until it is rebuilt.

Embedded (`PersistentClient` on a directory) or a Chroma server (`HttpClient`), same code. A server that
is down or failing, or a collection dropped by another process (`cxa ingest --rebuild`), raises
`IndexUnavailableError` from every method, never the client's own exception types; after a dropped
collection the next call opens the new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import InternalError, NotFoundError

from knowledge.chunking import chunk_document
from knowledge.embeddings import MODEL_NAME, MODEL_VERSION, MiniLMEmbedder, MiniLMEmbeddingFunction
from knowledge.errors import IndexMismatchError, IndexUnavailableError
from knowledge.types import Chunk, Document, IngestReport, SearchHit

logger = logging.getLogger(__name__)

CHUNKER_VERSION = "1"
WRITE_BATCH = 256
_VECTOR_CACHE = 4096  # stored chunk vectors kept in memory (keyword-only hits need theirs)
Progress = Callable[[int, int], None]


_http_clients: dict[str, ClientAPI] = {}
_http_lock = threading.Lock()


def open_client(path: Path | None = None, url: str | None = None) -> ClientAPI:
    """A Chroma client: an HTTP client when `url` is given, else a persistent one at `path`.

    One HTTP client per URL per process, shared (it is thread-safe: one httpx connection pool): making one
    costs 0.1-0.3 s (a TLS context and three requests to the server). Only clients that reached the server
    are kept, so a server that was down is tried again on the next call."""
    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    try:
        if url:
            from urllib.parse import urlparse

            with _http_lock:
                if url not in _http_clients:
                    u = urlparse(url)
                    _http_clients[url] = chromadb.HttpClient(
                        host=u.hostname or "127.0.0.1",
                        port=u.port or (443 if u.scheme == "https" else 8000),
                        ssl=u.scheme == "https",
                        settings=settings,
                    )
                return _http_clients[url]
        if path is None:
            return chromadb.EphemeralClient(settings=settings)
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    except Exception as exc:  # chromadb raises many unrelated types for an unreadable store or a dead server
        if url:
            raise IndexUnavailableError(
                f"the knowledge index server at {url} cannot be reached ({type(exc).__name__}: {exc}). "
                "Check that it is running (`chroma run`) and that CXA_CHROMA_URL points at it."
            ) from exc
        raise IndexUnavailableError(
            f"the knowledge index at {path} cannot be opened ({type(exc).__name__}: {exc}). "
            "If the directory is damaged, move it away and run `cxa ingest` again."
        ) from exc


class KnowledgeIndex:
    def __init__(
        self,
        client: ClientAPI,
        embedder: MiniLMEmbedder,
        collection_name: str = "helpcenter",
        max_words: int = 160,
        overlap_words: int = 30,
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.collection_name = collection_name
        self.max_words = max_words
        self.overlap_words = overlap_words
        self._collection: Collection | None = None
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vector_lock = threading.Lock()

    # -- collection -------------------------------------------------------------------------------

    @property
    def expected_metadata(self) -> dict[str, str]:
        return {"embedding_model": MODEL_NAME, "embedding_version": MODEL_VERSION, "chunker_version": CHUNKER_VERSION}

    @property
    def collection(self) -> Collection:
        if self._collection is None:
            try:
                col = self.client.get_or_create_collection(
                    self.collection_name,
                    embedding_function=MiniLMEmbeddingFunction(self.embedder),  # type: ignore[arg-type]
                    metadata={**self.expected_metadata, "hnsw:space": "cosine"},
                )
            except Exception as exc:
                if "Embedding function conflict" in str(exc):  # chromadb's ValueError: made with another function
                    raise IndexMismatchError(
                        f"the index was built with another embedding function "
                        f"({str(exc).rsplit('conflict:', 1)[-1].strip()}), this is {MODEL_NAME!r} v{MODEL_VERSION}: "
                        "run `cxa ingest --rebuild PATH` to re-index"
                    ) from exc
                raise IndexUnavailableError(f"the knowledge collection cannot be opened: {exc}") from exc
            meta = col.metadata or {}
            if meta.get("embedding_model") != MODEL_NAME or meta.get("embedding_version") != MODEL_VERSION:
                raise IndexMismatchError(
                    f"the index was built with embedding model {meta.get('embedding_model')!r} "
                    f"v{meta.get('embedding_version')}, this is {MODEL_NAME!r} v{MODEL_VERSION}: "
                    "run `cxa ingest --rebuild PATH` to re-index"
                )
            self._collection = col
        return self._collection

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """Around every call to the collection: a server down or failing (httpx's transport errors, the server's
        InternalError) is `IndexUnavailableError`; so is a collection dropped since it was opened (by another
        process), which is forgotten so that the next call opens its successor."""
        try:
            yield
        except NotFoundError as exc:
            self._collection = None
            raise IndexUnavailableError(
                f"the knowledge collection {self.collection_name!r} was removed while in use (rebuilt?): retry"
            ) from exc
        except (httpx.TransportError, InternalError) as exc:
            raise IndexUnavailableError(f"the knowledge index cannot be reached ({type(exc).__name__}: {exc})") from exc

    def rebuild(self) -> None:
        """Drop the collection (all chunks); the next use creates it empty with the current model."""
        try:
            self.client.delete_collection(self.collection_name)
        except Exception as exc:  # absent collection: nothing to drop
            logger.info("no collection to drop: %s", exc)
        self._collection = None
        with self._vector_lock:
            self._vectors.clear()

    def count(self) -> int:
        with self._reaching():
            return self.collection.count()

    def revision(self) -> str:
        """Changes whenever documents are written or removed (lets caches of the chunks refresh)."""
        return str((self.collection.metadata or {}).get("revision", "0"))

    def fresh_revision(self) -> str:
        """The revision as stored now (another process may have written since this one opened it)."""
        _ = self.collection  # created (empty) if it does not exist yet
        try:
            col = self.client.get_collection(self.collection_name)
        except Exception as exc:
            raise IndexUnavailableError(f"the knowledge collection cannot be read: {exc}") from exc
        return str((col.metadata or {}).get("revision", "0"))

    def embeddings(self, chunk_ids: list[str]) -> dict[str, Any]:
        """The stored vectors of `chunk_ids` (unknown ids are left out). Read in batches (a backend limits the
        ids of one query: SQLite's variables), and kept in a small cache: a chunk id names its content (the
        document hash is part of it), so its vector never changes."""
        out: dict[str, Any] = {}
        missing: list[str] = []
        with self._vector_lock:
            for cid in chunk_ids:
                v = self._vectors.get(cid)
                if v is None:
                    missing.append(cid)
                else:
                    self._vectors.move_to_end(cid)
                    out[cid] = v
        for i in range(0, len(missing), 5000):
            with self._reaching():
                res = self.collection.get(ids=missing[i : i + 5000], include=["embeddings"])
            embs = res["embeddings"]
            if embs is None:
                continue
            for cid, v in zip(res["ids"], embs, strict=True):
                out[cid] = np.asarray(v, dtype=np.float32)
                out[cid].flags.writeable = False
        if missing and len(missing) <= _VECTOR_CACHE:  # a bulk read (the topic model's training) is not cached
            with self._vector_lock:
                for cid in missing:
                    if cid in out:
                        self._vectors[cid] = out[cid]
                while len(self._vectors) > _VECTOR_CACHE:
                    self._vectors.popitem(last=False)
        return out

    def _bump_revision(self) -> None:
        meta = {k: v for k, v in (self.collection.metadata or {}).items() if not k.startswith("hnsw:")}
        meta["revision"] = f"{time.time_ns()}"
        with self._reaching():
            self.collection.modify(metadata=meta)

    # -- documents --------------------------------------------------------------------------------

    def document_hash(self, doc: Document) -> str:
        payload = json.dumps(
            [
                doc.title,
                doc.url,
                doc.text,
                sorted(doc.metadata.items()),
                self.max_words,
                self.overlap_words,
                CHUNKER_VERSION,
                MODEL_NAME,
                MODEL_VERSION,
            ],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def manifest(self, origin: str | None = None) -> dict[str, tuple[str, str]]:
        """source_id -> (document hash, origin), from each document's first chunk."""
        where: dict[str, Any] = {"position": 0}
        if origin is not None:
            where = {"$and": [{"position": 0}, {"origin": origin}]}
        out: dict[str, tuple[str, str]] = {}
        for meta in self._get_metadatas(where):
            out[str(meta["source_id"])] = (str(meta["doc_hash"]), str(meta.get("origin", "")))
        return out

    def documents(self, source_ids: list[str]) -> dict[str, tuple[str, str]]:
        """source_id -> (document hash, title) for those of `source_ids` in the index (a changed hash: the
        document was edited since; a missing id: it was removed)."""
        if not source_ids:
            return {}
        where: dict[str, Any] = {"$and": [{"position": 0}, {"source_id": {"$in": sorted(set(source_ids))}}]}
        return {str(m["source_id"]): (str(m["doc_hash"]), str(m.get("title", ""))) for m in self._get_metadatas(where)}

    def _get_metadatas(self, where: dict[str, Any]) -> Iterator[dict[str, Any]]:
        offset, page = 0, 5000
        while True:
            with self._reaching():
                res = self.collection.get(where=where, include=["metadatas"], limit=page, offset=offset)
            metas = res["metadatas"] or []
            yield from (dict(m) for m in metas)
            if len(metas) < page:
                return
            offset += page

    def _chunk_ids(self, source_ids: list[str]) -> list[str]:
        ids: list[str] = []
        for i in range(0, len(source_ids), 500):
            with self._reaching():
                where: dict[str, Any] = {"source_id": {"$in": source_ids[i : i + 500]}}
                res = self.collection.get(where=where, include=[])
            ids.extend(res["ids"])
        return ids

    def ingest(
        self,
        documents: Iterable[Document],
        origin: str,
        prune: bool = False,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Add new, replace changed and (with `prune`) remove vanished documents of `origin`.
        `progress(done, total)` is called as chunks are embedded."""
        started = time.perf_counter()
        report = IngestReport()
        clock = _StageClock(report.stage_seconds)
        known = self.manifest()
        clock.lap("reading")
        todo: list[tuple[Document, str, list[Chunk]]] = []
        seen: set[str] = set()
        for doc in documents:
            if doc.source_id in seen:
                raise ValueError(f"duplicate source_id in one ingest: {doc.source_id}")
            seen.add(doc.source_id)
            clock.lap("loading")  # the caller's iterable may load documents lazily
            h = self.document_hash(doc)
            clock.lap("hashing")
            old = known.get(doc.source_id)
            if old is not None and old[0] == h:
                report.unchanged.append(doc.source_id)
                continue
            chunks = chunk_document(doc, self.max_words, self.overlap_words)
            clock.lap("chunking")
            if not chunks:  # only headings, no text: nothing to find (and no manifest entry to compare next time)
                report.skipped.append(f"{doc.source_id}: no text under its headings")
                continue
            (report.updated if old is not None else report.added).append(doc.source_id)
            for c in chunks:  # ids carry the hash so new chunks never overwrite the old version's
                c.chunk_id = f"{doc.source_id}::{h[:12]}::{c.position}"
            todo.append((doc, h, chunks))

        total = sum(len(c) for _, _, c in todo)
        done = 0
        if progress:
            clock.lap("chunking")
            progress(0, total)
            clock.skip()
        replaced = self._chunk_ids(report.updated) if report.updated else []
        clock.lap("reading")
        # Batches cross document boundaries: many small documents (FAQ entries) embed and write as fast as few big ones.
        flat = [(doc, h, c) for doc, h, chunks in todo for c in chunks]
        for i in range(0, len(flat), WRITE_BATCH):
            batch = flat[i : i + WRITE_BATCH]
            vectors = self.embedder.embed([c.context_text for _, _, c in batch])
            clock.lap("embedding")
            with self._reaching():
                self.collection.upsert(
                    ids=[c.chunk_id for _, _, c in batch],
                    embeddings=vectors,
                    documents=[c.text for _, _, c in batch],
                    metadatas=[_chunk_metadata(c, doc, h, origin) for doc, h, c in batch],
                )
            clock.lap("writing")
            done += len(batch)
            if progress:
                progress(done, total)
            clock.skip()  # the caller's progress bar is not the index's time
        new_ids = {c.chunk_id for _, _, chunks in todo for c in chunks}
        stale = [i for i in replaced if i not in new_ids]
        if prune:
            gone = sorted(s for s, (_, o) in known.items() if o == origin and s not in seen)
            report.removed = gone
            stale.extend(self._chunk_ids(gone) if gone else [])
        clock.lap("reading")
        self._delete_ids(stale)
        if todo or stale:
            self._bump_revision()
        clock.lap("writing")
        report.chunks_embedded = total
        report.seconds = time.perf_counter() - started
        return report

    def upsert_document(self, doc: Document, origin: str = "api") -> str:
        """Add or replace one document; returns 'added', 'updated' or 'unchanged'."""
        r = self.ingest([doc], origin=origin)
        return "added" if r.added else "updated" if r.updated else "unchanged"

    def remove(self, source_ids: list[str]) -> int:
        ids = self._chunk_ids(source_ids)
        self._delete_ids(ids)
        if ids:
            self._bump_revision()
        return len(ids)

    def _delete_ids(self, ids: list[str]) -> None:
        for i in range(0, len(ids), 5000):
            with self._reaching():
                self.collection.delete(ids=ids[i : i + 5000])

    # -- reading ----------------------------------------------------------------------------------

    def search(
        self, query: str, k: int = 5, vector: Any | None = None, exclude_sources: list[str] | None = None
    ) -> list[SearchHit]:
        """Top-k chunks by cosine similarity (score = 1 - cosine distance, clipped to 0..1).
        `exclude_sources` leaves out those documents (benchmarks use it to simulate a missing article).
        An empty collection answers with no hits (no `count()` first: it costs ~20 ms at 100k chunks)."""
        vec = self.embedder.embed_one(query) if vector is None else vector
        where: dict[str, Any] | None = None
        if exclude_sources:
            where = {"source_id": {"$nin": list(exclude_sources)}}
        with self._reaching():
            res = self.collection.query(
                query_embeddings=[vec], n_results=k, where=where, include=["metadatas", "documents", "distances"]
            )
        hits: list[SearchHit] = []
        for cid, text, meta, dist in zip(
            res["ids"][0],
            (res["documents"] or [[]])[0],
            (res["metadatas"] or [[]])[0],
            (res["distances"] or [[]])[0],
            strict=True,
        ):
            score = max(0.0, min(1.0, 1.0 - float(dist)))
            hits.append(SearchHit(chunk=_chunk_from(cid, text or "", dict(meta)), score=score, vector_score=score))
        return hits

    def nearest(self, vector: Any, k: int = 5, exclude_sources: list[str] | None = None) -> list[tuple[str, float]]:
        """`search` without the chunks: (chunk id, cosine similarity) of the top k, best first. For a caller
        that holds the chunks already (the retriever's keyword index): fetching 20 texts and metadata from
        Chroma costs more than the vector search itself."""
        where: dict[str, Any] | None = None
        if exclude_sources:
            where = {"source_id": {"$nin": list(exclude_sources)}}
        with self._reaching():
            res = self.collection.query(query_embeddings=[vector], n_results=k, where=where, include=["distances"])
        return [
            (cid, max(0.0, min(1.0, 1.0 - float(dist))))
            for cid, dist in zip(res["ids"][0], (res["distances"] or [[]])[0], strict=True)
        ]

    def chunks(self, chunk_ids: list[str]) -> dict[str, Chunk]:
        """The chunks of `chunk_ids` (unknown ids are left out)."""
        if not chunk_ids:
            return {}
        with self._reaching():
            res = self.collection.get(ids=chunk_ids, include=["metadatas", "documents"])
        return {
            cid: _chunk_from(cid, text or "", dict(meta))
            for cid, text, meta in zip(res["ids"], res["documents"] or [], res["metadatas"] or [], strict=True)
        }

    def iter_chunks(self, page: int = 5000) -> Iterator[Chunk]:
        offset = 0
        while True:
            with self._reaching():
                res = self.collection.get(include=["metadatas", "documents"], limit=page, offset=offset)
            ids = res["ids"]
            for cid, text, meta in zip(ids, res["documents"] or [], res["metadatas"] or [], strict=True):
                yield _chunk_from(cid, text or "", dict(meta))
            if len(ids) < page:
                return
            offset += page

    def get_document_chunks(self, source_id: str) -> list[Chunk]:
        with self._reaching():
            res = self.collection.get(where={"source_id": source_id}, include=["metadatas", "documents"])
        chunks = [
            _chunk_from(i, t or "", dict(m))
            for i, t, m in zip(res["ids"], res["documents"] or [], res["metadatas"] or [], strict=True)
        ]
        return sorted(chunks, key=lambda c: c.position)

    # -- precomputed vectors ------------------------------------------------------------------------

    def add_embedded(self, rows: list[tuple[Chunk, Document, str]], vectors: Any, origin: str) -> None:
        """Write chunks whose vectors are already computed (each row: the chunk with its `chunk_id` set, its
        document, the document's hash), with the same metadata `ingest` writes, so search, `iter_chunks` and
        the manifest see them as ingested. For benchmark indexes of 10k-100k chunks, where embedding every
        chunk would take hours; `vectors` must be this index's model's (unit-length, 384-d)."""
        if len(rows) != len(vectors):
            raise ValueError(f"{len(rows)} chunks but {len(vectors)} vectors")
        if not rows:
            return
        with self._reaching():
            self.collection.upsert(
                ids=[c.chunk_id for c, _, _ in rows],
                embeddings=vectors,
                documents=[c.text for c, _, _ in rows],
                metadatas=[_chunk_metadata(c, doc, h, origin) for c, doc, h in rows],
            )
        self._bump_revision()


class _StageClock:
    """Adds the time since the previous lap to `stages[name]` (seconds): where an ingest spends its time."""

    def __init__(self, stages: dict[str, float]) -> None:
        self.stages = stages
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = self.stages.get(name, 0.0) + (now - self._last)
        self._last = now

    def skip(self) -> None:
        self._last = time.perf_counter()


def _chunk_metadata(c: Chunk, doc: Document, doc_hash: str, origin: str) -> dict[str, str | int]:
    meta: dict[str, str | int] = {
        "source_id": c.source_id,
        "title": c.title,
        "url": c.url or "",
        "headings": " > ".join(c.headings),
        "start": c.start,
        "end": c.end,
        "position": c.position,
        "doc_hash": doc_hash,
        "origin": origin,
    }
    for k, v in doc.metadata.items():
        meta.setdefault(f"doc_{k}", str(v))
    return meta


def _chunk_from(chunk_id: str, text: str, meta: dict[str, Any]) -> Chunk:
    headings = str(meta.get("headings") or "")
    return Chunk(
        chunk_id=chunk_id,
        source_id=str(meta["source_id"]),
        title=str(meta.get("title", "")),
        url=str(meta.get("url") or "") or None,
        headings=headings.split(" > ") if headings else [],
        text=text,
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", 0)),
        position=int(meta.get("position", 0)),
    )
