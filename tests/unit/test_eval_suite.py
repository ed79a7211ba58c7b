"""The benchmark suite's pieces: pass^k, token-F1, the baseline comparison (a deliberate regression is
flagged, noise is not), the report, regression-case and scenario files, and `cxa eval bench` end to end on
a tiny BANKING77 file written here."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from evals.bench.answers import normalize_answer, token_f1
from evals.cases import CASES_DIR, CaseFileError, load_cases
from evals.customers import Success, load_scenarios, pass_hat_k
from evals.report import compare, compare_entry, render_markdown, tolerance
from evals.runners import registry, select
from evals.suite import BenchmarkEntry, BenchmarkResult, Metric, SuiteRun


def test_pass_hat_k_matches_a_hand_computed_example() -> None:
    # three tasks, 4 trials each: 4, 2 and 0 passes
    counts = [(4, 4), (4, 2), (4, 0)]
    assert pass_hat_k(counts, 1) == pytest.approx((1 + 0.5 + 0) / 3)
    assert pass_hat_k(counts, 2) == pytest.approx((1 + 1 / 6 + 0) / 3)  # C(2,2)/C(4,2) = 1/6
    assert pass_hat_k(counts, 3) == pytest.approx(1 / 3)  # C(2,3) = 0
    assert pass_hat_k(counts, 4) == pytest.approx(1 / 3)
    assert math.isnan(pass_hat_k(counts, 5))  # no task has 5 trials


def test_token_f1_uses_squad_normalisation() -> None:
    assert normalize_answer("The Refund, takes 5 days!") == "refund takes 5 days"
    assert token_f1("The refund takes 5 days.", "refund takes 5 days") == 1.0
    assert token_f1("refund takes ten days", "refund takes 5 days") == pytest.approx(0.75)
    assert token_f1("", "something") == 0.0 and token_f1("nothing shared", "other words") == 0.0


def test_success_criteria_need_the_citation_and_every_fact_group() -> None:
    s = Success(handoff=False, cite=["returns-refunds/refund-timelines"], facts=[["5-10", "5 to 10"], ["card"]])
    good = {
        "text": "Card refunds take 5-10 business days.",
        "citations": [{"source_id": "returns-refunds/refund-timelines"}],
    }
    assert s.satisfied_by(good)
    assert not s.satisfied_by({**good, "citations": [{"source_id": "shipping/click-and-collect"}]})
    assert not s.satisfied_by({**good, "text": "Refunds take 5-10 business days."})
    assert not s.satisfied_by(None) and not Success(handoff=True).satisfied_by(good)


def _entry(metrics: dict[str, float], n: int, **kw: object) -> BenchmarkEntry:
    return BenchmarkEntry(metrics=metrics, n=n, wall_s=1.0, higher_is_better=dict.fromkeys(metrics, True), **kw)  # type: ignore[arg-type]


def test_comparison_flags_a_real_drop_but_not_noise() -> None:
    base = _entry(
        {"recall_at_5": 0.64, "mrr": 0.45, "latency_ms_p50": 18.0, "old": 0.5}, 1687, kinds={"latency_ms_p50": "info"}
    )
    cur = _entry(
        {"recall_at_5": 0.50, "mrr": 0.44, "latency_ms_p50": 40.0, "new_metric": 0.3},
        1687,
        kinds={"latency_ms_p50": "info"},
    )
    rows = {r.metric: r for r in compare_entry("retrieval", cur, base)}
    assert rows["recall_at_5"].regressed and rows["recall_at_5"].status == "regressed"
    assert rows["recall_at_5"].delta == pytest.approx(-0.14)
    assert not rows["mrr"].regressed and rows["mrr"].status == "worse"  # 0.01 is within tolerance
    assert not rows["latency_ms_p50"].regressed and rows["latency_ms_p50"].status == "info"
    assert rows["new_metric"].status == "new" and rows["new_metric"].baseline is None
    assert "old" not in rows  # a metric the current run lacks is not compared


def test_tolerance_grows_for_small_samples_and_respects_direction() -> None:
    assert tolerance("rate", 0.95, 0.95, 10000, 10000) == pytest.approx(0.02)  # the floor
    small = tolerance("rate", 0.6, 0.6, 40, 40)
    assert small is not None and 0.2 < small < 0.25
    assert tolerance("info", 1, 2, 10, 10) is None and tolerance("value", 2.0, 2.0, 5, 5) == pytest.approx(0.2)
    base = BenchmarkEntry(
        metrics={"false_handoff_rate": 0.10}, n=500, wall_s=1, higher_is_better={"false_handoff_rate": False}
    )
    worse = base.model_copy(update={"metrics": {"false_handoff_rate": 0.30}})
    better = base.model_copy(update={"metrics": {"false_handoff_rate": 0.01}})
    assert compare_entry("handoff", worse, base)[0].regressed
    assert compare_entry("handoff", better, base)[0].status == "better"


def _run(benchmarks: dict[str, BenchmarkEntry]) -> SuiteRun:
    return SuiteRun(
        run_id="r1",
        started_at="2026-01-01T00:00:00+00:00",
        wall_s=3.0,
        model={"chat_provider": "fake"},
        limit=None,
        seed=0,
        benchmarks=benchmarks,
    )


def test_report_marks_regressions_and_failures() -> None:
    baseline = _run({"retrieval": _entry({"recall_at_5": 0.64}, 1687)})
    current = _run(
        {
            "retrieval": _entry({"recall_at_5": 0.40}, 1687),
            "answers": BenchmarkEntry(metrics={}, n=0, wall_s=0, higher_is_better={}, error="boom"),
        }
    )
    current.comparison = compare(current, baseline, "evals/baseline.json")
    assert current.comparison.regressions == 1
    md = render_markdown(current, {"retrieval": None, "answers": 60})
    assert "**REGRESSED**" in md and "**1 regression(s)**" in md and "**FAILED**: boom" in md
    assert "| answers | 60 | all | 0 | 0 |" in md
    dumped = json.loads(current.model_dump_json())
    assert {"run_id", "started_at", "wall_s", "model", "limit", "seed", "benchmarks", "comparison"} <= set(dumped)
    assert set(dumped["comparison"]["rows"][0]) >= {"benchmark", "metric", "baseline", "current", "delta", "regressed"}
    assert compare(current, None, None).rows[0].status == "new"


def test_seed_cases_and_scenarios_load(tmp_path: Path) -> None:
    cases = load_cases([CASES_DIR])
    assert len(cases) >= 10 and all(c.customer_turns for c in cases)
    assert {True, False} <= {c.expected.handoff for c in cases}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"case_id": "x"}\n')
    with pytest.raises(CaseFileError, match="bad.jsonl:1"):
        load_cases([bad])
    scenarios = load_scenarios()
    assert 30 <= len(scenarios) <= 60 and len({s.id for s in scenarios}) == len(scenarios)
    assert any(s.success.handoff for s in scenarios) and any(not s.success.handoff for s in scenarios)
    articles = {
        p.relative_to(p.parents[1]).with_suffix("").as_posix()
        for p in (Path(__file__).resolve().parents[2] / "knowledge" / "samples" / "helpcenter").rglob("*.*")
    }
    cited = {c for s in scenarios for c in s.success.cite}
    assert cited <= articles, cited - articles  # every success criterion names a real article


def test_select_runners_by_name() -> None:
    runners = registry()
    assert [r.name for r in select(runners, "answers,retrieval")] == ["retrieval", "answers"]
    with pytest.raises(ValueError, match="unknown benchmark"):
        select(runners, "retrieval,nope")


def test_a_result_carries_its_metrics_with_direction_kind_and_sample() -> None:
    r = BenchmarkResult.of(
        [
            Metric("recall", 0.6),
            Metric("false_rate", 0.1, higher_is_better=False, n=40),
            Metric("latency_ms", 12.0, higher_is_better=False, kind="info"),
        ],
        n=500,
    )
    assert list(r.metrics) == ["recall", "false_rate", "latency_ms"]
    assert r.higher_is_better == {"recall": True, "false_rate": False, "latency_ms": False}
    assert r.kinds == {"latency_ms": "info"} and r.kind("recall") == "rate"
    assert r.sample("false_rate") == 40 and r.sample("recall") == 500
    with pytest.raises(ValueError, match="repeats"):
        BenchmarkResult.of([Metric("a", 1.0), Metric("a", 2.0)], n=1)


# -- the command, end to end on a tiny dataset ---------------------------------------------------------------


def _tiny_banking77(folder: Path) -> Path:
    """4 labels x 10 queries whose labels have nothing to do with the words: accuracy near chance."""
    (folder / "banking77").mkdir(parents=True)
    words = ["card", "refund", "parcel", "password", "gift", "delivery", "invoice", "plan", "account", "app"]
    with (folder / "banking77" / "train.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "category"])
        for i in range(40):
            w.writerow([f"question about my {words[i % 10]} number {i}", f"label_{(i * 7 + i // 10) % 4}"])
    return folder


def test_eval_bench_writes_the_run_and_catches_a_regression(tmp_path: Path) -> None:
    data = _tiny_banking77(tmp_path / "shared")
    data_dir = tmp_path / "cxa"
    baseline = tmp_path / "baseline.json"
    good = _run({"topics": _entry({"accuracy": 0.92, "macro_f1": 0.92}, 10003)})
    baseline.write_text(good.model_dump_json())
    args = ["eval", "bench", "--only", "topics", "--limit", "20", "--data", str(data), "--data-dir", str(data_dir)]

    # the run is worse than the baseline: flagged, exit 1; --save-baseline makes it the new reference anyway
    out = tmp_path / "run1"
    flagged = CliRunner().invoke(
        app, [*args, "--baseline", str(baseline), "--fail-on-regression", "--save-baseline", "--out", str(out)]
    )
    assert flagged.exit_code == 1, flagged.output
    results = json.loads((out / "results.json").read_text())
    assert results["comparison"]["regressions"] >= 1 and results["benchmarks"]["topics"]["n"] == 20
    assert {r["metric"] for r in results["comparison"]["rows"] if r["regressed"]} >= {"accuracy"}
    assert "**REGRESSED**" in (out / "report.md").read_text()
    latest = json.loads((data_dir / "evals" / "latest.json").read_text())
    assert latest["run_id"] == results["run_id"] and (data_dir / "evals" / "latest.md").is_file()

    # the same run again, against the saved baseline: no regression, exit 0
    again = CliRunner().invoke(app, [*args, "--baseline", str(baseline), "--fail-on-regression"])
    assert again.exit_code == 0, again.output
    assert json.loads((data_dir / "evals" / "latest.json").read_text())["comparison"]["regressions"] == 0
    unknown = CliRunner().invoke(app, ["eval", "bench", "--only", "nope", "--data-dir", str(data_dir)])
    assert unknown.exit_code == 2


def test_the_heldout_attack_set_is_apart_from_the_tuning_set() -> None:
    """Issue 19, finding 11: the guard is measured on attacks it was not built from."""
    from evals.bench.guard import heldout_overlap, load_heldout

    attacks = load_heldout()
    assert len(attacks) >= 40 and len({a.id for a in attacks}) == len(attacks)
    techniques = " ".join(a.technique for a in attacks)
    for kind in (
        "other language",
        "homoglyph",
        "zero-width",
        "rot13",
        "hex",
        "base64",
        "chat-template",
        "tool-call",
        "two-message split",
    ):
        assert kind in techniques, kind
    assert heldout_overlap() == []  # no payload shares six words in a row with evals/attacks/injection.jsonl


def test_cxa_eval_bench_measures_the_guard(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.cli import app
    from tests.conftest import ROOT, backend_env

    data = ROOT.parent / "shared" / "data"
    if not (data / "doc2dial" / "turns_dev.jsonl").is_file():
        pytest.skip(f"doc2dial dev data not found under {data}")
    r = CliRunner().invoke(
        app,
        ["eval", "bench", "--only", "guard", "--limit", "200", "--data", str(data), "--data-dir", str(tmp_path)],
        env=backend_env(tmp_path),
    )
    assert r.exit_code in (0, 1), r.output  # 1: a regression against the baseline is reported, not a failure here
    latest = json.loads((tmp_path / "evals" / "latest.json").read_text())
    guard = latest["benchmarks"]["guard"]
    assert (
        0.0 <= guard["metrics"]["false_positive_rate"] <= 1.0
        and guard["higher_is_better"]["false_positive_rate"] is False
    )
    assert 0.5 <= guard["metrics"]["block_rate"] <= 1.0
    assert guard["n_per_metric"]["block_rate"] >= 40 and guard["n_per_metric"]["false_positive_rate"] == 200
