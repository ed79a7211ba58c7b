"""The suite's runners, one per benchmark, each wrapping its benchmark module (see `evals/suite.py`).

| runner | what | default sample |
| --- | --- | --- |
| retrieval | doc2dial dev recall@5 and MRR (first N turns with --limit) | all 1,687 turns |
| handoff | CLINC150 OOS detection + doc2dial removed-document handoffs | 500 in-scope + all 100 OOS; 500 turns |
| topics | BANKING77 5-fold accuracy and macro-F1 | all 10,003 queries |
| summaries | TweetSumm ROUGE-L of handoff summaries (chat model) | first 30 dialogues |
| answers | doc2dial turns through the engine: token-F1, groundedness (chat model) | 60 sampled turns |
| regression | labelled cases replayed through the engine | all cases |
| customers | simulated customers through the HTTP API, pass^k (chat model) | all scenarios, k=2 |
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from assistant.settings import Settings
from evals.cases import CASES_DIR, load_cases
from evals.customers import CustomersResult
from evals.simulate import Credentials
from evals.suite import BenchmarkResult, MetricKind, Progress, Runner

# An HTTP client on a server holding the sample help center, with its widget credentials.
ClientFactory = Callable[[Settings], AbstractContextManager[tuple[httpx.Client, Credentials]]]


def _info(*names: str) -> dict[str, MetricKind]:
    return dict.fromkeys(names, "info")


@dataclass
class RetrievalRunner:
    name: str = "retrieval"
    description: str = "doc2dial dev: recall@5 and MRR over all 273 pages"
    default_limit: int | None = None
    model_bound: bool = False

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.bench.retrieval import run_retrieval

        r = run_retrieval(settings, data, k=5, limit=limit, progress=progress)
        return BenchmarkResult(
            metrics={
                "recall_at_5": r.recall_at_k,
                "mrr": r.mrr,
                "latency_ms_p50": r.latency_ms_p50,
                "latency_ms_p95": r.latency_ms_p95,
            },
            n=r.turns,
            higher_is_better={"recall_at_5": True, "mrr": True, "latency_ms_p50": False, "latency_ms_p95": False},
            kinds=_info("latency_ms_p50", "latency_ms_p95"),
            details=r.model_dump(),
        )


@dataclass
class HandoffRunner:
    name: str = "handoff"
    description: str = "knowing when not to answer: CLINC150 out-of-scope, doc2dial removed documents"
    default_limit: int | None = 500
    model_bound: bool = False

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.bench.handoff import run_clinc, run_doc2dial_handoff

        c = run_clinc(settings, data, limit=limit, seed=seed, progress=progress)
        d = run_doc2dial_handoff(settings, data, limit=limit, seed=seed, progress=progress)
        metrics = {
            "clinc_auroc": c.auroc,
            "clinc_oos_recall_at_95_in_scope": c.oos_recall_at_95_in_scope,
            "clinc_in_scope_answered_at_policy": c.in_scope_answered_at_policy,
            "clinc_oos_recall_at_policy": c.oos_recall_at_policy,
            "doc2dial_handoff_recall": d.handoff_recall,
            "doc2dial_false_handoff_rate": d.false_handoff_rate,
            "doc2dial_auroc": d.auroc,
        }
        better = dict.fromkeys(metrics, True) | {"doc2dial_false_handoff_rate": False}
        oos = c.out_of_scope
        return BenchmarkResult(
            metrics=metrics,
            n=c.in_scope + c.out_of_scope + d.turns,
            higher_is_better=better,
            n_per_metric={
                "clinc_auroc": oos,
                "clinc_oos_recall_at_95_in_scope": oos,
                "clinc_oos_recall_at_policy": oos,
                "clinc_in_scope_answered_at_policy": c.in_scope,
                "doc2dial_handoff_recall": d.turns,
                "doc2dial_false_handoff_rate": d.turns,
                "doc2dial_auroc": d.turns,
            },
            details={"clinc150": c.model_dump(), "doc2dial": d.model_dump()},
        )


@dataclass
class TopicsRunner:
    name: str = "topics"
    description: str = "BANKING77 train: 5-fold cross-validated accuracy and macro-F1 of the topic classifier"
    default_limit: int | None = None
    model_bound: bool = False

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.bench.topics import run_topics

        folds = 5 if limit is None or limit >= 77 * 5 else 2
        r = run_topics(settings, data, folds=folds, seed=seed, limit=limit, progress=progress, latency_queries=50)
        return BenchmarkResult(
            metrics={"accuracy": r.accuracy, "macro_f1": r.macro_f1, "latency_ms_p50": r.latency_ms_p50},
            n=r.queries,
            higher_is_better={"accuracy": True, "macro_f1": True, "latency_ms_p50": False},
            kinds=_info("latency_ms_p50"),
            details=r.model_dump(exclude={"per_fold"}),
        )


@dataclass
class SummariesRunner:
    name: str = "summaries"
    description: str = "TweetSumm dev: ROUGE-L of handoff summaries with the configured chat model"
    default_limit: int | None = 30
    model_bound: bool = True

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.bench.summaries import run_summaries

        r = run_summaries(settings, data, limit, progress)
        metrics = {
            "rouge_l_f1": r.summary.rouge_l_f1,
            "rouge_l_f1_extractive": r.extractive.rouge_l_f1,
            "model_written": r.model_written,
            "supported_words": r.supported_words,
            "latency_ms_p50": r.latency_ms_p50,
        }
        return BenchmarkResult(
            metrics={k: round(v, 4) for k, v in metrics.items()},
            n=r.dialogues,
            higher_is_better=dict.fromkeys(metrics, True) | {"latency_ms_p50": False},
            kinds=_info("latency_ms_p50"),
            details=r.model_dump(),
        )


@dataclass
class AnswersRunner:
    name: str = "answers"
    description: str = "doc2dial dev turns through the engine: token-F1 vs gold, groundedness, handoffs"
    default_limit: int | None = 60
    model_bound: bool = True

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.bench.answers import run_answers

        r = run_answers(settings, data, limit=limit, seed=seed, progress=progress)
        metrics = {
            "token_f1": r.token_f1,
            "token_f1_all": r.token_f1_all,
            "groundedness": r.groundedness,
            "handoff_rate": r.handoff_rate,
            "abstain_rate": r.abstain_rate,
            "generated_share": r.generated_share,
            "latency_ms_p50": r.latency_ms_p50,
            "latency_ms_p95": r.latency_ms_p95,
        }
        return BenchmarkResult(
            metrics=metrics,
            n=r.turns,
            higher_is_better=dict.fromkeys(metrics, True)
            | dict.fromkeys(("handoff_rate", "abstain_rate", "latency_ms_p50", "latency_ms_p95"), False),
            kinds=_info("generated_share", "latency_ms_p50", "latency_ms_p95"),
            details=r.model_dump(),
        )


@dataclass
class RegressionRunner:
    name: str = "regression"
    description: str = "labelled regression cases replayed through the engine on the sample help center"
    default_limit: int | None = None
    model_bound: bool = True
    case_paths: list[Path] = field(default_factory=lambda: [CASES_DIR])

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.bench.regression import run_regression

        r = run_regression(settings, load_cases(self.case_paths), limit=limit, progress=progress)
        metrics = {"cases_passed": r.passed, **{f"{k}_pass_rate": v for k, v in r.per_check.items()}}
        return BenchmarkResult(
            metrics=metrics,
            n=r.cases,
            higher_is_better=dict.fromkeys(metrics, True),
            n_per_metric={f"{k}_pass_rate": v for k, v in r.per_check_n.items()},
            details=r.model_dump(),
        )


@dataclass
class CustomersRunner:
    name: str = "customers"
    description: str = "simulated customers through the HTTP API: pass^k, resolution, effort"
    default_limit: int | None = None
    model_bound: bool = True
    client: ClientFactory | None = None
    k: int = 2
    scenario_paths: list[Path] | None = None

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.customers import load_scenarios, run_customers

        if self.client is None:
            raise RuntimeError("the customers benchmark needs a server (in-process or --base-url)")
        with self.client(settings) as (client, creds):
            r = run_customers(client, creds, load_scenarios(self.scenario_paths), self.k, seed, limit, progress)
        return customers_result(r)


def customers_result(r: CustomersResult) -> BenchmarkResult:
    metrics: dict[str, float] = {f"pass_hat_{k}": v for k, v in r.pass_hat_k.items()}
    metrics |= {"resolution_rate": r.resolution_rate, "mean_turns": r.mean_turns}
    n_per: dict[str, int] = dict.fromkeys(metrics, r.scenarios)
    kinds: dict[str, MetricKind] = {"mean_turns": "info"}
    if r.handoff_correct is not None:
        metrics["handoff_correct"] = r.handoff_correct
    if r.false_handoff_rate is not None:
        metrics["false_handoff_rate"] = r.false_handoff_rate
    if r.mean_effort is not None:
        metrics["mean_effort"] = r.mean_effort
        kinds["mean_effort"] = "value"
    better = dict.fromkeys(metrics, True) | {"false_handoff_rate": False, "mean_effort": False, "mean_turns": False}
    return BenchmarkResult(
        metrics=metrics,
        n=r.trials,
        higher_is_better={k: v for k, v in better.items() if k in metrics},
        kinds=kinds,
        n_per_metric=n_per,
        details=r.model_dump(exclude={"trial_results"}) | {"failed": _failed(r)},
    )


def _failed(r: CustomersResult) -> list[dict[str, object]]:
    """The failed trials' transcripts (the first 20), to read in results.json."""
    return [
        t.model_dump(include={"scenario", "trial", "persona", "transcript"}) for t in r.trial_results if not t.passed
    ][:20]


ORDER = ("retrieval", "handoff", "topics", "summaries", "answers", "regression", "customers")


def registry(
    client: ClientFactory | None = None, case_paths: list[Path] | None = None, k: int = 2
) -> dict[str, Runner]:
    """Every runner by name, in the order a full run takes them (fast ones first)."""
    runners: list[Runner] = [
        RetrievalRunner(),
        HandoffRunner(),
        TopicsRunner(),
        SummariesRunner(),
        AnswersRunner(),
        RegressionRunner(case_paths=case_paths or [CASES_DIR]),
        CustomersRunner(client=client, k=k),
    ]
    return {r.name: r for r in runners}


def select(runners: dict[str, Runner], only: str | None) -> list[Runner]:
    """The runners named in `only` ("a,b"), in registry order; all of them for None."""
    if not only:
        return list(runners.values())
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in runners]
    if unknown:
        raise ValueError(f"unknown benchmark(s): {', '.join(unknown)} (choose from {', '.join(runners)})")
    return [r for name, r in runners.items() if name in names]
