"""The approved-answer matcher and checks, on a real SQLite store and the real embedding model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.approved.checks import contradictions, has_markup
from assistant.approved.matcher import ApprovedMatcher, ApprovedSearch, match_scores, negated
from assistant.models import ApprovedAnswer, Chunk, SearchHit, utcnow
from assistant.settings import ApprovedSettings
from assistant.store.approved import question_key
from assistant.store.repo import Store
from assistant.turn.grounding import SentenceVectors
from knowledge.embeddings import shared_embedder
from tests.conftest import database_url


@pytest.fixture(scope="module")
def vectors() -> SentenceVectors:
    return SentenceVectors(shared_embedder())


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(database_url(tmp_path))
    yield s  # type: ignore[misc]
    s.close()


def _answer(store: Store, question: str, answer: str, variants: list[str] | None = None) -> ApprovedAnswer:
    now = utcnow()
    return store.approved.add(
        ApprovedAnswer(id="", question=question, answer=answer, variants=variants or [], created_at=now, updated_at=now)
    )


def test_question_key_ignores_case_and_punctuation() -> None:
    assert question_key("  How do I RETURN it?! ") == question_key("how do i return it") == "how do i return it"
    assert question_key("?!") == ""


def test_negation_is_what_says_no() -> None:
    assert negated("My card doesn't work") and negated("I am unable to verify my identity")
    assert not negated("How do I verify my identity?") and not negated("Is there a store near me?")
    sims = np.array([[0.9, 0.9]])
    scores = match_scores(sims, np.array([True]), np.array([True, False]), 0.1)
    assert scores.tolist() == [[0.9, pytest.approx(0.8)]]


def test_matches_paraphrases_above_the_threshold_and_nothing_else(store: Store, vectors: SentenceVectors) -> None:
    gift = _answer(store, "Do you offer gift wrapping?", "Yes, at checkout.", ["Can you gift wrap my order?"])
    _answer(store, "Do you have a student discount?", "Not at the moment.")
    matcher = ApprovedMatcher(store.approved, vectors, ApprovedSettings())
    found = matcher.match("do you offer gift wrapping")
    assert found is not None and found.answer.id == gift.id and found.score >= 0.88
    assert found.citation().source_id == f"approved:{gift.id}"
    assert matcher.match("How long does delivery take?") is None
    assert matcher.match("do you offer gift wrapping", exclude={gift.id}) is None
    ranked = matcher.ranked("gift wrapping please")
    assert [m.answer.id for m in ranked][0] == gift.id and len(ranked) == 2


def test_the_cache_follows_the_table(store: Store, vectors: SentenceVectors) -> None:
    """A second matcher (another worker) sees an answer added or retired through the first one's store."""
    matcher = ApprovedMatcher(store.approved, vectors, ApprovedSettings())
    assert matcher.match("Do you offer gift wrapping?") is None
    made = _answer(store, "Do you offer gift wrapping?", "Yes.")
    assert matcher.match("Do you offer gift wrapping?") is not None
    store.approved.retire(made.id)
    assert matcher.match("Do you offer gift wrapping?") is None
    store.approved.record_hit(made.id)
    store.approved.record_hit(made.id)
    assert store.approved.get(made.id).hits == 2


def test_approved_answers_join_the_search_as_passages(store: Store, vectors: SentenceVectors) -> None:
    made = _answer(store, "Do you offer gift wrapping?", "Yes, at checkout for £4.")
    chunk = Chunk(
        chunk_id="c1",
        source_id="billing/gift-cards",
        title="Gift cards",
        text="Gift cards.",
        start=0,
        end=11,
        position=0,
    )
    search = ApprovedSearch(
        lambda q, k, context=None: [SearchHit(chunk=chunk, score=0.4)],
        ApprovedMatcher(store.approved, vectors, ApprovedSettings()),
        floor=0.6,
    )
    hits = search("could you wrap my present as a gift", 4)
    assert [h.chunk.source_id for h in hits] == [f"approved:{made.id}", "billing/gift-cards"]
    assert hits[0].chunk.text == made.answer
    assert [h.chunk.source_id for h in search("where is my parcel", 4)] == ["billing/gift-cards"]


def test_markup() -> None:
    assert has_markup("<script>alert(1)</script>") and has_markup("see <a href='x'>this</a>")
    assert not has_markup("Orders under £50 < 3 days away") and not has_markup("2 < 3 and 5 > 4")


def test_contradictions_are_other_figures_or_the_opposite(vectors: SentenceVectors) -> None:
    chunk = Chunk(
        chunk_id="c1",
        source_id="returns-refunds/refund-timelines",
        title="Refund timelines",
        text="Card refunds take 5-10 business days to reach your account. You can return items within 30 days.",
        start=0,
        end=90,
        position=0,
    )
    hits = [SearchHit(chunk=chunk, score=0.7)]
    [flag] = contradictions("Card refunds take 2 business days to reach your account.", hits, vectors)
    assert flag.kind == "contradicts_help_center" and flag.ref == "returns-refunds/refund-timelines"
    assert "5-10 business days" in flag.detail
    assert contradictions("You cannot return items within 30 days.", hits, vectors)
    assert contradictions("Card refunds take 5 to 10 business days to reach your account.", hits, vectors) == []
    assert contradictions("We deliver on Saturdays too.", hits, vectors) == []
