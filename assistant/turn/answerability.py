"""Answerability: P(the knowledge answers this turn), a small logistic model over evidence every turn already has.

The features (`FEATURES`, computed by `turn_features`) describe what retrieval found and how well it fits the
question, in forms that do not depend on the retriever's score scale: cosine similarities of our own embeddings
(the chunk's and each sentence's), gaps between the best page and the next one, whether the top chunks agree on
one page, how much of the query's rarer words the best page contains (term weights from the keyword index's IDF,
normalised by the corpus size), the reply mode, the customer's frustration and where the turn is in the dialogue.

Every feature also enters multiplied by `short_entries` (the share of one-line, FAQ-like entries among the hits), so
one model reads both help-center articles and short FAQ entries.

The model is a JSON artifact shipped in this package (`answerability.json`: feature names, their scaling,
coefficients, intercept, version, and the out-of-fold figures it was trained with), written by `cxa train
answerability` (`evals/answerability.py`) from doc2dial dev (gold page present = answerable, removed = not) and
CLINC150 dev (in-scope vs out-of-scope). Every prediction keeps its per-feature contributions (coefficient * scaled
value, in log-odds; they sum with the intercept to logit(p)), so a handoff names the feature that sent it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from assistant.models import AnswerabilityEvidence, ReliabilityBin, SearchHit
from assistant.turn.grounding import SentenceVectors, chunk_sentences, page_title
from knowledge.retriever import Retriever, tokenize

SHIPPED = Path(__file__).with_name("answerability.json")

# The model's inputs, in the artifact's order. Descriptions are shown next to contributions in the console.
BASE_FEATURES: dict[str, str] = {
    "top1": "cosine similarity of the best chunk to the query",
    "top_gap": "best chunk's similarity minus the second's",
    "mean_k": "mean similarity of the top-k chunks",
    "lexical_top": "keyword score of the best chunk (relative to the best keyword match)",
    "lexical_share": "share of the top-k chunks the keyword search also found",
    "pages_k": "how many distinct pages the top-k chunks come from (0 = one page, 1 = all different)",
    "top_page_share": "share of the top-k chunks from the best chunk's page",
    "page_gap": "best page's similarity minus the next page's",
    "pool_pages": "how many distinct pages the wider retrieval (top 10) comes from",
    "pool_page_share": "share of the wider retrieval (top 10) from the best chunk's page",
    "best_sentence": "similarity of the best sentence of the top-k chunks to the query",
    "sentence_page_gap": "best sentence on the best page minus the best sentence elsewhere",
    "sentence_coverage": "share of the query's words (weighted by rarity) in the best sentence and its neighbours",
    "shown_relevance": "similarity of the shown text to the query",
    "title_sim": "similarity of the best page's title and headings to the query",
    "title_gap": "the best page's title similarity minus the best other page's in the wider retrieval",
    "coverage_top": "share of the query's words (weighted by rarity) in the best chunk",
    "coverage_page": "share of the query's words (weighted by rarity) on the best page",
    "coverage_all": "share of the query's words (weighted by rarity) in any top-k chunk",
    "coverage_message": "share of the message's own words (weighted by rarity) on the best page",
    "coverage_pool_page": "share of the query's words (weighted by rarity) in the best page's chunks of the top 10",
    "distinctive": "share of the query's words (weighted by rarity) on the best page and no other page of the top 10",
    "coverage_contrast": "the best page's coverage of the query minus the next page's (in the top 10)",
    "rarest_covered": "the query's rarest word is on the best page",
    "unknown_terms": "share of the query's words the knowledge does not contain at all",
    "specificity": "rarity of the query's rarest word (0 = in every chunk, 1 = in one chunk or none)",
    "title_overlap": "share of the query's words in the best page's title and headings",
    "declined": "the answerer found nothing it could quote or say",
    "frustration": "the customer's frustration score",
    "earlier_turns": "log(1 + earlier customer messages in the conversation)",
    "follow_up": "the message was searched together with the conversation (a follow-up)",
    "message_words": "log(1 + content words in the message)",
    # A follow-up ("where can I find more information?") is read with what the customer said before it: the same
    # three readings with the customer's earlier messages joined to the query (equal to the plain ones on a first
    # message), so the model can trust a vague message whose conversation the page answers.
    "context_best_sentence": "similarity of the best sentence to the query with the customer's earlier messages",
    "context_title_sim": "similarity of the best page's title to the query with the customer's earlier messages",
    "context_coverage_page": "share of the query's and earlier messages' words (weighted by rarity) on the best page",
}
# How evidence reads depends on what the entries are: one-line FAQ entries (CLINC150's knowledge, approved answers)
# score higher and agree less on a "page" than chunks of articles (doc2dial, a help center). `short_entries` says
# which, and every feature also enters multiplied by it, so the model learns both readings and the entries' shape
# chooses between them (one model, not two: a knowledge base can hold both kinds).
SHORT_WORDS = 25
FEATURES: dict[str, str] = {
    **BASE_FEATURES,
    "short_entries": f"share of the wider retrieval's chunks under {SHORT_WORDS} words (FAQ-like entries)",
    **{f"{k}|short": f"{v}, for short entries" for k, v in BASE_FEATURES.items()},
}
POOL = 10  # hits read for page agreement and titles (the answer itself uses the top-k)

GAP_CLIP = 0.3  # a gap beyond this says no more (and "no second page" counts as this much)

# term -> rarity in 0..1 (IDF / log(1 + chunks)) for the terms the knowledge contains; others are absent
TermWeights = Callable[[Iterable[str]], dict[str, float]]


def corpus_term_weights(retriever: Retriever, exclude_sources: Sequence[str] = ()) -> TermWeights:
    """Rarity of terms in the knowledge, from the retriever's keyword index (read at each call: it follows
    re-indexing): the keyword index's IDF, log(1 + (n - df + 0.5) / (df + 0.5)), over log(1 + n). Chunks of
    `exclude_sources` are left out of df, as if those pages were deleted (what a benchmark that hides a page
    from retrieval must also hide here). Without a keyword index (lexical weight 0) every term weighs the same
    and none is unknown."""
    excluded = set(exclude_sources)
    cache: dict[int, np.ndarray] = {}

    def weights(terms: Iterable[str]) -> dict[str, float]:
        bm25 = retriever.warm()
        if bm25 is None or not bm25.chunks:
            return {t: 0.5 for t in terms}
        mask = None
        n = len(bm25.chunks)  # not reduced by the excluded pages: a page more or less barely moves it, and a
        # reduced n would shift every weight by a fingerprint of the exclusion itself (seen: a model learning it)
        if excluded:
            mask = cache.get(id(bm25))
            if mask is None:
                mask = cache[id(bm25)] = np.array([c.source_id in excluded for c in bm25.chunks], dtype=bool)
        top = math.log(1 + n)
        out: dict[str, float] = {}
        for t in terms:
            posting = bm25.postings.get(t)
            if posting is None:
                continue
            df = len(posting[0]) - (int(mask[posting[0]].sum()) if mask is not None else 0)
            if df > 0:
                out[t] = min(1.0, math.log(1 + (n - df + 0.5) / (df + 0.5)) / top)
        return out

    return weights


@dataclass(frozen=True)
class TurnEvidence:
    """What the features are computed from: one turn's message, what was searched and found, and how it ended."""

    message: str
    query: str
    hits: Sequence[SearchHit]  # the top-k the answer was composed from
    mode: str
    shown_relevance: float = 0.0
    earlier_turns: int = 0
    frustration: float = 0.0
    pool: Sequence[SearchHit] = ()  # the wider retrieval (top POOL), best first; empty = the hits
    context: str = ""  # the customer's earlier messages in the conversation (the last CONTEXT_MESSAGES), oldest first


CONTEXT_MESSAGES = 2  # earlier customer messages a follow-up is read with (`TurnEvidence.context`)


def earlier_context(customer_messages: Sequence[str]) -> str:
    """`TurnEvidence.context` from the customer's earlier messages, oldest first."""
    return "\n".join(" ".join(m.split()) for m in customer_messages[-CONTEXT_MESSAGES:] if m.strip())


def _page(h: SearchHit) -> str:
    """A page is what a customer would call one: its title (one help-center article), else its source."""
    return h.chunk.title or h.chunk.source_id


def _clip_gap(x: float) -> float:
    return max(-GAP_CLIP, min(GAP_CLIP, x))


def turn_features(ev: TurnEvidence, vectors: SentenceVectors, weights: TermWeights | None = None) -> dict[str, float]:
    """The model's inputs for one turn (all of `FEATURES`, in 0..1 or thereabouts)."""
    f = _base_features(ev, vectors, weights)
    pool = list(ev.pool) or list(ev.hits)
    short = sum(len(h.chunk.text.split()) < SHORT_WORDS for h in pool) / len(pool) if pool else 0.0
    return {**f, "short_entries": short, **{f"{k}|short": v * short for k, v in f.items()}}


def _base_features(ev: TurnEvidence, vectors: SentenceVectors, weights: TermWeights | None) -> dict[str, float]:
    hits = list(ev.hits)
    pool = list(ev.pool) or hits
    f = dict.fromkeys(BASE_FEATURES, 0.0)
    f["declined"] = float(ev.mode == "declined")
    f["frustration"] = float(ev.frustration)
    f["earlier_turns"] = math.log1p(ev.earlier_turns)
    f["follow_up"] = float(" ".join(ev.query.split()) != " ".join(ev.message.split()))
    message_terms = set(tokenize(ev.message))
    f["message_words"] = math.log1p(len(message_terms))
    f["shown_relevance"] = float(ev.shown_relevance)
    q_terms = set(tokenize(ev.query))
    ctx_terms = q_terms | set(tokenize(ev.context))
    terms = ctx_terms | message_terms
    known = weights(terms) if weights is not None else dict.fromkeys(terms, 0.5)
    f["unknown_terms"] = sum(t not in known for t in q_terms) / len(q_terms) if q_terms else 0.0
    w = {t: known.get(t, 1.0) + 0.05 for t in terms}  # an unknown word is the rarest of all
    f["specificity"] = max((known.get(t, 1.0) for t in q_terms), default=0.0)
    if not hits:
        return f

    def coverage(words: set[str], tokens: set[str]) -> float:
        total = sum(w[t] for t in words)
        return sum(w[t] for t in words if t in tokens) / total if total else 0.0

    cos = [h.vector_score if h.vector_score is not None else h.score for h in hits]
    k = len(hits)
    f["top1"] = cos[0]
    f["top_gap"] = _clip_gap(cos[0] - cos[1]) if k > 1 else GAP_CLIP
    f["mean_k"] = float(np.mean(cos))
    f["lexical_top"] = hits[0].lexical_score or 0.0
    f["lexical_share"] = sum(h.lexical_score is not None for h in hits) / k
    pages = [_page(h) for h in hits]
    top_page = pages[0]
    f["pages_k"] = (len(set(pages)) - 1) / (k - 1) if k > 1 else 0.0
    f["top_page_share"] = pages.count(top_page) / k
    pool_pages = [_page(h) for h in pool]
    f["pool_pages"] = (len(set(pool_pages)) - 1) / (len(pool) - 1) if len(pool) > 1 else 0.0
    f["pool_page_share"] = pool_pages.count(top_page) / len(pool)
    by_page: dict[str, float] = {}
    for p, h in zip(pool_pages, pool, strict=True):
        c = h.vector_score if h.vector_score is not None else h.score
        by_page[p] = max(by_page.get(p, -1.0), c)
    by_page[top_page] = max(by_page.get(top_page, -1.0), cos[0])
    others = [c for p, c in by_page.items() if p != top_page]
    f["page_gap"] = _clip_gap(by_page[top_page] - max(others)) if others else GAP_CLIP

    qvec = vectors.embed_one(ev.query)
    titles: dict[str, str] = {}
    for h in [*hits[:1], *pool]:
        titles.setdefault(_page(h), page_title(h.chunk))
    names = list(titles)
    tvecs = vectors.embed([titles[n] for n in names], persist=True)
    tsims = tvecs @ qvec
    f["title_sim"] = float(tsims[names.index(top_page)])
    # the query read with the customer's earlier messages (the same vector as the query on a first message)
    cvec = vectors.embed_one(f"{ev.query}\n{ev.context}") if ev.context.strip() else qvec
    f["context_title_sim"] = float(tvecs[names.index(top_page)] @ cvec)
    other_titles = [float(s) for n, s in zip(names, tsims, strict=True) if n != top_page]
    f["title_gap"] = _clip_gap(f["title_sim"] - max(other_titles)) if other_titles else GAP_CLIP

    sentences: list[str] = []
    owners: list[str] = []
    for h, p in zip(hits, pages, strict=True):
        for s in chunk_sentences(h.chunk):
            sentences.append(s)
            owners.append(p)
    if sentences:
        svecs = vectors.embed(sentences, persist=True)
        sims = svecs @ qvec
        best = int(np.argmax(sims))
        f["best_sentence"] = float(sims[best])
        f["context_best_sentence"] = float(np.max(svecs @ cvec))
        on_page = [float(s) for s, o in zip(sims, owners, strict=True) if o == top_page]
        elsewhere = [float(s) for s, o in zip(sims, owners, strict=True) if o != top_page]
        if on_page:
            f["sentence_page_gap"] = _clip_gap(max(on_page) - max(elsewhere)) if elsewhere else GAP_CLIP
        window = [i for i in (best - 1, best, best + 1) if 0 <= i < len(sentences) and owners[i] == owners[best]]
        f["sentence_coverage"] = coverage(q_terms, set(tokenize(" ".join(sentences[i] for i in window))))

    chunk_tokens = [set(tokenize(h.chunk.context_text)) for h in hits]
    page_tokens = set().union(*(t for t, p in zip(chunk_tokens, pages, strict=True) if p == top_page))
    f["coverage_top"] = coverage(q_terms, chunk_tokens[0])
    f["coverage_page"] = coverage(q_terms, page_tokens)
    f["context_coverage_page"] = coverage(ctx_terms, page_tokens)
    f["coverage_all"] = coverage(q_terms, set().union(*chunk_tokens))
    f["coverage_message"] = coverage(message_terms, page_tokens)
    pool_tokens = [set(tokenize(h.chunk.context_text)) for h in pool]
    best_pool = page_tokens.union(*(t for t, p in zip(pool_tokens, pool_pages, strict=True) if p == top_page))
    rest: dict[str, set[str]] = {}
    for t, p in zip(pool_tokens, pool_pages, strict=True):
        if p != top_page:
            rest.setdefault(p, set()).update(t)
    f["coverage_pool_page"] = coverage(q_terms, best_pool)
    f["distinctive"] = coverage(q_terms, best_pool - set().union(*rest.values()))
    if rest:
        second = max(rest, key=lambda p: by_page.get(p, -1.0))
        f["coverage_contrast"] = f["coverage_pool_page"] - coverage(q_terms, rest[second])
    else:
        f["coverage_contrast"] = f["coverage_pool_page"]
    if q_terms:
        rarest = max(sorted(q_terms), key=lambda t: w[t])
        f["rarest_covered"] = float(rarest in page_tokens)
        heading = set(tokenize(" ".join([hits[0].chunk.title, *hits[0].chunk.headings])))
        f["title_overlap"] = len(q_terms & heading) / len(q_terms)
    return f


# -- the model ------------------------------------------------------------------------------------------------


class DatasetFigures(BaseModel):
    """Out-of-fold figures of the model on one dev set (folds grouped by page/dialogue or by intent)."""

    rows: int
    positives: int
    auroc: float
    ece: float
    reliability: list[ReliabilityBin]
    oos_recall_at_95: float | None = Field(None, description="CLINC150: OOS handed off at 95% in-scope answered")


class AnswerabilityArtifact(BaseModel):
    """The shipped model: standardisation, logistic coefficients, and how it was trained."""

    version: str
    trained_at: datetime
    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    regularisation_c: float = 1.0
    folds: int = 5
    training_rows: dict[str, int] = Field(default_factory=dict)
    command: str = "cxa train answerability"
    figures: dict[str, DatasetFigures] = Field(default_factory=dict, description="out-of-fold, per dev set")
    notes: list[str] = Field(default_factory=list)

    def logit_parts(self, features: dict[str, float]) -> tuple[float, dict[str, float]]:
        """The intercept and each feature's contribution (coef * scaled value) to the log-odds."""
        parts = {}
        for name, m, s, c in zip(self.features, self.mean, self.scale, self.coef, strict=True):
            parts[name] = c * (features.get(name, 0.0) - m) / (s or 1.0)
        return self.intercept, parts


class AnswerabilityModel:
    """Scores a turn: p = sigmoid(intercept + sum of contributions)."""

    def __init__(self, artifact: AnswerabilityArtifact, weights: TermWeights | None = None) -> None:
        self.artifact = artifact
        self.weights = weights

    @classmethod
    def load(cls, path: Path | None = None, weights: TermWeights | None = None) -> AnswerabilityModel:
        """The artifact at `path` (default: the one shipped in this package)."""
        return cls(load_artifact(path or SHIPPED), weights)

    def predict(self, features: dict[str, float]) -> tuple[float, dict[str, float]]:
        intercept, parts = self.artifact.logit_parts(features)
        z = intercept + sum(parts.values())
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z)))), parts

    def assess(self, ev: TurnEvidence, vectors: SentenceVectors, threshold: float) -> AnswerabilityEvidence:
        features = turn_features(ev, vectors, self.weights)
        p, parts = self.predict(features)
        return AnswerabilityEvidence(
            probability=round(p, 4),
            threshold=round(threshold, 4),
            model_version=self.artifact.version,
            intercept=round(self.artifact.intercept, 4),
            features={k: round(v, 4) for k, v in features.items()},
            contributions={k: round(v, 4) for k, v in parts.items()},
        )


@cache
def _read(path: str, mtime: float) -> AnswerabilityArtifact:
    return AnswerabilityArtifact.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


def load_artifact(path: Path = SHIPPED) -> AnswerabilityArtifact:
    """The artifact at `path`, read once per version of the file."""
    return _read(str(path), path.stat().st_mtime)
