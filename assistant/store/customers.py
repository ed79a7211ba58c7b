"""Customers: profiles, their events (orders, deliveries, tickets...), and what a turn's history reads about them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assistant.models import CustomerEvent, CustomerProfile, PastConversation, utcnow
from assistant.store import conversations, convert
from assistant.store.db import Repository
from assistant.store.tables import CustomerEventRow, CustomerRow


class Customers(Repository):
    def upsert(self, profile: CustomerProfile) -> tuple[CustomerProfile, bool]:
        """Create or replace a profile; returns it and whether it was new."""
        with self.db.session() as s:
            row = s.get(CustomerRow, profile.id)
            created = row is None
            if row is None:
                row = CustomerRow(id=profile.id)
                s.add(row)
            row.name, row.email, row.phone, row.locale = profile.name, profile.email, profile.phone, profile.locale
            row.created_at = profile.created_at or row.created_at or utcnow()
            row.attributes = dict(profile.attributes)
            row.updated_at = utcnow()
            s.flush()
            return convert.customer(row), created

    def get(self, customer_id: str) -> CustomerProfile | None:
        with self.db.session() as s:
            row = s.get(CustomerRow, customer_id)
            return convert.customer(row) if row else None

    def add_event(self, ev: CustomerEvent) -> CustomerEvent:
        with self.db.session() as s:
            row = CustomerEventRow(customer_id=ev.customer_id, type=ev.type, at=ev.at, data=ev.data)
            s.add(row)
            s.flush()
            return ev.model_copy(update={"id": row.id})

    def events(self, customer_id: str, limit: int = 50) -> list[CustomerEvent]:
        with self.db.session() as s:
            return _select_events(s, customer_id, limit)

    def count(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(CustomerRow)) or 0)

    def context(
        self, customer_id: str, exclude_id: str | None, max_events: int, max_past: int
    ) -> tuple[CustomerProfile | None, list[CustomerEvent], list[PastConversation]]:
        """What a turn's history needs, in one transaction: the profile (None: unknown customer, and nothing
        else is read), the latest `max_events` events and the latest `max_past` other conversations."""
        with self.db.session() as s:
            row = s.get(CustomerRow, customer_id)
            if row is None:
                return None, [], []
            return (
                convert.customer(row),
                _select_events(s, customer_id, max_events),
                conversations.select_past(s, customer_id, exclude_id, max_past),
            )


def _select_events(s: Session, customer_id: str, limit: int) -> list[CustomerEvent]:
    rows = s.scalars(
        select(CustomerEventRow)
        .where(CustomerEventRow.customer_id == customer_id)
        .order_by(CustomerEventRow.at.desc(), CustomerEventRow.id.desc())
        .limit(limit)
    )
    return [convert.event(r) for r in rows]
