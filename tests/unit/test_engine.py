"""The conversation engine on real SQLite + Chroma (the sample help center), with fake chat models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel

from assistant.llm import FakeSupportChatModel
from assistant.models import CitationsEvent, DoneEvent, TokenEvent
from assistant.services import Services
from assistant.store.repo import Store
from tests.conftest import make_settings
from tests.fakes import Call, FakeChatModel


def scripted(*texts: str) -> FakeChatModel:
    """A model that replies `texts`, one a call, and then fails."""
    return FakeChatModel().enqueue(*texts)


def build(data_dir: Path, model: BaseChatModel | None = None, **overrides: Any) -> Services:
    return Services.build(make_settings(data_dir, **overrides), chat_model=model or FakeSupportChatModel())


def test_a_supported_answer_streams_with_its_citation(sample_data_dir: Path) -> None:
    sv = build(sample_data_dir)
    conv = sv.engine.start_conversation(None, False)
    events = list(sv.engine.stream_turn(conv.id, "How do I turn on two-factor authentication?"))
    tokens = "".join(e.text for e in events if isinstance(e, TokenEvent))
    done = events[-1]
    assert isinstance(done, DoneEvent)
    turn = done.turn
    assert turn.reply is not None and turn.reply.mode == "generated"
    assert tokens.strip() == turn.reply.text.strip()
    assert any(isinstance(e, CitationsEvent) for e in events)
    assert turn.reply.citations[0].source_id == "account/two-factor-authentication"
    assert 0.5 <= turn.confidence <= 1.0
    record = sv.store.get_turn(turn.turn_id)
    assert record is not None and record.state == "done"
    assert record.cited_chunk_ids == [c.chunk_id for c in turn.reply.citations]
    assert {"persist", "history", "retrieve", "generate", "total"} <= set(record.timings_ms)


def test_an_invented_figure_is_never_shown(sample_data_dir: Path) -> None:
    """The model claims 45 days; the help center says 5-10. The sentence is withheld and the reply quotes the source."""
    sv = build(sample_data_dir, scripted("Refunds to your card take 45 business days. [1]"))
    conv = sv.engine.start_conversation(None, False)
    turn = sv.engine.run_turn(conv.id, "How long does a refund to my card take after you receive the return?")
    assert turn.reply is not None
    assert "45" not in turn.reply.text
    assert turn.reply.mode == "extractive"
    assert turn.reply.citations, "the quoted passage is cited"
    record = sv.store.get_turn(turn.turn_id)
    assert record is not None and record.evidence is not None
    assert any("45" in d for d in record.evidence.dropped)
    assert record.evidence.mode == "extractive" and record.reply_mode == "extractive"


def test_the_models_abstention_is_recorded_and_the_same_quote_is_as_sure(sample_data_dir: Path) -> None:
    """The confidence is the calibrated answerability of the evidence shown: the same quote from the same
    retrieval is as answerable whatever the small model said before it was withheld (its abstention is kept on
    the record; the dev sets have no labelled generated answers to learn its weight from)."""
    question = "How do I turn on two-factor authentication?"
    # Both end in the same extractive quote; only the model's own words differ.
    confident = build(sample_data_dir, scripted("The moon is made of cheese. [1]"))
    unsure = build(sample_data_dir, scripted("I don't know."))
    a = confident.engine.run_turn(confident.engine.start_conversation(None, False).id, question)
    b = unsure.engine.run_turn(unsure.engine.start_conversation(None, False).id, question)
    record = unsure.store.get_turn(b.turn_id)
    assert record is not None and record.evidence is not None and record.evidence.abstained
    assert a.reply is not None and b.reply is not None and a.reply.text == b.reply.text
    assert b.confidence == pytest.approx(a.confidence, abs=1e-3)


def test_a_restatement_of_the_question_is_not_an_answer(sample_data_dir: Path) -> None:
    sv = build(sample_data_dir, scripted("I am a Plus member and I can pause my Plus membership."))
    conv = sv.engine.start_conversation(None, False)
    turn = sv.engine.run_turn(conv.id, "Can I pause my Plus membership?")
    assert turn.reply is not None and turn.reply.mode == "extractive"
    assert "I am a Plus member" not in turn.reply.text


def test_no_knowledge_goes_to_a_person(sample_data_dir: Path) -> None:
    sv = build(sample_data_dir)
    conv = sv.engine.start_conversation(None, False)
    events = list(sv.engine.stream_turn(conv.id, "What is the boiling point of tungsten?"))
    turn = events[-1].turn  # type: ignore[union-attr]
    assert not any(isinstance(e, TokenEvent) for e in events), "no decline text is shown before a handoff"
    assert turn.reply is None and turn.action == "handoff"
    assert turn.handoff is not None and turn.handoff.reason == "low_confidence"
    assert turn.confidence < 0.2 and turn.status == "waiting_for_agent"


def test_with_handoffs_off_the_assistant_says_it_does_not_know(sample_data_dir: Path) -> None:
    sv = build(sample_data_dir, policy={"handoff_below": 0.0})
    conv = sv.engine.start_conversation(None, False)
    turn = sv.engine.run_turn(conv.id, "What is the boiling point of tungsten?")
    assert turn.reply is not None and turn.reply.mode == "declined" and turn.reply.citations == []
    assert turn.action == "answer_and_offer" and turn.handoff is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I want to talk to a real person please", "customer_request"),
        ("Je voudrais parler à un conseiller", "customer_request"),
        ("Someone hacked my account and changed my email", "policy:account_security"),
        ("I will take legal action if this isn't fixed", "policy:legal"),
    ],
)
def test_intent_hands_off_before_any_model_call(sample_data_dir: Path, text: str, reason: str) -> None:
    sv = build(sample_data_dir)
    conv = sv.engine.start_conversation(None, False)
    turn = sv.engine.run_turn(conv.id, text)
    assert turn.handoff is not None and turn.handoff.reason == reason
    assert turn.reply is None and turn.status == "waiting_for_agent"
    with sv.store.engine.connect() as c:
        (calls,) = c.exec_driver_sql("SELECT count(*) FROM llm_calls WHERE prompt_name = 'answer'").one()
    assert calls == 0
    record = sv.store.get_turn(turn.turn_id)
    assert (
        record is not None and record.intent is not None and record.intent.wants_human == (reason == "customer_request")
    )


def test_a_frustrated_customer_is_handed_off(sample_data_dir: Path) -> None:
    sv = build(sample_data_dir)
    conv = sv.engine.start_conversation(None, False)
    first = sv.engine.run_turn(conv.id, "How do I change the delivery address on my order?")
    assert first.handoff is None
    turn = sv.engine.run_turn(conv.id, "I already told you, how do I change the delivery address on my order??")
    record = sv.store.get_turn(turn.turn_id)
    assert record is not None
    assert record.intent is not None
    signals = record.intent.frustration
    assert signals.repeated and signals.already_told
    assert turn.handoff is not None and turn.handoff.reason == "frustration"


def test_model_failure_hands_off_after_the_message_is_stored(sample_data_dir: Path) -> None:
    settings = make_settings(sample_data_dir)
    seen_messages: list[str] = []

    def down(call: Call) -> str:
        """A provider that is down. Before failing it records what the database held at call time."""
        store = Store(settings.sqlalchemy_url)
        with store.engine.connect() as c:
            seen_messages.extend(r[0] for r in c.exec_driver_sql("SELECT text FROM messages WHERE role='customer'"))
        store.close()
        raise RuntimeError("upstream 503")

    sv = Services.build(settings, chat_model=FakeChatModel(reply=down))
    conv = sv.engine.start_conversation(None, False)
    turn = sv.engine.run_turn(conv.id, "How do I reset my password?")
    assert "How do I reset my password?" in seen_messages, "persisted before the model ran"
    assert turn.reply is None
    assert turn.handoff is not None and turn.handoff.reason == "error"
    assert turn.status == "waiting_for_agent"
    _, messages = sv.engine.transcript(conv.id)
    assert [m.role for m in messages] == ["customer", "assistant"]  # the message, then "a person will join"
    record = sv.store.get_turn(turn.turn_id)
    assert record is not None and record.state == "error" and "upstream 503" in (record.error or "")


def test_the_bot_stays_silent_while_a_person_has_the_conversation(sample_data_dir: Path) -> None:
    sv = build(sample_data_dir)
    conv = sv.engine.start_conversation(None, False)
    sv.engine.request_handoff(conv.id)
    turn = sv.engine.run_turn(conv.id, "Hello? Is anyone there?")
    assert turn.reply is None
    assert turn.status == "waiting_for_agent"
    _, messages = sv.engine.transcript(conv.id)
    assert messages[-1].role == "customer" and messages[-1].text == "Hello? Is anyone there?"


def test_every_model_call_is_logged_with_its_prompt(sample_data_dir: Path) -> None:
    sv = build(sample_data_dir)
    conv = sv.engine.start_conversation(None, False)
    turn = sv.engine.run_turn(conv.id, "How do I turn on two-factor authentication?")
    with sv.store.engine.connect() as c:
        rows = list(c.exec_driver_sql("SELECT prompt_name, prompt_version, turn_id, output FROM llm_calls"))
    assert rows and rows[0][0] == "answer" and rows[0][1] and rows[0][2] == turn.turn_id and rows[0][3]


def test_a_follow_up_is_searched_with_its_context(sample_data_dir: Path) -> None:
    sv = build(sample_data_dir)
    conv = sv.engine.start_conversation(None, False)
    sv.engine.run_turn(conv.id, "How long do refunds to PayPal take?")
    turn = sv.engine.run_turn(conv.id, "and what about Klarna?")
    assert turn.query is not None and "PayPal" in turn.query
    previous = sv.store.list_messages(conv.id)  # a new topic is searched alone, whatever came before
    fresh = sv.engine.standalone_question("How do I delete my account and personal data?", previous)
    assert fresh == "How do I delete my account and personal data?"


@pytest.mark.parametrize("verified", [True, False])
def test_history_only_for_a_verified_customer(sample_data_dir: Path, verified: bool) -> None:
    sv = build(sample_data_dir)
    conv = sv.engine.start_conversation("cus_1001", verified)
    assert conv.customer_id == ("cus_1001" if verified else None)
    ctx = sv.engine.history.build(conv, "my order")
    assert (ctx.profile is not None) is verified
    if not verified:
        assert conv.metadata["claimed_customer_id"] == "cus_1001"
        assert "cus_1001" not in ctx.text


@pytest.mark.parametrize(
    ("text", "closing"),
    [
        ("thanks, that worked", True),
        ("perfect, thank you", True),
        ("Oh brilliant, that's exactly what I needed, thank you so much!", True),  # long, but only thanks
        ("thanks but it still does not work", False),
        ("Thanks! Also, how do I cancel my membership", False),
        ("thanks, what about returns", False),
        ("thank you, can you also check my order?", False),
    ],
)
def test_a_thank_you_is_closed_only_when_nothing_more_is_asked(text: str, closing: bool) -> None:
    from assistant.turn.engine import is_thanks_only

    assert is_thanks_only(text) is closing
