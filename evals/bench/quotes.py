"""Which sentence to quote, learned and measured on doc2dial dev (`cxa bench quotes`).

Every dev turn is searched as the engine searches it (the standalone-question heuristic, the hybrid retriever, the
chunks above `CXA_ANSWER__MIN_RETRIEVAL_SCORE`); each help-center sentence of those chunks that may anchor a quote
becomes a row of `assistant.turn.quotes.QUOTE_FEATURES`, labelled 1 when it overlaps one of the turn's gold spans.
A logistic model is trained with folds grouped by document (a page is never in both sides of a fold), and each
held-out turn's quote (`Passages.extractive` with that fold's model) is scored against the gold answer by token-F1,
next to the hand-set scorer's quote on the same turns. `--train` then fits on all turns and writes the model the
assistant loads (`assistant/turn/quote_model.json`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from assistant.settings import Settings
from assistant.turn.grounding import Passages, SentenceVectors
from assistant.turn.quotes import MODEL_PATH, QUOTE_FEATURES, QuoteModel, hand_scores
from evals.bench.answers import token_f1
from evals.bench.retrieval import bench_index, standalone_for
from evals.datasets import Doc2DialTurn, doc2dial_turns
from knowledge.retriever import Retriever

Progress = Callable[[str, int, int], None]
MODEL_VERSION = "quotes-logreg-1"


class QuotesResult(BaseModel):
    benchmark: str = "quotes/doc2dial-dev"
    turns: int  # turns with at least one chunk to quote from
    folds: int
    positives: int
    candidates: int
    token_f1_hand: float  # the hand-set scorer's quotes
    token_f1_learned: float  # each turn quoted with the model of the fold that did not see its page
    anchor_hit_hand: float  # the chosen sentence overlaps the gold span
    anchor_hit_learned: float
    oracle_sentence_f1: float  # the best single candidate sentence, for scale
    coefficients: dict[str, float]  # of the model fitted on all turns (standardised features)
    written: str | None = None

    def summary_rows(self) -> list[tuple[str, object]]:
        return [
            ("turns with a chunk to quote / candidate sentences", f"{self.turns} / {self.candidates}"),
            ("gold sentences among the candidates", self.positives),
            (
                f"token-F1, hand-set scorer / learned ({self.folds} folds by page)",
                f"{self.token_f1_hand:.3f} / {self.token_f1_learned:.3f}",
            ),
            (
                "anchor on a gold span, hand-set / learned",
                f"{self.anchor_hit_hand:.3f} / {self.anchor_hit_learned:.3f}",
            ),
            ("best single candidate sentence (ceiling)", f"{self.oracle_sentence_f1:.3f}"),
            ("model written to", self.written or "- (use --train)"),
        ]


class _Turn:
    def __init__(self, turn: Doc2DialTurn, passages: Passages, candidates: list[int], x: np.ndarray, y: np.ndarray):
        self.turn, self.passages, self.candidates, self.x, self.y = turn, passages, candidates, x, y


def _label(p: Passages, i: int, turn: Doc2DialTurn) -> int:
    hit, start, end = p.unit_span(i)
    if p.hits[hit].chunk.source_id != turn.doc_id:
        return 0
    return int(any(start < s.end and s.start < end for s in turn.gold_spans))


def _fit(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> QuoteModel:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit((x - mean) / scale, y)
    return QuoteModel(
        version=MODEL_VERSION,
        features=list(QUOTE_FEATURES),
        mean=[round(float(v), 6) for v in mean],
        scale=[round(float(v), 6) for v in scale],
        coef=[round(float(v), 6) for v in clf.coef_[0]],
        intercept=round(float(clf.intercept_[0]), 6),
    )


def run_quotes(
    settings: Settings,
    data_dir: Path,
    limit: int | None = None,
    folds: int = 5,
    train: bool = False,
    out: Path = MODEL_PATH,
    progress: Progress | None = None,
) -> QuotesResult:
    from sklearn.model_selection import GroupKFold

    index, _ = bench_index(settings, data_dir, progress=progress)
    r = settings.retrieval
    retriever = Retriever(index, candidates=r.candidates, lexical_weight=r.lexical_weight)
    vectors = SentenceVectors(index.embedder)
    turns = doc2dial_turns(data_dir, limit)
    rows: list[_Turn] = []
    for n, t in enumerate(turns, 1):
        query = standalone_for(t)
        hits = [h for h in retriever.search(query, r.top_k) if h.score >= settings.answer.min_retrieval_score]
        if hits:
            p = Passages(hits=hits, history="", embedder=vectors, question=query)
            cand, x = p.quote_candidates()
            if cand:
                y = np.asarray([_label(p, i, t) for i in cand])
                rows.append(_Turn(t, p, cand, x, y))
        if progress:
            progress("turns", n, len(turns))
    groups = [row.turn.doc_id for row in rows]
    k = min(folds, len(set(groups)))
    f1_hand, f1_learned, hit_hand, hit_learned, oracle = [], [], [], [], []
    sentences = settings.answer.extractive_sentences

    def quoted(row: _Turn, scorer: Callable[[np.ndarray], np.ndarray]) -> tuple[float, int]:
        text, _ = row.passages.extractive(sentences, scorer=scorer)
        chosen = row.candidates[int(np.argmax(scorer(row.x)))]
        return token_f1(text, row.turn.gold_answer), int(row.y[row.candidates.index(chosen)])

    for fold, (train_idx, test_idx) in enumerate(GroupKFold(n_splits=k).split(rows, groups=groups), 1):
        model = _fit(np.vstack([rows[i].x for i in train_idx]), np.concatenate([rows[i].y for i in train_idx]))
        for i in test_idx:
            row = rows[i]
            f, h = quoted(row, hand_scores)
            f1_hand.append(f)
            hit_hand.append(h)
            f, h = quoted(row, model.scores)
            f1_learned.append(f)
            hit_learned.append(h)
            oracle.append(max(token_f1(row.passages.sentences[c], row.turn.gold_answer) for c in row.candidates))
        if progress:
            progress("folds", fold, k)
    x_all = np.vstack([row.x for row in rows])
    y_all = np.concatenate([row.y for row in rows])
    final = _fit(x_all, y_all)
    figures: dict[str, Any] = {
        "token_f1_hand": round(statistics.fmean(f1_hand), 4),
        "token_f1_learned": round(statistics.fmean(f1_learned), 4),
        "anchor_hit_hand": round(statistics.fmean(hit_hand), 4),
        "anchor_hit_learned": round(statistics.fmean(hit_learned), 4),
    }
    written = None
    if train:
        final.trained_on = (
            f"doc2dial dev: {len(rows)} turns, {len(y_all)} candidate sentences ({int(y_all.sum())} gold)"
        )
        final.figures = figures
        out.write_text(final.model_dump_json(indent=2) + "\n", encoding="utf-8")
        written = str(out)
    return QuotesResult(
        turns=len(rows),
        folds=k,
        positives=int(y_all.sum()),
        candidates=len(y_all),
        oracle_sentence_f1=round(statistics.fmean(oracle), 4),
        coefficients={n: c for n, c in zip(QUOTE_FEATURES, final.coef, strict=True)},
        written=written,
        **figures,
    )
