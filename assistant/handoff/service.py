"""Handing a conversation to a person: open the handoff (once), with its summary (`assistant.handoff.summary`),
and tell the customer a person is coming."""

from __future__ import annotations

import statistics
from datetime import timedelta

from assistant.handoff.summary import HANDOFF_TEXT, Summarizer
from assistant.models import CustomerContext, Handoff, HandoffSummary, QueueInfo, utcnow
from assistant.safety.redact import mask_payment_data, mask_payment_data_in
from assistant.settings import HandoffSettings
from assistant.store.repo import Store

WAIT_WINDOW = timedelta(days=1)
WAIT_SAMPLE = 200


class HandoffService:
    def __init__(self, store: Store, summarizer: Summarizer | None = None) -> None:
        self.store = store
        self.summarizer = summarizer or Summarizer(None, HandoffSettings())

    def hand_off(
        self,
        conversation_id: str,
        reason: str,
        confidence: float | None,
        context: CustomerContext,
        customer_note: str | None = None,
    ) -> tuple[Handoff, bool]:
        """Open a handoff (or return the one already open); returns (handoff, created). `reason` is a label
        (`assistant.models.HANDOFF_REASONS`); `customer_note` what the customer wrote asking for a person."""
        existing = self.store.open_handoff(conversation_id)
        if existing is not None:
            return existing, False
        messages = self.store.list_messages(conversation_id)
        summary, source = self.summarizer.summarize(messages, context, reason, conversation_id)
        # The messages are stored masked; the customer's context (their events) and note may still hold payment data.
        summary = HandoffSummary.model_validate(mask_payment_data_in(summary.model_dump()))
        note = mask_payment_data(customer_note) if customer_note else None
        handoff = self.store.create_handoff(conversation_id, reason, confidence, summary, source, note)
        self.store.add_message(conversation_id, "assistant", HANDOFF_TEXT)
        return handoff, True

    def queue_info(self, handoff: Handoff | None) -> QueueInfo:
        """Position among the waiting handoffs (oldest first) and the recent typical wait: two small queries."""
        if handoff is None or handoff.status != "waiting":
            return QueueInfo()
        position = self.store.queue_position(handoff)
        recent = self.store.query_facts(since=utcnow() - WAIT_WINDOW, limit=WAIT_SAMPLE)
        waits = [f.agent_wait_s for f in recent if f.agent_wait_s is not None and f.status != "waiting_for_agent"]
        return QueueInfo(queue_position=position, expected_wait_s=round(statistics.median(waits), 1) if waits else None)
