"""Large knowledge indexes (1k-100k chunks) for the latency benchmarks (`cxa bench search|overhead`), cached on disk.

Embedding 100k real chunks takes over an hour on 2 cores (~18-50 chunks/s), so only a pool is real. What is
real and what is synthetic:

- **The pool: real text, real vectors.** Every chunk of the sample help center (34 articles, ~200 chunks) and
  of the 273 doc2dial dev pages (~1,950 chunks), cut as `cxa ingest` cuts them (heading-aware, `chunking`
  settings) and embedded with the product's MiniLM embedder, once: the vectors are cached in
  `<data_dir>/bench/pool-<digest>.npz` (the digest covers the texts and the model).
- **An index of N chunks up to the pool's size is all real**: the help center first (so that the sample
  questions have their answers), then doc2dial chunks in a seeded order.
- **Every chunk beyond the pool is synthetic**: a run of real sentences from one pool passage followed by a
  run from another (from the same domain 70% of the time), about as long as a real chunk, under the first
  passage's title and headings. BM25 therefore sees real words with real co-occurrence and realistic
  document frequencies (a common term's postings grow with N, as in a homogeneous help center). Its vector
  is *derived, not embedded*: the two passages' real vectors weighted by their share of the words, plus
  Gaussian noise (sigma 0.01 per dimension), normalised. When an index is built, a sample of the mixed
  texts is embedded for real and the cosine between derived and real vectors is recorded in its manifest
  (`vector_check`): the dense neighbourhoods are plausible, not exact.
- Synthetic chunks are grouped into documents of 6 (`<topic>/syn-<n>`, the topic of the first passage:
  the help center's folder, or doc2dial's domain; real doc2dial chunks get their domain as a prefix too,
  so the topic model learns a handful of topics, as on a real help center).

Chunks are written with precomputed vectors through `KnowledgeIndex.add_embedded`, with the metadata
`ingest` writes, so `Retriever`, `KnowledgeIndex.search` and `iter_chunks` work on them unchanged. An index
lives in `<data_dir>/bench/index-<N>/chroma` (collection `bench_synthetic`) with a `manifest.json` written
last; a rerun with the same parameters reuses it.

A deployment's sentence vectors are warmed after ingest (`cxa ingest`'s second stage); so are an index's here
(`warm_index_sentences`): its sentences, list items and titles embedded for real into
`<data_dir>/bench/index-<N>/sentence-vectors.sqlite`, once (the synthetic chunks are made of pool sentences, so a
100k index has ~20k distinct texts), with the time it took in `sentence-vectors.json`.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from assistant.services import build_index, warm_sentences
from assistant.settings import Settings
from evals.datasets import doc2dial_documents, doc2dial_turns
from knowledge.chunking import chunk_document, split_sentences
from knowledge.embeddings import MODEL_NAME, MODEL_VERSION
from knowledge.index import KnowledgeIndex
from knowledge.loaders import SAMPLE_HELPCENTER, iter_folder
from knowledge.types import Chunk, Document

logger = logging.getLogger(__name__)

COLLECTION = "bench_synthetic"
FORMAT = "cxa-synthetic/1"
DOC_CHUNKS = 6  # synthetic chunks per synthetic document
SAME_DOMAIN = 0.7  # chance that the second passage of a mixture comes from the first one's domain
NOISE = 0.01  # per-dimension Gaussian noise added to a derived vector before normalising
VECTOR_CHECK = 150  # mixed texts embedded for real to see how close their derived vectors are
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Passage:
    """A real chunk of the pool with the document it came from."""

    chunk: Chunk
    doc: Document
    topic: str

    @property
    def sentences(self) -> list[str]:
        return [s for s in split_sentences(self.chunk.text) if s.strip()]


class VectorCheck(BaseModel):
    sampled: int
    cosine_median: float
    cosine_p5: float
    cosine_min: float


class SentenceWarm(BaseModel):
    """The sentence vectors of an index: how many texts, and how long embedding them took the first time."""

    texts: int
    embedded: int
    seconds: float
    this_run_s: float  # this run's walk (0: the index was warmed at this revision already, nothing walked)
    reused: bool


class SyntheticManifest(BaseModel):
    format: str = FORMAT
    size: int
    seed: int
    pool_digest: str
    real_chunks: int
    synthetic_chunks: int
    documents: int
    build_s: float
    vector_check: VectorCheck | None = None


# -- the pool of real passages ---------------------------------------------------------------------------


def pool_passages(settings: Settings, seed: int = 0) -> list[Passage]:
    """The real chunks: the sample help center first, then doc2dial dev pages (seeded order)."""
    c = settings.chunking
    out: list[Passage] = []
    for _, doc in iter_folder(SAMPLE_HELPCENTER):
        if isinstance(doc, Exception):
            continue
        topic = doc.source_id.split("/", 1)[0] if "/" in doc.source_id else "general"
        out.extend(Passage(ch, doc, topic) for ch in chunk_document(doc, c.max_words, c.overlap_words))
    d2d: list[Passage] = []
    for doc in doc2dial_documents(settings.shared_data_dir):
        domain = doc.metadata.get("domain", "doc2dial")
        doc = doc.model_copy(update={"source_id": f"{domain}/{doc.source_id}"})
        d2d.extend(Passage(ch, doc, domain) for ch in chunk_document(doc, c.max_words, c.overlap_words))
    random.Random(seed).shuffle(d2d)
    return out + d2d


def pool_digest(passages: list[Passage]) -> str:
    h = hashlib.sha256(f"{MODEL_NAME}/{MODEL_VERSION}".encode())
    for p in passages:
        h.update(p.chunk.context_text.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def pool_vectors(
    settings: Settings, passages: list[Passage], index: KnowledgeIndex, progress: Progress | None = None
) -> np.ndarray:
    """The pool's real MiniLM vectors (what `ingest` embeds: `context_text`), cached by digest."""
    cache = settings.data_dir / "bench" / f"pool-{pool_digest(passages)}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            vectors = np.asarray(data["vectors"], dtype=np.float32)
        if len(vectors) == len(passages):
            return vectors
    texts = [p.chunk.context_text for p in passages]
    out = np.zeros((len(texts), 384), dtype=np.float32)
    step = 64
    for i in range(0, len(texts), step):
        out[i : i + step] = index.embedder.embed(texts[i : i + step])
        if progress:
            progress("embed the real pool", min(i + step, len(texts)), len(texts))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, vectors=out)
    tmp.replace(cache)
    return out


# -- mixtures ---------------------------------------------------------------------------------------------


def _run(sentences: list[str], words: int, rng: random.Random) -> list[str]:
    """A contiguous run of `sentences` of about `words` words (at least one sentence)."""
    if not sentences:
        return []
    start = rng.randrange(len(sentences))
    out: list[str] = []
    n = 0
    for s in sentences[start:] + sentences[:start]:
        out.append(s)
        n += len(s.split())
        if n >= words:
            break
    return out


def mixture(
    a: Passage,
    b: Passage,
    va: np.ndarray,
    vb: np.ndarray,
    rng: random.Random,
    nrng: np.random.Generator,
    max_words: int,
) -> tuple[str, np.ndarray]:
    """Text of real sentences from `a` then `b`, and the vector derived from theirs (see the module docstring)."""
    target = max(30, min(max_words, len(a.chunk.text.split())))
    share = rng.uniform(0.4, 0.7)
    first = _run(a.sentences, int(target * share), rng)
    used = sum(len(s.split()) for s in first)
    second = _run(b.sentences, max(8, target - used), rng)
    text = " ".join(first + second)
    wa = used / max(1, used + sum(len(s.split()) for s in second))
    v = wa * va + (1 - wa) * vb + nrng.normal(0.0, NOISE, size=va.shape).astype(np.float32)
    return text, (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def _synthetic_rows(
    passages: list[Passage], vectors: np.ndarray, count: int, seed: int, max_words: int
) -> tuple[list[tuple[Chunk, Document, str]], np.ndarray]:
    """`count` mixed chunks in documents of `DOC_CHUNKS`; the same seed gives the same first chunks for every N."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    by_topic: dict[str, list[int]] = {}
    for i, p in enumerate(passages):
        by_topic.setdefault(p.topic, []).append(i)
    rows: list[tuple[Chunk, Document, str]] = []
    out = np.zeros((count, vectors.shape[1]), dtype=np.float32)
    for start in range(0, count, DOC_CHUNKS):
        n_doc = start // DOC_CHUNKS
        parts: list[tuple[str, int]] = []
        for j in range(start, min(start + DOC_CHUNKS, count)):
            ia = rng.randrange(len(passages))
            a = passages[ia]
            same = by_topic[a.topic]
            ib = rng.choice(same) if rng.random() < SAME_DOMAIN else rng.randrange(len(passages))
            text, out[j] = mixture(a, passages[ib], vectors[ia], vectors[ib], rng, nrng, max_words)
            parts.append((text, ia))
        lead = passages[parts[0][1]]
        source_id = f"{lead.topic}/syn-{n_doc:06d}"
        body = "\n\n".join(t for t, _ in parts)
        doc = Document(
            source_id=source_id,
            title=lead.doc.title,
            url=None,
            text=body,
            metadata={"dataset": "synthetic", **({"domain": lead.topic} if lead.topic else {})},
        )
        doc_hash = hashlib.sha256(f"{FORMAT}:{seed}:{source_id}".encode()).hexdigest()
        offset = 0
        for pos, (text, ia) in enumerate(parts):
            p = passages[ia]
            chunk = Chunk(
                chunk_id=f"{source_id}::{doc_hash[:12]}::{pos}",
                source_id=source_id,
                title=doc.title,
                url=None,
                headings=list(p.chunk.headings),
                text=text,
                start=offset,
                end=offset + len(text),
                position=pos,
            )
            offset += len(text) + 2
            rows.append((chunk, doc, doc_hash))
    return rows, out


def _real_rows(passages: list[Passage]) -> list[tuple[Chunk, Document, str]]:
    rows = []
    for p in passages:
        h = hashlib.sha256(f"{FORMAT}:real:{p.doc.source_id}".encode()).hexdigest()
        chunk = p.chunk.model_copy(update={"chunk_id": f"{p.doc.source_id}::{h[:12]}::{p.chunk.position}"})
        rows.append((chunk, p.doc, h))
    return rows


# -- the index --------------------------------------------------------------------------------------------


def index_dir(settings: Settings, size: int) -> Path:
    return settings.data_dir / "bench" / f"index-{size}"


def index_settings(settings: Settings, size: int) -> Settings:
    """`settings` pointed at the synthetic index of `size` chunks (its Chroma directory and collection)."""
    return settings.model_copy(
        update={"chroma_path": index_dir(settings, size) / "chroma", "chroma_url": None, "collection": COLLECTION}
    )


def synthetic_index(
    settings: Settings, size: int, seed: int = 0, progress: Progress | None = None, rebuild: bool = False
) -> tuple[KnowledgeIndex, SyntheticManifest]:
    """The index of `size` chunks, built (or reused from disk when its manifest matches) as described above."""
    if size < 1:
        raise ValueError("size must be at least 1")
    passages = pool_passages(settings, seed)
    digest = pool_digest(passages)
    folder = index_dir(settings, size)
    manifest_path = folder / "manifest.json"
    index = build_index(index_settings(settings, size))
    if not rebuild and manifest_path.is_file():
        try:
            manifest = SyntheticManifest.model_validate_json(manifest_path.read_text())
            same = manifest.size == size and manifest.seed == seed and manifest.pool_digest == digest
            if same and index.count() == size:
                return index, manifest
        except ValueError as exc:
            logger.info("synthetic index manifest %s not used: %s", manifest_path, exc)
    manifest_path.unlink(missing_ok=True)
    index.rebuild()
    started = time.perf_counter()
    vectors = pool_vectors(settings, passages, index, progress)
    n_real = min(size, len(passages))
    rows = _real_rows(passages[:n_real])
    vecs = vectors[:n_real]
    check: VectorCheck | None = None
    if size > n_real:
        syn_rows, syn_vecs = _synthetic_rows(passages, vectors, size - n_real, seed, settings.chunking.max_words)
        check = _vector_check(index, syn_rows, syn_vecs, seed)
        rows += syn_rows
        vecs = np.vstack([vecs, syn_vecs])
    batch = 4096
    try:
        batch = min(batch, int(index.client.get_max_batch_size()))
    except Exception:  # an HTTP client of an older server: keep the default
        logger.debug("no max batch size from the Chroma client")
    label = f"write index-{size}"
    for i in range(0, len(rows), batch):
        index.add_embedded(rows[i : i + batch], vecs[i : i + batch], origin="synthetic")
        if progress:
            progress(label, min(i + batch, len(rows)), len(rows))
    manifest = SyntheticManifest(
        size=size,
        seed=seed,
        pool_digest=digest,
        real_chunks=n_real,
        synthetic_chunks=size - n_real,
        documents=len({r[1].source_id for r in rows}),
        build_s=round(time.perf_counter() - started, 1),
        vector_check=check,
    )
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(manifest.model_dump_json(indent=2))
    return index, manifest


def _vector_check(
    index: KnowledgeIndex, rows: list[tuple[Chunk, Document, str]], vectors: np.ndarray, seed: int
) -> VectorCheck:
    """Embed a sample of the mixed texts for real: how close are the derived vectors?"""
    picks = sorted(random.Random(seed).sample(range(len(rows)), min(VECTOR_CHECK, len(rows))))
    real = index.embedder.embed([rows[i][0].context_text for i in picks])
    cos = np.sort(np.einsum("ij,ij->i", real, vectors[picks]))
    return VectorCheck(
        sampled=len(picks),
        cosine_median=round(float(np.median(cos)), 3),
        cosine_p5=round(float(np.percentile(cos, 5)), 3),
        cosine_min=round(float(cos[0]), 3),
    )


# -- real questions ---------------------------------------------------------------------------------------


def real_questions(settings: Settings, n: int, seed: int = 0) -> list[str]:
    """`n` real customer questions: the sample help-center questions of `evals.simulate`, then doc2dial dev user
    turns (distinct, seeded sample)."""
    from evals.simulate import QUESTIONS

    sample = [q for qs in QUESTIONS.values() for q in qs]
    turns = list(dict.fromkeys(t.utterance.strip() for t in doc2dial_turns(settings.shared_data_dir)))
    random.Random(seed).shuffle(turns)
    return (sample + [t for t in turns if len(t.split()) >= 3])[:n]


def sentence_store_path(settings: Settings, size: int) -> Path:
    """The sentence vectors of the index of `size` chunks, kept with it."""
    return index_dir(settings, size) / "sentence-vectors.sqlite"


def warm_index_sentences(
    settings: Settings, size: int, index: KnowledgeIndex, progress: Progress | None = None
) -> SentenceWarm:
    """Warm the sentence vectors of the index of `size` chunks as `cxa ingest` does (once; see the module
    docstring); the figures of the first warming are kept in `sentence-vectors.json` for the reruns."""
    s = index_settings(settings, size)
    s = s.model_copy(
        update={"embedding": s.embedding.model_copy(update={"sentence_store_path": sentence_store_path(s, size)})}
    )
    label = f"warm sentence vectors, index-{size}"
    started = time.perf_counter()
    report, _ = warm_sentences(s, index, (lambda done, total: progress(label, done, total)) if progress else None)
    this_run = round(time.perf_counter() - started, 1)
    record = index_dir(settings, size) / "sentence-vectors.json"
    if report is not None and report.embedded:
        seconds = round(report.seconds, 1)
        warm = SentenceWarm(
            texts=report.texts, embedded=report.embedded, seconds=seconds, this_run_s=this_run, reused=False
        )
        record.write_text(warm.model_dump_json(indent=2))
        return warm
    if record.is_file():
        first = SentenceWarm.model_validate_json(record.read_text())
        return first.model_copy(update={"this_run_s": this_run, "reused": True})
    texts = report.texts if report is not None else 0
    return SentenceWarm(texts=texts, embedded=0, seconds=0.0, this_run_s=this_run, reused=True)
