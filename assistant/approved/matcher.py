"""Matching a customer's message to the approved answers.

The score of an approved answer is the best cosine similarity (all-MiniLM-L6-v2, the same vectors as retrieval)
between the message and its question or one of its variants, minus `negation_penalty` when exactly one of the two
says "not", "never", "unable"... ("how do I verify my identity?" is a different question from "I can't verify my
identity"). At `min_score` (0.88) an answer is served verbatim: on BANKING77 and CLINC150 paraphrase groups that
threshold keeps precision at about 0.98 (`cxa eval bench --only approved`, docs/benchmarks.md); precision matters
more than recall here, since a wrong answer served as "approved" is worse than a handoff. Below it, an answer at
least `source_min_score` similar is offered to retrieval as one more passage (`ApprovedSearch`).

The embedded questions are cached per process and rebuilt when the table's `version()` changes (an add, edit or
retirement by any worker), so a new answer is served from the next turn on. A turn reads that version once
(`ApprovedMatcher.one_version`): its match and its search see the same answers.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from assistant.models import ApprovedAnswer, ApprovedMatch, Chunk, SearchHit
from assistant.settings import ApprovedSettings
from assistant.store.approved import ApprovedAnswers
from assistant.turn.grounding import SentenceVectors
from knowledge.types import SearchContext

NEGATION = re.compile(r"\b(?:not|no|never|cannot|unable|fail\w*|declin\w*|reject\w*|wrong|stuck|broken)\b|n't\b", re.I)


def negated(text: str) -> bool:
    return bool(NEGATION.search(text))


def match_scores(sims: np.ndarray, query_negated: np.ndarray, text_negated: np.ndarray, penalty: float) -> np.ndarray:
    """The matcher's score of each (query, text) pair from their cosine similarities (queries x texts): the
    similarity, less `penalty` where exactly one of the two is negated. `cxa eval bench --only approved` measures
    this same function."""
    scores: np.ndarray = sims - penalty * (query_negated[:, None] != text_negated[None, :])
    return scores


@dataclass(frozen=True)
class _Index:
    version: tuple[int, str]
    answers: list[ApprovedAnswer]
    owners: np.ndarray  # answer index of each text
    texts: list[str]
    vectors: np.ndarray
    negations: np.ndarray


# Within `ApprovedMatcher.one_version`: the matcher and the index it read first (a list: empty until then)
_PINNED: ContextVar[tuple[ApprovedMatcher, list[_Index]] | None] = ContextVar("approved_pinned", default=None)


class ApprovedMatcher:
    def __init__(self, repo: ApprovedAnswers, vectors: SentenceVectors, settings: ApprovedSettings) -> None:
        self.repo = repo
        self.vectors = vectors
        self.settings = settings
        self._index: _Index | None = None
        self._lock = threading.Lock()

    @contextmanager
    def one_version(self) -> Iterator[None]:
        """Within it (one turn's steps before the answer, in one thread, with no `yield` inside), the approved
        answers' version is read from the database once, at the first match: the turn's match and its search see
        the same answers, for one query instead of one per look."""
        token = _PINNED.set((self, []))
        try:
            yield
        finally:
            _PINNED.reset(token)

    def _current(self) -> _Index:
        pinned = _PINNED.get()
        if pinned is not None and pinned[0] is self and pinned[1]:
            return pinned[1][0]
        index = self._read()
        if pinned is not None and pinned[0] is self:
            pinned[1].append(index)
        return index

    def _read(self) -> _Index:
        version = self.repo.version()
        index = self._index
        if index is not None and index.version == version:
            return index
        with self._lock:
            if self._index is not None and self._index.version == version:
                return self._index
            answers = self.repo.find("active")
            texts = [t for a in answers for t in a.texts]
            owners = np.array([i for i, a in enumerate(answers) for _ in a.texts], dtype=np.int64)
            vectors = self.vectors.embed(texts) if texts else np.zeros((0, 384), dtype=np.float32)
            self._index = _Index(version, answers, owners, texts, vectors, np.array([negated(t) for t in texts]))
            return self._index

    def invalidate(self) -> None:
        self._index = None

    def ranked(self, text: str, vector: np.ndarray | None = None) -> list[ApprovedMatch]:
        """Every active approved answer with its score for `text`, best first."""
        index = self._current()
        if not index.texts or not text.strip():
            return []
        qvec = self.vectors.embed_one(text) if vector is None else vector
        sims = match_scores(
            (index.vectors @ qvec)[None, :], np.array([negated(text)]), index.negations, self.settings.negation_penalty
        )[0]
        best: dict[int, tuple[float, int]] = {}
        for j, (owner, score) in enumerate(zip(index.owners.tolist(), sims.tolist(), strict=True)):
            if owner not in best or score > best[owner][0]:
                best[owner] = (score, j)
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])
        return [
            ApprovedMatch(answer=index.answers[owner], score=round(score, 4), matched=index.texts[j])
            for owner, (score, j) in ranked
        ]

    def best(self, text: str, exclude: Collection[str] = ()) -> ApprovedMatch | None:
        """The best-scoring approved answer for `text` whatever its score (None when there are none), skipping the
        ids in `exclude`."""
        return next((m for m in self.ranked(text) if m.answer.id not in exclude), None)

    def match(self, text: str, exclude: Collection[str] = (), min_score: float | None = None) -> ApprovedMatch | None:
        """The approved answer to serve for `text`: the best one at `min_score` (default the setting), or None."""
        m = self.best(text, exclude)
        threshold = self.settings.min_score if min_score is None else min_score
        return m if m is not None and m.score >= threshold else None

    def candidates(self, text: str, floor: float, k: int) -> list[ApprovedMatch]:
        return [m for m in self.ranked(text) if m.score >= floor][:k]


def as_hit(match: ApprovedMatch) -> SearchHit:
    """An approved answer as a retrieved passage (cited as `approved:<id>`)."""
    a = match.answer
    chunk = Chunk(
        chunk_id=match.source_id,
        source_id=match.source_id,
        title=a.question,
        url=None,
        text=a.answer,
        start=0,
        end=len(a.answer),
        position=0,
    )
    return SearchHit(chunk=chunk, score=max(0.0, min(1.0, match.score)), vector_score=match.score)


class ContextSearch(Protocol):
    def __call__(self, query: str, k: int, *, context: SearchContext | None = None) -> list[SearchHit]: ...


class ApprovedSearch:
    """The help center's search with the approved answers as one more source: those at least `floor` similar to the
    query join the hits, by score (the engine's `Search`)."""

    def __init__(self, search: ContextSearch, matcher: ApprovedMatcher, floor: float) -> None:
        self.search = search
        self.matcher = matcher
        self.floor = floor

    def __call__(self, query: str, k: int, *, context: SearchContext | None = None) -> list[SearchHit]:
        hits = self.search(query, k, context=context)
        extra = [as_hit(m) for m in self.matcher.candidates(query, self.floor, k)]
        if not extra:
            return hits
        return sorted([*hits, *extra], key=lambda h: -h.score)[:k]
