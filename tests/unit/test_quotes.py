"""What kind of fact a question asks for and whether a sentence states it (`assistant.turn.quotes`): the quote
scorer's `answer_type` feature."""

from __future__ import annotations

import pytest

from assistant.turn.quotes import answer_types, states_type


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
