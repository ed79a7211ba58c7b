"""Retrieval with scores: dense vectors from the index, optionally fused with a BM25 keyword ranking.

Rank fusion (weighted reciprocal rank) decides the order; the score reported on every hit stays
the cosine similarity between the query and the chunk, so thresholds downstream mean the same
thing whether a chunk was found by its vector or by its words. Keyword search catches what small
embedding models miss (form numbers, product names, exact terms); its in-memory index is rebuilt
when the index's revision changes (checked at most every `refresh_s` seconds, so writes by other
processes are seen too).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter, defaultdict

import numpy as np

from knowledge.index import KnowledgeIndex
from knowledge.types import Chunk, SearchHit

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "i'm",
        "it's",
        "don't",
        "can't",
        "im",
    ]
)


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens without stop words, with a light plural/ing stemmer (no dictionary)."""
    out: list[str] = []
    for t in _TOKEN.findall(text.lower()):
        if t in STOPWORDS:
            continue
        if len(t) > 4 and t.endswith("ies"):
            t = t[:-3] + "y"
        elif len(t) > 5 and t.endswith("ing"):
            t = t[:-3]
        elif len(t) > 3 and t.endswith("s") and not t.endswith("ss"):
            t = t[:-1]
        out.append(t)
    return out


class BM25:
    """Okapi BM25 over a fixed list of chunks (k1=1.2, b=0.75)."""

    def __init__(self, chunks: list[Chunk], k1: float = 1.2, b: float = 0.75) -> None:
        self.chunks = chunks
        self.by_id = {c.chunk_id: c for c in chunks}
        self.k1, self.b = k1, b
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        lengths = np.zeros(len(chunks), dtype=np.float32)
        for i, c in enumerate(chunks):
            toks = tokenize(c.context_text)
            lengths[i] = len(toks)
            for term, tf in Counter(toks).items():
                postings[term].append((i, tf))
        self.avgdl = float(lengths.mean()) if len(chunks) else 1.0
        self.norm = self.k1 * (1 - self.b + self.b * lengths / max(self.avgdl, 1e-9))
        n = len(chunks)
        self.postings: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        for term, plist in postings.items():
            idx = np.fromiter((p[0] for p in plist), dtype=np.int64, count=len(plist))
            tfs = np.fromiter((p[1] for p in plist), dtype=np.float32, count=len(plist))
            idf = math.log(1 + (n - len(plist) + 0.5) / (len(plist) + 0.5))
            self.postings[term] = (idx, tfs, idf)

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        if not self.chunks:
            return []
        acc = np.zeros(len(self.chunks), dtype=np.float32)
        touched = False
        for term in set(tokenize(query)):
            hit = self.postings.get(term)
            if hit is None:
                continue
            idx, tf, idf = hit
            acc[idx] += idf * tf * (self.k1 + 1) / (tf + self.norm[idx])
            touched = True
        if not touched:
            return []
        k = min(k, len(self.chunks))
        best = np.argpartition(-acc, k - 1)[:k]
        best = best[np.argsort(-acc[best])]
        return [(int(i), float(acc[i])) for i in best if acc[i] > 0]


class Retriever:
    def __init__(
        self,
        index: KnowledgeIndex,
        candidates: int = 20,
        lexical_weight: float = 0.3,
        refresh_s: float = 5.0,
        rrf_k: int = 60,
        sync_rebuild_below: int = 20_000,
    ) -> None:
        self.index = index
        self.candidates = candidates
        self.lexical_weight = lexical_weight
        self.refresh_s = refresh_s
        self.rrf_k = rrf_k
        self.sync_rebuild_below = sync_rebuild_below
        self._bm25: BM25 | None = None
        self._bm25_revision: str | None = None
        self._checked_at = -math.inf  # "never"; 0.0 is not: time.monotonic() may be < refresh_s after boot
        self._lock = threading.Lock()
        self._rebuilding = False

    def _lexical(self) -> BM25 | None:
        """The keyword index of the current revision. Its first build happens here (call `warm()` at start).
        When the revision has changed, a keyword index under `sync_rebuild_below` chunks is rebuilt here (a
        second or two); a bigger one is rebuilt in a background thread while searches go on with the old one
        (reading and indexing 100k chunks takes about a minute on 2 cores: no turn may wait for that)."""
        if self.lexical_weight <= 0:
            return None
        now = time.monotonic()
        if self._bm25 is not None and now - self._checked_at < self.refresh_s:
            return self._bm25
        with self._lock:
            if self._bm25 is not None and now - self._checked_at < self.refresh_s:
                return self._bm25  # checked by another thread while this one waited for the lock
            self._checked_at = now
            rev = self.index.fresh_revision()
            if self._bm25 is None or (rev != self._bm25_revision and len(self._bm25.chunks) < self.sync_rebuild_below):
                self._bm25, self._bm25_revision = self._build(), rev
            elif rev != self._bm25_revision and not self._rebuilding:
                self._rebuilding = True
                threading.Thread(target=self._rebuild, args=(rev,), name="keyword-index", daemon=True).start()
            return self._bm25

    def _build(self) -> BM25:
        t = time.perf_counter()
        bm25 = BM25(list(self.index.iter_chunks()))
        logger.info("keyword index built: %d chunks in %.2fs", len(bm25.chunks), time.perf_counter() - t)
        return bm25

    def _rebuild(self, revision: str) -> None:
        try:
            bm25 = self._build()
            with self._lock:
                self._bm25, self._bm25_revision = bm25, revision
        except Exception:  # an unavailable index: the old keyword index stays, the next check tries again
            logger.exception("keyword index rebuild failed")
        finally:
            self._rebuilding = False

    def warm(self) -> BM25 | None:
        """Build the keyword index now (at start), not on the first search; returns it (None when off)."""
        return self._lexical()

    def invalidate(self) -> None:
        """Call after writing to the index in this process, so the next search sees the change at once (under
        `sync_rebuild_below` chunks; a bigger keyword index follows as soon as its background rebuild ends)."""
        self._checked_at = -math.inf

    def _dense(self, bm25: BM25, qvec: np.ndarray, k: int, exclude_sources: list[str] | None) -> list[SearchHit]:
        """The vector search's hits, their chunks taken from the keyword index (the same chunks: an id names
        its content) and only those written since it was built read from the index."""
        near = self.index.nearest(qvec, k=k, exclude_sources=exclude_sources)
        known = bm25.by_id
        fetched = self.index.chunks([cid for cid, _ in near if cid not in known])
        hits = []
        for cid, score in near:
            chunk = known.get(cid) or fetched.get(cid)
            if chunk is not None:  # removed between the two reads: gone
                hits.append(SearchHit(chunk=chunk, score=score, vector_score=score))
        return hits

    def search(self, query: str, k: int = 4, exclude_sources: list[str] | None = None) -> list[SearchHit]:
        """The k best chunks for `query`, best first; `score` is cosine similarity (0..1)."""
        if not query.strip():
            return []
        qvec = self.index.embedder.embed_one(query)
        bm25 = self._lexical()
        if bm25 is None or not bm25.chunks:
            dense = self.index.search(query, k=max(k, self.candidates), vector=qvec, exclude_sources=exclude_sources)
            return dense[:k]
        dense = self._dense(bm25, qvec, max(k, self.candidates), exclude_sources)
        lex = bm25.top(query, self.candidates + (40 if exclude_sources else 0))
        if exclude_sources:
            excluded = set(exclude_sources)
            lex = [(i, sc) for i, sc in lex if bm25.chunks[i].source_id not in excluded][: self.candidates]
        fused: dict[str, float] = defaultdict(float)
        hits: dict[str, SearchHit] = {}
        w_dense, w_lex = 1.0 - self.lexical_weight, self.lexical_weight
        for rank, h in enumerate(dense):
            fused[h.chunk.chunk_id] += w_dense / (self.rrf_k + rank + 1)
            hits[h.chunk.chunk_id] = h
        max_lex = lex[0][1] if lex else 1.0
        missing: list[Chunk] = []
        for rank, (i, s) in enumerate(lex):
            c = bm25.chunks[i]
            fused[c.chunk_id] += w_lex / (self.rrf_k + rank + 1)
            if c.chunk_id in hits:
                hits[c.chunk_id].lexical_score = s / max_lex
            else:
                missing.append(c)
                hits[c.chunk_id] = SearchHit(chunk=c, score=0.0, lexical_score=s / max_lex)
        if missing:  # keyword-only finds get their real cosine similarity, so scores stay comparable
            vecs = self.index.embeddings([c.chunk_id for c in missing])
            for c in missing:
                v = vecs.get(c.chunk_id)
                sim = float(np.dot(v, qvec)) if v is not None else 0.0
                hits[c.chunk_id].score = hits[c.chunk_id].vector_score = max(0.0, min(1.0, sim))
        order = sorted(fused, key=lambda cid: -fused[cid])[:k]
        return [hits[cid] for cid in order]
