"""Knowledge-gap grouping and drafting pieces, with the real embedding model."""

from __future__ import annotations

from assistant.insights.gaps import group, is_question
from assistant.insights.replies import content
from assistant.settings import InsightsSettings
from assistant.turn.grounding import SentenceVectors
from knowledge.embeddings import shared_embedder


def test_questions_are_grouped_by_meaning() -> None:
    texts = [
        "Do you offer gift wrapping?",
        "Do you have a student discount?",
        "Can you gift wrap my order?",
        "Is there a discount for students?",
        "Do you have a showroom where I can see the sofas?",
    ]
    vectors = SentenceVectors(shared_embedder()).embed(texts)
    assert group(vectors, InsightsSettings().gap_similarity) == [[0, 2], [1, 3], [4]]
    assert group(vectors[:1], 0.62) == [[0]] and group(vectors[:0], 0.62) == []


def test_what_counts_as_a_question() -> None:
    assert is_question("Do you offer gift wrapping?")
    assert not is_question("agent please") and not is_question("I want to talk to a person")
    assert not is_question("thanks, that worked") and not is_question("hello?")


def test_an_agent_reply_without_its_pleasantries() -> None:
    reply = "Hi Sam, thanks for waiting! Yes, we gift wrap for £4 per item. Is there anything else I can help with?"
    assert content(reply) == "Yes, we gift wrap for £4 per item."
    assert content("Thanks for waiting, I'm sorting this out for you now.") == ""
