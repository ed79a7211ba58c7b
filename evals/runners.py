"""The suite's runners, one per benchmark, each wrapping its benchmark module (see `evals/suite.py`).

| runner | what | default sample |
| --- | --- | --- |
| retrieval | doc2dial dev recall@5 and MRR (first N turns with --limit) | all 1,687 turns |
| handoff | CLINC150 OOS + doc2dial removed pages, out of fold, with ECE | 500 in-scope + all 100 OOS; 500 turns |
| topics | BANKING77 5-fold accuracy and macro-F1 | all 10,003 queries |
| account | sample customers' account questions: fact accuracy, leaks, routing | all 69 cases |
| summaries | TweetSumm ROUGE-L of handoff summaries (chat model) | first 30 dialogues |
| answers | doc2dial turns through the engine: token-F1, groundedness (chat model) | 60 sampled turns |
| regression | labelled cases replayed through the engine | all cases |
| customers | simulated customers through the HTTP API, pass^k (chat model) | all scenarios, k=2 |
| guard | prompt injection: output-guard block rate (held-out attacks), false positives (doc2dial) | all 40; all 1,687 |
| approved | approved-answer matching on BANKING77 + CLINC150 paraphrases: precision, recall | all queries, 3 rounds |
| loop | injected knowledge gaps found, drafts approved, handoffs on them a day later (fake model) | 8 per gap and day |

Which figures a benchmark puts up for comparison, with their direction, kind and sample, is its result
model's `suite_metrics()`: a runner picks the sample, runs the benchmark and keeps the details.
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
from evals.suite import BenchmarkResult, Progress, Runner

# An HTTP client on a server holding the sample help center, with its widget credentials.
ClientFactory = Callable[[Settings], AbstractContextManager[tuple[httpx.Client, Credentials]]]


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
        return BenchmarkResult.of(r.suite_metrics(), n=r.turns, details=r.model_dump())


@dataclass
class HandoffRunner:
    name: str = "handoff"
    description: str = "knowing when not to answer: CLINC150 out-of-scope, doc2dial removed documents"
    default_limit: int | None = 500
    model_bound: bool = False

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.bench.handoff import run_handoff

        run = run_handoff(settings, data, limit=limit, seed=seed, progress=progress)
        c, d = run.clinc150, run.doc2dial
        return BenchmarkResult.of(
            [*c.suite_metrics(), *d.suite_metrics()],
            n=c.in_scope + c.out_of_scope + d.turns,
            details=run.model_dump(mode="json"),
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
        return BenchmarkResult.of(r.suite_metrics(), n=r.queries, details=r.model_dump(exclude={"per_fold"}))


@dataclass
class AccountRunner:
    name: str = "account"
    description: str = "sample customers: facts from the record, leaks, routing, latency (no chat model)"
    default_limit: int | None = None
    model_bound: bool = False

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.bench.account import run_account

        r = run_account(settings, limit=limit, progress=progress)
        return BenchmarkResult.of(r.suite_metrics(), n=r.cases, details=r.model_dump())


@dataclass
class ApprovedRunner:
    name: str = "approved"
    description: str = "approved-answer matching on BANKING77 and CLINC150 paraphrases: precision and recall"
    default_limit: int | None = None
    model_bound: bool = False

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.bench.approved import run_approved

        r = run_approved(settings, data, limit=limit, seed=seed, progress=progress)
        return BenchmarkResult.of(r.suite_metrics(), n=r.queries, details=r.model_dump())


@dataclass
class LoopRunner:
    name: str = "loop"
    description: str = "the loop: injected knowledge gaps found, their drafts approved, their handoffs a day later"
    default_limit: int | None = 8
    model_bound: bool = False
    client: ClientFactory | None = None  # a fresh in-process server (the loop writes approved answers)

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.loop import run_loop

        if self.client is None:
            raise RuntimeError("the loop benchmark needs an in-process server")
        with self.client(settings) as (client, creds):
            r = run_loop(client, creds, per_gap=limit or 8, seed=seed, progress=progress)
        return BenchmarkResult.of(
            r.suite_metrics(), n=r.day1_gap_conversations + r.day2_gap_conversations, details=r.model_dump()
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
        return BenchmarkResult.of(r.suite_metrics(), n=r.dialogues, details=r.model_dump())


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
        return BenchmarkResult.of(r.suite_metrics(), n=r.turns, details=r.model_dump())


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
        return BenchmarkResult.of(r.suite_metrics(), n=r.cases, details=r.model_dump())


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


@dataclass
class GuardRunner:
    name: str = "guard"
    description: str = (
        "prompt injection: the output guard's block rate on held-out attacks (evals/attacks/heldout.jsonl) and its "
        "false positives on doc2dial dev gold answers"
    )
    default_limit: int | None = None
    model_bound: bool = False

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult:
        from evals.bench.guard import run_guard

        r = run_guard(data, limit=limit, progress=progress)
        return BenchmarkResult.of(r.suite_metrics(), n=r.attacks + r.answers, details=r.model_dump())


def customers_result(r: CustomersResult) -> BenchmarkResult:
    return BenchmarkResult.of(
        r.suite_metrics(), n=r.trials, details=r.model_dump(exclude={"trial_results"}) | {"failed": _failed(r)}
    )


def _failed(r: CustomersResult) -> list[dict[str, object]]:
    """The failed trials' transcripts (the first 20), to read in results.json."""
    return [
        t.model_dump(include={"scenario", "trial", "persona", "transcript"}) for t in r.trial_results if not t.passed
    ][:20]


ORDER = (
    "retrieval",
    "handoff",
    "topics",
    "account",
    "guard",
    "approved",
    "loop",
    "summaries",
    "answers",
    "regression",
    "customers",
)


def registry(
    client: ClientFactory | None = None,
    case_paths: list[Path] | None = None,
    k: int = 2,
    loop_client: ClientFactory | None = None,
) -> dict[str, Runner]:
    """Every runner by name, in the order a full run takes them (fast ones first)."""
    runners: list[Runner] = [
        RetrievalRunner(),
        HandoffRunner(),
        TopicsRunner(),
        AccountRunner(),
        GuardRunner(),
        ApprovedRunner(),
        LoopRunner(client=loop_client),
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
