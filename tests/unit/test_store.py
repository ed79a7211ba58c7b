"""The store answers the same on SQLite and on PostgreSQL (servers mode): what the two databases do
differently unless told (NULL ordering, time zones, JSON) is pinned here."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from assistant.models import ConversationFacts, CustomerEvent, CustomerProfile
from assistant.store.repo import Store
from tests.conftest import database_url

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(database_url(tmp_path))
    yield s
    s.close()


def _facts(store: Store, effort: float, csat: int | None, minutes: int) -> str:
    started = T0 + timedelta(minutes=minutes)
    cid = store.create_conversation(None, False, created_at=started).id
    facts = ConversationFacts(
        conversation_id=cid,
        customer_id=None,
        started_at=started,
        last_activity_at=started,
        status="resolved",
        outcome="resolved_by_bot_confirmed",
        effort=effort,
        csat=csat,
    )
    store.record_signals(cid, [], lambda _conv, _events: facts)
    return cid


def test_worst_first_puts_unrated_after_the_worst_rated(store: Store) -> None:
    hardest = _facts(store, 6.0, None, 0)
    unrated = _facts(store, 3.0, None, 1)
    rated_1 = _facts(store, 3.0, 1, 2)
    rated_4 = _facts(store, 3.0, 4, 3)
    assert [f.conversation_id for f in store.query_facts(order="worst")] == [hardest, rated_1, rated_4, unrated]


def test_times_in_any_zone_are_stored_and_compared_as_the_same_instant(store: Store) -> None:
    """A time with an offset (a customer event's `at` from a client, `cxa export --since` with one) is the same
    instant on both databases: SQLite keeps no offset, so it is stored as UTC, never as its wall-clock time."""
    paris = ZoneInfo("Europe/Paris")
    store.upsert_customer(CustomerProfile(id="c1"))
    store.add_event(CustomerEvent(customer_id="c1", type="order_placed", at=T0.astimezone(paris), data={}))
    [event] = store.list_events("c1")
    assert event.at == T0 and event.at.utcoffset() == timedelta(0)
    early, late = _facts(store, 2.0, None, 0), _facts(store, 2.0, None, 60)
    since = (T0 + timedelta(minutes=30)).astimezone(paris)
    assert [f.conversation_id for f in store.query_facts(since=since)] == [late]
    assert [f.conversation_id for f in store.query_facts(until=since)] == [early]
    assert store.get_conversation(early).created_at == T0


def test_json_round_trips_unicode_and_nesting(store: Store) -> None:
    attributes = {"plan": "plus_annual", "name_local": "Zoë Ødegård 東京", "tags": ["vip", {"since": 2021}]}
    profile, created = store.upsert_customer(CustomerProfile(id="c-u1", name="Zoë", attributes=attributes))
    assert created and store.get_customer("c-u1").attributes == attributes  # type: ignore[union-attr]
    data = {"order_id": "LH-1", "items": [{"name": "Ökologisch Kerze", "qty": 2}], "note": None}
    store.add_event(CustomerEvent(customer_id="c-u1", type="order_placed", at=T0, data=data))
    [event] = store.list_events("c-u1")
    assert event.data == data and event.at == T0


def test_nul_characters_are_dropped_on_every_database(store: Store) -> None:
    """PostgreSQL refuses NUL in text (it was a 500 on a customer profile the fuzzer sent); SQLite keeps it. Both
    now store the text without it."""
    profile, _ = store.upsert_customer(CustomerProfile(id="c1", name="Ada\x00 Lovelace", email="a@x.org\x00"))
    assert store.get_customer("c1").name == "Ada Lovelace"  # type: ignore[union-attr]
    conv = store.create_conversation("c1", True, metadata={"page": "/help\x00"})
    store.add_message(conv.id, "customer", "hello\x00 there")
    [msg] = store.list_messages(conv.id)
    assert msg.text == "hello there"
    # JSON too: PostgreSQL stores a \\u0000 escape but refuses it in any later query on the column (->>)
    assert store.get_conversation(conv.id).metadata == {"page": "/help"}


def test_a_server_database_pool_is_sized_by_the_settings() -> None:
    """`CXA_DATABASE_POOL_SIZE` / `CXA_DATABASE_MAX_OVERFLOW` size each worker's pool (nothing connects here)."""
    from assistant.settings import Settings
    from assistant.store.repo import make_engine

    s = Settings(database_pool_size=3, database_max_overflow=4)
    engine = make_engine("postgresql+psycopg://cxa@127.0.0.1:1/cxa", 1.0, s.database_pool_size, s.database_max_overflow)
    try:
        assert engine.pool.size() == 3
        assert engine.pool._max_overflow == 4  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_a_periodic_job_runs_in_one_process_at_a_time(store: Store, tmp_path: Path) -> None:
    """`try_exclusive`: a second process on the same database (here a second Store: its own connections and
    lock file handle) is told to skip while the first holds the lock, and gets it once released."""
    other = Store(database_url(tmp_path))
    try:
        with store.try_exclusive("background-scoring") as first:
            assert first is True
            with other.try_exclusive("background-scoring") as second:
                assert second is False
            with other.try_exclusive("another-job") as unrelated:
                assert unrelated is True
        with other.try_exclusive("background-scoring") as after:
            assert after is True
    finally:
        other.close()
