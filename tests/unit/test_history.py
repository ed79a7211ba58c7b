"""History assembly on a real store (SQLite; PostgreSQL in servers mode): what the model is told about a
customer, within budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from assistant.models import CustomerEvent, CustomerProfile
from assistant.store.repo import Store
from assistant.turn.history import HistoryBuilder, estimate_tokens
from tests.conftest import database_url


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(database_url(tmp_path))
    s.upsert_customer(CustomerProfile(id="c1", name="Ada Lovelace", attributes={"plan": "plus_annual"}))
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(30):  # thirty orders, one a day; the oldest is the sofa
        item = "Oakley sofa" if i == 0 else f"candle {i}"
        s.add_event(
            CustomerEvent(
                customer_id="c1",
                type="order_placed",
                at=base + timedelta(days=i),
                data={"order_id": f"LH-{1000 + i}", "items": [{"name": item, "qty": 1}]},
            )
        )
    past = s.create_conversation(
        "c1",
        True,
        "email",
        created_at=base - timedelta(days=40),
        status="resolved",
        topic="returns",
        outcome="resolved_by_agent",
        summary="Returned a lamp with a scratch.",
    )
    s.add_message(past.id, "customer", "My lamp is scratched")
    return s


def test_anonymous_customers_get_no_history(store: Store) -> None:
    conv = store.create_conversation(None, False)
    ctx = HistoryBuilder(store).build(conv, "where is my sofa")
    assert ctx.profile is None and ctx.events == [] and "not signed in" in ctx.text


def test_verified_history_has_profile_events_and_past_conversations(store: Store) -> None:
    conv = store.create_conversation("c1", True)
    ctx = HistoryBuilder(store, token_budget=2000, max_events=50).build(conv, "hello")
    assert ctx.profile is not None and "Ada Lovelace" in ctx.text and "plan: plus_annual" in ctx.text
    assert ctx.events[0].at > ctx.events[-1].at, "newest first"
    assert ctx.past_conversations[0].summary == "Returned a lamp with a scratch."
    assert "resolved_by_agent" in ctx.text
    assert conv.id not in {p.id for p in ctx.past_conversations}, "the current conversation is not 'earlier'"


def test_the_budget_is_respected_and_relevant_events_win(store: Store) -> None:
    conv = store.create_conversation("c1", True)
    ctx = HistoryBuilder(store, token_budget=120, max_events=50).build(conv, "where is my Oakley sofa?")
    assert ctx.tokens <= 120 and ctx.truncated
    assert estimate_tokens(ctx.text) == ctx.tokens
    assert "Oakley sofa" in ctx.text, "the oldest event is kept because the question names it"
    assert len(ctx.events) < 30


def test_an_unknown_customer_gets_a_clear_note(store: Store) -> None:
    conv = store.create_conversation("nobody", True)
    ctx = HistoryBuilder(store).build(conv, "hi")
    assert ctx.profile is None and "No account details" in ctx.text


def test_an_earlier_conversation_without_summary_is_named_by_its_first_customer_message(store: Store) -> None:
    """The one-query lookup of first messages (several unsummarised conversations at once)."""
    for n, texts in enumerate([["agent note first?", "Where is my candle 3?"], ["My sofa leg broke", "thanks"]]):
        conv = store.create_conversation("c1", True, created_at=datetime(2026, 12, 1 + n, tzinfo=UTC))
        store.add_message(conv.id, "agent", "Hello from the team")  # not the customer: never the summary
        for t in texts:
            store.add_message(conv.id, "customer", t)
    empty = store.create_conversation("c1", True, created_at=datetime(2026, 12, 5, tzinfo=UTC))
    current = store.create_conversation("c1", True)
    past = store.past_conversations("c1", exclude_id=current.id, limit=5)
    summaries = [p.summary for p in past]
    assert summaries[:3] == ["(no messages)", "Customer wrote: My sofa leg broke", "Customer wrote: agent note first?"]
    assert past[0].id == empty.id
    assert summaries[3] == "Returned a lamp with a scratch."


def test_customer_context_is_the_three_reads_in_one(store: Store) -> None:
    conv = store.create_conversation("c1", True)
    profile, events, past = store.customer_context("c1", conv.id, max_events=7, max_past=3)
    assert profile == store.get_customer("c1")
    assert events == store.list_events("c1", limit=7)
    assert past == store.past_conversations("c1", exclude_id=conv.id, limit=3)
    assert store.customer_context("nobody", None, 5, 5) == (None, [], [])
