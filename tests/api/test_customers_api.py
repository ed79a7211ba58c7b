"""Admin customer routes: profiles and events, and that a verified customer's conversation sees them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.support import assert_error, customer_headers, private_app, start
from tests.conftest import ADMIN_TOKEN, AGENT_TOKEN, CX_TOKEN, bearer, customer_hash, widget_headers

ADMIN = bearer(ADMIN_TOKEN)
PROFILE = {
    "name": "Noor Haddad",
    "email": "noor@example.com",
    "locale": "en-GB",
    "attributes": {"plan": "plus_monthly", "country": "GB"},
}
ORDER = {
    "type": "order_placed",
    "at": "2026-10-01T09:00:00Z",
    "data": {"order_id": "LH-900001", "items": [{"name": "Ash side table", "qty": 1}], "total": 129.0},
}


@pytest.fixture(scope="module")
def shared(sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app; each test uses customer ids of its own."""
    with private_app(sample_template, tmp_path_factory, "customers") as c:
        yield c


def test_put_creates_then_replaces_a_profile(shared: TestClient) -> None:
    r = shared.put("/v1/customers/cus_put_1", json=PROFILE, headers=ADMIN)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["id"] == "cus_put_1"
    assert created["name"] == "Noor Haddad" and created["attributes"] == PROFILE["attributes"]

    r = shared.put("/v1/customers/cus_put_1", json={"name": "Noor H.", "attributes": {"plan": "free"}}, headers=ADMIN)
    assert r.status_code == 200, r.text
    replaced = r.json()
    assert replaced["name"] == "Noor H."
    assert replaced["attributes"] == {"plan": "free"}  # replaced, not merged
    assert replaced["email"] is None
    assert replaced["created_at"] == created["created_at"]  # still the same customer

    got = shared.get("/v1/customers/cus_put_1", headers=ADMIN)
    assert got.status_code == 200
    assert got.json()["profile"] == replaced
    assert got.json()["events"] == []


def test_events_are_added_and_listed_newest_first(shared: TestClient) -> None:
    assert shared.put("/v1/customers/cus_ev_1", json=PROFILE, headers=ADMIN).status_code == 201
    r = shared.post("/v1/customers/cus_ev_1/events", json=ORDER, headers=ADMIN)
    assert r.status_code == 201, r.text
    ev = r.json()
    assert ev["customer_id"] == "cus_ev_1" and ev["type"] == "order_placed"
    assert isinstance(ev["id"], int)
    assert ev["data"] == ORDER["data"]
    later = {"type": "order_delivered", "at": "2026-10-03T15:00:00+00:00", "data": {"order_id": "LH-900001"}}
    assert shared.post("/v1/customers/cus_ev_1/events", json=later, headers=ADMIN).status_code == 201
    no_data = {"type": "ticket.opened", "at": "2026-09-01T00:00:00Z"}
    assert shared.post("/v1/customers/cus_ev_1/events", json=no_data, headers=ADMIN).json()["data"] == {}

    got = shared.get("/v1/customers/cus_ev_1", headers=ADMIN).json()
    assert got["profile"]["name"] == "Noor Haddad"
    assert [e["type"] for e in got["events"]] == ["order_delivered", "order_placed", "ticket.opened"]


def test_a_sample_customer_has_their_history(shared: TestClient) -> None:
    got = shared.get("/v1/customers/cus_1001", headers=ADMIN)
    assert got.status_code == 200
    body = got.json()
    assert body["profile"]["name"] == "Amara Okafor"
    assert any(e["data"].get("order_id") == "LH-482913" for e in body["events"])
    # the 22 sample customers are there, the 23rd is not
    assert shared.get("/v1/customers/cus_1022", headers=ADMIN).status_code == 200
    assert_error(shared.get("/v1/customers/cus_1023", headers=ADMIN), 404, "customer_not_found")


def test_events_for_an_unknown_customer_are_404(shared: TestClient) -> None:
    r = shared.post("/v1/customers/cus_nobody/events", json=ORDER, headers=ADMIN)
    assert_error(r, 404, "customer_not_found")
    assert_error(shared.get("/v1/customers/cus_nobody", headers=ADMIN), 404, "customer_not_found")


@pytest.mark.parametrize(
    "event",
    [
        {**ORDER, "type": "Order Placed"},
        {**ORDER, "type": "1order"},
        {**ORDER, "type": ""},
        {**ORDER, "type": "x" * 65},
        {**ORDER, "at": "last tuesday"},
        {**ORDER, "data": ["not", "an", "object"]},
        {"type": "order_placed"},
    ],
    ids=["spaces-caps", "digit-first", "empty", "too-long", "bad-date", "data-list", "no-at"],
)
def test_a_bad_event_is_422_and_not_stored(shared: TestClient, event: dict[str, Any]) -> None:
    r = shared.post("/v1/customers/cus_1002/events", json=event, headers=ADMIN)
    assert_error(r, 422, "invalid_request")
    events = shared.get("/v1/customers/cus_1002", headers=ADMIN).json()["events"]
    assert all(e["type"] == e["type"].lower() and " " not in e["type"] for e in events)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/customers/bad%20id", PROFILE),  # the id must be a plain token
        ("/v1/customers/cus_ok_x", {"name": 5}),
        ("/v1/customers/cus_ok_x", {"email": "x" * 400}),
        ("/v1/customers/cus_ok_x", {"attributes": ["a"]}),
    ],
)
def test_a_bad_profile_is_422_not_500(shared: TestClient, path: str, body: dict[str, Any]) -> None:
    r = shared.put(path, json=body, headers=ADMIN)
    assert_error(r, 422, "invalid_request")
    assert_error(shared.get("/v1/customers/cus_ok_x", headers=ADMIN), 404)


def test_malformed_json_profile_is_400(shared: TestClient) -> None:
    r = shared.put(
        "/v1/customers/cus_json", content=b'{"name": ', headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (widget_headers(), 401),
        (bearer(AGENT_TOKEN), 403),
        (bearer(CX_TOKEN), 403),
    ],
)
def test_customer_routes_are_for_admins(shared: TestClient, headers: dict[str, str], status: int) -> None:
    assert_error(shared.get("/v1/customers/cus_1001", headers=headers), status)
    assert_error(shared.put("/v1/customers/cus_auth", json=PROFILE, headers=headers), status)
    assert_error(shared.post("/v1/customers/cus_1001/events", json=ORDER, headers=headers), status)
    assert_error(shared.get("/v1/customers/cus_auth", headers=ADMIN), 404)  # nothing was created


def test_a_new_customer_is_seen_by_their_verified_conversation(shared: TestClient) -> None:
    """The profile and events given through the admin API are what the agent's handoff packet shows."""
    cid = "cus_api_new"
    assert shared.put(f"/v1/customers/{cid}", json=PROFILE, headers=ADMIN).status_code == 201
    assert shared.post(f"/v1/customers/{cid}/events", json=ORDER, headers=ADMIN).status_code == 201

    conv = start(shared, customer_id=cid, customer_hash=customer_hash(cid))
    assert conv["verified"] is True and conv["customer_id"] == cid
    r = shared.post(f"/v1/conversations/{conv['id']}/handoff", headers=customer_headers(conv["id"]))
    assert r.status_code == 200, r.text
    context = r.json()["handoff"]["summary"]["customer_context"]
    assert "Noor Haddad" in context
    assert "LH-900001" in context

    stranger = start(shared, customer_id=cid)  # no hash: anonymous
    r = shared.post(f"/v1/conversations/{stranger['id']}/handoff", headers=customer_headers(stranger["id"]))
    context = r.json()["handoff"]["summary"]["customer_context"]
    assert "Noor" not in context and "LH-900001" not in context
