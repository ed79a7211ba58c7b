"""Retrieval with scores: dense vectors from the index fused with a BM25 keyword ranking, a page prior, and the
conversation as context.

Fusion: the candidates of the vector search and of the keyword scoring are each scored on both; each score is
min-max normalised over the candidates and the two are combined convexly (`lexical_weight` on the keyword side).
A chunk then gains `page_weight` times the best fused score of its page (evidence gathered over a document's
chunks). On doc2dial dev, fusion alone took recall@5 from 0.640 (weighted reciprocal rank fusion) to 0.666 in an
exact-search replica; with the context below the retriever reaches 0.808 (`cxa bench retrieval`, docs/benchmarks.md).

Context (`SearchContext`): the conversation the message follows. The dense query mixes the message's vector with
the vector of the message followed by the context text (`weight` of the latter); the context's words join the
keyword score at `context_keyword_weight` (the message's own count 1). Pages that the conversation's latest
replies cited gain `source_weight`, so a follow-up keeps its page, unless the message reads as self-contained
and, searched alone, clearly prefers another page than the conversation's (a topic change: its best page leads
by `topic_margin` and is at least `topic_min_similarity` similar): it is then searched alone.

The score reported on every hit stays the cosine similarity between the query vector and the chunk (the message's
own without context), so thresholds downstream mean the same thing whether a chunk was found by its vector or by
its words. Keyword search catches what small embedding models miss (form numbers, product names, exact terms);
its in-memory index is rebuilt when the index's revision changes (checked at most every `refresh_s` seconds, so
writes by other processes are seen too).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from knowledge.index import KnowledgeIndex
from knowledge.types import Chunk, SearchContext, SearchHit

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
        self.position = {c.chunk_id: i for i, c in enumerate(chunks)}
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

    def scores(self, query: str) -> np.ndarray | None:
        """The BM25 score of every chunk for `query` (None when no query term is in any chunk)."""
        if not self.chunks:
            return None
        acc = np.zeros(len(self.chunks), dtype=np.float32)
        touched = False
        for term in set(tokenize(query)):
            hit = self.postings.get(term)
            if hit is None:
                continue
            idx, tf, idf = hit
            acc[idx] += idf * tf * (self.k1 + 1) / (tf + self.norm[idx])
            touched = True
        return acc if touched else None

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        acc = self.scores(query)
        return [] if acc is None else top_of(acc, k)


def top_of(acc: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(position, score) of the `k` best positive scores of `acc`, best first."""
    k = min(k, len(acc))
    if k <= 0:
        return []
    best = np.argpartition(-acc, k - 1)[:k]
    best = best[np.argsort(-acc[best])]
    return [(int(i), float(acc[i])) for i in best if acc[i] > 0]


@dataclass
class _Candidate:
    chunk: Chunk
    cosine: float = 0.0
    lexical: float = 0.0  # raw BM25
    fused: float = 0.0


@dataclass
class _Ranking:
    """The candidates of one query vector (and one keyword scoring), their fused scores, best first."""

    candidates: dict[str, _Candidate] = field(default_factory=dict)
    max_lexical: float = 0.0
    keyword: bool = False  # a keyword scoring took part

    def pages(self) -> dict[str, tuple[float, float]]:
        """source_id -> (best fused score, best cosine) among the candidates: the evidence for a page."""
        out: dict[str, tuple[float, float]] = {}
        for c in self.candidates.values():
            f, cos = out.get(c.chunk.source_id, (0.0, 0.0))
            out[c.chunk.source_id] = (max(f, c.fused), max(cos, c.cosine))
        return out


def _normalised(values: list[float]) -> list[float]:
    """Min-max over the candidates: 1 for the best, 0 for the worst (all 1 when they are equal and positive)."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        return [1.0 if hi > 0 else 0.0 for _ in values]
    return [(v - lo) / (hi - lo) for v in values]


class Retriever:
    def __init__(
        self,
        index: KnowledgeIndex,
        candidates: int = 20,
        lexical_weight: float = 0.5,
        refresh_s: float = 5.0,
        sync_rebuild_below: int = 20_000,
        page_weight: float = 0.5,
        context_keyword_weight: float = 0.3,
        source_weight: float = 0.3,
        topic_margin: float = 0.45,
        topic_min_similarity: float = 0.5,
    ) -> None:
        self.index = index
        self.candidates = candidates
        self.lexical_weight = lexical_weight
        self.refresh_s = refresh_s
        self.sync_rebuild_below = sync_rebuild_below
        self.page_weight = page_weight
        self.context_keyword_weight = context_keyword_weight
        self.source_weight = source_weight
        self.topic_margin = topic_margin
        self.topic_min_similarity = topic_min_similarity
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

    def search(
        self,
        query: str,
        k: int = 4,
        exclude_sources: list[str] | None = None,
        context: SearchContext | None = None,
    ) -> list[SearchHit]:
        """The k best chunks for `query` (the customer's message), best first; `score` is the cosine similarity
        (0..1) with the query vector. `context` is the conversation the message follows: its text joins the
        query (see the module docstring), and the pages its latest replies cited are preferred unless the
        message alone clearly points elsewhere (a topic change)."""
        if not query.strip():
            return []
        qvec = self.index.embedder.embed_one(query)
        ctx = context.text.strip() if context is not None else ""
        vec = qvec
        if ctx and context is not None and context.weight > 0:
            cvec = self.index.embedder.embed_one(f"{query}\n{ctx}")
            mixed = (1.0 - context.weight) * qvec + context.weight * cvec
            vec = mixed / max(float(np.linalg.norm(mixed)), 1e-9)
        bm25 = self._lexical()
        n = max(k, self.candidates)
        if bm25 is None or not bm25.chunks:  # vectors alone
            return self.index.search(query, k=n, vector=vec, exclude_sources=exclude_sources)[:k]
        excluded = set(exclude_sources or [])
        lex_message = bm25.scores(query)
        preferred = set(context.sources) if context is not None else set()
        may_switch = context is None or context.may_switch
        if not ctx:
            ranking = self._rank(bm25, qvec, lex_message, n, exclude_sources, excluded)
            if preferred and may_switch and self._topic_changed(ranking, preferred):
                preferred = set()
            return self._top(ranking, k, preferred)
        lex = lex_message
        lex_ctx = bm25.scores(ctx) if self.context_keyword_weight > 0 else None
        if lex_ctx is not None:
            lex = self.context_keyword_weight * lex_ctx + (lex if lex is not None else 0.0)
        ranking = self._rank(bm25, vec, lex, n, exclude_sources, excluded)
        if may_switch:  # a follow-up never changes the topic: the message alone is not searched
            alone = self._rank(bm25, qvec, lex_message, n, exclude_sources, excluded)
            # The conversation's pages: those cited, and the one its context points to now.
            pages = ranking.pages()
            current = {max(pages, key=lambda p: pages[p][0])} if pages else set()
            if self._topic_changed(alone, preferred | current):
                ranking, preferred = alone, set()
        return self._top(ranking, k, preferred)

    def _rank(
        self,
        bm25: BM25,
        vec: np.ndarray,
        lex: np.ndarray | None,
        n: int,
        exclude_sources: list[str] | None,
        excluded: set[str],
    ) -> _Ranking:
        """Candidates of `vec` (vector search) and of `lex` (keyword scores), each scored on both, then fused:
        a convex combination of the two scores, each min-max normalised over the candidates."""
        ranking = _Ranking(keyword=lex is not None)
        cands = ranking.candidates
        for cid, cos in self.index.nearest(vec, k=n, exclude_sources=exclude_sources):
            cands[cid] = _Candidate(chunk=bm25.by_id.get(cid, _PENDING), cosine=cos)
        keyword_only: list[str] = []
        if lex is not None:
            extra = 40 if excluded else 0
            found = [(i, sc) for i, sc in top_of(lex, n + extra) if bm25.chunks[i].source_id not in excluded][:n]
            ranking.max_lexical = found[0][1] if found else 0.0
            for i, _ in found:
                c = bm25.chunks[i]
                if c.chunk_id not in cands:
                    cands[c.chunk_id] = _Candidate(chunk=c)
                    keyword_only.append(c.chunk_id)
        pending = [cid for cid, c in cands.items() if c.chunk is _PENDING]
        if pending:  # written since the keyword index was built: read from the index (removed meanwhile: gone)
            fetched = self.index.chunks(pending)
            for cid in pending:
                if cid in fetched:
                    cands[cid].chunk = fetched[cid]
                else:
                    del cands[cid]
        if keyword_only:  # keyword-only finds get their real cosine similarity, so scores stay comparable
            vecs = self.index.embeddings(keyword_only)
            for cid in keyword_only:
                v = vecs.get(cid)
                cands[cid].cosine = max(0.0, min(1.0, float(np.dot(v, vec)))) if v is not None else 0.0
        if not cands:
            return ranking
        ids = list(cands)
        if lex is not None:
            for cid in ids:
                pos = bm25.position.get(cid)
                cands[cid].lexical = float(lex[pos]) if pos is not None else 0.0
        dense = _normalised([cands[c].cosine for c in ids])
        keyword = _normalised([cands[c].lexical for c in ids]) if lex is not None else [0.0] * len(ids)
        w = self.lexical_weight if lex is not None else 0.0
        for cid, d, kw in zip(ids, dense, keyword, strict=True):
            cands[cid].fused = (1.0 - w) * d + w * kw
        return ranking

    def _topic_changed(self, alone: _Ranking, preferred: set[str]) -> bool:
        """The message alone clearly prefers a page other than the conversation's (`preferred`): its best page is
        not one of them, leads the best of them by `topic_margin` (fused score), and is similar enough on its own."""
        pages = alone.pages()
        if not pages:
            return False
        best = max(pages, key=lambda s: pages[s][0])
        if best in preferred:
            return False
        earlier = max((pages[s][0] for s in preferred if s in pages), default=0.0)
        return pages[best][0] - earlier >= self.topic_margin and pages[best][1] >= self.topic_min_similarity

    def _top(self, ranking: _Ranking, k: int, preferred: set[str]) -> list[SearchHit]:
        """The final order: a chunk's fused score, plus `page_weight` x its page's best fused score (evidence
        gathered over a document's chunks), plus `source_weight` on the pages the conversation cited."""
        pages = ranking.pages()

        def final(c: _Candidate) -> float:
            s = c.fused + self.page_weight * pages[c.chunk.source_id][0]
            return s + (self.source_weight if c.chunk.source_id in preferred else 0.0)

        order = sorted(ranking.candidates.values(), key=lambda c: -final(c))[:k]
        top = ranking.max_lexical or 1.0
        return [
            SearchHit(
                chunk=c.chunk,
                score=max(0.0, min(1.0, c.cosine)),
                vector_score=max(0.0, min(1.0, c.cosine)),
                lexical_score=c.lexical / top if ranking.keyword and c.lexical > 0 else None,
            )
            for c in order
        ]


_PENDING = Chunk(chunk_id="", source_id="", title="", text="", start=0, end=0, position=0)
