"""A demo with a past: simulated days of conversations through the real app, moved back to their days, marked
simulated in the data and in what the dashboard reads; the loop measured on a small simulated day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from assistant.settings import Settings
from evals.history import seed_history
from evals.loop import load_gaps, run_loop
from evals.simulate import Credentials
from tests.api.support import app_client
from tests.conftest import AGENT_TOKEN, CX_TOKEN, IDENTITY_SECRET, WIDGET_KEY, bearer

CREDS = Credentials(WIDGET_KEY, AGENT_TOKEN, CX_TOKEN, IDENTITY_SECRET)
CX = bearer(CX_TOKEN)


def test_days_of_simulated_history(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    report = seed_history(
        client, CREDS, services.store, services.engine.telemetry, days=3, per_day=9, customers=["cus_1001", "cus_1002"]
    )
    assert report.days == 3 and report.conversations >= 15 and report.gap_conversations >= 3

    n, first, last = services.store.simulated.count()
    assert n == report.conversations and first is not None and last is not None
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert today - timedelta(days=3) <= first < last < today  # each on its day, none today
    assert client.get("/v1/insights/simulated", headers=CX).json()["conversations"] == n

    since = (today - timedelta(days=7)).isoformat()
    metrics = client.get("/v1/metrics", params={"since": since}, headers=CX).json()
    assert metrics["conversations"] == n and metrics["open"] == 0  # every one of them is over
    assert metrics["agent_wait_s_p50"] is not None and metrics["agent_wait_s_p50"] >= 60  # agents took a while
    days = client.get("/v1/metrics/timeseries", params={"since": since}, headers=CX).json()["items"]
    assert sum(1 for d in days if d["conversations"]) == 3
    items = client.get("/v1/conversations", params={"since": since, "limit": 500}, headers=CX).json()["items"]
    assert len(items) == n and all(i["simulated"] for i in items)
    gaps = client.get("/v1/insights/knowledge-gaps", headers=CX).json()["items"]
    assert gaps and all(g["simulated"] == g["conversations"] for g in gaps)


def test_the_measured_loop_on_a_small_day(tmp_path, settings: Settings) -> None:  # noqa: ANN001
    fast = {"telemetry": settings.telemetry.model_copy(update={"inactivity_s": 1.5, "sweep_interval_s": 0.5})}
    with app_client(settings.data_dir, **fast) as client:
        gaps = load_gaps()[:3]
        r = run_loop(client, CREDS, gaps=gaps, per_gap=4, ordinary=10, idle_wait_s=2.0, seed=0)
    assert r.gaps == 3 and r.day1_gap_conversations == 12 == r.day1_handed_off
    assert r.gap_recall >= 2 / 3 and r.grouping_precision >= 0.9, r.per_gap
    assert r.approved == r.gaps_found and r.day2_gap_conversations == 12
    assert r.day2_handed_off < r.day1_handed_off and r.handoff_reduction > 0.5, r.day2_misses
    assert r.reask_detection_precision in (None, 1.0)
