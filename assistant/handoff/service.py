"""Handing a conversation to a person: open the handoff (once), with its summary (`assistant.handoff.summary`),
and tell the customer a person is coming."""

from __future__ import annotations

from assistant.handoff.summary import HANDOFF_TEXT, Summarizer
from assistant.models import CustomerContext, Handoff
from assistant.settings import HandoffSettings
from assistant.store.repo import Store


class HandoffService:
    def __init__(self, store: Store, summarizer: Summarizer | None = None) -> None:
        self.store = store
        self.summarizer = summarizer or Summarizer(None, HandoffSettings())

    def hand_off(
        self, conversation_id: str, reason: str, confidence: float | None, context: CustomerContext
    ) -> tuple[Handoff, bool]:
        """Open a handoff (or return the one already open); returns (handoff, created)."""
        existing = self.store.open_handoff(conversation_id)
        if existing is not None:
            return existing, False
        messages = self.store.list_messages(conversation_id)
        summary, source = self.summarizer.summarize(messages, context, reason, conversation_id)
        handoff = self.store.create_handoff(conversation_id, reason, confidence, summary, source)
        self.store.add_message(conversation_id, "assistant", HANDOFF_TEXT)
        return handoff, True
