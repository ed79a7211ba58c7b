"""Handing a conversation to a person: open the handoff (once), with its summary (`assistant.handoff.summary`),
and tell the customer a person is coming."""

from __future__ import annotations

import logging
import statistics
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from assistant.handoff.summary import HANDOFF_TEXT, Summarizer, extractive_summary
from assistant.models import CustomerContext, Handoff, HandoffSummary, Message, QueueInfo, utcnow
from assistant.safety.redact import mask_payment_data, mask_payment_data_in
from assistant.settings import HandoffSettings
from assistant.store.repo import Store

WAIT_WINDOW = timedelta(days=1)
WAIT_SAMPLE = 200
logger = logging.getLogger(__name__)


class HandoffService:
    """`background`: the handoff opens at once with the extractive summary and the model's summary replaces it
    when written (one at a time, on a worker thread): the customer is told a person is coming without waiting
    for a slow local model, and the agent's packet improves seconds later."""

    def __init__(self, store: Store, summarizer: Summarizer | None = None, background: bool = False) -> None:
        self.store = store
        self.summarizer = summarizer or Summarizer(None, HandoffSettings())
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="summary") if background else None

    def close(self) -> None:
        """Drop the summaries not started and wait for the one being written (bounded by the chat model's own
        deadline), so none writes to a store that has been closed (the store closes after this)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True, cancel_futures=True)

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
        if self._writer is not None:
            summary, source = extractive_summary(messages, context, reason), "extractive"
        else:
            summary, source = self.summarizer.summarize(messages, context, reason, conversation_id)
        note = mask_payment_data(customer_note) if customer_note else None
        handoff = self.store.create_handoff(
            conversation_id, reason, confidence, _masked(summary), source, note, notice=HANDOFF_TEXT
        )
        if self._writer is not None and handoff.summary_source == "extractive":
            self._writer.submit(self._write_summary, handoff.id, messages, context, reason, conversation_id)
        return handoff, True

    def _write_summary(
        self, handoff_id: str, messages: list[Message], context: CustomerContext, reason: str, conversation_id: str
    ) -> None:
        try:
            summary, source = self.summarizer.summarize(messages, context, reason, conversation_id)
            if source != "extractive":
                self.store.replace_handoff_summary(handoff_id, _masked(summary), source)
        except Exception:  # the extractive summary stays: the agent still has one
            logger.exception("background summary of handoff %s failed", handoff_id)

    def queue_info(self, handoff: Handoff | None) -> QueueInfo:
        """Position among the waiting handoffs (oldest first) and the recent typical wait: two small queries."""
        if handoff is None or handoff.status != "waiting":
            return QueueInfo()
        position = self.store.queue_position(handoff)
        recent = self.store.query_facts(since=utcnow() - WAIT_WINDOW, limit=WAIT_SAMPLE)
        waits = [f.agent_wait_s for f in recent if f.agent_wait_s is not None and f.status != "waiting_for_agent"]
        return QueueInfo(queue_position=position, expected_wait_s=round(statistics.median(waits), 1) if waits else None)


def _masked(summary: HandoffSummary) -> HandoffSummary:
    """The messages are stored masked; the customer's context (their events) may still hold payment data."""
    return HandoffSummary.model_validate(mask_payment_data_in(summary.model_dump()))
