"""Telemetry through the real app (fake chat model): signals recorded per turn, outcomes derived from them,
the CX routes (/v1/metrics, /v1/conversations) and the Prometheus exposition. Inactivity is 1 s here so
that "the customer left" can happen inside a test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.support import (
    OFF_TOPIC_QUESTION,
    TWO_FA_QUESTION,
    assert_error,
    customer_headers,
    private_app,
    say,
    start,
)
from tests.conftest import AGENT_TOKEN, CX_TOKEN, bearer, customer_hash, widget_headers

CX = bearer(CX_TOKEN)
AGENT = bearer(AGENT_TOKEN)
IDLE_S = 1.0


@pytest.fixture(scope="module")
def app(sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with private_app(
        sample_template, tmp_path_factory, "telemetry", telemetry={"inactivity_s": IDLE_S, "recontact_window_s": 3600}
    ) as c:
        yield c


def conversation(client: TestClient, cid: str) -> dict[str, Any]:
    r = client.get(f"/v1/conversations/{cid}", headers=customer_headers(cid))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def listed(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/v1/conversations", params=params, headers=CX)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


def item(client: TestClient, cid: str) -> dict[str, Any]:
    [found] = [i for i in listed(client, limit=500) if i["id"] == cid]
    return found


def test_an_answer_confirmed_by_the_customer(app: TestClient) -> None:
    cid = start(app)["id"]
    turn = say(app, cid, TWO_FA_QUESTION)
    assert turn["reply"]["citations"] and "signals" in turn["timings_ms"]
    say(app, cid, "Thanks, that worked!")
    kinds = [s["kind"] for s in conversation(app, cid)["signals"]]
    assert kinds.count("customer_turn") == 2 and "answered" in kinds and "confirmation" in kinds
    got = item(app, cid)
    assert got["outcome"] == "resolved_by_bot_confirmed" and got["status"] == "bot" and got["effort"] == 1.0
    assert got["topic"] == "account"  # classified from the first message, by the help-center topic model
    assert kinds.count("topic") == 1


def test_an_answer_then_silence_is_assumed_resolved_after_the_timeout(app: TestClient) -> None:
    cid = start(app)["id"]
    say(app, cid, TWO_FA_QUESTION)
    assert item(app, cid)["outcome"] == "open"
    time.sleep(IDLE_S + 0.2)
    got = item(app, cid)  # listing sweeps idle conversations first
    assert got["outcome"] == "resolved_by_bot_assumed" and got["status"] == "resolved"
    assert "assumed_resolved" in [s["kind"] for s in conversation(app, cid)["signals"]]


def test_handoff_agent_wait_and_agent_resolution(app: TestClient) -> None:
    cid = start(app)["id"]
    turn = say(app, cid, OFF_TOPIC_QUESTION)
    if turn["handoff"] is None:
        r = app.post(f"/v1/conversations/{cid}/handoff", headers=customer_headers(cid))
        turn = {"handoff": r.json()["handoff"]}
    hid = turn["handoff"]["id"]
    assert app.post(f"/v1/handoffs/{hid}/claim", json={"agent_id": "sam"}, headers=AGENT).status_code == 200
    assert (
        app.post(f"/v1/conversations/{cid}/agent-messages", json={"text": "Hi, Sam here."}, headers=AGENT).status_code
        == 201
    )
    assert app.post(f"/v1/conversations/{cid}/agent-messages", json={"text": "Done."}, headers=AGENT).status_code == 201
    assert app.post(f"/v1/handoffs/{hid}/resolve", json={"resolved": True}, headers=AGENT).status_code == 200
    got = item(app, cid)
    assert got["outcome"] == "resolved_by_agent" and got["handed_off"]
    assert got["agent_wait_s"] is not None and got["agent_wait_s"] >= 0
    assert got["signals"]["agent_reply"] == 1  # only the first reply after the handoff measures the wait
    assert got["effort"] >= 2.0  # a handoff costs the customer effort


def test_waiting_with_nobody_coming_is_abandoned(app: TestClient) -> None:
    cid = start(app)["id"]
    r = app.post(f"/v1/conversations/{cid}/handoff", headers=customer_headers(cid))
    assert r.status_code == 200
    time.sleep(IDLE_S + 0.2)
    got = item(app, cid)
    assert got["outcome"] == "abandoned" and got["status"] == "abandoned"


def test_rephrasing_loop_is_the_worst_and_feedback_is_counted(app: TestClient) -> None:
    cid = start(app)["id"]
    for text in ("my sofa cushion is torn", "my sofa cushion is torn", "I already told you, the cushion is torn!!"):
        say(app, cid, text)
    r = app.post(
        f"/v1/conversations/{cid}/feedback",
        json={"csat": 1, "ces": 6, "resolved": False},
        headers=customer_headers(cid),
    )
    assert r.status_code == 200
    got = item(app, cid)
    assert got["signals"].get("repeat", 0) >= 1 and got["signals"].get("already_told") == 1
    assert got["csat"] == 1 and got["ces"] == 6 and got["outcome"] in {"unresolved", "open"}
    worst = listed(app, sort="worst", limit=1)[0]
    assert worst["id"] == cid
    assert all(i["effort"] >= 4 for i in listed(app, min_effort=4))


def test_metrics_add_up(app: TestClient) -> None:
    r = app.get("/v1/metrics", headers=CX)
    assert r.status_code == 200, r.text
    m = r.json()
    items = listed(app, limit=500)
    assert m["conversations"] == len(items) and sum(m["outcomes"].values()) == len(items)
    for field in ("bot_resolution_rate", "handoff_rate", "abandonment_rate"):
        assert 0 <= m[field] <= 1
    assert m["csat_avg"] is not None and m["ces_avg"] is not None and m["predicted_effort_avg"] >= 1
    future = app.get("/v1/metrics", params={"since": "2100-01-01T00:00:00"}, headers=CX).json()
    assert future["conversations"] == 0 and future["csat_avg"] is None


def test_signal_text_is_redacted_but_the_transcript_is_kept(app: TestClient) -> None:
    cid = start(app, customer_id="cus_1001", customer_hash=customer_hash("cus_1001"))["id"]
    say(app, cid, "thanks! reach me at amara@example.com")
    conv = conversation(app, cid)
    assert conv["messages"][0]["text"] == "thanks! reach me at amara@example.com"
    [confirmation] = [s for s in conv["signals"] if s["kind"] == "confirmation"]
    assert confirmation["data"]["text"] == "thanks! reach me at [email]"


def test_cx_routes_need_the_cx_token_and_valid_filters(app: TestClient) -> None:
    assert_error(app.get("/v1/metrics"), 401, "unauthorized")
    assert_error(app.get("/v1/metrics", headers=AGENT), 403, "forbidden")
    assert_error(app.get("/v1/conversations", headers=widget_headers()), 401)
    assert_error(app.get("/v1/conversations", params={"sort": "best"}, headers=CX), 422)
    assert_error(app.get("/v1/conversations", params={"limit": 0}, headers=CX), 422)
    assert_error(app.get("/v1/metrics", params={"since": "yesterday"}, headers=CX), 422)
    bad_period = {"since": "2026-11-24T00:00:00Z", "until": "2026-11-23T00:00:00Z"}
    assert_error(app.get("/v1/metrics", params=bad_period, headers=CX), 422, "invalid_request")


def test_prometheus_exposition(app: TestClient) -> None:
    say(app, start(app)["id"], TWO_FA_QUESTION)
    r = app.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'cxa_turn_seconds_bucket{le="0.1",step="total"}' in r.text
    assert "cxa_turns_total{" in r.text and "cxa_handoffs_total" in r.text
