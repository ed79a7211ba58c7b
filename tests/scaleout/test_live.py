"""The live bus (assistant/store/live.py): every write that adds a message or changes a conversation's status
wakes that conversation's streams once it commits, and nothing else does.

On PostgreSQL the writer and the listener are two `Store`s (two engines, two buses, two listener connections),
as two worker processes would be: the wake-up crosses through LISTEN/NOTIFY. On SQLite it is one store's
in-process bus. The waits below are bounds for a failure, not timings: a wake-up that works arrives in
milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from assistant.models import HandoffSummary
from assistant.store.live import LocalBus, PostgresBus, Subscription
from assistant.store.messages import insert_message
from assistant.store.repo import Store
from tests.api.test_agent_flow import AGENT, EventReader, claim, handed_off, reply
from tests.conftest import make_settings, widget_headers

WOKEN_WITHIN_S = 10.0  # a wake-up that is coming comes in milliseconds; this only bounds a failing test
QUIET_S = 1.0  # long enough for a NOTIFY that was sent to arrive from a loopback server


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[Store, Store]]:
    """(writer, reader): two stores on PostgreSQL, as two processes; one on SQLite (the bus is in-process)."""
    writer = Store(database_url)
    reader = Store(database_url) if database_url.startswith("postgresql") else writer
    try:
        yield writer, reader
    finally:
        writer.close()
        if reader is not writer:
            reader.close()


async def settled(store: Store, conversation_id: str) -> Subscription:
    """A subscription whose listener is in place, with the connect-time wake-up already consumed."""
    sub = store.live.subscribe(conversation_id)
    if isinstance(store.live, PostgresBus):
        assert await asyncio.to_thread(store.live.listening.wait, WOKEN_WITHIN_S), "the listener never connected"
        await sub.wait(0.2)
    return sub


def summary() -> HandoffSummary:
    return HandoffSummary(issue="a question", customer_goal="an answer")


async def test_every_write_path_wakes_the_conversation_stream(stores: tuple[Store, Store]) -> None:
    writer, reader = stores
    assert isinstance(reader.live, PostgresBus if reader.url.startswith("postgresql") else LocalBus)
    conv = writer.create_conversation("cus_1", True)
    other = writer.create_conversation("cus_2", True)
    handoff_ids: list[str] = []

    def hand_off() -> None:
        handoff_ids.append(writer.create_handoff(conv.id, "customer_request", None, summary()).id)

    writes: list[tuple[str, Callable[[], Any]]] = [
        ("add_message", lambda: writer.add_message(conv.id, "customer", "hello")),
        ("begin_turn", lambda: writer.begin_turn(conv.id, "where is my order?")),
        ("create_handoff", hand_off),
        ("claim_handoff", lambda: writer.claim_handoff(handoff_ids[-1], "agent_sam")),
        ("add_agent_message", lambda: writer.add_agent_message(conv.id, "Sam here")),
        ("resolve_handoff", lambda: writer.resolve_handoff(handoff_ids[-1], True)),
        ("transition", lambda: writer.transition(conv.id, "bot")),
        ("set_status", lambda: writer.set_status(conv.id, "waiting_for_agent")),
        ("abandon_waiting", lambda: writer.abandon_waiting(conv.id, "gone")),
    ]
    with await settled(reader, conv.id) as sub:
        for name, write in writes:
            t0 = time.monotonic()
            await asyncio.to_thread(write)
            t1 = time.monotonic()
            assert await sub.wait(WOKEN_WITHIN_S), f"{name} did not wake the stream"
            print(f"{name}: write {1000 * (t1 - t0):.1f} ms, woken {1000 * (time.monotonic() - t1):.1f} ms later")
        # reads, another conversation's writes and a no-op status change wake nothing
        await asyncio.to_thread(writer.list_messages, conv.id)
        await asyncio.to_thread(writer.add_message, other.id, "customer", "not yours")
        await asyncio.to_thread(writer.set_status, conv.id, "abandoned")
        assert not await sub.wait(QUIET_S)
    assert reader.live.subscribers() == 0  # closed with the block


async def test_a_wake_up_is_kept_until_the_next_wait() -> None:
    """Woken while the stream was busy (reading, or sending a ping): the next wait returns at once, even with no
    time left to wait."""
    bus = LocalBus()
    with bus.subscribe("conv_1") as sub, bus.subscribe("conv_2") as other:
        bus.wake(["conv_1"])
        await asyncio.sleep(0)  # the wake-up crosses into the loop as a callback
        assert await sub.wait(0)
        assert not await sub.wait(0)
        assert not await other.wait(0)
        assert bus.subscribers() == 2
    assert bus.subscribers() == 0


async def test_a_rolled_back_write_wakes_nobody(stores: tuple[Store, Store]) -> None:
    """The notification belongs to the transaction: it goes out with the commit, or not at all."""
    writer, reader = stores
    conv = writer.create_conversation(None, False)
    with await settled(reader, conv.id) as sub:

        def write_then_fail() -> None:
            with writer.session() as s:
                insert_message(s, conv.id, "customer", "never stored", None, None, None)
                raise RuntimeError("the rest of the transaction failed")

        with pytest.raises(RuntimeError):
            await asyncio.to_thread(write_then_fail)
        assert not await sub.wait(QUIET_S)
        assert writer.list_messages(conv.id) == []
        await asyncio.to_thread(writer.add_message, conv.id, "customer", "stored")
        assert await sub.wait(WOKEN_WITHIN_S)


async def test_the_listener_reconnects_after_its_connection_drops(
    pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    writer, reader = Store(pg_database), Store(pg_database)
    try:
        bus = reader.live
        assert isinstance(bus, PostgresBus)
        conv = writer.create_conversation(None, False)
        with await settled(reader, conv.id) as sub:
            assert bus.backend_pid is not None and bus.connections == 1
            with caplog.at_level(logging.WARNING, logger="assistant.store.live"), writer.session() as s:
                from sqlalchemy import text

                bus.listening.clear()
                s.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": bus.backend_pid})
            # the listener notices, says so, connects again and wakes every stream (they read the database)
            assert await sub.wait(WOKEN_WITHIN_S + 5), "the streams were not woken after the reconnection"
            assert await asyncio.to_thread(bus.listening.wait, WOKEN_WITHIN_S)
            assert bus.connections == 2
            assert "listener connection failed" in caplog.text
            await sub.wait(0.2)
            await asyncio.to_thread(writer.add_message, conv.id, "customer", "after the reconnection")
            assert await sub.wait(WOKEN_WITHIN_S)
    finally:
        writer.close()
        reader.close()


def test_an_agent_reply_reaches_the_stream_without_polling(sample_data_dir: Path) -> None:
    """Through the app: with the safety-net poll at 60 s and the stream cut at 20 s, the agent's reply can only
    reach the customer's stream in time by the bus waking it."""
    settings = make_settings(sample_data_dir, live={"poll_s": 60})
    with TestClient(create_app(settings)) as client:
        cid, handoff = handed_off(client)
        claim(client, handoff["id"])
        url = f"/v1/conversations/{cid}/events"
        with client.stream("GET", url, params={"max_s": 20}, headers=widget_headers()) as stream:
            events = EventReader(stream, deadline_s=20)
            events.until(lambda e: e[0] == "status" and e[1]["status"] == "with_agent")
            sent = reply(client, cid, "Hello, Sam here.")
            _, data, _ = events.until(lambda e: e[0] == "message" and e[1]["role"] == "agent")
            assert data["id"] == sent["id"]
        # and the agent's console stream, the other way
        with client.stream("GET", url, params={"max_s": 20, "after": sent["seq"]}, headers=AGENT) as stream:
            events = EventReader(stream, deadline_s=20)
            events.until(lambda e: e[0] == "status")
            r = client.post(f"/v1/conversations/{cid}/messages", json={"text": "thanks Sam"}, headers=widget_headers())
            assert r.status_code == 200, r.text
            _, data, _ = events.until(lambda e: e[0] == "message" and e[1]["role"] == "customer")
            assert data["text"] == "thanks Sam"
