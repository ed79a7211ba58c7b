"""The routes behind the web surfaces, over HTTP: pages and their headers, the demo page setting, metrics
over time and by topic, queue position, staff reading transcripts, the richer handoff list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.api.support import TWO_FA_QUESTION, app_client, assert_error, customer_headers, say, start
from tests.conftest import AGENT_TOKEN, CX_TOKEN, bearer, customer_hash


def test_pages_are_served_with_a_strict_csp(client: TestClient) -> None:
    for path in ("/console", "/dashboard"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert "http" not in r.text.split("<body", 1)[0].replace("http-equiv", "")  # no CDN in <head>
    js = client.get("/widget.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "max-age" in js.headers["cache-control"]
    for asset in ("/web/widget.css", "/web/common.js", "/web/console.js", "/web/dashboard.js"):
        assert client.get(asset).status_code == 200, asset
    vendor = client.get("/web/vendor/chart.umd.min.js")
    assert vendor.status_code == 200 and "max-age=604800" in vendor.headers["cache-control"]
    assert_error(client.get("/web/nope.js"), 404)


def test_every_html_response_carries_the_csp_and_cannot_be_framed(client: TestClient) -> None:
    """Finding 5: the pages' static files (/web/*.html) had neither the CSP nor the framing ban."""
    for path in ("/console", "/dashboard", "/web/console.html", "/web/dashboard.html", "/web/demo.html"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, path
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff", path
    docs = client.get("/docs")  # Swagger UI: its own policy (an inline start-up script), never framed either
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    assert docs.headers["x-frame-options"] == "DENY"


def test_the_demo_page_is_off_unless_enabled(client: TestClient, sample_data_dir) -> None:  # noqa: ANN001
    assert_error(client.get("/demo"), 404, "not_found")
    with app_client(sample_data_dir, web={"demo_page": True}) as demo:
        page = demo.get("/demo", params={"customer": "cus_1001"})
        assert page.status_code == 200
        assert f'data-customer-hash="{customer_hash("cus_1001")}"' in page.text
        assert 'data-customer-id="cus_1001"' in page.text and "Amara Okafor" in page.text
        anonymous = demo.get("/demo", params={"customer": '"><script>alert(1)</script>'})
        assert "data-customer-hash" not in anonymous.text and "<script>alert" not in anonymous.text


def test_timeseries_buckets_and_limits(client: TestClient) -> None:
    cid = start(client)["id"]
    say(client, cid, TWO_FA_QUESTION)
    now = datetime.now(UTC)
    r = client.get(
        "/v1/metrics/timeseries",
        params={"bucket": "hour", "since": (now - timedelta(hours=5)).isoformat(), "until": now.isoformat()},
        headers=bearer(CX_TOKEN),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bucket"] == "hour" and len(body["items"]) in (5, 6)
    assert sum(b["conversations"] for b in body["items"]) == 1
    assert {"handoff_rate", "csat_avg", "outcomes", "predicted_effort_avg"} <= set(body["items"][-1])
    days = client.get("/v1/metrics/timeseries", headers=bearer(CX_TOKEN)).json()
    assert days["bucket"] == "day" and len(days["items"]) >= 14
    too_many = client.get(
        "/v1/metrics/timeseries",
        params={"bucket": "hour", "since": (now - timedelta(days=30)).isoformat()},
        headers=bearer(CX_TOKEN),
    )
    assert_error(too_many, 422, "invalid_request")
    assert_error(client.get("/v1/metrics/timeseries", params={"bucket": "week"}, headers=bearer(CX_TOKEN)), 422)
    assert_error(client.get("/v1/metrics/timeseries", headers=bearer(AGENT_TOKEN)), 403)


def test_metrics_by_topic(client: TestClient) -> None:
    say(client, start(client)["id"], TWO_FA_QUESTION)
    r = client.get("/v1/metrics/topics", headers=bearer(CX_TOKEN))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert sum(i["conversations"] for i in items) >= 1
    assert items[0]["topic"] and "bot_resolution_rate" in items[0]


def test_handoff_queue_position_and_list_items(client: TestClient) -> None:
    first = start(client, customer_id="cus_1001", customer_hash=customer_hash("cus_1001"))["id"]
    second = start(client)["id"]
    say(client, first, TWO_FA_QUESTION)
    a = client.post(f"/v1/conversations/{first}/handoff", json={}, headers=customer_headers(first)).json()
    b = client.post(f"/v1/conversations/{second}/handoff", json={}, headers=customer_headers(second)).json()
    assert (a["queue_position"], b["queue_position"]) == (1, 2)
    assert "expected_wait_s" in a
    transcript = client.get(f"/v1/conversations/{second}", headers=customer_headers(second)).json()
    assert transcript["queue_position"] == 2
    items = client.get("/v1/handoffs", params={"status": "waiting"}, headers=bearer(AGENT_TOKEN)).json()["items"]
    by_conv = {i["conversation_id"]: i for i in items}
    assert by_conv[first]["customer_id"] == "cus_1001" and by_conv[second]["customer_id"] is None
    assert by_conv[first]["conversation_status"] == "waiting_for_agent"
    client.post(f"/v1/handoffs/{a['handoff']['id']}/claim", json={"agent_id": "sam"}, headers=bearer(AGENT_TOKEN))
    after = client.get(f"/v1/conversations/{second}", headers=customer_headers(second)).json()
    assert after["queue_position"] == 1
    claimed = client.get(f"/v1/conversations/{first}", headers=customer_headers(first)).json()
    assert claimed["queue_position"] is None


def test_staff_may_read_transcripts_and_follow_them(client: TestClient) -> None:
    cid = start(client)["id"]
    say(client, cid, TWO_FA_QUESTION)
    for token in (AGENT_TOKEN, CX_TOKEN):
        r = client.get(f"/v1/conversations/{cid}", headers=bearer(token))
        assert r.status_code == 200 and len(r.json()["messages"]) == 2
        events = client.get(f"/v1/conversations/{cid}/events", params={"max_s": 1}, headers=bearer(token))
        assert events.status_code == 200 and "event: message" in events.text
    assert_error(client.get(f"/v1/conversations/{cid}"), 401, "unauthorized")
    assert_error(client.get(f"/v1/conversations/{cid}", headers=bearer("wrong-token-0123456789")), 401)
