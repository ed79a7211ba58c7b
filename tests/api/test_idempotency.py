"""Retries are safe (issue 19, finding 10): `Idempotency-Key` on the customer's POSTs. The same key within 24 h
returns the first response and stores nothing new, streamed or not; two submits at once store once; the same key
for another request is refused; a failed request leaves no key behind; an expired key starts afresh."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from assistant.models import utcnow
from assistant.store.tables import ConversationRow, FeedbackRow, HandoffRow, IdempotencyKeyRow, MessageRow
from tests.api.support import TWO_FA_QUESTION, app_client, assert_error, parse_sse, start
from tests.conftest import CX_TOKEN, bearer, customer_hash
from tests.conftest import widget_headers as widget
from tests.fakes import FakeChatModel


@pytest.fixture
def client(sample_data_dir: Path) -> Iterator[TestClient]:
    with app_client(sample_data_dir) as c:
        yield c


def _count(client: TestClient, table: type, **where: object) -> int:
    store = client.app.state.services.store  # type: ignore[attr-defined]
    with store.session() as s:
        query = select(func.count()).select_from(table)
        for name, value in where.items():
            query = query.where(getattr(table, name) == value)
        return int(s.scalar(query) or 0)


def test_creating_a_conversation_twice_with_one_key_creates_one(client: TestClient) -> None:
    body = {"customer_id": "cus_1001", "customer_hash": customer_hash("cus_1001")}
    before = _count(client, ConversationRow)
    first = client.post("/v1/conversations", json=body, headers=widget(**{"Idempotency-Key": "k-create-1"}))
    again = client.post("/v1/conversations", json=body, headers=widget(**{"Idempotency-Key": "k-create-1"}))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()  # the token too: the retry can go on with the conversation
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert _count(client, ConversationRow) == before + 1
    # the stored response keeps no credential
    with client.app.state.services.store.session() as s:  # type: ignore[attr-defined]
        row = s.get(IdempotencyKeyRow, ("conversations", "k-create-1"))
        assert row is not None and "token" not in (row.body or {})


def test_a_message_sent_twice_with_one_key_is_stored_once(client: TestClient) -> None:
    conv = start(client)
    headers = widget(**{"X-Conversation-Token": conv["token"], "Idempotency-Key": "k-msg-1"})
    url = f"/v1/conversations/{conv['id']}/messages"
    first = client.post(url, json={"text": TWO_FA_QUESTION}, headers=headers)
    again = client.post(url, json={"text": TWO_FA_QUESTION}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert _count(client, MessageRow, conversation_id=conv["id"], role="customer") == 1
    # a retry that asks for the stream gets the same turn as events
    streamed = client.post(url, json={"text": TWO_FA_QUESTION}, headers={**headers, "Accept": "text/event-stream"})
    events = parse_sse(streamed.text)
    assert events[-1] == ("done", first.json())
    assert "".join(d["text"] for e, d in events if e == "token") == first.json()["reply"]["text"]
    assert _count(client, MessageRow, conversation_id=conv["id"], role="customer") == 1
    # another message needs another key
    other = client.post(url, json={"text": "and for the app?"}, headers=headers)
    assert_error(other, 422, "idempotency_key_reused")
    assert _count(client, MessageRow, conversation_id=conv["id"], role="customer") == 1


def test_a_streamed_message_is_remembered_too(client: TestClient) -> None:
    conv = start(client)
    headers = widget(**{"Idempotency-Key": "k-sse-1", "Accept": "text/event-stream"})
    url = f"/v1/conversations/{conv['id']}/messages"
    first = parse_sse(client.post(url, json={"text": TWO_FA_QUESTION}, headers=headers).text)
    again = client.post(url, json={"text": TWO_FA_QUESTION}, headers={**headers, "Accept": "application/json"})
    assert again.status_code == 200 and again.json() == first[-1][1]
    assert _count(client, MessageRow, conversation_id=conv["id"], role="customer") == 1


def test_two_submits_at_once_store_once(sample_data_dir: Path) -> None:
    slow = FakeChatModel(reply="You can turn it on in Settings > Security.", token_delay_s=0.15)
    with app_client(sample_data_dir, chat_model=slow) as client:
        conv = start(client)
        headers = widget(**{"Idempotency-Key": "k-double"})
        url = f"/v1/conversations/{conv['id']}/messages"
        with ThreadPoolExecutor(2) as pool:
            sent = list(pool.map(lambda _: client.post(url, json={"text": TWO_FA_QUESTION}, headers=headers), [1, 2]))
        assert [r.status_code for r in sent] == [200, 200]
        assert sent[0].json()["message_id"] == sent[1].json()["message_id"]
        assert _count(client, MessageRow, conversation_id=conv["id"], role="customer") == 1


def test_handoff_and_feedback_retries_store_nothing_new(client: TestClient) -> None:
    conv = start(client)
    cid = conv["id"]
    for _ in range(2):
        r = client.post(
            f"/v1/conversations/{cid}/handoff", json={"reason": "please"}, headers=widget(**{"Idempotency-Key": "k-ho"})
        )
        assert r.status_code == 200
    assert _count(client, HandoffRow, conversation_id=cid) == 1
    for _ in range(3):
        r = client.post(
            f"/v1/conversations/{cid}/feedback", json={"csat": 5}, headers=widget(**{"Idempotency-Key": "k-fb"})
        )
        assert r.status_code == 200 and r.json()["feedback"]["csat"] == 5
    assert _count(client, FeedbackRow, conversation_id=cid) == 1


def test_a_failed_request_leaves_no_key_and_a_bad_key_is_refused(client: TestClient) -> None:
    headers = widget(**{"Idempotency-Key": "k-404"})
    url = "/v1/conversations/conv_missing/messages"
    assert_error(client.post(url, json={"text": "hi"}, headers=headers), 404)
    assert _count(client, IdempotencyKeyRow, key="k-404") == 0
    bad = client.post("/v1/conversations", json={}, headers=widget(**{"Idempotency-Key": "x" * 201}))
    assert_error(bad, 422, "invalid_request")


def test_an_expired_key_starts_afresh_and_is_purged(client: TestClient) -> None:
    headers = widget(**{"Idempotency-Key": "k-old"})
    first = client.post("/v1/conversations", json={}, headers=headers).json()
    store = client.app.state.services.store  # type: ignore[attr-defined]
    with store.session() as s:
        s.execute(update(IdempotencyKeyRow).values(created_at=utcnow() - timedelta(hours=25)))
    again = client.post("/v1/conversations", json={}, headers=headers).json()
    assert again["id"] != first["id"]
    with store.session() as s:
        s.execute(update(IdempotencyKeyRow).values(created_at=utcnow() - timedelta(hours=25)))
    assert store.idempotency.purge() >= 1
    assert _count(client, IdempotencyKeyRow, key="k-old") == 0
    assert client.get("/v1/conversations", headers=bearer(CX_TOKEN)).status_code == 200
