"""Intent signals: asking for a person (several languages), frustration, policy topics."""

from __future__ import annotations

import pytest

from assistant.turn.intent import PolicyRules, frustration, wants_human
from knowledge.embeddings import shared_embedder


@pytest.mark.parametrize(
    "text",
    [
        "I want to talk to a real person",
        "can I speak with an agent please",
        "human please",
        "AGENT",
        "put me through to a supervisor",
        "Je voudrais parler à un conseiller",
        "Ich möchte mit einem Mitarbeiter sprechen",
        "quiero hablar con una persona",
        "posso parlare con un operatore?",
        "quero falar com um atendente",
        "ik wil met een medewerker spreken",
    ],
)
def test_requests_for_a_person(text: str) -> None:
    assert wants_human(text)


@pytest.mark.parametrize(
    "text",
    [
        "A person can return items within 30 days",
        "Can someone deliver to my neighbour?",
        "What time can I reach customer service?",
        "How do I change my delivery address?",
    ],
)
def test_not_requests_for_a_person(text: str) -> None:
    assert not wants_human(text)


def test_repeats_rephrasings_and_already_told() -> None:
    emb = shared_embedder()
    earlier = ["How do I change the delivery address on my order?"]
    vecs = emb.embed(earlier)
    same = frustration(
        "how do I change the delivery address on my order",
        earlier,
        emb.embed_one("how do I change the delivery address on my order"),
        vecs,
    )
    assert same.repeated and not same.rephrased
    other = "Where can I update the address my parcel goes to?"
    reworded = frustration(other, earlier, emb.embed_one(other), vecs)
    assert reworded.rephrased or reworded.repeated
    told = frustration("I already told you this, it is still not working!!", earlier)
    assert told.already_told and told.negative >= 2 and told.score >= 0.8
    calm = frustration("Thanks, that helps", earlier)
    assert calm.score == 0.0


def test_policy_rules_default_and_configured() -> None:
    rules = PolicyRules()
    assert rules.topics("I'm going to take legal action") == ["legal"]
    assert rules.topics("someone hacked my account") == ["account_security"]
    assert rules.topics("where is my parcel") == []
    # someone else paying with the customer's card; a request to escalate
    assert rules.topics("someone's been using my card, £600 of charges I never made") == ["account_security"]
    assert rules.topics("payments to Larkspur in my bank but I never bought anything") == ["account_security"]
    assert rules.topics("I want this escalated to a manager") == ["formal_complaint"]
    assert rules.topics("can I use my card to buy a gift card?") == []
    custom = PolicyRules({"cancellation": [r"\bcancel\w* (my )?(membership|plus|subscription)\b"]})
    assert custom.topics("please cancel my membership") == ["cancellation"]
    assert custom.topics("I'm going to take legal action") == []


@pytest.mark.parametrize(
    "text",
    [
        "The lamp I buy from you make sparks and smell of fire, and my son burn his hand little bit. What we do now?",
        "the chair collapsed under me",
        "my new heater overheats and smells of burning",
        "there was smoke coming out of the lamp",
    ],
)
def test_product_safety_goes_to_a_person_however_it_is_worded(text: str) -> None:
    assert "safety" in PolicyRules().topics(text)


@pytest.mark.parametrize("text", ["do you have the sofa in smoke grey?", "sparkling wine glasses arrived broken"])
def test_safety_words_in_other_senses_are_not_safety(text: str) -> None:
    assert "safety" not in PolicyRules().topics(text)
