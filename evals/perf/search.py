"""`cxa bench search`: retrieval latency against index size (synthetic indexes, `evals.perf.synthetic`).

Per size, over the same real questions (the sample help-center questions and doc2dial dev user turns), each
question measured in turn, interleaved: the full hybrid `Retriever.search` (as a turn calls it), then its
parts alone: embedding the question, the dense (Chroma HNSW) query with that vector (ids and distances, as the
hybrid search asks; and with texts and metadata, as `KnowledgeIndex.search` returns them), and BM25 over the
in-memory keyword index. Also the one-off cost of the keyword index: reading every chunk back from Chroma
and building it as a server does at start (time), and the resident memory it adds (chunks included).
Every question is new to the embedder's cache when asked: the figures are those of a customer's new question.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable

from pydantic import BaseModel, Field

from assistant.services import build_retriever
from assistant.settings import Settings
from evals.perf.stats import Machine, Timing
from evals.perf.synthetic import SyntheticManifest, real_questions, synthetic_index

Progress = Callable[[str, int, int], None]


class SizeFigures(BaseModel):
    chunks: int
    real_chunks: int
    synthetic_chunks: int
    questions: int
    hybrid: Timing
    embed_query: Timing
    dense: Timing = Field(description="Chroma's vector search, ids and distances (what the hybrid search asks)")
    dense_with_chunks: Timing = Field(description="the same returning texts and metadata (KnowledgeIndex.search)")
    bm25: Timing
    bm25_read_s: float = Field(description="reading every chunk back from Chroma")
    bm25_build_s: float = Field(description="what a server does at start (Retriever.warm): the read and the build")
    bm25_memory_mb: float = Field(description="resident memory added by the keyword index (its chunks included)")
    bm25_terms: int
    index: SyntheticManifest


class SearchFigures(BaseModel):
    benchmark: str = "search/synthetic"
    machine: Machine
    top_k: int
    candidates: int
    lexical_weight: float
    sizes: list[SizeFigures]


def _rss_mb() -> float:
    """Resident memory of this process (Linux), MB; 0 where /proc is not there."""
    try:
        pages = int(open("/proc/self/statm").read().split()[1])  # noqa: SIM115 - one read of a proc file
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def run_size(
    settings: Settings, size: int, questions: list[str], seed: int = 0, progress: Progress | None = None
) -> SizeFigures:
    index, manifest = synthetic_index(settings, size, seed, progress)
    r = settings.retrieval
    retriever = build_retriever(settings, index)
    t0 = time.perf_counter()
    sum(1 for _ in index.iter_chunks())
    read_s = time.perf_counter() - t0
    gc.collect()
    rss = _rss_mb()
    t1 = time.perf_counter()
    bm25 = retriever.warm()  # what a server does at start: read every chunk, build the keyword index
    build_s = time.perf_counter() - t1
    gc.collect()
    memory_mb = max(0.0, _rss_mb() - rss)
    assert bm25 is not None
    embedder = index.embedder
    for q in questions[:5]:  # warm-up: first-call allocations
        retriever.search(q, r.top_k)
    embedder.clear_cache()  # every question below is new to the process, as a customer's is
    hybrid, embed, dense, dense_chunks, lexical = [], [], [], [], []
    label = f"search {size:,} chunks"
    for i, q in enumerate(questions):
        t = time.perf_counter()
        retriever.search(q, r.top_k)
        hybrid.append(time.perf_counter() - t)
        t = time.perf_counter()
        vec = embedder.embed([q])[0]
        embed.append(time.perf_counter() - t)
        t = time.perf_counter()
        index.nearest(vec, k=max(r.top_k, r.candidates))
        dense.append(time.perf_counter() - t)
        t = time.perf_counter()
        index.search(q, k=max(r.top_k, r.candidates), vector=vec)
        dense_chunks.append(time.perf_counter() - t)
        t = time.perf_counter()
        bm25.top(q, r.candidates)
        lexical.append(time.perf_counter() - t)
        if progress:
            progress(label, i + 1, len(questions))
    return SizeFigures(
        chunks=index.count(),
        real_chunks=manifest.real_chunks,
        synthetic_chunks=manifest.synthetic_chunks,
        questions=len(questions),
        hybrid=Timing.of(hybrid),
        embed_query=Timing.of(embed),
        dense=Timing.of(dense),
        dense_with_chunks=Timing.of(dense_chunks),
        bm25=Timing.of(lexical),
        bm25_read_s=round(read_s, 2),
        bm25_build_s=round(build_s, 2),
        bm25_memory_mb=round(memory_mb, 1),
        bm25_terms=len(bm25.postings),
        index=manifest,
    )


def run_search(
    settings: Settings,
    sizes: list[int],
    questions: int = 300,
    seed: int = 0,
    progress: Progress | None = None,
) -> SearchFigures:
    asked = real_questions(settings, questions, seed)
    r = settings.retrieval
    return SearchFigures(
        machine=Machine(),
        top_k=r.top_k,
        candidates=r.candidates,
        lexical_weight=r.lexical_weight,
        sizes=[run_size(settings, n, asked, seed, progress) for n in sizes],
    )


def summary_rows(figures: SearchFigures) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [("machine", f"{figures.machine.cores} cores, load {figures.machine.load_1m:.1f}")]
    for s in figures.sizes:
        n = f"{s.chunks:,}"
        rows += [
            (f"{n}: hybrid Retriever.search p50 / p95 (ms)", s.hybrid.row()),
            (f"{n}: query embedding", s.embed_query.row()),
            (f"{n}: dense (Chroma) search, ids / with chunks", f"{s.dense.row()} | {s.dense_with_chunks.row()}"),
            (f"{n}: BM25", s.bm25.row()),
            (f"{n}: BM25 at start: read + build (s) / read alone", f"{s.bm25_build_s:.1f} / {s.bm25_read_s:.1f}"),
            (f"{n}: BM25 memory (MB, chunks included) / terms", f"{s.bm25_memory_mb:.0f} / {s.bm25_terms:,}"),
        ]
    return rows
