"""The sentence vectors on disk (`knowledge.textvectors`) and `SentenceVectors` reading through them: a real SQLite
file in a temp dir, the real MiniLM embedder."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.turn.grounding import SentenceVectors
from knowledge.embeddings import MiniLMEmbedder
from knowledge.textvectors import TextVectorStore

TEXTS = [
    "Refunds are processed within 2 business days of the return arriving.",
    "PayPal refunds take 3-5 business days.",
    "Enter the gift card code at checkout.",
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    """An embedder of this module's own: the shared one remembers what other tests embedded (`recent`), which
    would count as served from memory here."""
    return MiniLMEmbedder()


def test_vectors_come_back_as_stored(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    store = TextVectorStore(tmp_path / "v.sqlite", embedder.fingerprint)
    vectors = embedder.embed(TEXTS)
    assert store.put(dict(zip(TEXTS[:2], vectors[:2], strict=True))) == 2
    assert store.missing([*TEXTS, TEXTS[0]]) == [TEXTS[2]]
    got = store.get(TEXTS)
    assert set(got) == set(TEXTS[:2])
    for text, vec in zip(TEXTS[:2], vectors[:2], strict=True):
        assert got[text].dtype == np.float32 and np.array_equal(got[text], vec)  # float32: exactly as embedded
    assert store.put({TEXTS[0]: vectors[1]}) == 0  # a stored text keeps its vector
    assert np.array_equal(store.get([TEXTS[0]])[TEXTS[0]], vectors[0])
    store.put_later({TEXTS[2]: vectors[2]})
    store.flush()
    assert store.count() == 3
    store.close()
    reopened = TextVectorStore(tmp_path / "v.sqlite", embedder.fingerprint)  # another process, later
    assert set(reopened.get(TEXTS)) == set(TEXTS)
    reopened.close()


def test_another_model_finds_none_of_the_vectors(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    path = tmp_path / "v.sqlite"
    store = TextVectorStore(path, embedder.fingerprint)
    store.put(dict(zip(TEXTS, embedder.embed(TEXTS), strict=True)))
    other = TextVectorStore(path, embedder.fingerprint.replace("max_length=256", "max_length=128"))
    assert other.get(TEXTS) == {} and other.missing(TEXTS) == TEXTS
    assert len(store.get(TEXTS)) == 3
    store.close()
    other.close()


def test_the_fingerprint_names_model_version_and_files(embedder: MiniLMEmbedder) -> None:
    fp = embedder.fingerprint
    assert fp.startswith("all-MiniLM-L6-v2-int8-onnx/1/max_length=256/") and len(fp.rsplit("/", 1)[1]) == 16
    shorter = MiniLMEmbedder(embedder.model_path, embedder.tokenizer_path, max_length=128)
    assert shorter.fingerprint != fp  # truncation changes long texts' vectors


def test_a_corrupt_file_is_ignored_and_said_once(
    tmp_path: Path, embedder: MiniLMEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "v.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="knowledge.textvectors"):
        store = TextVectorStore(path, embedder.fingerprint)
        vec = embedder.embed(TEXTS[:1])[0]
        assert store.get(TEXTS) == {} and store.missing(TEXTS) == TEXTS
        assert store.put({TEXTS[0]: vec}) == 0
        store.put_later({TEXTS[0]: vec})
        store.set_marker("warmed:x", "1")
        assert store.marker("warmed:x") is None and store.count() == 0
        assert not store.usable and not store.writable
    assert len([r for r in caplog.records if r.name == "knowledge.textvectors"]) == 1
    # and a turn still gets its vectors: embedded, as without a store
    vectors = SentenceVectors(embedder, store=store)
    out = vectors.embed(TEXTS, persist=True)
    assert out.shape == (3, 384) and vectors.counts["embedded"] == 3
    store.close()


def test_a_store_that_cannot_be_created_is_ignored(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the store's folder should be")
    store = TextVectorStore(blocker / "v.sqlite", embedder.fingerprint)
    assert not store.usable and store.get(TEXTS) == {}
    store.close()


def test_sentence_vectors_read_knowledge_from_the_store_and_write_back(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    store = TextVectorStore(tmp_path / "v.sqlite", embedder.fingerprint)
    store.put(dict(zip(TEXTS[:2], embedder.embed(TEXTS[:2]), strict=True)))
    vectors = SentenceVectors(embedder, store=store)
    out = vectors.embed(TEXTS, persist=True)
    assert dict(vectors.counts) == {"memory": 0, "store": 2, "embedded": 1}
    assert np.allclose(out, embedder.embed(TEXTS), atol=1e-5)
    store.flush()  # written back by the writer thread, off the caller's path
    assert store.missing(TEXTS) == []
    vectors.embed(TEXTS, persist=True)
    assert vectors.counts["memory"] == 3  # then from memory
    private = "My order LH-482913 has not arrived yet."
    vectors.embed([private])  # a customer's text: memory only, never on disk
    store.flush()
    assert store.missing([private]) == [private] and vectors.counts["embedded (in memory only)"] == 1
    store.close()


def test_reading_thirty_vectors_takes_about_a_millisecond(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    store = TextVectorStore(tmp_path / "v.sqlite", embedder.fingerprint)
    rng = np.random.default_rng(0)
    texts = [f"sentence number {i} of the help center" for i in range(5000)]
    store.put({t: rng.standard_normal(384).astype(np.float32) for t in texts})
    times = []
    for i in range(200):
        picked = texts[i * 20 : i * 20 + 30]
        t = time.perf_counter()
        assert len(store.get(picked)) == 30
        times.append(time.perf_counter() - t)
    assert sorted(times)[100] < 0.005  # ~0.5 ms measured on 2 busy cores; generous for a loaded CI machine
    store.close()
