"""Access (API.md "Auth"): each role reaches its routes and no others; an unverified customer gets no
history; conversations cannot be listed or guessed with the widget key; generated keys never reach the
logs; CORS answers only configured origins; the demo page never leaves loopback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from tests.api.support import assert_error
from tests.conftest import (
    ADMIN_TOKEN,
    AGENT_TOKEN,
    CX_TOKEN,
    IDENTITY_SECRET,
    WIDGET_KEY,
    bearer,
    customer_hash,
    make_settings,
    widget_headers,
)

WIDGET = widget_headers()
AGENT, CX, ADMIN = bearer(AGENT_TOKEN), bearer(CX_TOKEN), bearer(ADMIN_TOKEN)

# (method, path, the roles that may call it). The admin token may use every route.
STAFF_ROUTES = [
    ("GET", "/v1/handoffs", {"agent"}),
    ("GET", "/v1/metrics", {"cx"}),
    ("GET", "/v1/metrics/timeseries", {"cx"}),
    ("GET", "/v1/metrics/topics", {"cx"}),
    ("GET", "/v1/conversations", {"cx"}),
    ("GET", "/v1/evals/latest", {"cx"}),
    ("GET", "/v1/knowledge/search?q=refund", {"admin"}),
    ("GET", "/v1/customers/cus_1001", {"admin"}),
]
ROLE_HEADERS = {"widget": WIDGET, "agent": AGENT, "cx": CX}


@pytest.mark.parametrize(("method", "path", "allowed"), STAFF_ROUTES)
@pytest.mark.parametrize("role", ["widget", "agent", "cx", "admin", "nobody", "wrong"])
def test_each_role_reaches_its_routes_and_no_others(
    client: TestClient, method: str, path: str, allowed: set[str], role: str
) -> None:
    headers = {"nobody": {}, "wrong": bearer("not-a-token-at-all"), "admin": ADMIN}.get(role, ROLE_HEADERS.get(role))
    r = client.request(method, path, headers=headers)
    if role == "admin" or role in allowed:
        assert r.status_code in (200, 404), (role, path, r.text)  # 404: e.g. no eval run yet
        if r.status_code == 404:
            assert r.json()["error"]["code"] in ("not_found",)
    elif role in ("widget", "nobody", "wrong"):
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    else:
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_the_widget_key_cannot_list_or_guess_conversations(client: TestClient) -> None:
    mine = client.post("/v1/conversations", json={}, headers=WIDGET).json()["id"]
    assert client.get("/v1/conversations", headers=WIDGET).status_code == 401
    assert len(mine) >= 32  # ids are unguessable capabilities (128 random bits)
    for guess in ("1", "conv_1", mine[:-1] + ("0" if mine[-1] != "0" else "1")):
        r = client.get(f"/v1/conversations/{guess}", headers=WIDGET)
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"


@pytest.mark.parametrize("claimed_hash", [None, "0" * 64, "not-hex", "ü" * 64])
def test_an_unverified_customer_is_anonymous_and_sees_no_history(client: TestClient, claimed_hash: str | None) -> None:
    body = {"customer_id": "cus_1001"} | ({"customer_hash": claimed_hash} if claimed_hash else {})
    conv = client.post("/v1/conversations", json=body, headers=WIDGET)
    assert conv.status_code == 201 and conv.json()["verified"] is False
    cid = conv.json()["id"]
    client.post(f"/v1/conversations/{cid}/messages", json={"text": "where is my order?"}, headers=WIDGET)
    handoff = client.post(f"/v1/conversations/{cid}/handoff", json={}, headers=WIDGET).json()["handoff"]
    packet = client.get(f"/v1/handoffs/{handoff['id']}", headers=AGENT).json()
    assert packet["customer"] is None and packet["customer_events"] == []
    # nothing of cus_1001's record reached the summary an agent reads
    record = client.get("/v1/customers/cus_1001", headers=ADMIN).json()["profile"]
    assert record["email"] and record["email"] not in str(packet["summary"])


def test_a_verified_customer_gets_their_history(client: TestClient) -> None:
    body = {"customer_id": "cus_1001", "customer_hash": customer_hash("cus_1001")}
    conv = client.post("/v1/conversations", json=body, headers=WIDGET).json()
    assert conv["verified"] is True
    opened = {**WIDGET, "X-Conversation-Token": conv["token"]}
    handoff = client.post(f"/v1/conversations/{conv['id']}/handoff", json={}, headers=opened).json()["handoff"]
    packet = client.get(f"/v1/handoffs/{handoff['id']}", headers=AGENT).json()
    assert packet["customer"]["id"] == "cus_1001" and packet["customer_events"]


def test_generated_keys_never_reach_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(
        tmp_path,
        widget_key=None,
        agent_token=None,
        cx_token=None,
        admin_token=None,
        identity_secret=None,
    )
    with caplog.at_level(logging.DEBUG), TestClient(create_app(settings)) as c:
        keys = c.app.state.keys  # type: ignore[attr-defined]
        assert c.get("/v1/metrics", headers=bearer(keys.cx_token)).status_code == 200
        c.get("/v1/metrics", headers=bearer("a-wrong-token"))
        c.post("/v1/conversations", json={}, headers={"X-Widget-Key": keys.widget_key})
    secrets = [keys.widget_key, keys.agent_token, keys.cx_token, keys.admin_token, keys.identity_secret]
    assert all(len(s) >= 24 for s in secrets)
    assert "generated credentials" in caplog.text  # the names are logged...
    for secret in secrets:
        assert secret not in caplog.text  # ...never the values
    stored = (tmp_path / "keys.json").stat().st_mode & 0o777
    assert stored == 0o600


def test_cors_answers_only_configured_origins(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, cors_origins=["https://shop.example"])
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-widget-key"}
    with TestClient(create_app(settings)) as c:
        ok = c.options("/v1/conversations", headers={"Origin": "https://shop.example", **preflight})
        assert ok.headers.get("access-control-allow-origin") == "https://shop.example"
        other = c.options("/v1/conversations", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers
        plain = c.post("/v1/conversations", json={}, headers={"Origin": "https://evil.example", **WIDGET})
        assert "access-control-allow-origin" not in plain.headers


def test_no_cors_without_configured_origins(client: TestClient) -> None:
    r = client.post("/v1/conversations", json={}, headers={"Origin": "https://shop.example", **WIDGET})
    assert r.status_code == 201 and "access-control-allow-origin" not in r.headers


def test_the_demo_page_is_refused_beyond_loopback(tmp_path: Path) -> None:
    env = {
        "CXA_DATA_DIR": str(tmp_path),
        "CXA_WEB__DEMO_PAGE": "true",
        "CXA_WIDGET_KEY": WIDGET_KEY,
        "CXA_IDENTITY_SECRET": IDENTITY_SECRET,
    }
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "1"], env=env)
    assert result.exit_code == 2
    assert "127.0.0.1 only" in result.output


def test_a_verified_customers_conversation_opens_only_with_its_token(client: TestClient) -> None:
    """Finding 10: the id alone (it is in the page, the logs, a shared screenshot) must not open a verified
    customer's conversation, with their profile and orders in it."""
    body = {"customer_id": "cus_1001", "customer_hash": customer_hash("cus_1001")}
    conv = client.post("/v1/conversations", json=body, headers=WIDGET).json()
    cid, token = conv["id"], conv["token"]
    other = client.post("/v1/conversations", json=body, headers=WIDGET).json()
    for headers in (
        WIDGET,
        {**WIDGET, "X-Conversation-Token": other["token"]},
        {**WIDGET, "X-Conversation-Token": "x"},
    ):
        assert_error(client.get(f"/v1/conversations/{cid}", headers=headers), 403, "forbidden")
        assert_error(client.get(f"/v1/conversations/{cid}/events", headers=headers), 403, "forbidden")
        said = client.post(f"/v1/conversations/{cid}/messages", json={"text": "my orders?"}, headers=headers)
        assert_error(said, 403, "forbidden")
        assert_error(client.post(f"/v1/conversations/{cid}/handoff", json={}, headers=headers), 403, "forbidden")
        rated = client.post(f"/v1/conversations/{cid}/feedback", json={"csat": 1}, headers=headers)
        assert_error(rated, 403, "forbidden")
    opened = {**WIDGET, "X-Conversation-Token": token}
    got = client.get(f"/v1/conversations/{cid}", headers=opened)
    assert got.status_code == 200 and got.json()["messages"] == []  # nothing the refused calls sent was stored
    assert client.post(f"/v1/conversations/{cid}/messages", json={"text": "hello"}, headers=opened).status_code == 200
    # the stream, for a client that cannot set headers (EventSource): the token as ?token=
    streamed = client.get(f"/v1/conversations/{cid}/events", params={"token": token, "max_s": 1}, headers=WIDGET)
    assert streamed.status_code == 200 and "event: status" in streamed.text
    # staff read it with their own credentials
    assert client.get(f"/v1/conversations/{cid}", headers=AGENT).status_code == 200


def test_an_anonymous_conversation_still_opens_with_its_id(client: TestClient) -> None:
    conv = client.post("/v1/conversations", json={}, headers=WIDGET).json()
    assert conv["verified"] is False and conv["token"]
    assert (
        client.post(f"/v1/conversations/{conv['id']}/messages", json={"text": "hi"}, headers=WIDGET).status_code == 200
    )
    assert client.get(f"/v1/conversations/{conv['id']}", headers=WIDGET).status_code == 200
