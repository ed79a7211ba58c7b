"""Retrieval benchmark on doc2dial dev: all 273 help pages ingested, every dev turn asked with the same search
context (`assistant.turn.rewrite.search_context`) and retriever the engine uses; the dataset's history carries no
citations, so no cited pages (`--dialogues`, `evals/bench/dialogues.py`, replays whole dialogues with the system's
own replies and citations). A hit is a retrieved chunk of the gold document that overlaps a gold span. Reports
recall@k, MRR, query latency and ingest throughput.

The pages go into their own collection (`bench_doc2dial`), never into the help center's, and are
ingested incrementally: a second run embeds nothing unless `fresh=True`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from assistant.services import build_index, build_retriever
from assistant.settings import Settings
from assistant.turn.rewrite import heuristic_standalone, search_context
from evals.datasets import Doc2DialTurn, doc2dial_documents, doc2dial_turns
from evals.suite import Metric
from knowledge.index import KnowledgeIndex
from knowledge.types import SearchContext, SearchHit

BENCH_COLLECTION = "bench_doc2dial"
Progress = Callable[[str, int, int], None]


class IngestFigures(BaseModel):
    documents: int
    chunks: int
    chunks_embedded: int
    seconds: float
    chunks_per_second: float | None


class RetrievalResult(BaseModel):
    benchmark: str = "retrieval/doc2dial-dev"
    turns: int
    k: int
    recall_at_k: float
    mrr: float
    latency_ms_p50: float
    latency_ms_p95: float
    lexical_weight: float
    max_words: int
    overlap_words: int
    ingest: IngestFigures

    def suite_metrics(self) -> list[Metric]:
        return [
            Metric(f"recall_at_{self.k}", self.recall_at_k),
            Metric("mrr", self.mrr),
            Metric("latency_ms_p50", self.latency_ms_p50, higher_is_better=False, kind="info"),
            Metric("latency_ms_p95", self.latency_ms_p95, higher_is_better=False, kind="info"),
        ]

    def summary_rows(self) -> list[tuple[str, object]]:
        g = self.ingest
        return [
            ("turns", self.turns),
            (f"recall@{self.k}", f"{self.recall_at_k:.3f}"),
            ("MRR", f"{self.mrr:.3f}"),
            ("query latency p50 (ms)", self.latency_ms_p50),
            ("query latency p95 (ms)", self.latency_ms_p95),
            ("documents / chunks", f"{g.documents} / {g.chunks}"),
            ("chunks embedded this run", g.chunks_embedded),
            ("ingest throughput (chunks/s)", g.chunks_per_second or "- (nothing to embed; use --fresh)"),
        ]


def is_hit(hit: SearchHit, turn: Doc2DialTurn) -> bool:
    c = hit.chunk
    return c.source_id == turn.doc_id and any(c.start < s.end and s.start < c.end for s in turn.gold_spans)


_ROLES = {"user": "customer", "agent": "assistant"}


def standalone_for(turn: Doc2DialTurn) -> str:
    return heuristic_standalone(turn.utterance, [(_ROLES.get(r, r), u) for r, u in turn.history])


def context_for(turn: Doc2DialTurn, settings: Settings) -> SearchContext | None:
    """The search context the engine would give this turn (the dataset's history carries no citations: no
    cited pages, only the conversation's text)."""
    r = settings.retrieval
    previous = [(_ROLES.get(role, role), u) for role, u in turn.history]
    return search_context(
        turn.utterance,
        previous,
        (),
        r.context_weight,
        r.follow_up_context_weight,
        r.context_messages,
        r.context_replies,
    )


def bench_index(
    settings: Settings, data_dir: Path, fresh: bool = False, progress: Progress | None = None
) -> tuple[KnowledgeIndex, IngestFigures]:
    index = build_index(settings.model_copy(update={"collection": BENCH_COLLECTION}))
    if fresh:
        index.rebuild()
    docs = list(doc2dial_documents(data_dir))
    report = index.ingest(
        docs, origin="doc2dial", prune=True, progress=(lambda d, t: progress("ingest", d, t)) if progress else None
    )
    figures = IngestFigures(
        documents=len(docs),
        chunks=index.count(),
        chunks_embedded=report.chunks_embedded,
        seconds=round(report.seconds, 2),
        chunks_per_second=round(report.chunks_per_second, 2) if report.chunks_embedded else None,
    )
    return index, figures


def run_retrieval(
    settings: Settings,
    data_dir: Path,
    k: int = 5,
    limit: int | None = None,
    fresh: bool = False,
    progress: Progress | None = None,
) -> RetrievalResult:
    index, figures = bench_index(settings, data_dir, fresh, progress)
    r = settings.retrieval
    retriever = build_retriever(settings, index)
    turns = doc2dial_turns(data_dir, limit)
    retriever.search("warm up", k)  # builds the keyword index outside the timed loop
    hits_at_k, rr, latencies = 0, 0.0, []
    for i, turn in enumerate(turns, 1):
        t = time.perf_counter()
        hits = retriever.search(turn.utterance, k, context=context_for(turn, settings))
        latencies.append((time.perf_counter() - t) * 1000)
        rank = next((n for n, h in enumerate(hits, 1) if is_hit(h, turn)), None)
        if rank is not None:
            hits_at_k += 1
            rr += 1 / rank
        if progress:
            progress("query", i, len(turns))
    latencies.sort()
    return RetrievalResult(
        turns=len(turns),
        k=k,
        recall_at_k=round(hits_at_k / len(turns), 4),
        mrr=round(rr / len(turns), 4),
        latency_ms_p50=round(statistics.median(latencies), 2),
        latency_ms_p95=round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 2),
        lexical_weight=r.lexical_weight,
        max_words=settings.chunking.max_words,
        overlap_words=settings.chunking.overlap_words,
        ingest=figures,
    )
