"""The Chroma-backed help-center index, and the offline MiniLM embedder it is built on.

Real embedder, real Chroma: `open_client(None)` is an in-memory EphemeralClient whose state is
shared within the process, so every test gets its own collection name.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import chromadb
import numpy as np
import pytest

from knowledge.chunking import chunk_document
from knowledge.embeddings import (
    DIMENSIONS,
    MODEL_NAME,
    MODEL_VERSION,
    MiniLMEmbedder,
    MiniLMEmbeddingFunction,
    length_batches,
)
from knowledge.errors import IndexMismatchError, IndexUnavailableError
from knowledge.index import KnowledgeIndex, open_client
from knowledge.types import Document
from tests.backends import chroma_server, free_port
from tests.conftest import SERVERS, server_backends

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def unique_name() -> str:
    return f"test-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def index(chroma_client: chromadb.api.ClientAPI, embedder: MiniLMEmbedder) -> Iterator[KnowledgeIndex]:
    idx = KnowledgeIndex(chroma_client, embedder, collection_name=unique_name())
    yield idx
    idx.rebuild()  # drop the collection: the ephemeral client outlives the test


GIFT = Document(
    source_id="billing/gift-cards",
    title="Gift cards",
    url="https://help.example/billing/gift-cards",
    text="# Gift cards\n\nEnter the 16-digit gift card code at checkout to redeem it. "
    "Check your gift card balance in your account.",
    metadata={"category": "billing"},
)
PASSWORD = Document(
    source_id="account/reset-password",
    title="Reset your password",
    text="Forgotten your password? Choose 'Forgot password' on the sign-in page and we email you a reset link. "
    "The link expires after one hour.",
)
TRACKING = Document(
    source_id="orders/track-your-order",
    title="Track your order",
    text="## Tracking link\n\nWhen your parcel is dispatched we email a tracking link from the carrier. "
    "Tracking can take up to 24 hours to show the first scan.",
)
DOCS = [GIFT, PASSWORD, TRACKING]


def texts_of(index: KnowledgeIndex, source_id: str) -> list[str]:
    return [c.text for c in index.get_document_chunks(source_id)]


# -- embeddings ---------------------------------------------------------------------------------------


def test_embeddings_unit_length_384_float32(embedder: MiniLMEmbedder) -> None:
    vecs = embedder.embed(["How do I return an item?", "", "   ", "x" * 5000])
    assert vecs.shape == (4, DIMENSIONS) == (4, 384)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(vecs).all()


def test_embeddings_similar_sentences_score_higher(embedder: MiniLMEmbedder) -> None:
    a, b, c = embedder.embed(
        [
            "How can I get my money back for a return?",
            "When will I receive my refund after returning an item?",
            "The volcano erupted and covered the village in ash.",
        ]
    )
    similar, unrelated = float(a @ b), float(a @ c)
    assert similar > unrelated + 0.2
    assert 0.0 < similar <= 1.0


def test_embeddings_keep_input_order_across_very_different_lengths(embedder: MiniLMEmbedder) -> None:
    long_text = " ".join(["Our return policy lets you send most items back within thirty days."] * 30)
    texts = [long_text, "Hi", "Gift card balance", long_text[:300], "Reset password", "Delivery to Ireland"]
    small_batches = MiniLMEmbedder(batch_size=2)  # several length-sorted batches must still come back in order
    batch = small_batches.embed(texts)
    one_by_one = np.stack([embedder.embed_one(t) for t in texts])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-4)
    np.testing.assert_allclose(embedder.embed(texts), one_by_one, atol=1e-4)
    assert not np.allclose(batch[1], batch[2])


def test_a_token_budget_changes_the_batches_not_the_vectors(embedder: MiniLMEmbedder) -> None:
    long_text = " ".join(["Refunds reach your card within five to ten working days."] * 12)
    texts = [long_text, "Hi", long_text[:200], "Gift card balance", long_text[:400], "Reset password"]
    budget = MiniLMEmbedder(batch_tokens=64)  # long texts alone, short ones together
    np.testing.assert_allclose(budget.embed(texts), embedder.embed(texts), atol=1e-4)


def test_length_batches_sort_by_length_and_keep_within_both_limits() -> None:
    lengths = [200, 5, 90, 7, 200, 6, 40]
    batches = length_batches(lengths, batch_size=3, batch_tokens=200)
    assert sorted(int(i) for b in batches for i in b) == list(range(len(lengths)))  # every input once
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 200
    assert [lengths[i] for i in np.concatenate(batches)] == sorted(lengths)
    assert [len(b) for b in length_batches(lengths, batch_size=4)] == [4, 3]  # no budget: batch_size alone


def test_embeddings_empty_list(embedder: MiniLMEmbedder) -> None:
    out = embedder.embed([])
    assert out.shape == (0, DIMENSIONS)


def test_embedding_function_for_chroma(embedder: MiniLMEmbedder) -> None:
    fn = MiniLMEmbeddingFunction(embedder)
    out = fn(["one", "two"])
    assert len(out) == 2
    np.testing.assert_allclose(np.asarray(out[0]), embedder.embed_one("one"), atol=1e-5)
    assert fn.get_config()["model"] == MODEL_NAME
    assert embedder.count_tokens("reset your password") >= 3


# -- ingest -------------------------------------------------------------------------------------------


def test_ingest_adds_documents_with_their_chunks(index: KnowledgeIndex) -> None:
    progress: list[tuple[int, int]] = []
    report = index.ingest(DOCS, origin="folder:a", progress=lambda done, total: progress.append((done, total)))
    expected_chunks = sum(len(chunk_document(d, index.max_words, index.overlap_words)) for d in DOCS)
    assert sorted(report.added) == sorted(d.source_id for d in DOCS)
    assert report.updated == report.unchanged == report.removed == []
    assert report.chunks_embedded == expected_chunks == index.count()
    assert progress[0] == (0, expected_chunks) and progress[-1] == (expected_chunks, expected_chunks)
    assert {"hashing", "chunking", "embedding", "writing"} <= set(report.stage_seconds)
    assert sum(report.stage_seconds.values()) <= report.seconds

    manifest = index.manifest()
    assert set(manifest) == {d.source_id for d in DOCS}
    assert manifest[GIFT.source_id] == (index.document_hash(GIFT), "folder:a")

    stored = index.get_document_chunks(GIFT.source_id)
    expected = chunk_document(GIFT, index.max_words, index.overlap_words)
    assert [c.text for c in stored] == [c.text for c in expected]
    assert [(c.start, c.end, c.headings) for c in stored] == [(c.start, c.end, c.headings) for c in expected]
    assert stored[0].title == "Gift cards" and stored[0].url == GIFT.url
    assert stored[0].chunk_id.startswith(f"{GIFT.source_id}::")
    tracking = index.get_document_chunks(TRACKING.source_id)
    assert tracking[0].headings == ["Tracking link"]
    assert TRACKING.text[tracking[0].start : tracking[0].end] == tracking[0].text


def test_stored_vectors_are_the_context_text_embeddings(index: KnowledgeIndex, embedder: MiniLMEmbedder) -> None:
    index.ingest([TRACKING], origin="t")
    chunk = index.get_document_chunks(TRACKING.source_id)[0]
    vecs = index.embeddings([chunk.chunk_id])
    np.testing.assert_allclose(vecs[chunk.chunk_id], embedder.embed_one(chunk.context_text), atol=1e-5)


def test_reingest_unchanged_embeds_nothing(index: KnowledgeIndex) -> None:
    index.ingest(DOCS, origin="folder:a")
    count, revision = index.count(), index.fresh_revision()
    report = index.ingest([d.model_copy(deep=True) for d in DOCS], origin="folder:a")
    assert report.chunks_embedded == 0
    assert sorted(report.unchanged) == sorted(d.source_id for d in DOCS)
    assert report.added == report.updated == report.removed == []
    assert index.count() == count
    assert index.fresh_revision() == revision  # nothing written, caches need not refresh


def test_changed_document_replaces_old_chunks(index: KnowledgeIndex) -> None:
    index.ingest(DOCS, origin="folder:a")
    old_ids = {c.chunk_id for c in index.get_document_chunks(GIFT.source_id)}
    revision = index.fresh_revision()
    new_text = "# Gift cards\n\nGift cards can no longer be bought online; buy them in our shops instead."
    changed = GIFT.model_copy(update={"text": new_text})

    report = index.ingest([changed, PASSWORD, TRACKING], origin="folder:a")
    assert report.updated == [GIFT.source_id]
    assert sorted(report.unchanged) == sorted([PASSWORD.source_id, TRACKING.source_id])
    assert report.chunks_embedded == len(chunk_document(changed))

    chunks = index.get_document_chunks(GIFT.source_id)
    assert [c.text for c in chunks] == ["Gift cards can no longer be bought online; buy them in our shops instead."]
    assert not old_ids & {c.chunk_id for c in chunks}
    assert index.embeddings(sorted(old_ids)) == {}  # old vectors are gone too
    hits = index.search("redeem the 16-digit gift card code at checkout", k=10)
    gift_texts = [h.chunk.text for h in hits if h.chunk.source_id == GIFT.source_id]
    assert gift_texts == [chunks[0].text]
    assert "16-digit" not in " ".join(h.chunk.text for h in hits)
    assert index.count() == sum(len(chunk_document(d)) for d in (changed, PASSWORD, TRACKING))
    assert index.fresh_revision() != revision


def test_title_or_metadata_change_counts_as_update(index: KnowledgeIndex) -> None:
    index.ingest([GIFT], origin="o")
    assert index.upsert_document(GIFT.model_copy(update={"metadata": {"category": "payments"}}), "o") == "updated"
    assert index.upsert_document(GIFT.model_copy(update={"metadata": {"category": "payments"}}), "o") == "unchanged"
    assert index.upsert_document(GIFT.model_copy(update={"title": "Gift vouchers"}), "o") == "updated"
    assert {c.title for c in index.get_document_chunks(GIFT.source_id)} == {"Gift vouchers"}


def test_prune_removes_vanished_documents_of_same_origin_only(index: KnowledgeIndex) -> None:
    index.ingest([GIFT, PASSWORD], origin="folder:a")
    index.ingest([TRACKING], origin="api")

    kept = index.ingest([GIFT], origin="folder:a")  # without prune nothing is removed
    assert kept.removed == [] and texts_of(index, PASSWORD.source_id)

    report = index.ingest([GIFT], origin="folder:a", prune=True)
    assert report.removed == [PASSWORD.source_id]
    assert report.unchanged == [GIFT.source_id]
    assert texts_of(index, PASSWORD.source_id) == []
    assert texts_of(index, GIFT.source_id)
    assert texts_of(index, TRACKING.source_id), "a document of another origin must survive a prune"
    assert set(index.manifest()) == {GIFT.source_id, TRACKING.source_id}
    assert set(index.manifest(origin="api")) == {TRACKING.source_id}


def test_upsert_document_returns_added_updated_unchanged(index: KnowledgeIndex) -> None:
    assert index.upsert_document(PASSWORD) == "added"
    assert index.upsert_document(PASSWORD) == "unchanged"
    edited = PASSWORD.model_copy(update={"text": PASSWORD.text + " You can request a new one at any time."})
    assert index.upsert_document(edited) == "updated"
    assert "new one at any time" in " ".join(texts_of(index, PASSWORD.source_id))
    assert index.manifest()[PASSWORD.source_id] == (index.document_hash(edited), "api")


def test_duplicate_source_id_in_one_ingest_is_refused(index: KnowledgeIndex) -> None:
    with pytest.raises(ValueError, match="duplicate source_id"):
        index.ingest([GIFT, GIFT.model_copy()], origin="o")


def test_remove(index: KnowledgeIndex) -> None:
    index.ingest(DOCS, origin="o")
    n_gift = len(index.get_document_chunks(GIFT.source_id))
    before, revision = index.count(), index.fresh_revision()
    assert index.remove([GIFT.source_id, "no/such-doc"]) == n_gift
    assert index.count() == before - n_gift
    assert texts_of(index, GIFT.source_id) == []
    assert GIFT.source_id not in index.manifest()
    assert index.fresh_revision() != revision
    assert index.remove(["no/such-doc"]) == 0


# -- search -------------------------------------------------------------------------------------------


def test_search_scores_sorted_and_right_document_first(index: KnowledgeIndex) -> None:
    assert index.search("anything") == []  # empty index
    index.ingest(DOCS, origin="o")
    hits = index.search("I forgot my password and cannot sign in", k=5)
    assert len(hits) == index.count()  # k larger than the collection is fine
    assert hits[0].chunk.source_id == PASSWORD.source_id
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(h.vector_score == h.score and h.lexical_score is None for h in hits)
    assert hits[0].score > hits[-1].score + 0.1

    top = index.search("where is my parcel? tracking", k=1)
    assert len(top) == 1 and top[0].chunk.source_id == TRACKING.source_id


def test_search_score_is_cosine_similarity(index: KnowledgeIndex, embedder: MiniLMEmbedder) -> None:
    index.ingest([GIFT], origin="o")
    query = "gift card balance"
    hit = index.search(query, k=1)[0]
    expected = float(embedder.embed_one(query) @ embedder.embed_one(hit.chunk.context_text))
    assert hit.score == pytest.approx(expected, abs=1e-4)


# -- persistence and failures -------------------------------------------------------------------------


@pytest.mark.skipif(SERVERS, reason="servers mode: about PersistentClient's directory (servers: the next test)")
def test_persistent_index_is_seen_by_a_new_process(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    where = tmp_path / "chroma"
    idx = KnowledgeIndex(open_client(where), embedder, collection_name="helpcenter")
    idx.ingest(DOCS, origin="o")
    count = idx.count()
    assert (where / "chroma.sqlite3").is_file()

    # a new client in this process on the same directory
    again = KnowledgeIndex(open_client(where), embedder, collection_name="helpcenter")
    assert again.count() == count
    assert again.ingest(DOCS, origin="o").chunks_embedded == 0

    # and a fresh process, which shares no client cache with this one
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from knowledge.embeddings import MiniLMEmbedder
        from knowledge.index import KnowledgeIndex, open_client
        idx = KnowledgeIndex(open_client(Path({str(where)!r})), MiniLMEmbedder(), collection_name="helpcenter")
        print(idx.count(), idx.search("forgot password reset link", k=1)[0].chunk.source_id)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(count), PASSWORD.source_id]


@pytest.mark.parametrize("with_our_function", [False, True], ids=["chroma-default-fn", "our-fn-other-metadata"])
def test_index_built_with_other_model_raises_mismatch_until_rebuilt(
    chroma_client: chromadb.api.ClientAPI, embedder: MiniLMEmbedder, with_our_function: bool
) -> None:
    name = unique_name()
    extra = {"embedding_function": MiniLMEmbeddingFunction(embedder)} if with_our_function else {}
    foreign = chroma_client.create_collection(
        name, metadata={"embedding_model": "other-model", "embedding_version": "7", "hnsw:space": "cosine"}, **extra
    )
    foreign.add(ids=["x"], embeddings=[[0.1] * DIMENSIONS], documents=["old"], metadatas=[{"source_id": "x"}])

    idx = KnowledgeIndex(chroma_client, embedder, collection_name=name)
    for use in (idx.count, lambda: idx.search("refund"), lambda: idx.ingest([GIFT], origin="o")):
        with pytest.raises(IndexMismatchError, match="--rebuild"):
            use()
    with pytest.raises(IndexMismatchError) as err:
        idx.count()
    # names what the index was built with: our function with another model, or another function
    assert ("other-model" in str(err.value)) if with_our_function else ("persisted: default" in str(err.value))
    assert MODEL_NAME in str(err.value)

    idx.rebuild()
    assert idx.count() == 0
    meta = chroma_client.get_collection(name, embedding_function=MiniLMEmbeddingFunction(embedder)).metadata
    assert meta["embedding_model"] == MODEL_NAME and meta["embedding_version"] == MODEL_VERSION
    assert idx.ingest([GIFT], origin="o").added == [GIFT.source_id]
    assert idx.search("gift card balance", k=1)[0].chunk.source_id == GIFT.source_id
    idx.rebuild()


def test_rebuild_of_missing_collection_is_harmless(
    chroma_client: chromadb.api.ClientAPI, embedder: MiniLMEmbedder
) -> None:
    idx = KnowledgeIndex(chroma_client, embedder, collection_name=unique_name())
    idx.rebuild()
    assert idx.count() == 0
    idx.rebuild()


@pytest.mark.skipif(SERVERS, reason="servers mode: about PersistentClient's directory (a server down: below)")
def test_corrupt_directory_is_unavailable_when_opened(tmp_path: Path) -> None:
    where = tmp_path / "chroma"
    where.mkdir()
    (where / "chroma.sqlite3").write_bytes(b"this is not a sqlite database\n" * 200)
    with pytest.raises(IndexUnavailableError) as err:
        open_client(where)  # raised here, not later on first use
    msg = str(err.value)
    assert str(where) in msg
    assert "cannot be opened" in msg
    assert "cxa ingest" in msg and "move it away" in msg


def test_a_collection_rebuilt_by_another_process_is_opened_again(
    chroma_client: chromadb.api.ClientAPI, embedder: MiniLMEmbedder
) -> None:
    """Another worker (or `cxa ingest --rebuild`) drops and re-creates the collection this one has open: one
    call is `IndexUnavailableError` (not chromadb's NotFoundError), the next one reads the new collection."""
    name = unique_name()
    mine, other = (KnowledgeIndex(chroma_client, embedder, collection_name=name) for _ in range(2))
    mine.ingest(DOCS, origin="o")
    other.rebuild()
    other.ingest([GIFT], origin="o")
    with pytest.raises(IndexUnavailableError, match="removed while in use"):
        mine.count()
    assert mine.count() == other.count() and mine.search("gift card balance", k=1)[0].chunk.source_id == GIFT.source_id
    other.rebuild()


# -- servers mode: the same through a Chroma server ------------------------------------------------------

SERVERS_ONLY = pytest.mark.skipif(not SERVERS, reason="servers mode only (CXA_TEST_BACKENDS=servers)")


@SERVERS_ONLY
def test_an_index_on_a_chroma_server_is_seen_by_a_new_process(embedder: MiniLMEmbedder) -> None:
    """What one process writes through the server, another reads; and the revision it bumps is what the other
    processes' caches (the retriever's keyword index, the topic model) watch for."""
    url, name = server_backends().chroma_url, unique_name()
    idx = KnowledgeIndex(open_client(url=url), embedder, collection_name=name)
    idx.ingest([GIFT, PASSWORD], origin="o")
    before, count = idx.fresh_revision(), idx.count()
    code = textwrap.dedent(
        f"""
        from knowledge.embeddings import MiniLMEmbedder
        from knowledge.index import KnowledgeIndex, open_client
        from knowledge.types import Document
        idx = KnowledgeIndex(open_client(url={url!r}), MiniLMEmbedder(), collection_name={name!r})
        print(idx.count(), idx.search("forgot password reset link", k=1)[0].chunk.source_id)
        idx.ingest([Document(source_id={TRACKING.source_id!r}, title="Track", text={TRACKING.text!r})], origin="o")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(count), PASSWORD.source_id]
    assert idx.fresh_revision() != before  # written by the other process
    assert idx.search("where is my parcel? tracking", k=1)[0].chunk.source_id == TRACKING.source_id
    idx.rebuild()


@SERVERS_ONLY
def test_a_chroma_server_that_is_down_is_unavailable(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    port = free_port()
    with pytest.raises(IndexUnavailableError) as err:
        open_client(url=f"http://127.0.0.1:{port}")  # raised here, not later on first use
    msg = str(err.value)
    assert f"http://127.0.0.1:{port}" in msg and "cannot be reached" in msg and "CXA_CHROMA_URL" in msg
    assert "move it away" not in msg  # that advice is for a damaged directory

    with chroma_server(tmp_path / "chroma", port=port) as url:
        idx = KnowledgeIndex(open_client(url=url), embedder, collection_name=unique_name())
        idx.ingest(DOCS, origin="o")
    # the server is gone: every use is IndexUnavailableError, never httpx's or chromadb's own errors
    uses = [
        idx.count,
        idx.fresh_revision,
        lambda: idx.search("refund"),
        lambda: idx.ingest([GIFT.model_copy(update={"text": GIFT.text + " New."})], origin="o"),
        lambda: list(idx.iter_chunks()),
        lambda: idx.get_document_chunks(GIFT.source_id),
        lambda: idx.remove([GIFT.source_id]),
    ]
    for use in uses:
        with pytest.raises(IndexUnavailableError):
            use()


# -- precomputed vectors, ids-only search, stored vectors ---------------------------------------------


def test_chunks_written_with_their_vectors_are_found_like_ingested_ones(
    index: KnowledgeIndex, embedder: MiniLMEmbedder
) -> None:
    rows = []
    for doc in DOCS:
        for c in chunk_document(doc, index.max_words, index.overlap_words):
            c.chunk_id = f"{doc.source_id}::precomputed::{c.position}"
            rows.append((c, doc, "hash-" + doc.source_id))
    vectors = embedder.embed([c.context_text for c, _, _ in rows])
    revision = index.fresh_revision()
    index.add_embedded(rows, vectors, origin="bench")
    assert index.fresh_revision() != revision
    assert index.count() == len(rows)
    assert {c.chunk_id for c in index.iter_chunks()} == {c.chunk_id for c, _, _ in rows}
    assert index.manifest()[GIFT.source_id] == ("hash-" + GIFT.source_id, "bench")
    hits = index.search("How do I redeem my gift card?", k=2)
    assert hits[0].chunk.source_id == GIFT.source_id
    assert hits[0].chunk.url == GIFT.url
    with pytest.raises(ValueError):
        index.add_embedded(rows, vectors[:1], origin="bench")


def test_nearest_is_search_without_the_chunks(index: KnowledgeIndex, embedder: MiniLMEmbedder) -> None:
    index.ingest(DOCS, origin="test")
    vec = embedder.embed_one("parcel tracking link")
    hits = index.search("parcel tracking link", k=3, vector=vec)
    near = index.nearest(vec, k=3)
    assert [cid for cid, _ in near] == [h.chunk.chunk_id for h in hits]
    assert [s for _, s in near] == pytest.approx([h.score for h in hits])
    got = index.chunks([cid for cid, _ in near] + ["no-such-chunk"])
    assert set(got) == {cid for cid, _ in near}
    assert all(got[h.chunk.chunk_id] == h.chunk for h in hits)
    assert index.nearest(vec, k=2, exclude_sources=[TRACKING.source_id])[0][0].split("::")[0] != TRACKING.source_id


def test_stored_vectors_are_read_once_and_are_read_only(index: KnowledgeIndex) -> None:
    index.ingest(DOCS, origin="test")
    ids = [c.chunk_id for c in index.iter_chunks()]
    first = index.embeddings(ids + ["unknown"])
    assert set(first) == set(ids)
    again = index.embeddings(ids)
    assert all(again[i] is first[i] for i in ids)  # from memory
    with pytest.raises(ValueError):
        first[ids[0]][0] = 1.0


def test_embed_one_remembers_recent_texts(embedder: MiniLMEmbedder) -> None:
    text = f"a sentence seen twice {uuid.uuid4().hex}"
    a = embedder.embed_one(text)
    assert embedder.embed_one(text) is a
    assert np.allclose(a, embedder.embed([text])[0], atol=1e-6)
    with pytest.raises(ValueError):
        a[0] = 0.0  # shared through the cache: nobody may change it
    embedder.clear_cache()
    assert embedder.embed_one(text) is not a
