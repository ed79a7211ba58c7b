"""Hostile input never breaks a shared surface (issue 19, findings 1 and 2).

Free-form JSON (customer events' data, profile attributes, conversation metadata, review scores) holding a lone
surrogate, NaN or a deep structure is refused with a 422 and nothing stored; data stored before the validation
existed is served with the bad parts replaced, never a 500 for the agent queue or for the customer's turns; a
stream cursor beyond any message number is refused (`?after=`) or ignored (`Last-Event-ID`), never a dead stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.models import CustomerEvent, CustomerProfile
from assistant.safety import payload
from assistant.store.repo import Store
from tests.api.support import app_client, assert_error, parse_sse, start
from tests.conftest import ADMIN_TOKEN, AGENT_TOKEN, CX_TOKEN, SERVERS, bearer, customer_hash, make_settings
from tests.conftest import widget_headers as widget

ADMIN, AGENT, CX = bearer(ADMIN_TOKEN), bearer(AGENT_TOKEN), bearer(CX_TOKEN)
JSON = {"Content-Type": "application/json"}
LONE = b'"\\udc80"'  # a lone low surrogate, as JSON escapes it
DEEP = b'{"a":' * 500 + b"1" + b"}" * 500


@pytest.fixture
def client(sample_data_dir: Path) -> Iterator[TestClient]:
    with app_client(sample_data_dir) as c:
        yield c


def _raw(client: TestClient, method: str, path: str, body: bytes, headers: dict[str, str]) -> object:
    return client.request(method, path, content=body, headers={**headers, **JSON})


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        (
            "POST",
            "/v1/customers/cus_1002/events",
            ADMIN,
            b'{"type": "ticket", "at": "2026-01-01T00:00:00Z", "data": {"note": ' + LONE + b"}}",
        ),
        ("PUT", "/v1/customers/cus_1002", ADMIN, b'{"name": "Ada", "attributes": {"plan": ' + LONE + b"}}"),
        ("PUT", "/v1/customers/cus_1002", ADMIN, b'{"name": "Ada", "attributes": {' + LONE + b': "key"}}'),
        ("PUT", "/v1/customers/cus_1002", ADMIN, b'{"name": "Ada", "attributes": ' + DEEP + b"}"),
        ("PUT", "/v1/customers/cus_1002", ADMIN, b'{"name": "Ada", "attributes": {"ltv": NaN}}'),
        ("POST", "/v1/conversations", widget(), b'{"metadata": {"page": ' + LONE + b"}}"),
        ("POST", "/v1/conversations", widget(), b'{"metadata": {"n": Infinity}}'),
        ("POST", "/v1/conversations", widget(), b'{"metadata": ' + DEEP + b"}"),
        (
            "POST",
            "/v1/conversations",
            widget(),
            b'{"metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}}',
        ),
    ],
    ids=[
        "event-data",
        "attribute-value",
        "attribute-key",
        "attributes-500-deep",
        "attribute-nan",
        "metadata",
        "metadata-infinity",
        "metadata-500-deep",
        "metadata-9-deep",
    ],
)
def test_bad_free_form_json_is_422_and_nothing_is_stored(
    client: TestClient, method: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    before = client.get("/v1/customers/cus_1002", headers=ADMIN).json()
    listed = client.get("/v1/conversations", headers=CX).json()["items"]
    r = _raw(client, method, path, body, headers)
    assert_error(r, 422, "invalid_request")  # type: ignore[arg-type]
    assert client.get("/v1/customers/cus_1002", headers=ADMIN).json() == before
    assert client.get("/v1/conversations", headers=CX).json()["items"] == listed


def test_lone_surrogates_anywhere_in_a_body_are_422(client: TestClient) -> None:
    cid = start(client)["id"]
    for path, body in [
        (f"/v1/conversations/{cid}/messages", b'{"text": "hello ' + LONE[1:-1] + b'"}'),
        (f"/v1/conversations/{cid}/feedback", b'{"csat": 4, "comment": ' + LONE + b"}"),
        (f"/v1/conversations/{cid}/handoff", b'{"reason": ' + LONE + b"}"),
    ]:
        assert_error(_raw(client, "POST", path, body, widget()), 422, "invalid_request")  # type: ignore[arg-type]
    r = _raw(client, "POST", f"/v1/conversations/{cid}/review", b'{"label": "bad", "scores": {' + LONE + b": 1}}", CX)
    assert_error(r, 422, "invalid_request")  # type: ignore[arg-type]
    assert client.get(f"/v1/conversations/{cid}", headers=widget()).json()["messages"] == []


def test_a_well_formed_body_with_astral_characters_passes(client: TestClient) -> None:
    # a surrogate *pair* is one valid character (an emoji): not refused
    r = _raw(client, "POST", "/v1/conversations", b'{"metadata": {"mood": "\\ud83d\\ude00"}}', widget())
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    assert r.json()["metadata"] == {"mood": "\U0001f600"}  # type: ignore[attr-defined]


def test_a_free_form_field_is_bounded_in_size(client: TestClient) -> None:
    big = {"name": "Ada", "attributes": {"notes": "x" * (payload.MAX_BYTES + 1)}}
    assert_error(client.put("/v1/customers/cus_1002", json=big, headers=ADMIN), 422, "invalid_request")


def _store_bad_rows(data_dir: Path) -> None:
    """What a server before this validation accepted, written straight to the store: a customer whose event data
    and attributes hold a lone surrogate, NaN and a 500-deep structure (PostgreSQL's json refuses the first two
    itself, so there only the deep one can have been stored)."""
    deep: dict[str, object] = {"leaf": 1}
    for _ in range(500):
        deep = {"a": deep}
    bad: dict[str, object] = {"deep": deep} if SERVERS else {"note": "\udc80", "ltv": float("nan"), "deep": deep}
    store = Store(make_settings(data_dir).sqlalchemy_url)
    try:
        store.upsert_customer(CustomerProfile(id="cus_bad", name="Bad Data", attributes=bad))
        store.add_event(CustomerEvent(customer_id="cus_bad", type="ticket", at=datetime.now(UTC), data=bad))
    finally:
        store.close()


def test_data_stored_before_the_validation_never_500s(sample_data_dir: Path) -> None:
    _store_bad_rows(sample_data_dir)
    with app_client(sample_data_dir) as client:
        got = client.get("/v1/customers/cus_bad", headers=ADMIN)
        assert got.status_code == 200, got.text
        if not SERVERS:
            assert got.json()["profile"]["attributes"]["note"] == "\ufffd"
            assert got.json()["profile"]["attributes"]["ltv"] is None
        # the customer's turns, and a handoff whose summary carries their context
        conv = start(client, customer_id="cus_bad", customer_hash=customer_hash("cus_bad"))
        headers = widget(**{"X-Conversation-Token": conv["token"]})
        turn = client.post(
            f"/v1/conversations/{conv['id']}/messages", json={"text": "where is my order?"}, headers=headers
        )
        assert turn.status_code == 200, turn.text
        handed = client.post(f"/v1/conversations/{conv['id']}/handoff", json={}, headers=headers)
        assert handed.status_code == 200, handed.text
        # ... and the agents' queue, for every agent
        queue = client.get("/v1/handoffs", params={"status": "waiting"}, headers=AGENT)
        assert queue.status_code == 200, queue.text
        [item] = [h for h in queue.json()["items"] if h["conversation_id"] == conv["id"]]
        packet = client.get(f"/v1/handoffs/{item['id']}", headers=AGENT)
        assert packet.status_code == 200, packet.text
        streamed = client.get(f"/v1/conversations/{conv['id']}/events", params={"max_s": 1}, headers=headers)
        assert streamed.status_code == 200 and "status" in [e for e, _ in parse_sse(streamed.text)]


def test_a_stream_cursor_beyond_any_message_number_is_refused_or_ignored(client: TestClient) -> None:
    cid = start(client)["id"]
    r = client.get(f"/v1/conversations/{cid}/events", params={"after": "99999999999999999999"}, headers=widget())
    assert_error(r, 422, "invalid_request")
    huge = widget(**{"Last-Event-ID": "99999999999999999999"})
    r = client.get(f"/v1/conversations/{cid}/events", params={"max_s": 1}, headers=huge)
    assert r.status_code == 200
    events = parse_sse(r.text)
    assert events and events[0][0] == "status" and events[0][1]["status"] == "bot"
