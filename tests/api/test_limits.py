"""Abuse limits: per-address, per-credential and per-turn rate limits (429 + Retry-After, the error shape),
the body-size cap (413, with and without Content-Length), and CXA_RATE_LIMITS=off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.limits import TokenBuckets
from tests.conftest import ADMIN_TOKEN, CX_TOKEN, bearer, make_settings, widget_headers


def _client(data_dir: Path, **limits: object) -> TestClient:
    settings = make_settings(data_dir, rate_limits="on", limits={"burst_s": 60.0, **limits})
    return TestClient(create_app(settings))


@pytest.fixture
def limited(sample_data_dir: Path) -> Iterator[TestClient]:
    with _client(sample_data_dir, ip_per_minute=5) as c:
        yield c


def test_over_the_address_limit_is_429_with_retry_after(limited: TestClient) -> None:
    codes = [limited.get("/v1/metrics", headers=bearer(CX_TOKEN)).status_code for _ in range(5)]
    assert codes == [200] * 5
    r = limited.get("/v1/metrics", headers=bearer(CX_TOKEN))
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert "try again" in r.json()["error"]["message"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_health_and_pages_are_not_counted(limited: TestClient) -> None:
    for _ in range(8):
        assert limited.get("/healthz").status_code == 200
    assert limited.get("/v1/metrics", headers=bearer(CX_TOKEN)).status_code == 200


def test_the_credential_limit_holds_across_addresses(sample_data_dir: Path) -> None:
    settings = make_settings(sample_data_dir, rate_limits="on", limits={"burst_s": 60.0, "credential_per_minute": 3})
    app = create_app(settings)
    with TestClient(app, client=("10.0.0.1", 5000)) as first:
        for i in range(3):
            # a different client address each time: only the bearer token is common
            with TestClient(app, client=(f"10.0.1.{i}", 5000)) as other:
                assert other.get("/v1/metrics", headers=bearer(CX_TOKEN)).status_code == 200
        assert first.get("/v1/metrics", headers=bearer(CX_TOKEN)).status_code == 429
        # another credential has its own bucket
        assert first.get("/v1/metrics", headers=bearer(ADMIN_TOKEN)).status_code == 200


def test_customer_messages_have_their_own_tighter_limit(sample_data_dir: Path) -> None:
    with _client(sample_data_dir, turns_per_minute=2) as c:
        conv = c.post("/v1/conversations", json={}, headers=widget_headers()).json()["id"]
        sent = [
            c.post(f"/v1/conversations/{conv}/messages", json={"text": f"hello {i}"}, headers=widget_headers())
            for i in range(3)
        ]
        assert [r.status_code for r in sent] == [200, 200, 429]
        assert sent[2].headers["Retry-After"]
        # reading is not a turn: still allowed
        transcript = c.get(f"/v1/conversations/{conv}", headers=widget_headers())
        assert transcript.status_code == 200
        # the refused message was refused before it reached the store: two customer messages, not three
        assert [m["text"] for m in transcript.json()["messages"] if m["role"] == "customer"] == ["hello 0", "hello 1"]


def test_rate_limits_off(sample_data_dir: Path) -> None:
    settings = make_settings(sample_data_dir, rate_limits="off", limits={"ip_per_minute": 1})
    with TestClient(create_app(settings)) as c:
        assert all(c.get("/v1/metrics", headers=bearer(CX_TOKEN)).status_code == 200 for _ in range(5))


def test_a_body_over_the_limit_is_413_before_the_route(sample_data_dir: Path) -> None:
    with _client(sample_data_dir, max_body_bytes=2048) as c:
        big = {"metadata": {"note": "x" * 3000}}
        r = c.post("/v1/conversations", json=big, headers=widget_headers())
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"
        # sent chunked (no Content-Length): counted as it arrives
        chunks = iter([b'{"metadata": {"note": "', b"y" * 3000, b'"}}'])
        r = c.post("/v1/conversations", content=chunks, headers=widget_headers() | {"Content-Type": "application/json"})
        assert r.status_code == 413
        # a small chunked body is handed on whole
        r = c.post(
            "/v1/conversations",
            content=iter([b'{"channel":', b' "web"}']),
            headers=widget_headers() | {"Content-Type": "application/json"},
        )
        assert r.status_code == 201, r.text


def test_a_bad_content_length_is_400(sample_data_dir: Path) -> None:
    with _client(sample_data_dir) as c:
        r = c.post(
            "/v1/conversations",
            content=b"{}",
            headers=widget_headers() | {"Content-Type": "application/json", "Content-Length": "abc"},
        )
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "bad_request"


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_minute=60, burst_s=2, clock=lambda: now[0])  # 1 a second, holds 2
    assert buckets.take("a") == 0 and buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(1.0)  # empty: one second to the next token
    assert buckets.take("b") == 0  # keys are independent
    now[0] = 0.5
    assert buckets.take("a") == pytest.approx(0.5)  # a refused request spends nothing
    now[0] = 1.0
    assert buckets.take("a") == 0
    now[0] = 100.0
    assert buckets.take("a") == 0 and buckets.take("a") == 0 and buckets.take("a") > 0  # never more than 2
