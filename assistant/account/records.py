"""Customer records as the admin API writes and reads them: the profile and its events."""

from __future__ import annotations

from assistant.errors import CustomerNotFoundError
from assistant.models import CustomerEvent, CustomerProfile, CustomerRecord
from assistant.store.repo import Store

RECORD_EVENTS = 500  # the newest events the account tools fold into facts
RECORD_PAST = 5  # earlier conversations they may cite


class CustomerRecords:
    def __init__(self, store: Store, max_events: int = 50) -> None:
        self.store = store
        self.max_events = max_events

    def put_profile(self, profile: CustomerProfile) -> tuple[CustomerProfile, bool]:
        """Create or replace the profile; returns (profile, created)."""
        return self.store.upsert_customer(profile)

    def get(self, customer_id: str) -> tuple[CustomerProfile, list[CustomerEvent]]:
        """The profile and its newest events; `CustomerNotFoundError` for an unknown id."""
        profile = self.store.get_customer(customer_id)
        if profile is None:
            raise CustomerNotFoundError(customer_id)
        return profile, self.store.list_events(customer_id, limit=self.max_events)

    def add_event(self, event: CustomerEvent) -> CustomerEvent:
        """Append an event to a known customer's record; `CustomerNotFoundError` for an unknown id."""
        if self.store.get_customer(event.customer_id) is None:
            raise CustomerNotFoundError(event.customer_id)
        return self.store.add_event(event)

    def record(
        self,
        customer_id: str,
        conversation_id: str | None = None,
        max_events: int = RECORD_EVENTS,
        max_past: int = RECORD_PAST,
    ) -> CustomerRecord:
        """Everything the account tools read: the profile (None for an unknown customer), the events (newest
        first) and the earlier conversations (this one left out)."""
        profile = self.store.get_customer(customer_id)
        if profile is None:
            return None, [], []
        events = self.store.list_events(customer_id, limit=max_events)
        return profile, events, self.store.past_conversations(customer_id, conversation_id, max_past)
