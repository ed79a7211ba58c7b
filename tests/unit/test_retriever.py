"""Hybrid retrieval: dense vectors from the real index fused with an in-memory BM25 keyword ranking."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import chromadb
import numpy as np
import pytest

from knowledge.embeddings import MiniLMEmbedder
from knowledge.index import KnowledgeIndex
from knowledge.retriever import BM25, Retriever, tokenize
from knowledge.types import Chunk, Document

# A tiny corpus about renewing travel documents. The query below is *about* renewal, so the vector
# search prefers the renewal articles; only the processing-centre article contains the form number.
FORM_DOC = "office/processing-center"
FORM_QUERY = "Using the DS-82 to renew an adult's expiring passport"
CORPUS = [
    Document(
        source_id="travel-docs/renewal-by-post",
        title="Renewal of an adult travel document by post",
        text="Adults can get a renewal by post when the old book is undamaged. "
        "Send it with a recent photo and the fee.",
    ),
    Document(
        source_id="travel-docs/renewal-online",
        title="Online renewal",
        text="Most adults can complete the renewal online. Upload a digital photo and pay by card.",
    ),
    Document(
        source_id="travel-docs/first",
        title="Applying for the first time",
        text="Apply in person at an acceptance facility with proof of citizenship and ID.",
    ),
    Document(
        source_id="travel-docs/fees",
        title="Fees",
        text="The fee for an adult book is 130 dollars. Expedited service costs extra.",
    ),
    Document(
        source_id="travel-docs/photos",
        title="Photo requirements",
        text="Photos must be 2 by 2 inches, in colour, taken in the last six months.",
    ),
    Document(
        source_id=FORM_DOC,
        title="Processing center addresses",
        text="Envelopes go to the National Processing Center in Philadelphia. Use a trackable delivery service. "
        "Write DS-82 on the outside of the envelope.",
    ),
    Document(
        source_id="travel/visa",
        title="Visas",
        text="Some countries require a visa before you travel. Check the embassy website.",
    ),
    Document(
        source_id="travel-docs/lost",
        title="Lost or stolen books",
        text="Report a lost or stolen book immediately and apply for a replacement.",
    ),
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def corpus_index(chroma_client: chromadb.api.ClientAPI, embedder: MiniLMEmbedder) -> Iterator[KnowledgeIndex]:
    """Read-only shared index of CORPUS (tests that write make their own)."""
    idx = KnowledgeIndex(chroma_client, embedder, collection_name=f"retriever-{uuid.uuid4().hex[:16]}")
    idx.ingest(CORPUS, origin="test")
    yield idx
    idx.rebuild()


@pytest.fixture
def fresh_index(chroma_client: chromadb.api.ClientAPI, embedder: MiniLMEmbedder) -> Iterator[KnowledgeIndex]:
    idx = KnowledgeIndex(chroma_client, embedder, collection_name=f"retriever-{uuid.uuid4().hex[:16]}")
    yield idx
    idx.rebuild()


def chunk(cid: str, text: str, title: str = "Help") -> Chunk:
    return Chunk(chunk_id=cid, source_id=cid, title=title, text=text, start=0, end=len(text), position=0)


def ids(hits: list) -> list[str]:
    return [h.chunk.source_id for h in hits]


# -- tokenizer and BM25 -------------------------------------------------------------------------------


def test_tokenize_lowercases_drops_stopwords_and_stems_lightly() -> None:
    assert tokenize("Where is MY parcel? Tracking the Parcels") == ["parcel", "track", "parcel"]
    assert tokenize("Deliveries and cities") == ["delivery", "city"]
    assert tokenize("Form DS-82, class pass") == ["form", "ds", "82", "class", "pass"]
    assert tokenize("the and of to") == []


def test_bm25_ranks_exact_term_match_first() -> None:
    chunks = [
        chunk("a", "Renew your passport online with a digital photo."),
        chunk("b", "Send the renewal by post with form DS-82 and your old passport."),
        chunk("c", "Passport photos must be recent. Passport fees vary. Passport passport."),
        chunk("d", "Visas are issued by embassies."),
    ]
    bm25 = BM25(chunks)
    top = bm25.top("DS-82", k=4)
    assert [chunks[i].chunk_id for i, _ in top] == ["b"]  # only chunks that contain a query term
    ranked = bm25.top("passport form", k=4)
    assert ranked[0][0] == 1  # the rare term 'form' beats repeats of the common 'passport'
    assert {chunks[i].chunk_id for i, _ in ranked} == {"a", "b", "c"}
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert bm25.top("volcano", k=3) == []
    assert BM25([]).top("anything", k=3) == []


def test_bm25_uses_title_and_headings() -> None:
    c = Chunk(
        chunk_id="x",
        source_id="x",
        title="Gift cards",
        headings=["Balance"],
        text="See below.",
        start=0,
        end=10,
        position=0,
    )
    bm25 = BM25([c, chunk("y", "Unrelated text about delivery.")])
    assert [i for i, _ in bm25.top("gift balance", k=2)] == [0]


# -- Retriever ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", [FORM_QUERY, "How much does it cost?", "my book was stolen"])
def test_lexical_weight_zero_equals_vector_ranking(corpus_index: KnowledgeIndex, query: str) -> None:
    dense = corpus_index.search(query, k=4)
    hits = Retriever(corpus_index, lexical_weight=0.0).search(query, k=4)
    assert [h.chunk.chunk_id for h in hits] == [h.chunk.chunk_id for h in dense]
    assert [h.score for h in hits] == pytest.approx([h.score for h in dense], abs=1e-6)
    assert all(h.lexical_score is None for h in hits)


def test_hybrid_finds_rare_exact_token_that_vectors_rank_lower(corpus_index: KnowledgeIndex) -> None:
    dense_rank = ids(corpus_index.search(FORM_QUERY, k=len(CORPUS))).index(FORM_DOC)
    assert dense_rank >= 2, "premise: the vector search alone does not put the form article on top"

    hits = Retriever(corpus_index, lexical_weight=0.3).search(FORM_QUERY, k=3)
    assert ids(hits)[0] == FORM_DOC
    assert hits[0].lexical_score == pytest.approx(1.0)
    # the fused order decides the rank, the reported score is still the cosine similarity
    assert hits[0].score == pytest.approx(hits[0].vector_score)
    assert hits[0].score < max(h.score for h in hits[1:])


def test_hybrid_keeps_the_obvious_vector_answer(corpus_index: KnowledgeIndex) -> None:
    hits = Retriever(corpus_index).search("What size do the photos have to be?", k=3)
    assert ids(hits)[0] == "travel-docs/photos"
    assert len(hits) == 3


def test_keyword_only_find_scores_are_cosine_similarities(
    corpus_index: KnowledgeIndex, embedder: MiniLMEmbedder
) -> None:
    dense_top2 = ids(corpus_index.search(FORM_QUERY, k=2))
    assert FORM_DOC not in dense_top2  # so with 2 dense candidates it can only come from BM25

    hits = Retriever(corpus_index, candidates=2, lexical_weight=0.9).search(FORM_QUERY, k=2)
    found = {h.chunk.source_id: h for h in hits}
    assert FORM_DOC in found
    hit = found[FORM_DOC]
    assert hit.lexical_score == pytest.approx(1.0)
    expected = float(np.dot(embedder.embed_one(FORM_QUERY), embedder.embed_one(hit.chunk.context_text)))
    assert 0.0 < hit.score <= 1.0
    assert hit.score == pytest.approx(expected, abs=1e-4)
    assert hit.vector_score == hit.score
    full = {h.chunk.source_id: h.score for h in corpus_index.search(FORM_QUERY, k=len(CORPUS))}
    assert hit.score == pytest.approx(full[FORM_DOC], abs=1e-4)  # same number the vector search reports
    assert all(0.0 <= h.score <= 1.0 for h in hits)


def test_scores_in_range_and_k_respected(corpus_index: KnowledgeIndex) -> None:
    r = Retriever(corpus_index, lexical_weight=0.5)
    for query in (FORM_QUERY, "visa embassy", "fee dollars", "zzzz qqqq"):
        hits = r.search(query, k=4)
        assert len(hits) == 4
        assert len({h.chunk.chunk_id for h in hits}) == 4
        assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert r.search("   ", k=4) == []


def test_empty_index_returns_nothing(fresh_index: KnowledgeIndex) -> None:
    assert Retriever(fresh_index).search("anything at all", k=3) == []


def test_new_chunks_reach_the_keyword_index_after_invalidate(fresh_index: KnowledgeIndex) -> None:
    fresh_index.ingest(CORPUS[:3], origin="test")
    retriever = Retriever(fresh_index, refresh_s=3600.0)  # no time-based refresh during the test
    query = "Quokkaform QX-7734"
    before = retriever.search(query, k=4)  # builds the keyword index of the first revision
    assert all(h.lexical_score is None for h in before)

    new = Document(source_id="forms/qx", title="Rare forms", text="The Quokkaform QX-7734 is filed with the renewal.")
    revision = fresh_index.fresh_revision()
    assert fresh_index.ingest([new], origin="test").added == ["forms/qx"]
    assert fresh_index.fresh_revision() != revision

    stale = {h.chunk.source_id: h for h in retriever.search(query, k=4)}
    assert "forms/qx" in stale  # the vector search sees the new chunk at once ...
    assert stale["forms/qx"].lexical_score is None  # ... the cached keyword index does not (yet)

    retriever.invalidate()
    hits = retriever.search(query, k=4)
    assert hits[0].chunk.source_id == "forms/qx"
    assert hits[0].lexical_score == pytest.approx(1.0)

    # removals are seen the same way
    fresh_index.remove(["forms/qx"])
    retriever.invalidate()
    assert "forms/qx" not in ids(retriever.search(query, k=4))


def test_keyword_index_refreshes_on_its_own_when_refresh_s_elapsed(fresh_index: KnowledgeIndex) -> None:
    fresh_index.ingest(CORPUS[:2], origin="test")
    retriever = Retriever(fresh_index, refresh_s=0.0)  # check the revision on every search
    retriever.search("renewal", k=2)
    fresh_index.ingest([Document(source_id="forms/zz", title="Z", text="Form ZQ-991 for zebras.")], origin="test")
    hit = {h.chunk.source_id: h for h in retriever.search("ZQ-991", k=3)}["forms/zz"]
    assert hit.lexical_score == pytest.approx(1.0)


def test_a_big_keyword_index_is_rebuilt_in_the_background(fresh_index: KnowledgeIndex) -> None:
    """Above `sync_rebuild_below` chunks a changed index is re-read in a thread: searches meanwhile use the old
    keyword index (the vector search sees the change at once), then the new one."""
    import time

    fresh_index.ingest(CORPUS[:3], origin="test")
    retriever = Retriever(fresh_index, refresh_s=3600.0, sync_rebuild_below=0)
    old = retriever.warm()
    assert old is not None
    fresh_index.ingest(
        [Document(source_id="forms/qx", title="Rare forms", text="The Quokkaform QX-7734 is filed with it.")],
        origin="test",
    )
    retriever.invalidate()
    first = {h.chunk.source_id: h for h in retriever.search("Quokkaform QX-7734", k=4)}
    assert "forms/qx" in first  # dense
    deadline = time.monotonic() + 30
    while retriever.warm() is old:  # the rebuild finishes in the background (no timing is asserted)
        assert time.monotonic() < deadline, "the background rebuild never finished"
        retriever.invalidate()
        time.sleep(0.05)
    hits = retriever.search("Quokkaform QX-7734", k=4)
    assert hits[0].chunk.source_id == "forms/qx" and hits[0].lexical_score == pytest.approx(1.0)


def test_hits_carry_the_same_chunks_as_the_vector_search(corpus_index: KnowledgeIndex) -> None:
    """The retriever takes the chunks of its vector hits from its keyword index: they are the index's."""
    r = Retriever(corpus_index, lexical_weight=0.3)
    for query in (FORM_QUERY, "visa embassy"):
        by_id = {h.chunk.chunk_id: h for h in corpus_index.search(query, k=len(CORPUS))}
        for h in r.search(query, k=4):
            assert h.chunk == by_id[h.chunk.chunk_id].chunk
            assert h.score == pytest.approx(by_id[h.chunk.chunk_id].score, abs=1e-4)
