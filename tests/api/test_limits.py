"""Abuse limits: per-address, per-credential and per-turn rate limits (429 + Retry-After, the error shape), fair
(a refused request takes from no other window) and shared by every app on one Redis, the body-size cap (413, with
and without Content-Length), the body timeout (408), and CXA_RATE_LIMITS=off."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.limits import AbuseLimits, RateLimits, window
from assistant.settings import LimitSettings
from tests.backends import BackendUnavailableError, redis_server
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


def test_a_window_holds_burst_seconds_worth_of_requests() -> None:
    item = window(per_minute=600, burst_s=10)
    assert (item.amount, item.get_expiry()) == (100, 10)
    assert window(per_minute=1, burst_s=0.2).amount == 1  # at least one request, at least one second


def test_a_refused_request_takes_from_no_other_window() -> None:
    rates = RateLimits(LimitSettings(ip_per_minute=3, credential_per_minute=5, burst_s=60))
    key = b"pk_shared_widget_key"
    # one address floods with the key every customer shares: refused once its own window is full ...
    assert [rates.check("10.0.0.66", key, False) == 0 for _ in range(50)] == [True] * 3 + [False] * 47
    # ... having spent 3 of the key's 5, not 50: two other customers still get in
    assert rates.check("10.0.0.1", key, False) == 0
    assert rates.check("10.0.0.2", key, False) == 0
    assert rates.check("10.0.0.3", key, False) > 0  # now the key's window is full, for everyone


def test_one_address_flooding_does_not_starve_the_other_customers(sample_data_dir: Path) -> None:
    settings = make_settings(
        sample_data_dir, rate_limits="on", limits={"burst_s": 60.0, "ip_per_minute": 5, "credential_per_minute": 20}
    )
    app = create_app(settings)
    with TestClient(app, client=("10.9.9.9", 5000)) as flooder:
        codes = [flooder.post("/v1/conversations", json={}, headers=widget_headers()).status_code for _ in range(60)]
        assert codes.count(201) == 5 and codes.count(429) == 55
        for i in range(12):  # twelve other customers, each from their own address, all served
            with TestClient(app, client=(f"10.0.2.{i}", 5000)) as customer:
                assert customer.post("/v1/conversations", json={}, headers=widget_headers()).status_code == 201


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    try:
        with redis_server() as url:
            yield url
    except BackendUnavailableError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{exc} (CI must run the shared rate-limit test)", pytrace=False)
        pytest.skip(str(exc))


def test_the_limits_hold_across_servers_sharing_redis(sample_data_dir: Path, tmp_path: Path, redis_url: str) -> None:
    """Two apps (two workers, or two servers) on one Redis count together: 4 requests a minute from one address is
    4 in all, not 4 each."""
    limits = {"burst_s": 60.0, "ip_per_minute": 4, "storage_url": redis_url}
    one = create_app(make_settings(sample_data_dir, rate_limits="on", limits=limits))
    two = create_app(make_settings(tmp_path / "other", rate_limits="on", limits=limits))
    with TestClient(one, client=("10.7.7.7", 1)) as a, TestClient(two, client=("10.7.7.7", 2)) as b:
        codes = [(a if i % 2 else b).get("/v1/metrics", headers=bearer(CX_TOKEN)).status_code for i in range(8)]
        assert codes == [200] * 4 + [429] * 4
        with TestClient(two, client=("10.7.7.8", 3)) as elsewhere:  # another address has its own window
            assert elsewhere.get("/v1/metrics", headers=bearer(CX_TOKEN)).status_code == 200


def test_an_unreachable_limits_store_lets_requests_through(sample_data_dir: Path, tmp_path: Path) -> None:
    limits = {"ip_per_minute": 1, "storage_url": f"redis+unix://{tmp_path / 'nobody.sock'}"}
    with TestClient(create_app(make_settings(sample_data_dir, rate_limits="on", limits=limits))) as c:
        assert [c.get("/v1/metrics", headers=bearer(CX_TOKEN)).status_code for _ in range(3)] == [200] * 3


async def test_a_body_that_does_not_arrive_in_time_is_408(tmp_path: Path) -> None:
    """The middleware on its own (as uvicorn calls it): a client that sends half a body and stalls."""
    reached: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    async def stalling() -> dict[str, Any]:
        if not parts:
            await asyncio.sleep(3600)
        return {"type": "http.request", "body": parts.pop(0), "more_body": True}

    parts = [b'{"metadata": {"a": ']
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    limits = AbuseLimits(app, make_settings(tmp_path, limits={"body_timeout_s": 0.3}))
    scope = {"type": "http", "path": "/v1/conversations", "method": "POST", "headers": [], "client": ("10.0.0.1", 1)}
    await asyncio.wait_for(limits(scope, stalling, send), 5)
    assert sent[0]["status"] == 408 and reached == []
    assert json.loads(sent[1]["body"])["error"]["code"] == "request_timeout"
