"""Effort and resolution signals: what each turn says about the customer's effort, recorded as events,
and what a conversation's events add up to (outcome, durability, predicted effort).

Events are append-only rows (`signal_events`) written as things happen:

| kind | written when | value |
| --- | --- | --- |
| `customer_turn` | every customer message | seconds since the previous message |
| `repeat` / `rephrase` | the message says again what an earlier one said (embedding similarity) | similarity |
| `already_told` | "I already told you", in several languages | |
| `sentiment` | every customer message | -1 (negative) .. 1 (positive) |
| `confirmation` / `contradiction` | "that worked", "thanks" / "still not working", "that's wrong" | |
| `answered` | the assistant answered from knowledge or history | turn confidence |
| `dead_end` | the assistant could not answer (declined, or handed off for low confidence or an error) | |
| `handoff` | the conversation went to the agent queue (`data.reason`) | |
| `agent_reply` | an agent's first reply after a handoff | seconds the customer waited |
| `agent_resolved` | the agent resolved the handoff | 1 resolved, 0 not |
| `feedback` | the customer rated (`data.csat/ces/resolved`) | |
| `long_gap` | a customer message after more than `long_gap_s` of silence | seconds |
| `channel_switch` | the customer's previous conversation (within the re-contact window) was on another channel | |
| `recontact` / `recontacted` | a new conversation on the same topic within the window (new / earlier one) | |
| `abandoned` / `assumed_resolved` | the inactivity sweep closed a conversation (customer left) | idle seconds |

Conversation facts are derived from the events and the conversation's status, never typed in:
`derive()` below is the one definition of the outcomes and of predicted effort (README: telemetry).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from assistant.models import (
    BOT_RESOLVED,
    RESOLVED,
    Conversation,
    ConversationFacts,
    FrustrationSignals,
    Message,
    Outcome,
    SignalEvent,
    SignalKind,
    utcnow,
)
from assistant.settings import TelemetrySettings
from assistant.turn.intent import negative_count

logger = logging.getLogger(__name__)

# -- what one customer message says -----------------------------------------------------------------

_CONTRADICTION = re.compile(
    r"\b(still (not|no|doesn'?t|does not|isn'?t|won'?t|can'?t|hasn'?t|haven'?t|the same|broken|waiting)|"
    r"(did ?n[o']t|does ?n[o']t|do ?n[o']t|didn't|doesn't) (work|help|fix|solve)|not working|not fixed|"
    r"that'?s (wrong|not (right|it|what i (asked|meant)))|not what i (asked|meant|need)|that is wrong|"
    r"same (problem|issue|error)|(no|nope),? (it|that) (didn'?t|doesn'?t|does not)|"
    r"toujours pas|funktioniert (immer noch )?nicht|sigue sin|todavía no|ancora non|ainda não)\b",
    re.I,
)
_CONFIRMATION = re.compile(
    r"\b(thanks?|thank (you|u)|thx|cheers|ty|that (worked|helps|helped|did it|fixed it|solved it)|"
    r"(it )?works now|(all )?(sorted|solved|fixed)|perfect|great|brilliant|awesome|got it|makes sense|"
    r"all good|that'?s (all|it|everything)|merci|danke|gracias|grazie|obrigad[oa])\b",
    re.I,
)


def is_contradiction(text: str) -> bool:
    return bool(_CONTRADICTION.search(text))


def is_confirmation(text: str) -> bool:
    """A thank-you or "that worked" that is not also a complaint ("thanks, but still not working")."""
    return bool(_CONFIRMATION.search(text)) and not is_contradiction(text)


def sentiment_of(text: str) -> float:
    """-1 .. 1 from the negative expressions of `assistant.turn.intent` and the confirmations above."""
    neg = negative_count(text) + (1 if is_contradiction(text) else 0)
    pos = len(_CONFIRMATION.findall(text)) if not is_contradiction(text) else 0
    return 0.0 if neg == pos == 0 else round((pos - neg) / (pos + neg), 3)


def turn_signals(
    conversation_id: str,
    message: Message,
    previous: Sequence[Message],
    frustration: FrustrationSignals | None,
    turn_id: str | None,
    long_gap_s: float,
) -> list[SignalEvent]:
    """The events of one customer message (before the assistant answers)."""
    at = message.created_at
    gap = (at - previous[-1].created_at).total_seconds() if previous else 0.0
    ev = [
        SignalEvent(conversation_id=conversation_id, kind="customer_turn", at=at, value=round(gap, 3), turn_id=turn_id)
    ]

    def add(kind: SignalKind, value: float | None = None, **data: Any) -> None:
        ev.append(
            SignalEvent(conversation_id=conversation_id, kind=kind, at=at, value=value, turn_id=turn_id, data=data)
        )

    if previous and gap > long_gap_s:
        add("long_gap", round(gap, 1))
    said = message.text[:160]  # what the CX team reads next to the signal (redacted when stored)
    if frustration is not None:
        if frustration.repeated:
            add("repeat", frustration.repeat_of, text=said)
        elif frustration.rephrased:
            add("rephrase", frustration.repeat_of, text=said)
        if frustration.already_told:
            add("already_told", text=said)
    add("sentiment", sentiment_of(message.text))
    if is_contradiction(message.text):
        add("contradiction", text=said)
    elif is_confirmation(message.text):
        add("confirmation", text=said)
    return ev


# -- what the events add up to ------------------------------------------------------------------------

EFFORT_WEIGHTS: dict[str, float] = {
    "extra_turn": 0.5,  # each customer message beyond the first, up to four
    "repeat": 1.0,
    "rephrase": 0.5,
    "already_told": 1.0,
    "dead_end": 0.75,
    "contradiction": 0.5,
    "negative_turn": 0.25,  # a customer message with negative sentiment
    "handoff": 1.0,
    "wait_per_10_min": 1.0,  # waiting for a person, capped at 1.5
    "channel_switch": 0.5,
    "long_gap": 0.25,
    "recontact": 1.0,  # the customer had to come back about the same thing
    "confirmed": -0.5,
}


def predicted_effort(
    counts: Counter[str], customer_turns: int, agent_wait_s: float | None, negative_turns: int
) -> float:
    """Customer Effort Score 1..7 predicted from the effort signals: 1 + the weighted signals above, clamped."""
    w = EFFORT_WEIGHTS
    e = 1.0 + w["extra_turn"] * min(4, max(0, customer_turns - 1))
    for kind in ("repeat", "rephrase", "already_told", "dead_end", "contradiction", "channel_switch", "long_gap"):
        e += w[kind] * counts.get(kind, 0)
    e += w["negative_turn"] * negative_turns
    if counts.get("handoff"):
        e += w["handoff"] + min(1.5, w["wait_per_10_min"] * (agent_wait_s or 0.0) / 600)
    if counts.get("recontact"):
        e += w["recontact"]
    if counts.get("confirmation"):
        e += w["confirmed"]
    return round(min(7.0, max(1.0, e)), 2)


def _outcome(status: str, events: list[SignalEvent], inactive: bool) -> Outcome:
    """The outcome of the latest stretch of the conversation (after the last agent resolution, if the
    customer came back to the bot)."""
    last_resolution = max((i for i, e in enumerate(events) if e.kind == "agent_resolved"), default=-1)
    after = events[last_resolution + 1 :]
    if last_resolution >= 0 and not any(e.kind == "customer_turn" for e in after):
        return "resolved_by_agent" if events[last_resolution].value else "unresolved"
    if status == "abandoned" or (status == "waiting_for_agent" and inactive):
        return "abandoned"
    if status in ("waiting_for_agent", "with_agent"):
        return "open"
    said_unresolved = any(e.kind == "feedback" and e.data.get("resolved") is False for e in after)
    if said_unresolved:
        return "unresolved"
    # the bot's reply to "thanks, that worked" (or "still not working") is not a new answer: the customer's
    # verdict is on the answer before it
    thanked = {e.turn_id for e in after if e.kind in ("confirmation", "contradiction") and e.turn_id is not None}
    bot = [
        e
        for e in after
        if e.kind in ("confirmation", "contradiction", "handoff")
        or (e.kind in ("answered", "dead_end") and (e.turn_id is None or e.turn_id not in thanked))
    ]
    last_answer = max((i for i, e in enumerate(bot) if e.kind == "answered"), default=-1)
    tail = bot[last_answer + 1 :] if last_answer >= 0 else bot
    confirmed = any(e.kind == "confirmation" for e in tail) or any(
        e.kind == "feedback" and e.data.get("resolved") is True for e in after
    )
    if last_answer >= 0 and confirmed and not any(e.kind == "contradiction" for e in tail):
        return "resolved_by_bot_confirmed"
    if not inactive and status != "resolved":
        return "open"
    if last_answer >= 0 and not any(e.kind in ("dead_end", "contradiction") for e in tail):
        return "resolved_by_bot_assumed"
    if any(e.kind in ("answered", "dead_end") for e in bot):
        return "unresolved"  # the assistant tried and the customer left without an answer that stood
    return "abandoned"  # the customer left before the assistant could do anything


def derive(
    conv: Conversation, events: list[SignalEvent], now: datetime, settings: TelemetrySettings
) -> ConversationFacts:
    """The facts of one conversation from its events (sorted by time) and its current status."""
    counts: Counter[str] = Counter(e.kind for e in events)
    activity = [e.at for e in events if e.kind in ("customer_turn", "answered", "dead_end", "agent_reply", "handoff")]
    last_activity = max([conv.created_at, *activity])
    inactive = (now - last_activity).total_seconds() >= settings.inactivity_s
    outcome = _outcome(conv.status, events, inactive)
    waits = [e.value for e in events if e.kind == "agent_reply" and e.value is not None]
    if counts.get("handoff") and not waits and conv.status == "waiting_for_agent":
        handoff_at = max(e.at for e in events if e.kind == "handoff")
        waits = [(now - handoff_at).total_seconds()]  # still waiting: the wait so far counts
    agent_wait = sum(waits) if waits else None
    sentiments = [e.value for e in events if e.kind == "sentiment" and e.value is not None]
    feedback = [e.data for e in events if e.kind == "feedback"]
    csat = next((f["csat"] for f in reversed(feedback) if f.get("csat") is not None), None)
    ces = next((f["ces"] for f in reversed(feedback) if f.get("ces") is not None), None)
    durable: bool | None = None
    if outcome in RESOLVED:
        if counts.get("recontacted"):
            durable = False
        elif (now - last_activity).total_seconds() >= settings.recontact_window_s:
            durable = True
    topic = next((e.data.get("topic") for e in reversed(events) if e.kind == "topic"), None)
    effort = predicted_effort(counts, counts.get("customer_turn", 0), agent_wait, sum(1 for s in sentiments if s < 0))
    return ConversationFacts(
        conversation_id=conv.id,
        customer_id=conv.customer_id,
        started_at=conv.created_at,
        last_activity_at=last_activity,
        status=conv.status,
        outcome=outcome,
        durable=durable,
        topic=topic,
        effort=effort,
        customer_turns=counts.get("customer_turn", 0),
        handed_off=bool(counts.get("handoff")),
        agent_wait_s=round(agent_wait, 3) if agent_wait is not None else None,
        csat=csat,
        ces=ces,
        sentiment_trend=round(sentiments[-1] - sentiments[0], 3) if len(sentiments) > 1 else None,
        counts=dict(counts),
    )


TopicFn = Callable[[list[str]], tuple[str, float] | None]


def window_start(now: datetime, settings: TelemetrySettings) -> datetime:
    return now - timedelta(seconds=settings.recontact_window_s)


__all__ = [
    "EFFORT_WEIGHTS",
    "BOT_RESOLVED",
    "RESOLVED",
    "ConversationFacts",
    "Outcome",
    "SignalEvent",
    "SignalKind",
    "TopicFn",
    "derive",
    "is_confirmation",
    "is_contradiction",
    "predicted_effort",
    "sentiment_of",
    "turn_signals",
    "utcnow",
    "window_start",
]
