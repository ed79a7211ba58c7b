"""`cxa bench search`: retrieval latency against index size (synthetic indexes, `evals.perf.synthetic`).

Per size, over the same real questions (the sample help-center questions and doc2dial dev user turns), each
question measured in turn, interleaved: the full hybrid `Retriever.search` (as a turn calls it), then its
parts alone: embedding the question, the dense (Chroma HNSW) query with that vector, and BM25 over the
in-memory keyword index. Also the one-off cost of the keyword index: reading every chunk back from Chroma
and building it (time), and the memory it keeps (tracemalloc, chunks included, measured on a second build).
The query-embedding figure is the uncached cost of a question never seen before.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable

from pydantic import BaseModel

from assistant.settings import Settings
from evals.perf.stats import Machine, Timing
from evals.perf.synthetic import SyntheticManifest, real_questions, synthetic_index
from knowledge.retriever import BM25, Retriever

Progress = Callable[[str, int, int], None]


class SizeFigures(BaseModel):
    chunks: int
    real_chunks: int
    synthetic_chunks: int
    questions: int
    hybrid: Timing
    embed_query: Timing
    dense: Timing
    bm25: Timing
    bm25_read_s: float
    bm25_build_s: float
    bm25_memory_mb: float
    bm25_terms: int
    index: SyntheticManifest


class SearchFigures(BaseModel):
    benchmark: str = "search/synthetic"
    machine: Machine
    top_k: int
    candidates: int
    lexical_weight: float
    sizes: list[SizeFigures]


def _bm25_memory_mb(retriever: Retriever) -> tuple[float, int]:
    """Memory kept by a keyword index built again under tracemalloc (its chunk list included)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        bm = BM25(list(retriever.index.iter_chunks()))
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    terms = len(bm.postings)
    del bm
    return round(kept / 1e6, 1), terms


def run_size(
    settings: Settings, size: int, questions: list[str], seed: int = 0, progress: Progress | None = None
) -> SizeFigures:
    index, manifest = synthetic_index(settings, size, seed, progress)
    r = settings.retrieval
    retriever = Retriever(index, candidates=r.candidates, lexical_weight=r.lexical_weight)
    t0 = time.perf_counter()
    chunks = list(index.iter_chunks())
    read_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    BM25(chunks)
    build_s = time.perf_counter() - t1
    del chunks
    memory_mb, terms = _bm25_memory_mb(retriever)
    bm25 = retriever.warm()  # the keyword index the searches use
    assert bm25 is not None
    embedder = index.embedder
    for q in questions[:5]:  # warm-up: caches, first-call allocations
        retriever.search(q, r.top_k)
    hybrid, embed, dense, lexical = [], [], [], []
    label = f"search {size:,} chunks"
    for i, q in enumerate(questions):
        t = time.perf_counter()
        retriever.search(q, r.top_k)
        hybrid.append(time.perf_counter() - t)
        t = time.perf_counter()
        vec = embedder.embed([q])[0]
        embed.append(time.perf_counter() - t)
        t = time.perf_counter()
        index.search(q, k=max(r.top_k, r.candidates), vector=vec)
        dense.append(time.perf_counter() - t)
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
        bm25=Timing.of(lexical),
        bm25_read_s=round(read_s, 2),
        bm25_build_s=round(build_s, 2),
        bm25_memory_mb=memory_mb,
        bm25_terms=terms,
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
            (f"{n}: dense (Chroma) search", s.dense.row()),
            (f"{n}: BM25", s.bm25.row()),
            (f"{n}: BM25 build: read chunks + build (s)", f"{s.bm25_read_s:.2f} + {s.bm25_build_s:.2f}"),
            (f"{n}: BM25 memory (MB, chunks included) / terms", f"{s.bm25_memory_mb:.0f} / {s.bm25_terms:,}"),
        ]
    return rows
