"""Warming the sentence vectors (`assistant.turn.warming`): a real Chroma index of sample help-center articles, the
real MiniLM embedder, a store in a temp dir; and grounding and answerability then reading every text they need of
the knowledge from the store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import chromadb
import numpy as np
import pytest

from assistant.models import SearchHit
from assistant.turn.answerability import TurnEvidence, turn_features
from assistant.turn.grounding import Passages, SentenceVectors, chunk_texts
from assistant.turn.warming import BackgroundWarmer, Warming, WarmReport, is_warm, walk_lock
from knowledge.embeddings import MiniLMEmbedder, shared_embedder
from knowledge.index import KnowledgeIndex
from knowledge.loaders import SAMPLE_HELPCENTER, iter_folder
from knowledge.textvectors import TextVectorStore
from knowledge.types import Document

# articles with prose, numbered steps and lead-in lines ending in ":"
ARTICLES = ("returns-refunds/start-a-return", "billing/payment-methods", "orders/change-or-cancel-an-order")


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return shared_embedder()


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    loaded = {d.source_id: d for _, d in iter_folder(SAMPLE_HELPCENTER) if not isinstance(d, Exception)}
    picked = [loaded[s] for s in ARTICLES if s in loaded]
    assert len(picked) >= 2, sorted(loaded)[:10]
    return picked


@pytest.fixture
def index(
    chroma_client: chromadb.api.ClientAPI, embedder: MiniLMEmbedder, docs: list[Document]
) -> Iterator[KnowledgeIndex]:
    idx = KnowledgeIndex(chroma_client, embedder, collection_name=f"test-{uuid.uuid4().hex[:16]}")
    idx.ingest(docs[:-1], origin="test")
    yield idx
    idx.rebuild()


@pytest.fixture
def store(tmp_path: Path, embedder: MiniLMEmbedder) -> Iterator[TextVectorStore]:
    s = TextVectorStore(tmp_path / "sentence-vectors.sqlite", embedder.fingerprint)
    yield s
    s.close()


def warm(index: KnowledgeIndex, store: TextVectorStore, **pace: object) -> WarmReport | None:
    """A walk over the whole index, as `cxa ingest` makes it."""
    warming = Warming(store, index.embedder, **pace)  # type: ignore[arg-type]
    return warming.index(index.iter_chunks, index.fresh_revision, index.collection_name, index.count())


def test_warming_stores_every_text_of_every_chunk_once(index: KnowledgeIndex, store: TextVectorStore) -> None:
    seen: list[tuple[int, int]] = []
    report = warm(index, store, batch=16, progress=lambda d, t: seen.append((d, t)))
    chunks = list(index.iter_chunks())
    texts = list(dict.fromkeys(t for c in chunks for t in chunk_texts(c)))
    assert report is not None and report.complete and report.chunks == len(chunks)
    assert report.embedded == report.texts == len(texts) and store.missing(texts) == []
    assert seen[0] == (0, len(chunks)) and seen[-1] == (len(chunks), len(chunks))
    stored = store.get(texts[:20])
    assert np.allclose(np.stack([stored[t] for t in texts[:20]]), index.embedder.embed(texts[:20]), atol=1e-5)
    # the index did not change: the next walk (a server's start) does nothing
    assert is_warm(store, index.collection_name, index.fresh_revision())
    assert warm(index, store) is None


def test_after_a_new_document_only_its_texts_are_embedded(
    index: KnowledgeIndex, store: TextVectorStore, docs: list[Document]
) -> None:
    warm(index, store)
    index.ingest([docs[-1]], origin="test")  # a new revision
    report = warm(index, store)
    new = {t for c in index.get_document_chunks(docs[-1].source_id) for t in chunk_texts(c)}
    assert report is not None and 0 < report.embedded <= len(new)
    # and straight from a document's chunks (what a server does after an upload)
    edited = docs[-1].model_copy(update={"text": docs[-1].text + "\n\nStore pickup is free for members."})
    index.ingest([edited], origin="test")
    chunks = index.get_document_chunks(docs[-1].source_id)
    again = Warming(store, index.embedder).chunks(chunks)
    assert again.embedded >= 1 and store.missing([t for c in chunks for t in chunk_texts(c)]) == []


def test_grounding_and_answerability_read_the_knowledge_from_the_store(
    index: KnowledgeIndex, store: TextVectorStore
) -> None:
    warm(index, store)
    vectors = SentenceVectors(index.embedder, store=store)
    chunks = list(index.iter_chunks())
    hits = [SearchHit(chunk=c, score=0.8 - 0.01 * i, vector_score=0.8 - 0.01 * i) for i, c in enumerate(chunks[:10])]
    question = "How do I return an item I no longer want?"
    p = Passages(hits=hits[:4], history="", embedder=vectors, question=question)
    _ = p.vectors
    p.extractive()  # quoting: list items with their lead-in line too
    turn_features(TurnEvidence(message=question, query=question, hits=hits[:4], mode="generated", pool=hits), vectors)
    assert vectors.counts["store"] > 0
    assert vectors.counts["embedded"] == 0  # nothing of the knowledge was embedded: warming produced it all


def test_the_background_warmer_walks_once_then_warms_documents(
    index: KnowledgeIndex, store: TextVectorStore, docs: list[Document]
) -> None:
    pace = Warming(store, index.embedder, batch=4, rest=0.1)
    warmer = BackgroundWarmer(pace, index.iter_chunks, index.fresh_revision, index.collection_name)
    try:
        warmer.start()
        assert warmer.wait_idle(120)
        assert warmer.last is not None and warmer.last.complete
        assert is_warm(store, index.collection_name, index.fresh_revision())
        index.ingest([docs[-1]], origin="test")
        chunks = index.get_document_chunks(docs[-1].source_id)
        warmer.submit(chunks)
        assert warmer.wait_idle(120)
        assert store.missing([t for c in chunks for t in chunk_texts(c)]) == []
    finally:
        warmer.close()


def test_one_process_of_the_machine_walks_at_a_time(store: TextVectorStore) -> None:
    with walk_lock(store) as first:
        assert first
        other = TextVectorStore(store.path, store.fingerprint)  # another worker's view of the same file
        try:
            # flock is per open file: a second open in this process stands for another process
            with walk_lock(other) as second:
                assert not second
        finally:
            other.close()
    with walk_lock(store) as again:
        assert again
