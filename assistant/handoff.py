"""Handing a conversation to a person: the packet an agent opens first.

`extractive_summary` builds the summary without a model, from the transcript and the customer's
history, so a handoff works even when the model is what failed. (The handoff issue adds a
model-written summary with this as its fallback.)
"""

from __future__ import annotations

import re

from assistant.models import CustomerContext, Handoff, HandoffSummary, Message
from assistant.store.repo import Store

HANDOFF_TEXT = (
    "I'm passing this conversation to a member of our support team. They will see everything you've "
    "told me, so you won't need to repeat yourself."
)
_NEGATIVE = re.compile(
    r"\b(angry|annoy\w*|frustrat\w*|ridiculous|terrible|awful|useless|unacceptable|worst|disappoint\w*|"
    r"still not|not working|doesn't work|already told|again|complain\w*|refund now|lawyer|sue)\b",
    re.I,
)
_POSITIVE = re.compile(r"\b(thanks?|thank you|great|perfect|helpful|appreciate|that worked|solved)\b", re.I)

NEXT_STEP = {
    "customer_request": "Greet the customer, confirm the issue below and take it from there.",
    "low_confidence": "The help center did not cover this; answer the question directly or find the right policy.",
    "error": "The assistant failed to answer (technical error); answer the customer's last message.",
}


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def sentiment_of(messages: list[Message]) -> str:
    customer = [m.text for m in messages if m.role == "customer"]
    neg = sum(len(_NEGATIVE.findall(t)) for t in customer)
    pos = sum(len(_POSITIVE.findall(t)) for t in customer)
    if neg > pos:
        trend = " and worsening" if customer and _NEGATIVE.search(customer[-1]) else ""
        return f"negative{trend}"
    return "positive" if pos > neg else "neutral"


def effort_so_far(messages: list[Message]) -> float:
    """Predicted effort on the CES scale (1 = effortless .. 7): one point per two customer messages beyond
    the first, plus one when the customer sounds negative, capped at 7 (refined by the telemetry issue)."""
    customer = [m for m in messages if m.role == "customer"]
    effort = 1.0 + 0.5 * max(0, len(customer) - 1)
    if sentiment_of(messages).startswith("negative"):
        effort += 1.0
    return round(min(7.0, effort), 2)


def extractive_summary(messages: list[Message], context: CustomerContext, reason: str) -> HandoffSummary:
    customer = [m for m in messages if m.role == "customer"]
    attempted = []
    for m in messages:
        if m.role == "assistant" and m.text != HANDOFF_TEXT:
            sources = ", ".join(dict.fromkeys(c.title for c in m.citations))
            attempted.append(_short(m.text, 160) + (f" (sources: {sources})" if sources else ""))
    ctx_lines = [line for line in context.text.splitlines() if line.strip()][:4] if context.profile else []
    return HandoffSummary(
        issue=_short(customer[0].text) if customer else "(the customer asked for a person before writing)",
        customer_goal=_short(customer[-1].text) if customer else "Talk to a person.",
        attempted=attempted[-5:],
        customer_context=" | ".join(ctx_lines) or "Anonymous customer: no account history.",
        sentiment=sentiment_of(messages),
        effort=effort_so_far(messages),
        suggested_next_step=NEXT_STEP.get(reason, NEXT_STEP["low_confidence"]),
    )


class HandoffService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def hand_off(
        self, conversation_id: str, reason: str, confidence: float | None, context: CustomerContext
    ) -> tuple[Handoff, bool]:
        """Open a handoff (or return the one already open); returns (handoff, created)."""
        existing = self.store.open_handoff(conversation_id)
        if existing is not None:
            return existing, False
        messages = self.store.list_messages(conversation_id)
        summary = extractive_summary(messages, context, reason)
        handoff = self.store.create_handoff(conversation_id, reason, confidence, summary, "extractive")
        self.store.add_message(conversation_id, "assistant", HANDOFF_TEXT)
        return handoff, True
