"""The customer-history block given to the model: profile, recent events, earlier conversations.

Only for a *verified* customer (identity proven by `customer_hash`); an anonymous caller gets no
history, whatever id they claim. The block is cut to a token budget: the profile line always,
then events and earlier conversations ranked by relevance to the question (shared words, e.g. an
order number or "refund") and then recency, newest first, until the budget is spent.
Tokens are estimated as characters / 4 (within ~15% of the SmolLM2 and OpenAI tokenizers on
English text), which keeps this fast and model-independent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from assistant.models import (
    Conversation,
    CustomerContext,
    CustomerEvent,
    CustomerProfile,
    CustomerRecord,
    PastConversation,
)
from assistant.store.repo import Store
from knowledge.retriever import tokenize

EVENTS_HEADER = "Recent account activity (newest first):"
PAST_HEADER = "Earlier conversations (newest first):"


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def render_profile(p: CustomerProfile) -> str:
    parts = [f"Customer: {p.name or 'unknown name'} (id {p.id})"]
    if p.created_at:
        parts.append(f"customer since {p.created_at:%Y-%m-%d}")
    for key, value in sorted(p.attributes.items()):
        if value not in (None, "", [], {}):
            parts.append(f"{key.replace('_', ' ')}: {value}")
    if p.email:
        parts.append(f"email on file: {p.email}")
    return "; ".join(parts)


def render_event(e: CustomerEvent) -> str:
    details = []
    for key, value in e.data.items():
        if isinstance(value, list):
            value = ", ".join(
                (f"{v.get('qty', 1)}x {v.get('name') or v.get('sku')}" if isinstance(v, dict) else str(v))
                for v in value
            )
        elif isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False)
        details.append(f"{key.replace('_', ' ')} {value}")
    return f"- {e.at:%Y-%m-%d} {e.type.replace('_', ' ')}: " + "; ".join(details)


def render_past(c: PastConversation) -> str:
    about = f", {c.topic}" if c.topic else ""
    return f"- {c.started_at:%Y-%m-%d} ({c.channel}{about}) outcome {c.outcome or 'unknown'}: {c.summary}"


class HistoryBuilder:
    def __init__(
        self,
        store: Store,
        token_budget: int = 700,
        max_events: int = 20,
        max_past_conversations: int = 5,
        count_tokens: Callable[[str], int] = estimate_tokens,
    ) -> None:
        self.store = store
        self.token_budget = token_budget
        self.max_events = max_events
        self.max_past = max_past_conversations
        self.count_tokens = count_tokens

    def read(self, conversation: Conversation, min_events: int = 0, min_past: int = 0) -> CustomerRecord | None:
        """The verified customer's record, in one transaction: at least the events and earlier conversations this
        builder uses, more when `min_events` / `min_past` ask (the account step reads the same record). None for
        an anonymous conversation (no history, whatever id it claims)."""
        if not conversation.verified or not conversation.customer_id:
            return None
        return self.store.customer_context(
            conversation.customer_id,
            conversation.id,
            max(self.max_events, min_events),
            max(self.max_past, min_past),
        )

    def build(
        self, conversation: Conversation, question: str = "", record: CustomerRecord | None = None
    ) -> CustomerContext:
        """The history block for `conversation`, from `record` (what `read` returned) or read now."""
        if not conversation.verified or not conversation.customer_id:
            return CustomerContext(text="The customer is not signed in: no account details are available.")
        profile, events, past = record if record is not None else self.read(conversation) or (None, [], [])
        if profile is None:
            return CustomerContext(text="No account details are on file for this customer.")
        return self.assemble(profile, events[: self.max_events], past[: self.max_past], question)

    def assemble(
        self, profile: CustomerProfile, events: list[CustomerEvent], past: list[PastConversation], question: str
    ) -> CustomerContext:
        qwords = set(tokenize(question))
        head = render_profile(profile)
        used = self.count_tokens(head)
        truncated = False

        def rank(text: str, at: datetime, i: int) -> tuple[int, float]:
            overlap = len(qwords & set(tokenize(text)))
            return (-min(overlap, 3), i)  # relevant first (capped, so one long match does not dominate), then newest

        ev_lines = [(render_event(e), e) for e in events]  # events come newest first
        ev_order = sorted(range(len(ev_lines)), key=lambda i: rank(ev_lines[i][0], ev_lines[i][1].at, i))
        past_lines = [(render_past(c), c) for c in past]
        past_order = sorted(
            range(len(past_lines)), key=lambda i: rank(past_lines[i][0], past_lines[i][1].started_at, i)
        )

        kept_ev: list[int] = []
        kept_past: list[int] = []
        # Interleave so that neither section can starve the other of the budget.
        queue = [("e", i) for i in ev_order]
        pq = [("p", i) for i in past_order]
        merged: list[tuple[str, int]] = []
        while queue or pq:
            if queue:
                merged.append(queue.pop(0))
            if queue:
                merged.append(queue.pop(0))
            if pq:
                merged.append(pq.pop(0))
        headers = {"e": EVENTS_HEADER, "p": PAST_HEADER}
        for kind, i in merged:
            line = ev_lines[i][0] if kind == "e" else past_lines[i][0]
            kept = kept_ev if kind == "e" else kept_past
            cost = self.count_tokens(line) + 1
            if not kept:  # the section's header line is paid for by its first entry
                cost += self.count_tokens(headers[kind]) + 1
            if used + cost > self.token_budget:
                truncated = True
                continue
            used += cost
            kept.append(i)

        kept_ev.sort()  # shown newest first, as they happened
        kept_past.sort()
        parts = [head]
        if kept_ev:
            parts.append(EVENTS_HEADER)
            parts.extend(ev_lines[i][0] for i in kept_ev)
        if kept_past:
            parts.append(PAST_HEADER)
            parts.extend(past_lines[i][0] for i in kept_past)
        text = "\n".join(parts)
        return CustomerContext(
            profile=profile,
            events=[ev_lines[i][1] for i in kept_ev],
            past_conversations=[past_lines[i][1] for i in kept_past],
            text=text,
            tokens=self.count_tokens(text),
            truncated=truncated,
        )
