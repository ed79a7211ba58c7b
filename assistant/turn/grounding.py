"""Grounding: is a generated sentence supported by the retrieved passages (or the customer's own
history)? And, when nothing generated is, the extractive answer that quotes the best passage.

This check does not trust the generator: it compares each sentence with the source sentences
using the offline embedding model (meaning) and content-word precision (the sentence's words must
be in the source), and it requires every number in the sentence (prices, days, dates) to appear
in the supporting source. Citations are attributed here, from the supporting chunk, not from the
`[n]` marks a small model writes (often wrong).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from assistant.models import Citation, SearchHit
from knowledge.chunking import split_sentences
from knowledge.embeddings import MiniLMEmbedder
from knowledge.retriever import tokenize

MIN_NOVEL_WORDS = 2  # a shown sentence must say at least this many things the question did not
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_MARKERS = re.compile(r"\[\s*\d+(?:\s*,\s*\d+)*\s*\]|^\s*(?:[-*•]|\d+[.)])\s+")
_ABSTAIN = re.compile(
    r"\b(i (?:do not|don't|dont) know|i(?: am|'m) not sure|(?:cannot|can't|could not|couldn't) (?:find|answer|help)"
    r"|no information|not (?:mentioned|covered) in|sources? (?:do|does) not)\b",
    re.I,
)


_BRACKETED = re.compile(r"\[([^\]\d][^\]]*)\](?!\()")


def clean_sentence(text: str) -> str:
    """Drop citation marks and list bullets a model writes, unwrap "[Larkspur Home]"-style brackets
    (a link without its address); collapse spaces."""
    return " ".join(_BRACKETED.sub(r"\1", _MARKERS.sub(" ", text)).split()).strip()


def is_abstention(text: str) -> bool:
    return bool(_ABSTAIN.search(text))


@dataclass
class SentenceSupport:
    sentence: str
    support: float
    relevance: float
    source: int | None  # index into Passages.hits; None = supported by the customer's history
    source_sentence: str
    numbers_ok: bool

    @property
    def from_history(self) -> bool:
        return self.source is None


class SentenceVectors:
    """Embeds sentences through a bounded cache: the same help-center sentences come back turn after
    turn, and embedding them again was most of a turn's own (non-model) time."""

    def __init__(self, embedder: MiniLMEmbedder, max_items: int = 50_000) -> None:
        self.embedder = embedder
        self.max_items = max_items
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        # what the embedder has just embedded (the customer's earlier messages, this turn's question) is not
        # embedded again
        known = {t: v for t in missing if (v := self.embedder.recent(t)) is not None}
        missing = [t for t in missing if t not in known]
        if missing:
            known.update(zip(missing, self.embedder.embed(missing), strict=True))
        if known:
            with self._lock:
                self._cache.update(known)
                while len(self._cache) > self.max_items:
                    self._cache.popitem(last=False)
        with self._lock:
            out = []
            for t in texts:
                v = self._cache.get(t)
                if v is None:  # evicted between the two locks by a concurrent turn: embed it again
                    v = self.embedder.embed_one(t)
                else:
                    self._cache.move_to_end(t)
                out.append(v)
        return np.stack(out) if out else np.zeros((0, 384), dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        """From the cache when the text is there (a model quoting a source sentence), else the embedder's
        own (which keeps a turn's question from being embedded once per step)."""
        with self._lock:
            v = self._cache.get(text)
        return v if v is not None else self.embedder.embed_one(text)


@dataclass
class Passages:
    """The sources of one turn, split into sentences and embedded once."""

    hits: list[SearchHit]
    history: str
    embedder: SentenceVectors
    question: str
    facts: list[str] = field(default_factory=list)  # history lines that may be quoted (account events)
    exclude: Callable[[str], bool] | None = (
        None  # sentences that are neither support nor quotable (assistant.safety.guard)
    )
    sentences: list[str] = field(default_factory=list)
    owners: list[int | None] = field(default_factory=list)
    _vectors: np.ndarray | None = None
    _qvec: np.ndarray | None = None
    extractive_relevance: float = 0.0  # similarity of the last extractive quote's lead sentence to the question
    _sentence_tokens: list[set[str]] = field(default_factory=list)
    _question_tokens: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for i, h in enumerate(self.hits):
            for s in split_sentences(h.chunk.text):
                if len(s.split()) >= 3 and not (self.exclude is not None and self.exclude(s)):
                    self.sentences.append(s)
                    self.owners.append(i)
        self._quotable: set[int] = set()
        facts = {f.strip(" -") for f in self.facts}
        for line in self.history.splitlines():
            line = line.strip(" -")
            if self.exclude is not None and self.exclude(line):
                continue
            if len(line.split()) >= 3 and not line.endswith(":"):  # section headers are not facts
                if line in facts:
                    self._quotable.add(len(self.sentences))
                self.sentences.append(line)
                self.owners.append(None)
        self._sentence_tokens = [set(tokenize(t)) | _numbers(t) for t in self.sentences]
        self._question_tokens = set(tokenize(self.question))

    @property
    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            self._qvec = self.embedder.embed_one(self.question)
            self._vectors = self.embedder.embed(self.sentences)
        return self._vectors

    @property
    def question_vector(self) -> np.ndarray:
        _ = self.vectors
        assert self._qvec is not None
        return self._qvec

    def support(self, sentence: str, vector: np.ndarray | None = None) -> SentenceSupport:
        """How well one source supports `sentence` (0..1): half meaning (cosine with the closest source
        sentence), half precision of the sentence's *new* words (those not already in the question) within
        that sentence and its neighbours. A sentence that only restates the question ("I can return it as a
        Plus member") adds nothing and scores 0; a figure absent from the source caps the score at 0.3."""
        s = clean_sentence(sentence)
        vec = self.embedder.embed_one(s) if vector is None else vector
        relevance = float(np.dot(vec, self.question_vector))
        nums = _numbers(s)
        novel = set(tokenize(s)) - self._question_tokens
        if not self.sentences or len(novel) < MIN_NOVEL_WORDS:
            return SentenceSupport(s, 0.0, relevance, None, "", not nums)
        sims = self.vectors @ vec
        best: SentenceSupport | None = None
        for j in np.argsort(-sims)[:8]:
            j = int(j)
            owner = self.owners[j]
            window = [i for i in (j - 1, j, j + 1) if 0 <= i < len(self.sentences) and self.owners[i] == owner]
            pool: set[str] = set()
            for i in window:
                pool |= self._sentence_tokens[i]
            precision = len(novel & pool) / len(novel)
            numbers_ok = nums <= pool
            score = 0.5 * max(0.0, float(sims[j])) + 0.5 * precision
            if not numbers_ok:
                score = min(score, 0.3)  # an invented figure is never supported
            if best is None or score > best.support:
                best = SentenceSupport(s, score, relevance, owner, self.sentences[j], numbers_ok)
        assert best is not None
        return best

    def focused(self, max_words: int, n_hits: int) -> list[str]:
        """For each of the first `n_hits` chunks, its sentences most similar to the question within
        `max_words`, in their original order: a short prompt that keeps what matters."""
        sims = self.vectors @ self.question_vector if self.sentences else np.zeros(0)
        out = []
        for h in range(min(n_hits, len(self.hits))):
            idx = [i for i, o in enumerate(self.owners) if o == h]
            chosen: list[int] = []
            words = 0
            for i in sorted(idx, key=lambda i: -sims[i]):
                n = len(self.sentences[i].split())
                if words + n > max_words and chosen:
                    continue
                chosen.append(i)
                words += n
            out.append(" ".join(self.sentences[i] for i in sorted(chosen)) or self.hits[h].chunk.text)
        return out

    def extractive(self, max_sentences: int = 2, said: list[str] | None = None) -> tuple[str, list[int]]:
        """Quote what best answers the question: the best source sentence by meaning and shared words, plus
        the sentence that follows it in the same chunk (answers often span two). A line of the customer's own
        records wins when it matches better ("where is my order?"); it is quoted as such, without citation.
        Returns the text and the indexes of the cited hits."""
        if not self.sentences:
            return "", []
        qwords = set(tokenize(self.question))
        sims = self.vectors @ self.question_vector

        def score(i: int) -> float:
            overlap = len(self._sentence_tokens[i] & qwords) / max(1, len(qwords))
            owner = self.owners[i]
            rank_prior = 0.05 / (1 + owner) if owner is not None else 0.0
            return 0.7 * float(sims[i]) + 0.3 * overlap + rank_prior

        already = " ".join(said or [])
        # An identifier in the question (an order number, a ticket id) decides which records can answer it.
        ids = {t for t in qwords if len(t) >= 4 and any(ch.isdigit() for ch in t)}

        def quotable(i: int) -> bool:
            if self.owners[i] is not None:
                return True
            return i in self._quotable and (not ids or bool(ids & self._sentence_tokens[i]))

        candidates = [i for i in range(len(self.sentences)) if quotable(i) and self.sentences[i] not in already]
        if not candidates:
            return "", []
        best = max(candidates, key=score)
        self.extractive_relevance = float(sims[best])
        owner = self.owners[best]
        if owner is None:
            return "From your account: " + self.sentences[best].lstrip("- "), []
        picked = [best]
        nxt = best + 1
        while len(picked) < max_sentences and nxt < len(self.owners) and self.owners[nxt] == owner:
            if len(self.sentences[nxt].split()) >= 4:
                picked.append(nxt)
            nxt += 1
        return " ".join(self.sentences[i] for i in picked), [owner]


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def citation_for(hit: SearchHit, snippet: str | None = None, limit: int = 240) -> Citation:
    text = snippet or hit.chunk.text
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return Citation(
        source_id=hit.chunk.source_id,
        title=hit.chunk.title,
        url=hit.chunk.url,
        snippet=text,
        score=round(hit.score, 4),
        chunk_id=hit.chunk.chunk_id,
    )
