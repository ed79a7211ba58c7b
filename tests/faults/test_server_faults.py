"""The scale-out backends misbehave (servers mode only: `CXA_TEST_BACKENDS=servers`). The faults of the embedded
backends (SQLite's file lock, a corrupt Chroma directory) have these equivalents for the servers:

- PostgreSQL: a row held by another transaction is waited out briefly (`lock_timeout` =
  `CXA_DATABASE_BUSY_TIMEOUT_S`), and held longer is a clean 503 with nothing half-written; a database that
  refuses connections (and cuts the open ones) is a 503 on every route, not ready, and everything works again
  when it is back, with nothing the customer wrote lost.
- Chroma server: down at start, the API starts not ready, turns go to a person, knowledge routes are 503, and
  it recovers when the server comes up; going down while serving, the same, and back when it is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from api.app import create_app
from assistant.settings import Settings
from tests.api.support import TWO_FA_QUESTION, assert_error, assert_turn_shape, messages_of, parse_sse, say, start
from tests.backends import chroma_server, free_port
from tests.conftest import ADMIN_TOKEN, AGENT_TOKEN, SERVERS, bearer, make_settings, server_backends, widget_headers

pytestmark = pytest.mark.skipif(not SERVERS, reason="servers mode only (CXA_TEST_BACKENDS=servers)")

BUSY_TIMEOUT_S = 1.0
GIFT_CARDS = {
    "source_id": "billing/gift-cards",
    "title": "Gift cards",
    "text": "# Gift cards\n\nEnter the 16-digit gift card code at checkout to redeem it. "
    "You can check your gift card balance in your account under Wallet.",
}
GIFT_QUESTION = "How do I redeem a gift card code at checkout?"


def post(client: TestClient, cid: str, text_: str, sse: bool) -> Any:
    headers = widget_headers(**({"Accept": "text/event-stream"} if sse else {}))
    return client.post(f"/v1/conversations/{cid}/messages", json={"text": text_}, headers=headers)


# -- PostgreSQL ---------------------------------------------------------------------------------------


@pytest.fixture
def pg(sample_data_dir: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(sample_data_dir, database_busy_timeout_s=BUSY_TIMEOUT_S)
    with TestClient(create_app(settings)) as c:
        yield c, settings


def hold_row(database_url: str, conversation_id: str, seconds: float) -> threading.Thread:
    """Another connection locks the conversation's row (`SELECT ... FOR UPDATE`) for `seconds`, as a stuck
    transaction of another worker would (started before this returns)."""
    locked = threading.Event()

    def run() -> None:
        engine = create_engine(database_url, poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(text("SELECT id FROM conversations WHERE id = :id FOR UPDATE"), {"id": conversation_id})
            locked.set()
            time.sleep(seconds)
            conn.rollback()
        engine.dispose()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert locked.wait(10)
    return t


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
def test_a_briefly_locked_row_is_waited_out(pg: tuple[TestClient, Settings], sse: bool) -> None:
    client, settings = pg
    cid = start(client)["id"]
    holder = hold_row(settings.sqlalchemy_url, cid, BUSY_TIMEOUT_S / 3)
    r = post(client, cid, TWO_FA_QUESTION, sse)
    holder.join()
    assert r.status_code == 200, r.text
    assert [m["role"] for m in messages_of(client, cid)] == ["customer", "assistant"]


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
def test_a_row_locked_too_long_is_a_clean_503_and_nothing_half_written(
    pg: tuple[TestClient, Settings], sse: bool
) -> None:
    client, settings = pg
    cid = start(client)["id"]
    holder = hold_row(settings.sqlalchemy_url, cid, BUSY_TIMEOUT_S * 2.5)
    t0 = time.monotonic()
    r = post(client, cid, TWO_FA_QUESTION, sse)
    waited = time.monotonic() - t0
    holder.join()
    assert waited < BUSY_TIMEOUT_S * 2.5  # lock_timeout, not the other transaction, ended the wait
    body = assert_error(r, 503, "store_unavailable")
    assert "retry shortly" in body["error"]["message"] and "LockNotAvailable" not in r.text
    assert r.headers.get("retry-after")
    services = client.app.state.services  # type: ignore[attr-defined]
    assert messages_of(client, cid) == [] and services.store.list_turns(cid) == []
    r = post(client, cid, TWO_FA_QUESTION, sse)  # the lock is gone: the customer's retry goes through, once
    assert r.status_code == 200, r.text
    assert [m["role"] for m in messages_of(client, cid)] == ["customer", "assistant"]
    assert services.check_consistency(fix=False) == []


def test_a_database_refusing_connections_is_503_everywhere_and_the_app_recovers(
    pg: tuple[TestClient, Settings],
) -> None:
    """The database stops accepting connections and its open ones are cut (a restart, a failover): every route
    is 503 `store_unavailable` with the usual message, /readyz says why, /healthz stays up; when it accepts
    connections again the pool reconnects by itself and nothing written before is lost."""
    client, settings = pg
    cid = start(client)["id"]
    assert say(client, cid, TWO_FA_QUESTION)["reply"] is not None
    name = make_url(settings.sqlalchemy_url).database
    admin = server_backends()
    admin.admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    admin.admin_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n", n=name)
    try:
        for sse in (False, True):
            body = assert_error(post(client, cid, "hello?", sse), 503, "store_unavailable")
            assert body["error"]["message"] == "the database is unavailable (locked or unreachable); retry shortly"
        assert_error(client.post("/v1/conversations", json={}, headers=widget_headers()), 503, "store_unavailable")
        assert_error(client.get(f"/v1/conversations/{cid}", headers=widget_headers()), 503, "store_unavailable")
        assert_error(client.get("/v1/handoffs?status=waiting", headers=bearer(AGENT_TOKEN)), 503)
        ready = assert_error(client.get("/readyz"), 503)
        assert ready["checks"]["database"]["ok"] is False and ready["checks"]["index"]["ok"] is True
        assert client.get("/healthz").status_code == 200
    finally:
        admin.admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert client.get("/readyz").status_code == 200
    assert [m["role"] for m in messages_of(client, cid)] == ["customer", "assistant"]  # kept, nothing added
    r = post(client, cid, TWO_FA_QUESTION, False)
    assert r.status_code == 200, r.text
    assert [m["role"] for m in messages_of(client, cid)] == ["customer", "assistant"] * 2
    services = client.app.state.services  # type: ignore[attr-defined]
    assert services.check_consistency(fix=False) == []


# -- the Chroma server --------------------------------------------------------------------------------


def assert_index_down(client: TestClient) -> None:
    """Not ready (the index check says why), alive; a turn goes to a person with the message kept, streamed
    too; knowledge routes are 503 `index_unavailable`."""
    assert client.get("/healthz").status_code == 200
    ready = assert_error(client.get("/readyz"), 503)
    assert ready["checks"]["index"]["ok"] is False and ready["checks"]["database"]["ok"] is True
    assert "cannot be reached" in ready["checks"]["index"]["detail"]
    cid = start(client)["id"]
    turn = say(client, cid, GIFT_QUESTION)
    assert_turn_shape(turn)
    assert turn["reply"] is None and turn["handoff"]["reason"] == "error" and turn["status"] == "waiting_for_agent"
    assert messages_of(client, cid)[0]["text"] == GIFT_QUESTION
    cid = start(client)["id"]
    r = post(client, cid, GIFT_QUESTION, True)
    assert r.status_code == 200
    assert [e for e, _ in parse_sse(r.text)] == ["handoff", "done"]
    admin = bearer(ADMIN_TOKEN)
    assert_error(client.get("/v1/knowledge/search", params={"q": "gift card"}, headers=admin), 503, "index_unavailable")
    up = client.post("/v1/knowledge/documents", json=GIFT_CARDS, headers=admin)
    assert_error(up, 503, "index_unavailable")


def assert_answers_gift_cards(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200
    turn = say(client, start(client)["id"], GIFT_QUESTION)
    assert turn["reply"] is not None and turn["handoff"] is None, turn
    assert turn["reply"]["citations"][0]["source_id"] == GIFT_CARDS["source_id"]


def test_a_chroma_server_down_at_start_degrades_then_recovers(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(tmp_path / "data", chroma_url=f"http://127.0.0.1:{port}")
    with TestClient(create_app(settings)) as client:
        assert_index_down(client)
        with chroma_server(tmp_path / "chroma", port=port):
            up = client.post("/v1/knowledge/documents", json=GIFT_CARDS, headers=bearer(ADMIN_TOKEN))
            assert up.status_code == 201, up.text
            assert_answers_gift_cards(client)


def test_a_chroma_server_going_down_while_serving_degrades_and_recovers(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(tmp_path / "data", chroma_url=f"http://127.0.0.1:{port}")
    server = ExitStack()
    server.enter_context(chroma_server(tmp_path / "chroma", port=port))
    try:
        with TestClient(create_app(settings)) as client:
            up = client.post("/v1/knowledge/documents", json=GIFT_CARDS, headers=bearer(ADMIN_TOKEN))
            assert up.status_code == 201, up.text
            assert_answers_gift_cards(client)
            server.close()  # the Chroma server stops under the running app
            assert_index_down(client)
            server.enter_context(chroma_server(tmp_path / "chroma", port=port))
            assert_answers_gift_cards(client)  # back, with what was written before
    finally:
        server.close()
