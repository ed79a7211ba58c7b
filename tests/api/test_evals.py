"""Regression-case replay and simulated customers through the real engine and app (fake chat model), and
`GET /v1/evals/latest` (cx role), and the answerability model's calibration for the dashboard."""

from __future__ import annotations

from fastapi.testclient import TestClient

from assistant.settings import Settings
from assistant.turn.answerability import SHIPPED, load_artifact
from evals.bench.regression import run_regression
from evals.cases import RegressionCase
from evals.customers import load_scenarios, run_customers
from evals.reliability import reliability_table
from evals.report import write_run
from evals.simulate import Credentials
from evals.suite import BenchmarkEntry, SuiteRun
from tests.conftest import AGENT_TOKEN, CX_TOKEN, IDENTITY_SECRET, WIDGET_KEY, bearer


def _case(case_id: str, texts: list[str], handoff: bool, **expected: object) -> RegressionCase:
    return RegressionCase.model_validate(
        {
            "case_id": case_id,
            "conversation_id": f"conv-{case_id}",
            "label": "good",
            "turns": [{"role": "customer", "text": t} for t in texts],
            "expected": {"handoff": handoff, **expected},
        }
    )


def test_regression_cases_replay_pass_and_fail(settings: Settings) -> None:
    cases = [
        _case("person-ok", ["I want to talk to a person please", "hello?"], True),
        _case("person-wrong", ["I want to talk to a person please"], False),  # expects no handoff: fails
        _case(
            "answer-ok",
            ["How do I turn on two-factor authentication?", "thanks, that worked"],
            False,
            outcome="resolved_by_bot_confirmed",
            min_groundedness=0.3,
        ),
    ]
    # the template's own collection already holds the sample help center: nothing is embedded again
    result = run_regression(settings, cases, collection=settings.collection)
    by_id = {r.case_id: r for r in result.results}
    assert by_id["person-ok"].passed and by_id["person-ok"].turns_sent == 1  # stops at the handoff
    assert not by_id["person-wrong"].passed and by_id["person-wrong"].checks == {"handoff": False}
    ok = by_id["answer-ok"]
    assert ok.passed, ok
    assert ok.outcome == "resolved_by_bot_confirmed" and ok.groundedness is not None and ok.replies
    assert result.passed == round(2 / 3, 4)
    assert result.per_check == {"handoff": round(2 / 3, 4), "min_groundedness": 1.0, "outcome": 1.0}
    assert result.per_check_n == {"handoff": 3, "min_groundedness": 1, "outcome": 1}


def test_simulated_customers_score_pass_hat_k(client: TestClient) -> None:
    wanted = {"explicit-person", "legal-threat", "two-factor-setup"}
    scenarios = [s for s in load_scenarios() if s.id in wanted]
    creds = Credentials(WIDGET_KEY, AGENT_TOKEN, CX_TOKEN, IDENTITY_SECRET)
    result = run_customers(client, creds, scenarios, k=2, seed=0)
    assert (result.scenarios, result.trials, set(result.pass_hat_k)) == (3, 6, {1, 2})
    per = {p.scenario: p for p in result.per_scenario}
    assert per["explicit-person"].passed == 2 and per["legal-threat"].passed == 2  # the policy hands off
    assert result.handoff_correct == 1.0
    assert result.pass_hat_k[1] >= result.pass_hat_k[2]
    assert (result.model_failed_turns, result.model_slow_turns) == (0, 0)  # read from every trial's turn traces
    for t in result.trial_results:
        assert t.transcript and t.effort is not None and t.outcome is not None
        if t.scenario == "legal-threat":
            assert t.handed_off and not t.asked_for_person and t.turns == 1
    # trials vary the persona and phrasing by seed, reproducibly
    again = run_customers(client, creds, scenarios, k=2, seed=0)
    assert [t.persona for t in again.trial_results] == [t.persona for t in result.trial_results]


def test_latest_eval_run_needs_cx_and_404s_before_any_run(client: TestClient, settings: Settings) -> None:
    assert client.get("/v1/evals/latest").status_code == 401
    assert client.get("/v1/evals/latest", headers=bearer(AGENT_TOKEN)).status_code == 403
    missing = client.get("/v1/evals/latest", headers=bearer(CX_TOKEN))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.get("/v1/evals/latest/report", headers=bearer(CX_TOKEN)).status_code == 404

    run = SuiteRun(
        run_id="20260101T000000Z",
        started_at="2026-01-01T00:00:00+00:00",
        wall_s=12.0,
        model={"chat_provider": "fake", "chat_model": "FakeSupportChatModel"},
        limit=5,
        seed=0,
        benchmarks={
            "retrieval": BenchmarkEntry(
                metrics={"recall_at_5": 0.6}, n=5, wall_s=2.0, higher_is_better={"recall_at_5": True}
            )
        },
    )
    write_run(run, settings.data_dir / "evals" / "runs" / run.run_id, settings.data_dir / "evals")
    got = client.get("/v1/evals/latest", headers=bearer(CX_TOKEN))
    assert got.status_code == 200
    body = got.json()
    assert body["run_id"] == run.run_id and body["benchmarks"]["retrieval"]["metrics"] == {"recall_at_5": 0.6}
    assert body["comparison"] == {"baseline": None, "rows": [], "regressions": 0}
    report = client.get("/v1/evals/latest/report", headers=bearer(CX_TOKEN))
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/markdown")
    assert "# Benchmark suite run 20260101T000000Z" in report.text


def test_the_report_carries_the_confidence_reliability_and_ece(client: TestClient, settings: Settings) -> None:
    bins = reliability_table([0.15, 0.15, 0.85, 0.95], [0, 1, 1, 1])
    handoff = BenchmarkEntry(
        metrics={"doc2dial_ece": 0.125, "doc2dial_auroc": 0.75},
        n=4,
        wall_s=1.0,
        higher_is_better={"doc2dial_ece": False, "doc2dial_auroc": True},
        details={"doc2dial": {"ece": 0.125, "reliability": [b.model_dump() for b in bins]}},
    )
    run = SuiteRun(
        run_id="20260102T000000Z",
        started_at="2026-01-02T00:00:00+00:00",
        wall_s=3.0,
        model={},
        limit=None,
        seed=0,
        benchmarks={"handoff": handoff},
    )
    write_run(run, settings.data_dir / "evals" / "runs" / run.run_id, settings.data_dir / "evals")
    report = client.get("/v1/evals/latest/report", headers=bearer(CX_TOKEN)).text
    assert "Reliability of the confidence, doc2dial (out of fold; ECE 0.125)" in report
    assert "| 0.1–0.2 | 0.150 | 0.500 | 2 |" in report and "| 0.5–0.6 | – | – | 0 |" in report


def test_the_dashboard_shows_the_shipped_models_calibration(client: TestClient) -> None:
    assert client.get("/v1/evals/answerability").status_code == 401
    got = client.get("/v1/evals/answerability", headers=bearer(CX_TOKEN))
    assert got.status_code == 200
    body = got.json()
    shipped = load_artifact(SHIPPED)
    assert body["version"] == shipped.version and body["command"] == "cxa train answerability"
    assert body["threshold"] == 0.1111 and body["threshold_from"] == "costs"  # C_w 1, C_fh 2, 80% covered
    for name in ("doc2dial", "clinc150"):
        figures = body["figures"][name]
        assert figures["ece"] == shipped.figures[name].ece and len(figures["reliability"]) == 10
    page = client.get("/dashboard").text + client.get("/web/dashboard.js").text
    assert 'id="chart-reliability"' in page and "/v1/evals/answerability" in page


def test_every_failed_trial_says_what_sent_it_wrong(client: TestClient) -> None:
    two_fa = next(s for s in load_scenarios() if s.id == "two-factor-setup")
    # the same customer, judged against a page that does not exist, and against a rule that it must be handed off
    wrong_page = two_fa.model_copy(
        update={"id": "wants-another-page", "success": two_fa.success.model_copy(update={"cite": ["nope/page"]})}
    )
    must_hand_off = two_fa.model_copy(
        update={"id": "should-hand-off", "success": two_fa.success.model_copy(update={"handoff": True})}
    )
    creds = Credentials(WIDGET_KEY, AGENT_TOKEN, CX_TOKEN, IDENTITY_SECRET)
    result = run_customers(client, creds, [wrong_page, must_hand_off], k=1, seed=0)
    by_id = {t.scenario: t for t in result.trial_results}
    assert not by_id["wants-another-page"].passed and by_id["wants-another-page"].cause == "wrong page"
    assert "account/two-factor-authentication" in (by_id["wants-another-page"].explanation or "")
    missed = by_id["should-hand-off"]
    assert not missed.passed and missed.cause == "no handoff"
    assert "vs threshold" in (missed.explanation or "")  # the features that kept the confidence up are named
    assert result.causes == {"wrong page": 1, "no handoff": 1}
