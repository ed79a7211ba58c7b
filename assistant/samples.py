"""Loading customers (profiles, events, earlier conversations) from the JSON format of
`assistant/samples/customers.json`. Idempotent: a customer already in the store keeps their data."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from assistant.models import ConversationStatus, CustomerEvent, CustomerProfile, Role
from assistant.store.repo import Store

SAMPLE_CUSTOMERS = Path(__file__).parent / "samples" / "customers.json"


class _SampleMessage(BaseModel):
    role: Role
    text: str


class _SampleConversation(BaseModel):
    started_at: datetime
    channel: str = "web"
    topic: str | None = None
    outcome: str | None = None
    summary: str | None = None
    messages: list[_SampleMessage] = Field(default_factory=list)


class _SampleEvent(BaseModel):
    type: str
    at: datetime
    data: dict[str, object] = Field(default_factory=dict)


class SampleCustomer(CustomerProfile):
    events: list[_SampleEvent] = Field(default_factory=list)
    conversations: list[_SampleConversation] = Field(default_factory=list)


class LoadReport(BaseModel):
    customers_added: int = 0
    customers_existing: int = 0
    events: int = 0
    conversations: int = 0


def _rows(path: Path) -> list[dict[str, object]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    rows: list[dict[str, object]] = raw["customers"] if isinstance(raw, dict) else raw
    return rows


def sample_profiles(path: Path = SAMPLE_CUSTOMERS) -> list[CustomerProfile]:
    """The sample customers' profiles (for the demo page's customer picker)."""
    fields = set(CustomerProfile.model_fields)
    return [CustomerProfile.model_validate({k: v for k, v in row.items() if k in fields}) for row in _rows(path)]


def load_customers(store: Store, path: Path = SAMPLE_CUSTOMERS) -> LoadReport:
    rows = _rows(path)
    report = LoadReport()
    for row in rows:
        c = SampleCustomer.model_validate(row)
        if store.get_customer(c.id) is not None:
            report.customers_existing += 1
            continue
        store.upsert_customer(CustomerProfile(**c.model_dump(include=set(CustomerProfile.model_fields))))
        report.customers_added += 1
        for e in c.events:
            store.add_event(CustomerEvent(customer_id=c.id, type=e.type, at=e.at, data=dict(e.data)))
            report.events += 1
        for conv in c.conversations:
            status: ConversationStatus = "abandoned" if conv.outcome == "abandoned" else "resolved"
            made = store.create_conversation(
                c.id,
                True,
                conv.channel,
                {"imported": True},
                status=status,
                created_at=conv.started_at,
                topic=conv.topic,
                outcome=conv.outcome,
                summary=conv.summary,
            )
            for m in conv.messages:
                store.add_message(made.id, m.role, m.text, created_at=conv.started_at)
            report.conversations += 1
    return report
