"""Dialogue-aware retrieval: a follow-up keeps the page the conversation cited, a new topic moves to its own page;
score fusion and the page prior. Real Chroma (in-process), the real embedding model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import chromadb
import pytest

from assistant.models import Citation, Message, utcnow
from assistant.turn.engine import cited_sources
from assistant.turn.rewrite import search_context
from knowledge.embeddings import MiniLMEmbedder
from knowledge.index import KnowledgeIndex
from knowledge.retriever import Retriever
from knowledge.types import Document, SearchContext

SOFA, MATTRESS, DELIVERY = "returns/sofas", "returns/mattresses", "delivery/times"
# Two return pages that answer the same questions for different products: a follow-up ("how long do I have?")
# can only be placed by the conversation it belongs to.
PAGES = [
    Document(
        source_id=SOFA,
        title="Returning a sofa",
        text="You can return a sofa within 30 days of delivery. We collect it from your home for a fee of 49 euros. "
        "The sofa must be unused and in its original covers.",
    ),
    Document(
        source_id=MATTRESS,
        title="Returning a mattress",
        text="Mattresses come with a 100-night trial. You can return a mattress any time during the trial. "
        "We collect it for free and refund you within 14 days.",
    ),
    Document(
        source_id=DELIVERY,
        title="Delivery times",
        text="Most orders arrive within 5 working days. Large furniture is delivered by two people on a booked day.",
    ),
]


@pytest.fixture(scope="module")
def index(chroma_client: chromadb.api.ClientAPI) -> Iterator[KnowledgeIndex]:
    idx = KnowledgeIndex(chroma_client, MiniLMEmbedder(), collection_name=f"dialogue-{uuid.uuid4().hex[:16]}")
    idx.ingest(PAGES, origin="test")
    yield idx
    idx.rebuild()


def top_page(retriever: Retriever, query: str, context: SearchContext | None = None) -> str:
    return retriever.search(query, k=3, context=context)[0].chunk.source_id


def test_a_follow_up_keeps_the_page_the_conversation_cited(index: KnowledgeIndex) -> None:
    r = Retriever(index)
    for page, first in ((MATTRESS, "I want to send back my mattress"), (SOFA, "I want to send back my sofa")):
        previous = [("customer", first), ("assistant", "Returns are collected from your home.")]
        ctx = search_context("and is the collection free?", previous, [page])
        assert ctx is not None and not ctx.may_switch  # a follow-up
        assert top_page(r, "and is the collection free?", ctx) == page


def test_the_cited_page_is_preferred_even_without_context_text(index: KnowledgeIndex) -> None:
    r = Retriever(index)
    query = "how many days do I have to send it back?"
    for page in (SOFA, MATTRESS):
        assert top_page(r, query, SearchContext(sources=[page], may_switch=False)) == page


def test_a_new_topic_moves_to_its_own_page(index: KnowledgeIndex) -> None:
    r = Retriever(index)
    previous = [("customer", "Can I return my sofa?"), ("assistant", "You can return a sofa within 30 days.")]
    question = "When will my order be delivered, how many working days does delivery take?"
    ctx = search_context(question, previous, [SOFA])
    assert ctx is not None and ctx.may_switch
    assert top_page(r, question, ctx) == DELIVERY


def test_without_context_the_message_is_searched_alone(index: KnowledgeIndex) -> None:
    r = Retriever(index)
    query = "Is there a trial period for mattresses?"
    assert [h.chunk.chunk_id for h in r.search(query, k=3)] == [
        h.chunk.chunk_id for h in r.search(query, k=3, context=SearchContext())
    ]
    assert top_page(r, query) == MATTRESS


def test_scores_stay_cosine_similarities_with_context(index: KnowledgeIndex) -> None:
    r = Retriever(index)
    hits = r.search("how long?", k=3, context=SearchContext(text="returning a sofa", weight=0.7, sources=[SOFA]))
    assert len(hits) == 3 and len({h.chunk.chunk_id for h in hits}) == 3
    assert all(0.0 <= h.score <= 1.0 and h.score == h.vector_score for h in hits)


def test_the_page_prior_lifts_a_page_with_more_evidence(chroma_client: chromadb.api.ClientAPI) -> None:
    """Two chunks of one page both match; a single chunk elsewhere matches as well: with the page prior, the page
    with evidence in more than one chunk is not ranked below it by its second chunk alone."""
    idx = KnowledgeIndex(
        chroma_client, MiniLMEmbedder(), collection_name=f"prior-{uuid.uuid4().hex[:16]}", max_words=20, overlap_words=0
    )
    try:
        idx.ingest(PAGES, origin="test")
        flat = Retriever(idx, page_weight=0.0).search("return a sofa fee", k=6)
        prior = Retriever(idx, page_weight=1.0).search("return a sofa fee", k=6)
        assert {h.chunk.chunk_id for h in flat} == {h.chunk.chunk_id for h in prior}
        pages = [h.chunk.source_id for h in prior]
        assert pages[0] == SOFA
        # with the prior, every chunk of the best page comes before any chunk of another page it out-scores
        sofa_last = max(i for i, p in enumerate(pages) if p == SOFA)
        assert pages[: sofa_last + 1].count(SOFA) >= [h.chunk.source_id for h in flat][: sofa_last + 1].count(SOFA)
    finally:
        idx.rebuild()


def _message(role: str, seq: int, sources: list[str]) -> Message:
    return Message(
        id=f"m{seq}",
        conversation_id="c",
        seq=seq,
        role=role,  # type: ignore[arg-type]
        text="...",
        citations=[Citation(source_id=s, title=s, snippet="...", score=0.5) for s in sources],
        created_at=utcnow(),
    )


def test_cited_sources_are_the_latest_replies_pages_newest_last() -> None:
    previous = [
        _message("customer", 1, []),
        _message("assistant", 2, [DELIVERY]),
        _message("customer", 3, []),
        _message("assistant", 4, [SOFA, "account:orders"]),
        _message("customer", 5, []),
        _message("assistant", 6, []),  # a closing line cites nothing: it does not count as a reply with pages
        _message("assistant", 7, [MATTRESS, "approved:a1"]),
    ]
    assert cited_sources(previous, 2) == [SOFA, MATTRESS]
    assert cited_sources(previous, 3) == [DELIVERY, SOFA, MATTRESS]
    assert cited_sources(previous, 0) == []
    assert cited_sources([], 2) == []


def test_search_context_holds_the_customers_messages_and_the_last_replies() -> None:
    previous = [(r, f"{r} {i}") for i, r in enumerate(["customer", "assistant"] * 5)]
    ctx = search_context("What about the fee?", previous, [SOFA], customer_messages=3, replies=1)
    assert ctx is not None
    assert ctx.text.splitlines() == ["customer 4", "customer 6", "customer 8", "assistant 9"]
    assert ctx.sources == [SOFA] and ctx.weight == 0.7  # "what about": a follow-up
    own = search_context("How do I book a delivery day for a wardrobe?", previous)
    assert own is not None and own.weight == 0.5 and own.may_switch
    assert search_context("Hello, can I return a sofa?", []) is None


# -- through the engine ----------------------------------------------------------------------------------


def test_the_engine_keeps_a_follow_up_on_its_page_and_moves_on_a_new_topic(tmp_path: Path) -> None:
    from assistant.llm import FakeSupportChatModel
    from assistant.services import Services, build_index
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, answer={"mode": "extractive"}, policy={"handoff_below": 0.0})
    build_index(settings).ingest(PAGES, origin="test")
    sv = Services.build(settings, chat_model=FakeSupportChatModel())
    try:
        engine = sv.engine
        for product, page in (("sofa", SOFA), ("mattress", MATTRESS)):
            conv = engine.start_conversation(None, verified=False)
            first = engine.run_turn(conv.id, f"I want to return my {product}, is that possible?")
            assert first.reply is not None and page in {c.source_id for c in first.reply.citations}
            follow = engine.run_turn(conv.id, "and how long do I have?")
            assert follow.reply is not None and {c.source_id for c in follow.reply.citations} == {page}
            moved = engine.run_turn(conv.id, "When will my order be delivered, how many working days does it take?")
            assert moved.reply is not None and DELIVERY in {c.source_id for c in moved.reply.citations}
    finally:
        sv.close()
