"""The simulated day (evals.simulate) on a small mix through the real app: every script's intended outcome is
what the telemetry finds, and /v1/metrics adds up to the scripts' intentions. Also `cxa export`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from evals.simulate import Credentials, run_day
from tests.api.support import private_app
from tests.conftest import AGENT_TOKEN, CX_TOKEN, IDENTITY_SECRET, WIDGET_KEY, backend_env


@pytest.fixture(scope="module")
def day_app(sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    with private_app(sample_template, tmp_path_factory, "day", telemetry={"inactivity_s": 1.0}) as c:
        yield c  # type: ignore[misc]


def test_a_small_simulated_day_matches_its_intentions(day_app: TestClient) -> None:
    creds = Credentials(WIDGET_KEY, AGENT_TOKEN, CX_TOKEN, IDENTITY_SECRET)
    result = run_day(day_app, creds, conversations=25, customers=["cus_1001", "cus_1002"], idle_wait_s=1.3, seed=3)
    assert result.conversations >= 25 and result.turns > result.conversations
    assert result.mismatches == []
    assert all(c.ok for c in result.checks), result.checks
    assert {k.kind.split(" ")[0] for k in result.kinds} >= {
        "easy_thanks",
        "easy_silent",
        "person_resolved",
        "abandoned",
    }
    assert result.signals_ms_p50 is not None and result.signals_ms_p50 > 0


def test_export_writes_redacted_jsonl(day_app: TestClient, tmp_path: Path) -> None:
    data_dir = day_app.app.state.services.settings.data_dir  # type: ignore[attr-defined]
    headers = {"X-Widget-Key": WIDGET_KEY}
    cid = day_app.post("/v1/conversations", json={}, headers=headers).json()["id"]
    day_app.post(
        f"/v1/conversations/{cid}/messages", json={"text": "thanks, mail me at a.b@example.org"}, headers=headers
    )
    out = tmp_path / "export.jsonl"
    env = backend_env(data_dir)
    r = CliRunner().invoke(cli, ["export", str(out), "--transcripts", "--data-dir", str(data_dir)], env=env)
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    [row] = [x for x in rows if x["conversation_id"] == cid]
    assert row["outcome"] and row["effort"] >= 1 and row["signals"]
    assert "a.b@example.org" not in out.read_text() and "[email]" in row["messages"][0]["text"]
    bad = CliRunner().invoke(cli, ["export", str(out), "--since", "last week", "--data-dir", str(data_dir)], env=env)
    assert bad.exit_code == 2 and "ISO-8601" in bad.output
