"""Scorecards and reviews through the real app (fake chat model, real SQLite and Chroma): the scorecard route
(auth, 404, computed and stored, refresh), review validation, scores on the conversation list, background
scoring of an ended conversation, and the `cxa eval export-cases` / `cxa eval calibrate` commands."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from evals.cases import RegressionCase, read_cases
from tests.api.support import TWO_FA_QUESTION, assert_error, private_app, say, start
from tests.conftest import AGENT_TOKEN, CX_TOKEN, backend_env, bearer, widget_headers

CX = bearer(CX_TOKEN)
IDLE_S = 3.0  # generous: turns take seconds on a loaded 2-core machine, and the sweep must not end a live chat
FIXED = {"groundedness", "resolution", "effort", "tone", "handoff_appropriate"}
ALL = FIXED | {"relevance", "policy"}


@pytest.fixture(scope="module")
def app(sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with private_app(
        sample_template,
        tmp_path_factory,
        "quality",
        telemetry={"inactivity_s": IDLE_S, "sweep_interval_s": 0.3},
        evals={"interval_s": 0.3, "batch": 5},
    ) as c:
        yield c


def answered_and_thanked(app: TestClient) -> str:
    cid = start(app)["id"]
    say(app, cid, TWO_FA_QUESTION)
    say(app, cid, "Thanks, that worked!")
    return cid


def scorecard(app: TestClient, cid: str, **params: Any) -> dict[str, Any]:
    r = app.get(f"/v1/conversations/{cid}/scorecard", params=params, headers=CX)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_scorecard_needs_the_cx_role_and_a_known_conversation(app: TestClient) -> None:
    cid = start(app)["id"]
    assert_error(app.get(f"/v1/conversations/{cid}/scorecard"), 401, "unauthorized")
    assert_error(app.get(f"/v1/conversations/{cid}/scorecard", headers=bearer(AGENT_TOKEN)), 403, "forbidden")
    assert_error(app.get(f"/v1/conversations/{cid}/scorecard", headers=widget_headers()), 401)
    assert_error(app.get("/v1/conversations/conv_nope/scorecard", headers=CX), 404, "conversation_not_found")
    assert_error(app.get(f"/v1/conversations/{cid}/scorecard", params={"judge": "gpt"}, headers=CX), 422)


def test_scorecard_is_computed_stored_and_refreshed(app: TestClient) -> None:
    cid = answered_and_thanked(app)
    card = scorecard(app, cid)
    assert card["conversation_id"] == cid and set(card["scores"]) == ALL
    for name in FIXED - {"handoff_appropriate"}:
        assert isinstance(card["scores"][name], float) and 0.0 <= card["scores"][name] <= 1.0, card["reasons"]
    assert card["scores"]["handoff_appropriate"] is None  # no handoff was needed
    assert card["scores"]["groundedness"] == 1.0 and card["scores"]["resolution"] == 1.0
    assert card["evaluator"] == "rules" and isinstance(card["notes"], list)
    assert card["evaluators"]["groundedness"] == "rule:grounding@1" and set(card["reasons"]) == ALL
    assert scorecard(app, cid)["scored_at"] == card["scored_at"]  # stored: the same card comes back
    again = scorecard(app, cid, refresh="true")
    assert again["scored_at"] > card["scored_at"] and again["scores"] == card["scores"]
    judged = scorecard(app, cid, refresh="true", judge="model")  # the fake model answers the judge schema
    assert judged["evaluator"].startswith("rules+judge:") and judged["evaluators"]["tone"].startswith("judge:")


def test_a_handoff_the_customer_asked_for_scores_as_right(app: TestClient) -> None:
    cid = start(app)["id"]
    turn = say(app, cid, "I want to talk to a person")
    assert turn["handoff"] is not None
    card = scorecard(app, cid)
    assert card["scores"]["handoff_appropriate"] == 1.0 and "at once" in card["reasons"]["handoff_appropriate"]


def test_reviews_are_validated_stored_and_listed(app: TestClient) -> None:
    cid = answered_and_thanked(app)
    url = f"/v1/conversations/{cid}/review"
    assert_error(app.get(url, headers=CX), 404, "not_found")
    assert_error(app.post(url, json={"label": "good"}), 401)
    assert_error(app.post(url, json={"label": "fine"}, headers=CX), 422, "invalid_request")
    assert_error(app.post(url, json={"label": "bad", "scores": {"speed": 1}}, headers=CX), 422, "invalid_request")
    assert_error(app.post(url, json={"label": "bad", "scores": {"tone": 1.5}}, headers=CX), 422, "invalid_request")
    assert_error(app.post(url, json={"label": "bad", "tags": "x"}, headers=CX), 422)
    assert_error(app.post(url, content=b"{", headers={**CX, "Content-Type": "application/json"}), 400, "invalid_json")
    assert_error(app.post("/v1/conversations/conv_nope/review", json={"label": "good"}, headers=CX), 404)
    body = {
        "label": "bad",
        "tags": ["irrelevant_answer"],
        "note": "off topic",
        "reviewer": "kim",
        "scores": {"relevance": 0.25, "tone": None},
    }
    r = app.post(url, json=body, headers=CX)
    assert r.status_code == 201, r.text
    stored = r.json()
    assert (
        stored["label"] == "bad" and stored["tags"] == ["irrelevant_answer"] and stored["scores"]["relevance"] == 0.25
    )
    assert stored["conversation_id"] == cid and stored["created_at"] and stored["id"]
    assert app.post(url, json={"label": "good"}, headers=CX).status_code == 201
    assert app.get(url, headers=CX).json()["label"] == "good"  # the latest review
    scorecard(app, cid)
    items = app.get("/v1/conversations", params={"limit": 500}, headers=CX).json()["items"]
    [item] = [i for i in items if i["id"] == cid]
    assert item["review"] == "good" and 0.0 < item["score"] <= 1.0
    by_score = app.get("/v1/conversations", params={"sort": "score", "limit": 500}, headers=CX).json()["items"]
    scored = [i["score"] for i in by_score if i["score"] is not None]
    assert scored == sorted(scored) and by_score[0]["score"] is not None  # lowest first, unscored last


def test_an_ended_conversation_is_scored_in_the_background(app: TestClient) -> None:
    store = app.app.state.services.store  # type: ignore[attr-defined]
    cid = start(app)["id"]
    say(app, cid, "Can I speak to a human agent please?")  # nobody comes: abandoned after the idle timeout
    deadline = time.monotonic() + 30
    while store.latest_scorecard(cid) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    card = store.latest_scorecard(cid)
    assert card is not None, "the background scorer did not score the abandoned conversation"
    assert card.scores["resolution"] == 0.0 and card.scores["handoff_appropriate"] == 1.0
    assert store.get_facts(cid).status == "abandoned"


def test_the_background_scorer_skips_while_another_worker_runs_a_pass(app: TestClient) -> None:
    """With several workers, one background pass at a time: while another process on the database holds the
    scoring lock (here a second Store, its own connections), this app's scorer leaves the conversation alone."""
    from assistant.store.repo import Store

    services = app.app.state.services  # type: ignore[attr-defined]
    other = Store(services.settings.sqlalchemy_url)
    try:
        with other.try_exclusive("background-scoring") as held:
            assert held
            cid = start(app)["id"]
            say(app, cid, "Can I speak to a human agent please?")  # abandoned after the idle timeout
            deadline = time.monotonic() + IDLE_S + 3
            while services.store.get_facts(cid).status != "abandoned" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert services.store.get_facts(cid).status == "abandoned"
            time.sleep(1.0)  # a few more scoring intervals (0.3 s)
            assert services.store.latest_scorecard(cid) is None, "scored while another worker held the lock"
        deadline = time.monotonic() + 30
        while services.store.latest_scorecard(cid) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert services.store.latest_scorecard(cid) is not None, "not scored once the lock was released"
    finally:
        other.close()


def test_export_cases_round_trip_and_calibrate(app: TestClient, tmp_path: Path) -> None:
    data_dir = app.app.state.services.settings.data_dir  # type: ignore[attr-defined]
    good = answered_and_thanked(app)
    bad = start(app)["id"]
    say(app, bad, "Can I speak to a human agent please?")
    human = {"resolution": 1.0, "tone": 1.0, "handoff_appropriate": None}
    app.post(f"/v1/conversations/{good}/review", json={"label": "good", "scores": human}, headers=CX)
    app.post(
        f"/v1/conversations/{bad}/review",
        json={"label": "bad", "tags": ["should_handoff"], "note": "nobody came", "scores": {"resolution": 0.0}},
        headers=CX,
    )
    out = tmp_path / "cases.jsonl"
    env = backend_env(data_dir)
    r = CliRunner().invoke(
        cli, ["eval", "export-cases", "--label", "all", "--out", str(out), "--data-dir", str(data_dir)], env=env
    )
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_id = {row["conversation_id"]: row for row in rows}
    g, b = by_id[good], by_id[bad]
    assert set(g) >= {
        "case_id",
        "conversation_id",
        "label",
        "tags",
        "note",
        "customer_id",
        "verified",
        "turns",
        "expected",
    }
    assert set(g["expected"]) == {"handoff", "outcome", "min_groundedness", "scores"}
    assert set(g["turns"][0]) == {"role", "text", "mode", "citations", "confidence"}
    assert g["label"] == "good" and g["expected"]["handoff"] is False
    assert g["expected"]["outcome"] == "resolved_by_bot_confirmed" and g["expected"]["scores"] == {
        "resolution": 1.0,
        "tone": 1.0,
    }
    answer = g["turns"][1]
    assert answer["role"] == "assistant" and answer["mode"] in ("generated", "extractive") and answer["citations"]
    assert b["label"] == "bad" and b["expected"]["handoff"] is True and b["note"] == "nobody came"
    assert [t["mode"] for t in b["turns"] if t["role"] == "assistant"] == ["handoff"]
    cases = read_cases(out)
    assert all(isinstance(c, RegressionCase) for c in cases) and {c.conversation_id for c in cases} >= {good, bad}
    only_bad = CliRunner().invoke(cli, ["eval", "export-cases", "--label", "bad", "--data-dir", str(data_dir)], env=env)
    assert only_bad.exit_code == 0 and all(json.loads(x)["label"] == "bad" for x in only_bad.stdout.splitlines())
    assert CliRunner().invoke(cli, ["eval", "export-cases", "--label", "meh"]).exit_code == 2

    report = tmp_path / "calibration.json"
    r = CliRunner().invoke(
        cli,
        [
            "eval",
            "calibrate",
            "--cases",
            str(out),
            "--judge",
            "rules",
            "--out",
            str(report),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    figures = json.loads(report.read_text())
    [rules] = figures["judges"]
    assert figures["cases"] == len(cases) and rules["judge"] == "rules"
    assert rules["dimensions"]["resolution"]["n"] >= 1 and rules["label"]["n"] == len(cases)


CALIBRATION_FIXTURE = [
    # outcome -> the rule's resolution: confirmed 1.0, abandoned 0.0, assumed 0.7, unresolved 0.0
    ("resolved_by_bot_confirmed", 1.0, "good"),
    ("abandoned", 0.0, "bad"),
    ("resolved_by_bot_assumed", 0.0, "bad"),  # the human disagrees with "assumed resolved"
    ("unresolved", 0.0, "bad"),
]


def test_calibrate_computes_agreement_and_kappa_on_a_hand_checked_fixture(tmp_path: Path) -> None:
    cases = tmp_path / "fixture.jsonl"
    lines = []
    for n, (outcome, human, label) in enumerate(CALIBRATION_FIXTURE):
        case = {
            "case_id": f"case_{n}",
            "conversation_id": f"conv_{n}",
            "label": label,
            "tags": [],
            "note": None,
            "customer_id": None,
            "verified": False,
            "turns": [{"role": "customer", "text": "agent please", "mode": None, "citations": [], "confidence": None}],
            "expected": {"handoff": True, "outcome": None, "min_groundedness": None, "scores": {"resolution": human}},
            "observed": {"outcome": outcome, "effort": 2.0},
        }
        lines.append(json.dumps(case))
    cases.write_text("\n".join(lines) + "\n")
    report = tmp_path / "report.json"
    r = CliRunner().invoke(
        cli, ["eval", "calibrate", "--cases", str(cases), "--out", str(report), "--data-dir", str(tmp_path / "d")]
    )
    assert r.exit_code == 0, r.output
    res = json.loads(report.read_text())["judges"][0]["dimensions"]["resolution"]
    # human ok [1,0,0,0], rules ok [1,0,1,0]: agreement 3/4; chance 0.25*0.5 + 0.75*0.5 = 0.5; kappa 0.5
    assert res == {"n": 4, "agreement": 0.75, "kappa": 0.5, "human_ok": 1, "judge_ok": 2}
    assert "resolution" in r.output and "0.500" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"case_id": 1}\n')
    r = CliRunner().invoke(cli, ["eval", "calibrate", "--cases", str(bad), "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 2 and "bad.jsonl:1" in r.output


def test_turn_traces_show_each_turn_and_the_features_behind_its_confidence(app: TestClient) -> None:
    cid = answered_and_thanked(app)
    assert_error(app.get(f"/v1/conversations/{cid}/turns"), 401, "unauthorized")
    assert_error(app.get(f"/v1/conversations/{cid}/turns", headers=widget_headers()), 401)
    assert_error(app.get("/v1/conversations/conv_nope/turns", headers=CX), 404, "conversation_not_found")
    for headers in (CX, bearer(AGENT_TOKEN)):  # the CX team and agents
        r = app.get(f"/v1/conversations/{cid}/turns", headers=headers)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert len(items) == 2  # the question, then the thank-you
        first = items[0]
        assert first["action"] == "answer" and first["cited_chunk_ids"] and first["timings_ms"]
        a = first["answerability"]
        assert a["contributions"] and first["confidence"] == pytest.approx(a["probability"], abs=1e-3)
        assert "evidence" not in first and "generated_text" not in r.text  # not the model's raw output
