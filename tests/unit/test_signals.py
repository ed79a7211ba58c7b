"""Signals and what they add up to: pure functions over events (no store), and redaction."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from assistant.models import Conversation, FrustrationSignals, Message, SignalEvent
from assistant.safety.redact import Redactor
from assistant.settings import TelemetrySettings
from assistant.telemetry.signals import (
    derive,
    is_confirmation,
    is_contradiction,
    predicted_effort,
    sentiment_of,
    turn_signals,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SETTINGS = TelemetrySettings(inactivity_s=1800, recontact_window_s=7 * 86400)


def conv(status: str = "bot") -> Conversation:
    return Conversation(id="c1", customer_id="cus_1", status=status, channel="web", created_at=T0, updated_at=T0)  # type: ignore[arg-type]


def ev(kind: str, minutes: float, value: float | None = None, **data: object) -> SignalEvent:
    return SignalEvent(conversation_id="c1", kind=kind, at=T0 + timedelta(minutes=minutes), value=value, data=data)  # type: ignore[arg-type]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    "text, confirmation, contradiction",
    [
        ("Thanks, that worked!", True, False),
        ("perfect, got it", True, False),
        ("thanks but it's still not working", False, True),
        ("That didn't work", False, True),
        ("no, that's not what I asked", False, True),
        ("merci beaucoup", True, False),
        ("how do I return a sofa?", False, False),
    ],
)
def test_confirmations_and_contradictions(text: str, confirmation: bool, contradiction: bool) -> None:
    assert is_confirmation(text) is confirmation
    assert is_contradiction(text) is contradiction


def test_sentiment_is_signed() -> None:
    assert sentiment_of("this is ridiculous, still not working!!") < 0
    assert sentiment_of("thank you, perfect") > 0
    assert sentiment_of("where is my order?") == 0


def test_turn_signals_of_a_frustrated_repeat_after_a_long_gap() -> None:
    previous = [
        Message(id="m1", conversation_id="c1", seq=0, role="customer", text="where is my order", created_at=at(0))
    ]
    msg = Message(
        id="m2",
        conversation_id="c1",
        seq=1,
        role="customer",
        text="I already told you, where is my order??",
        created_at=at(20),
    )
    fr = FrustrationSignals(repeat_of=0.9, repeated=True, already_told=True, negative=1)
    kinds = [e.kind for e in turn_signals("c1", msg, previous, fr, "t2", long_gap_s=600)]
    assert kinds == ["customer_turn", "long_gap", "repeat", "already_told", "sentiment"]


def test_answered_then_thanks_is_confirmed_bot_resolution() -> None:
    events = [ev("customer_turn", 0), ev("answered", 0.1, 0.8), ev("customer_turn", 1), ev("confirmation", 1)]
    f = derive(conv(), events, at(2), SETTINGS)
    assert f.outcome == "resolved_by_bot_confirmed" and f.durable is None  # the re-contact window is still open
    assert derive(conv(), events, at(8 * 24 * 60), SETTINGS).durable is True
    assert derive(conv(), [*events, ev("recontacted", 60)], at(8 * 24 * 60), SETTINGS).durable is False


def test_a_grounded_answer_then_silence_is_assumed_only_after_the_inactivity_timeout() -> None:
    events = [ev("customer_turn", 0), ev("answered", 0.1, 0.7)]
    assert derive(conv(), events, at(10), SETTINGS).outcome == "open"
    assert derive(conv(), events, at(31), SETTINGS).outcome == "resolved_by_bot_assumed"
    # a contradiction after the answer: the customer left unresolved
    events.append(ev("contradiction", 1))
    assert derive(conv(), events, at(40), SETTINGS).outcome == "unresolved"


def test_handoff_outcomes() -> None:
    waiting = [ev("customer_turn", 0), ev("dead_end", 0.1), ev("handoff", 0.1, reason="low_confidence")]
    f = derive(conv("waiting_for_agent"), waiting, at(5), SETTINGS)
    assert f.outcome == "open" and f.handed_off and f.agent_wait_s == pytest.approx(4.9 * 60)
    assert derive(conv("waiting_for_agent"), waiting, at(45), SETTINGS).outcome == "abandoned"
    done = [*waiting, ev("agent_reply", 3, 174.0), ev("agent_resolved", 10, 1.0)]
    f = derive(conv("resolved"), done, at(11), SETTINGS)
    assert f.outcome == "resolved_by_agent" and f.agent_wait_s == 174.0
    assert derive(conv("resolved"), [*waiting, ev("agent_resolved", 10, 0.0)], at(11), SETTINGS).outcome == "unresolved"


def test_leaving_before_anything_happened_is_abandoned() -> None:
    assert derive(conv(), [], at(60), SETTINGS).outcome == "abandoned"
    assert derive(conv("abandoned"), [ev("customer_turn", 0)], at(60), SETTINGS).outcome == "abandoned"


def test_feedback_says_unresolved_wins_over_an_assumption() -> None:
    events = [ev("customer_turn", 0), ev("answered", 0.1, 0.9), ev("feedback", 1, 2, csat=2, resolved=False)]
    f = derive(conv(), events, at(60), SETTINGS)
    assert f.outcome == "unresolved" and f.csat == 2


def test_predicted_effort_formula() -> None:
    assert predicted_effort(Counter(), 1, None, 0) == 1.0
    # three messages, one repeat, one dead end, handed off and waited 10 minutes
    counts = Counter({"repeat": 1, "dead_end": 1, "handoff": 1})
    assert predicted_effort(counts, 3, 600, 0) == pytest.approx(1 + 1.0 + 1.0 + 0.75 + 1.0 + 1.0)
    assert predicted_effort(Counter({"repeat": 9, "already_told": 5}), 9, None, 9) == 7.0  # capped
    assert predicted_effort(Counter({"confirmation": 1}), 1, None, 0) == 1.0  # never below 1


def test_redaction_of_personal_data() -> None:
    r = Redactor()
    text = (
        "Mail jane.doe@example.com, call +44 20 7946 0958, card 4111 1111 1111 1111, IBAN GB29 NWBK 6016 1331 9268 19"
    )
    assert r.text(text) == "Mail [email], call [phone], card [card], IBAN [account]"
    assert r.text("order LH-482913 on 2026-11-25, 3-5 days, 4.95") == "order LH-482913 on 2026-11-25, 3-5 days, 4.95"
    assert r.text("acct 12345678") == "acct [account]"
    assert Redactor(["email"]).text("a@b.co 4111111111111111") == "[email] 4111111111111111"
    assert r.data({"x": ["jane@x.org", 3]}) == {"x": ["[email]", 3]}
