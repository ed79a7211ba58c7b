"""Answers on doc2dial dev through the real engine: each sampled turn is asked in a fresh conversation that
already holds the turn's history, with the configured chat model, over all 273 doc2dial pages.

The pages live in the `bench_doc2dial` collection (shared with the retrieval and handoff benchmarks,
ingested incrementally); conversations go to a scratch SQLite database (`evals/workspace.py`).

Reported per turn, averaged:
- token-F1 of the shown reply against the gold answer, with SQuAD's normalisation (lower case,
  punctuation and articles removed). `token_f1` is over the turns that got a reply; `token_f1_all`
  counts a turn handed off without a reply as 0.
- groundedness: the share of the reply's sentences supported by the chunks it cites
  (`assistant.turn.grounding.Passages.support` >= `CXA_ANSWER__MIN_SENTENCE_SUPPORT`), the same check the
  engine applies, re-run here on the cited chunks only.
- handoff rate (every doc2dial dev turn is answerable, so each handoff is a false one), abstain rate
  (the reply declines), the share of replies the model wrote (`generated`) rather than quoted
  (`extractive` fallback), and the turn latency.
"""

from __future__ import annotations

import random
import re
import statistics
import string
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from assistant.models import Citation, SearchHit
from assistant.services import Services
from assistant.settings import Settings
from assistant.turn.grounding import Passages, SentenceVectors
from evals.bench.retrieval import BENCH_COLLECTION, bench_index
from evals.datasets import doc2dial_turns
from evals.suite import Metric
from evals.workspace import scratch_settings
from knowledge.chunking import split_sentences
from knowledge.index import KnowledgeIndex

Progress = Callable[[str, int, int], None]
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token-F1 of `prediction` against one `gold` answer."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def cited_hits(index: KnowledgeIndex, citations: list[Citation]) -> list[SearchHit]:
    """The chunks a reply cites, looked up by id (the citation carries only a snippet)."""
    hits: list[SearchHit] = []
    by_source: dict[str, dict[str, object]] = {}
    for c in citations:
        if c.source_id not in by_source:
            by_source[c.source_id] = {ch.chunk_id: ch for ch in index.get_document_chunks(c.source_id)}
        chunk = by_source[c.source_id].get(c.chunk_id or "")
        if chunk is not None:
            hits.append(SearchHit(chunk=chunk, score=c.score))  # type: ignore[arg-type]
    return hits


def groundedness(
    text: str, question: str, hits: list[SearchHit], vectors: SentenceVectors, min_support: float
) -> float | None:
    """Share of the sentences of `text` supported by `hits` (None for an empty text)."""
    sentences = [s for s in split_sentences(text) if len(s.split()) >= 3] or ([text] if text.strip() else [])
    if not sentences:
        return None
    if not hits:
        return 0.0
    passages = Passages(hits=hits, history="", embedder=vectors, question=question)
    return sum(passages.support(s).support >= min_support for s in sentences) / len(sentences)


class AnswersResult(BaseModel):
    benchmark: str = "answers/doc2dial-dev-engine"
    turns: int
    model: str
    mode: str = "auto"  # the answer mode the engine ran with (extractive: quoted; generative: the model's text)
    token_f1: float  # over the turns that got a reply
    token_f1_all: float  # a turn without a reply scores 0
    groundedness: float  # over replies, share of sentences supported by the cited chunks
    replied: float
    handoff_rate: float
    abstain_rate: float
    generated_share: float  # replies written by the model (not the extractive fallback)
    latency_ms_p50: float
    latency_ms_p95: float
    seconds: float

    def summary_rows(self) -> list[tuple[str, object]]:
        return [
            ("turns", self.turns),
            ("model", self.model),
            ("token-F1 (replies)", f"{self.token_f1:.3f}"),
            ("token-F1 (all turns, no reply = 0)", f"{self.token_f1_all:.3f}"),
            ("groundedness", f"{self.groundedness:.3f}"),
            ("replied", f"{self.replied:.3f}"),
            ("handoff rate", f"{self.handoff_rate:.3f}"),
            ("declined", f"{self.abstain_rate:.3f}"),
            ("written by the model", f"{self.generated_share:.3f}"),
            ("turn latency p50 / p95 (ms)", f"{self.latency_ms_p50:.0f} / {self.latency_ms_p95:.0f}"),
        ]

    def suite_metrics(self) -> list[Metric]:
        return [
            Metric("token_f1", self.token_f1),
            Metric("token_f1_all", self.token_f1_all),
            Metric("groundedness", self.groundedness),
            Metric("handoff_rate", self.handoff_rate, higher_is_better=False),
            Metric("abstain_rate", self.abstain_rate, higher_is_better=False),
            Metric("generated_share", self.generated_share, kind="info"),
            Metric("latency_ms_p50", self.latency_ms_p50, higher_is_better=False, kind="info"),
            Metric("latency_ms_p95", self.latency_ms_p95, higher_is_better=False, kind="info"),
        ]


def run_answers(
    settings: Settings,
    data_dir: Path,
    limit: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> AnswersResult:
    started = time.perf_counter()
    bench_index(settings, data_dir, progress=progress)  # ingests what changed (nothing, usually)
    turns = doc2dial_turns(data_dir)
    if limit is not None and limit < len(turns):
        turns = random.Random(seed).sample(turns, limit)
    with tempfile.TemporaryDirectory(prefix="cxa-answers-") as tmp:
        s = scratch_settings(settings, Path(tmp), BENCH_COLLECTION)
        services = Services.build(s)
        try:
            services.chat.warm()
            vectors = SentenceVectors(services.index.embedder)
            f1s, f1_all, grounded, latencies = [], [], [], []
            handoffs = abstains = generated = 0
            store, engine = services.store, services.engine
            for i, t in enumerate(turns, 1):
                conv = engine.start_conversation(None, verified=False, channel="eval")
                for role, utterance in t.history:
                    store.add_message(conv.id, "customer" if role == "user" else "assistant", utterance)
                t0 = time.perf_counter()
                turn = engine.run_turn(conv.id, t.utterance)
                latencies.append((time.perf_counter() - t0) * 1000)
                handoffs += turn.handoff is not None
                if turn.reply is not None and turn.reply.text.strip():
                    reply = turn.reply
                    f1 = token_f1(reply.text, t.gold_answer)
                    f1s.append(f1)
                    f1_all.append(f1)
                    abstains += reply.mode == "declined"
                    generated += reply.mode == "generated"
                    g = groundedness(
                        reply.text,
                        t.utterance,
                        cited_hits(services.index, reply.citations),
                        vectors,
                        s.answer.min_sentence_support,
                    )
                    if g is not None:
                        grounded.append(g)
                else:
                    f1_all.append(0.0)
                if progress:
                    progress("answers", i, len(turns))
            model = f"{services.chat.provider}:{services.chat.model_name}"
        finally:
            services.close()
    n = max(1, len(turns))
    latencies.sort()
    return AnswersResult(
        turns=len(turns),
        model=model,
        mode=s.answer_settings().mode,
        token_f1=round(statistics.fmean(f1s), 4) if f1s else 0.0,
        token_f1_all=round(statistics.fmean(f1_all), 4) if f1_all else 0.0,
        groundedness=round(statistics.fmean(grounded), 4) if grounded else 0.0,
        replied=round(len(f1s) / n, 4),
        handoff_rate=round(handoffs / n, 4),
        abstain_rate=round(abstains / n, 4),
        generated_share=round(generated / max(1, len(f1s)), 4),
        latency_ms_p50=round(statistics.median(latencies), 1) if latencies else 0.0,
        latency_ms_p95=round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1) if latencies else 0.0,
        seconds=round(time.perf_counter() - started, 1),
    )
