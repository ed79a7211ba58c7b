"""Judge calibration: score labelled regression cases again (from their stored transcripts, no database) and
measure how far each judge agrees with the human labels.

Per judge and per dimension: over the cases where both the human and the judge gave a score, both are
binarised at 0.5 (>= 0.5 is "ok", below is "not ok"), then agreement (share of equal verdicts) and Cohen's
kappa (agreement corrected for chance: (p_o - p_e) / (1 - p_e), where p_e is the agreement two raters with
these marginals would reach by chance). Kappa is None when it is undefined (both raters gave one verdict
only: p_e = 1). The overall good/bad agreement compares the human label with `evals.scorecard.verdict`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pydantic import BaseModel

from assistant.models import SCORE_NAMES, Scorecard
from evals.cases import RegressionCase
from evals.scorecard import ScorecardBuilder, verdict

THRESHOLD = 0.5


def cohen_kappa(a: Sequence[object], b: Sequence[object]) -> float | None:
    """Cohen's kappa of two raters' labels of the same items; None when undefined (chance agreement is 1)."""
    if len(a) != len(b):
        raise ValueError("both raters must label the same items")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    labels = set(a) | set(b)
    expected = sum((sum(x == k for x in a) / n) * (sum(y == k for y in b) / n) for k in labels)
    if expected >= 1.0:
        return None
    return round((observed - expected) / (1 - expected), 4)


class Agreement(BaseModel):
    n: int
    agreement: float | None
    kappa: float | None
    human_ok: int = 0  # cases the human scored >= 0.5
    judge_ok: int = 0


def agreement(human: Sequence[bool], judged: Sequence[bool]) -> Agreement:
    n = len(human)
    return Agreement(
        n=n,
        agreement=round(sum(h == j for h, j in zip(human, judged, strict=True)) / n, 4) if n else None,
        kappa=cohen_kappa(list(human), list(judged)),
        human_ok=sum(human),
        judge_ok=sum(judged),
    )


class JudgeReport(BaseModel):
    judge: str
    evaluator: str
    cases: int
    dimensions: dict[str, Agreement]
    label: Agreement
    judge_fallbacks: int  # cases where the model judge gave nothing usable (rules stood in)
    ms_per_case: float


class CalibrationReport(BaseModel):
    cases: int
    threshold: float = THRESHOLD
    judges: list[JudgeReport]


def calibrate_judge(
    name: str,
    cases: list[RegressionCase],
    builder: ScorecardBuilder,
    use_judge: bool,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[JudgeReport, list[Scorecard]]:
    cards: list[Scorecard] = []
    started = time.perf_counter()
    for i, case in enumerate(cases, 1):
        cards.append(builder.build(case.transcript(), use_judge=use_judge))
        if progress:
            progress(i, len(cases))
    elapsed = time.perf_counter() - started
    dims: dict[str, Agreement] = {}
    for dim in SCORE_NAMES:
        pairs = [
            (case.expected.scores[dim] >= THRESHOLD, card.scores[dim] >= THRESHOLD)
            for case, card in zip(cases, cards, strict=True)
            if case.expected.scores.get(dim) is not None and card.scores.get(dim) is not None
        ]
        dims[dim] = agreement([h for h, _ in pairs], [j for _, j in pairs])
    label = agreement([c.label == "good" for c in cases], [verdict(card.scores) == "good" for card in cards])
    return (
        JudgeReport(
            judge=name,
            evaluator=cards[0].evaluator if cards else name,
            cases=len(cases),
            dimensions=dims,
            label=label,
            judge_fallbacks=sum(1 for c in cards if any(n.startswith("judge fell back") for n in c.notes)),
            ms_per_case=round(elapsed * 1000 / max(1, len(cases)), 1),
        ),
        cards,
    )
