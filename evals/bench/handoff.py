"""Knowing when not to answer: the turn confidence (the calibrated answerability, `assistant.turn.answerability`)
measured where the answer is known to be missing, out of fold.

The examples are `evals.answerability`'s: doc2dial dev turns asked with the gold page present and removed,
CLINC150 dev in-scope vs out-of-scope queries. The model is refitted per fold (folds grouped by page and by
intent) and every figure below is on examples its fold's model never saw, so they estimate held-out pages,
dialogues and intents rather than the dev rows the shipped model was trained on. The shipped artifact's own
AUROC on the same rows is reported beside them (in-sample: a check that the artifact matches today's features;
a large gap after a retrieval change says "retrain").

- doc2dial: AUROC (present vs removed), ECE and reliability table, handoff recall on removed-page turns and the
  false-handoff rate on present-page turns at the policy threshold, and a threshold sweep.
- CLINC150: AUROC (in-scope vs OOS), ECE and reliability, OOS recall at the threshold that keeps 95% of
  in-scope queries answered (the dataset's standard operating point), and both rates at the policy threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, Field

from assistant.models import ReliabilityBin
from assistant.settings import Settings
from assistant.turn.answerability import AnswerabilityModel
from evals.answerability import (
    FOLDS,
    AnswerabilityArtifact,
    Example,
    clinc_examples,
    cross_validate,
    doc2dial_examples,
    train,
)
from evals.reliability import auroc, expected_calibration_error, recall_at_kept, reliability_table
from evals.suite import Metric

Progress = Callable[[str, int, int], None]


class SweepRow(BaseModel):
    threshold: float
    handoff_recall: float
    false_handoff_rate: float


def reliability_rows(table: list[ReliabilityBin]) -> list[tuple[str, str, str, str]]:
    """bin, mean predicted, observed rate, n: the rows of a reliability table as printed."""
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    return [(f"{b.lo:.1f}-{b.hi:.1f}", f(b.mean_predicted), f(b.observed), str(b.n)) for b in table]


RELIABILITY_COLUMNS = ("bin", "mean predicted", "observed rate", "n")


class Doc2DialHandoffResult(BaseModel):
    benchmark: str = "handoff/doc2dial-removed-document"
    turns: int
    handoff_below: float = Field(description="the policy threshold the rates are at")
    handoff_recall: float  # removed-page turns handed off
    false_handoff_rate: float  # present-page turns handed off
    auroc: float  # out of fold: present (should answer) vs removed (should not)
    ece: float
    reliability: list[ReliabilityBin]
    shipped_auroc: float = Field(description="the shipped artifact on the same rows (in-sample)")
    mean_confidence_present: float
    mean_confidence_removed: float
    sweep: list[SweepRow]
    best_threshold_youden: float

    SWEEP_COLUMNS: ClassVar[tuple[str, str, str]] = (
        "threshold",
        "handoff recall (removed)",
        "false handoffs (present)",
    )

    def suite_metrics(self) -> list[Metric]:
        return [
            Metric("doc2dial_handoff_recall", self.handoff_recall, n=self.turns),
            Metric("doc2dial_false_handoff_rate", self.false_handoff_rate, higher_is_better=False, n=self.turns),
            Metric("doc2dial_auroc", self.auroc, n=self.turns),
            Metric("doc2dial_ece", self.ece, higher_is_better=False, n=2 * self.turns),
        ]

    def summary_rows(self) -> list[tuple[str, object]]:
        return [
            ("doc2dial turns (each with its page present and removed)", self.turns),
            ("doc2dial AUROC (present vs removed, out of fold)", f"{self.auroc:.3f}"),
            ("doc2dial expected calibration error (10 bins)", f"{self.ece:.3f}"),
            (f"doc2dial handoff recall, page removed (at {self.handoff_below:.2f})", f"{self.handoff_recall:.3f}"),
            (
                f"doc2dial false-handoff rate, page present (at {self.handoff_below:.2f})",
                f"{self.false_handoff_rate:.3f}",
            ),
            ("doc2dial AUROC of the shipped artifact (in-sample)", f"{self.shipped_auroc:.3f}"),
        ]

    def sweep_rows(self) -> list[tuple[str, str, str]]:
        """The threshold sweep under `SWEEP_COLUMNS`."""
        return [(f"{r.threshold:.2f}", f"{r.handoff_recall:.3f}", f"{r.false_handoff_rate:.3f}") for r in self.sweep]


class ClincResult(BaseModel):
    benchmark: str = "handoff/clinc150-oos"
    in_scope: int
    out_of_scope: int
    auroc: float
    ece: float
    reliability: list[ReliabilityBin]
    shipped_auroc: float
    threshold_at_95_in_scope: float
    oos_recall_at_95_in_scope: float
    in_scope_answered_at_policy: float  # at the policy threshold
    oos_recall_at_policy: float

    def suite_metrics(self) -> list[Metric]:
        oos = self.out_of_scope
        return [
            Metric("clinc_auroc", self.auroc, n=oos),
            Metric("clinc_oos_recall_at_95_in_scope", self.oos_recall_at_95_in_scope, n=oos),
            Metric("clinc_in_scope_answered_at_policy", self.in_scope_answered_at_policy, n=self.in_scope),
            Metric("clinc_oos_recall_at_policy", self.oos_recall_at_policy, n=oos),
            Metric("clinc_ece", self.ece, higher_is_better=False, n=self.in_scope + oos),
        ]

    def summary_rows(self, handoff_below: float) -> list[tuple[str, object]]:
        """`handoff_below`: the policy threshold the run used."""
        return [
            ("CLINC150 in-scope / out-of-scope queries", f"{self.in_scope} / {self.out_of_scope}"),
            ("CLINC150 AUROC (in-scope vs OOS, out of fold)", f"{self.auroc:.3f}"),
            ("CLINC150 OOS recall at 95% in-scope answered", f"{self.oos_recall_at_95_in_scope:.3f}"),
            ("  (that threshold)", f"{self.threshold_at_95_in_scope:.3f}"),
            ("CLINC150 expected calibration error (10 bins)", f"{self.ece:.3f}"),
            (
                f"CLINC150 at {handoff_below:.2f}: in-scope answered / OOS handed off",
                f"{self.in_scope_answered_at_policy:.3f} / {self.oos_recall_at_policy:.3f}",
            ),
            ("CLINC150 AUROC of the shipped artifact (in-sample)", f"{self.shipped_auroc:.3f}"),
        ]


class HandoffRun(BaseModel):
    """Both benchmarks of one run, and the artifact trained on the same examples when asked to."""

    model_version: str
    threshold: float
    cost_wrong_answer: float
    cost_false_handoff: float
    threshold_from: str  # "costs" or "override"
    clinc150: ClincResult
    doc2dial: Doc2DialHandoffResult
    trained: AnswerabilityArtifact | None = None


def _split(examples: list[Example], p: np.ndarray, dataset: str) -> tuple[np.ndarray, np.ndarray, list[Example]]:
    idx = [i for i, e in enumerate(examples) if e.dataset == dataset and e.scored]
    rows = [examples[i] for i in idx]
    labels = np.array([e.label for e in rows])
    return p[idx], labels, rows


def _doc2dial(examples: list[Example], oof: np.ndarray, shipped: np.ndarray, threshold: float) -> Doc2DialHandoffResult:
    p, y, rows = _split(examples, oof, "doc2dial")
    sp, _, _ = _split(examples, shipped, "doc2dial")
    intent = np.array([e.intent_handoff for e in rows])
    present, removed = p[y == 1], p[y == 0]
    handed = intent | (p < threshold)
    sweep = [
        SweepRow(
            threshold=float(th),
            handoff_recall=round(float(np.mean(removed < th)), 4),
            false_handoff_rate=round(float(np.mean(present < th)), 4),
        )
        for th in np.round(np.arange(0.1, 0.91, 0.05), 2)
    ]
    best = max(sweep, key=lambda s: s.handoff_recall - s.false_handoff_rate)
    return Doc2DialHandoffResult(
        turns=int((y == 1).sum()),
        handoff_below=round(threshold, 4),
        handoff_recall=round(float(handed[y == 0].mean()), 4),
        false_handoff_rate=round(float(handed[y == 1].mean()), 4),
        auroc=round(auroc(present, removed), 4),
        ece=round(expected_calibration_error(p, y), 4),
        reliability=reliability_table(p, y),
        shipped_auroc=round(auroc(sp[y == 1], sp[y == 0]), 4),
        mean_confidence_present=round(float(present.mean()), 4),
        mean_confidence_removed=round(float(removed.mean()), 4),
        sweep=sweep,
        best_threshold_youden=best.threshold,
    )


def _clinc(examples: list[Example], oof: np.ndarray, shipped: np.ndarray, threshold: float) -> ClincResult:
    p, y, _ = _split(examples, oof, "clinc150")
    sp, _, _ = _split(examples, shipped, "clinc150")
    s_in, s_oos = p[y == 1], p[y == 0]
    th95, recall95 = recall_at_kept(s_in, s_oos, 0.95)
    return ClincResult(
        in_scope=len(s_in),
        out_of_scope=len(s_oos),
        auroc=round(auroc(s_in, s_oos), 4),
        ece=round(expected_calibration_error(p, y), 4),
        reliability=reliability_table(p, y),
        shipped_auroc=round(auroc(sp[y == 1], sp[y == 0]), 4),
        threshold_at_95_in_scope=round(th95, 4),
        oos_recall_at_95_in_scope=round(recall95, 4),
        in_scope_answered_at_policy=round(float(np.mean(s_in >= threshold)), 4),
        oos_recall_at_policy=round(float(np.mean(s_oos < threshold)), 4),
    )


def collect(
    settings: Settings, data_dir: Path, limit: int | None = None, seed: int = 0, progress: Progress | None = None
) -> list[Example]:
    """CLINC150 then doc2dial examples (`limit`: N in-scope CLINC queries and N doc2dial turns)."""
    return [
        *clinc_examples(settings, data_dir, limit=limit, seed=seed, progress=progress),
        *doc2dial_examples(settings, data_dir, limit=limit, seed=seed, progress=progress),
    ]


def evaluate(
    settings: Settings, examples: list[Example], folds: int = FOLDS, train_artifact: bool = False
) -> HandoffRun:
    """Out-of-fold figures on `examples`, the shipped artifact's beside them, and (`train_artifact`) the artifact
    fitted on all of them."""
    policy = settings.policy
    threshold = policy.handoff_threshold
    oof = cross_validate(examples, folds)
    model = AnswerabilityModel.load(policy.answerability_model)
    shipped = np.array([model.predict(e.features)[0] for e in examples])
    trained = train(examples, folds) if train_artifact else None
    return HandoffRun(
        model_version=model.artifact.version,
        threshold=round(threshold, 4),
        cost_wrong_answer=policy.cost_wrong_answer,
        cost_false_handoff=policy.cost_false_handoff,
        threshold_from="override" if policy.handoff_below is not None else "costs",
        clinc150=_clinc(examples, oof, shipped, threshold),
        doc2dial=_doc2dial(examples, oof, shipped, threshold),
        trained=trained,
    )


def run_handoff(
    settings: Settings,
    data_dir: Path,
    limit: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    train_artifact: bool = False,
) -> HandoffRun:
    return evaluate(settings, collect(settings, data_dir, limit, seed, progress), train_artifact=train_artifact)
