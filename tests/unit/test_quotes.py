"""What kind of fact a question asks for and whether a sentence states it (`assistant.turn.quotes`): the quote
scorer's `answer_type` feature."""

from __future__ import annotations

import pytest

from assistant.models import Chunk, SearchHit
from assistant.turn.quotes import answer_types, states_type, with_stated_fact


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("how much is Plus?", {"amount"}),
        ("what amounts do gift cards come in", {"amount"}),
        ("what's the most I can put on a gift card?", {"amount"}),
        ("how long do PayPal refunds take?", {"duration"}),
        ("when will my refund arrive?", {"duration"}),
        ("can I change my delivery address?", set()),
    ],
)
def test_what_a_question_asks_for(question: str, kinds: set[str]) -> None:
    assert answer_types(question) == frozenset(kinds)


def test_which_sentences_state_it() -> None:
    amount, duration = frozenset({"amount"}), frozenset({"duration"})
    assert states_type("Choose any whole-pound value from **£10 to £500**.", amount)
    assert not states_type("Enter the 16-digit card number and the 4-digit PIN.", amount)
    assert states_type("PayPal: 3-5 business days.", duration)
    assert not states_type("Refunds go to your original payment method.", duration)


def _hit(cid: str, text: str, score: float, source: str = "plus") -> SearchHit:
    chunk = Chunk(chunk_id=cid, source_id=source, title="Plus", text=text, start=0, end=len(text), position=0)
    return SearchHit(chunk=chunk, score=score)


def test_a_question_for_an_amount_brings_the_pages_chunk_that_states_one() -> None:
    """The fused ranking can leave a page's price table out of the top hits (its words are only numbers): when
    the question asks for an amount and none of the top page's hits is the closest chunk stating one, it is added."""
    intro = _hit("plus::0", "Plus is our paid membership.", 0.70)
    join = _hit("plus::5", "Go to Account > Plus to join.", 0.64)
    other = _hit("gifts::1", "Gift cards from £10 to £500.", 0.60, source="gifts")
    prices = _hit("plus::1", "UK: £7.99 a month; £69 a year.", 0.76)
    hits, pool = [intro, join], [intro, join, other, prices]
    assert with_stated_fact(hits, pool, "How much is Plus?") == [intro, join, prices]
    assert with_stated_fact(hits, pool, "How do I join Plus?") == hits  # asks for no amount: nothing added
    assert with_stated_fact([intro, prices], pool, "How much is Plus?") == [intro, prices]  # already there
