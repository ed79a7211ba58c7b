"""Replay of regression cases (`evals/cases.py`) through the engine, on the sample help center.

Each case gets a fresh conversation (as its customer when `customer_id` names a sample customer and the
case is `verified`, else anonymous); its customer turns are sent one by one, stopping once the conversation
is handed off. Checks, each counted only for the cases that state it:
- `handoff`: the assistant handed off (by any of its own turns) exactly when expected;
- `min_groundedness`: the mean groundedness of the replies (share of sentences supported by the cited
  chunks, as in the answers benchmark) is at least this; a case with no reply fails it;
- `outcome`: the telemetry outcome once the customer has left (the inactivity clock is moved past
  `CXA_TELEMETRY__INACTIVITY_S`); outcomes that need an agent (`resolved_by_agent`) cannot be replayed and
  are skipped.
A case passes when all of its checks pass.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, Field

from assistant.models import utcnow
from assistant.services import Services
from assistant.settings import Settings
from assistant.turn.grounding import SentenceVectors
from evals.bench.answers import cited_hits, groundedness
from evals.cases import RegressionCase
from evals.suite import Metric
from evals.workspace import HELPCENTER_COLLECTION, helpcenter_workspace

Progress = Callable[[str, int, int], None]
AGENT_OUTCOMES = frozenset({"resolved_by_agent"})


class CaseResult(BaseModel):
    case_id: str
    passed: bool
    checks: dict[str, bool] = Field(default_factory=dict)
    handed_off: bool
    turns_sent: int
    groundedness: float | None = None
    outcome: str | None = None
    replies: list[str] = Field(default_factory=list)


class RegressionResult(BaseModel):
    benchmark: str = "regression/cases"
    cases: int
    passed: float
    per_check: dict[str, float]
    per_check_n: dict[str, int]
    results: list[CaseResult]
    seconds: float

    def suite_metrics(self) -> list[Metric]:
        return [
            Metric("cases_passed", self.passed),
            *(Metric(f"{k}_pass_rate", v, n=self.per_check_n.get(k)) for k, v in self.per_check.items()),
        ]


def replay_case(services: Services, case: RegressionCase, vectors: SentenceVectors) -> CaseResult:
    engine, store = services.engine, services.store
    known = case.customer_id is not None and store.get_customer(case.customer_id) is not None
    conv = engine.start_conversation(case.customer_id, verified=case.verified and known, channel="eval")
    handed, sent, replies, grounded = False, 0, [], []
    for text in case.customer_turns:
        turn = engine.run_turn(conv.id, text)
        sent += 1
        if turn.reply is not None and turn.reply.text.strip() and turn.reply.mode not in ("closing", "greeting"):
            replies.append(turn.reply.text)
            g = groundedness(
                turn.reply.text,
                text,
                cited_hits(services.index, turn.reply.citations),
                vectors,
                services.settings.answer.min_sentence_support,
            )
            if g is not None:
                grounded.append(g)
        if turn.handoff is not None and turn.status in ("waiting_for_agent", "with_agent"):
            handed = True
            break
    e = case.expected
    checks = {"handoff": handed == e.handoff}
    mean_g = statistics.fmean(grounded) if grounded else None
    if e.min_groundedness is not None:
        checks["min_groundedness"] = mean_g is not None and mean_g >= e.min_groundedness
    outcome = None
    if e.outcome is not None and e.outcome not in AGENT_OUTCOMES and engine.telemetry is not None:
        later = utcnow() + timedelta(seconds=services.settings.telemetry.inactivity_s + 1)
        outcome = engine.telemetry.refresh(conv.id, now=later).outcome
        checks["outcome"] = outcome == e.outcome
    return CaseResult(
        case_id=case.case_id,
        passed=all(checks.values()),
        checks=checks,
        handed_off=handed,
        turns_sent=sent,
        groundedness=round(mean_g, 4) if mean_g is not None else None,
        outcome=outcome,
        replies=replies,
    )


def run_regression(
    settings: Settings,
    cases: list[RegressionCase],
    limit: int | None = None,
    progress: Progress | None = None,
    collection: str = HELPCENTER_COLLECTION,
) -> RegressionResult:
    started = time.perf_counter()
    cases = cases[:limit] if limit is not None else cases
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="cxa-regression-") as tmp:
        services = Services.build(helpcenter_workspace(settings, Path(tmp), collection=collection))
        try:
            vectors = SentenceVectors(services.index.embedder)
            for i, case in enumerate(cases, 1):
                results.append(replay_case(services, case, vectors))
                if progress:
                    progress("cases", i, len(cases))
        finally:
            services.close()
    per_check: dict[str, list[bool]] = {}
    for r in results:
        for name, ok in r.checks.items():
            per_check.setdefault(name, []).append(ok)
    return RegressionResult(
        cases=len(results),
        passed=round(sum(r.passed for r in results) / max(1, len(results)), 4),
        per_check={k: round(sum(v) / len(v), 4) for k, v in per_check.items()},
        per_check_n={k: len(v) for k, v in per_check.items()},
        results=results,
        seconds=round(time.perf_counter() - started, 1),
    )
