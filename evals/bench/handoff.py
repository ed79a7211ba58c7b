"""Knowing when not to answer: the turn confidence the engine computes, measured where the answer is
known to be missing.

- doc2dial dev: every turn is asked twice, once with its gold document in the index and once with it
  removed (retrieval excludes it, which is what deleting it does). The engine's pipeline runs in
  extractive mode (the same retrieval, grounding, confidence and policy; no model text, which the
  grounding check would reduce to the same evidence), and the handoff policy decides. Reported:
  handoff recall on removed-document turns, false-handoff rate on present-document turns, AUROC of
  the confidence, and a threshold sweep for `CXA_POLICY__HANDOFF_BELOW`.
- CLINC150 dev: the 15,000 in-scope training queries are the knowledge (one FAQ entry per query,
  titled by its intent); the 3,000 in-scope validation queries should be answered, the 100
  out-of-scope ones handed off. Reported: AUROC, and OOS recall at the threshold that keeps 95% of
  in-scope queries answered (the standard operating point for this dataset).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from assistant.llm import ChatGateway, FakeSupportChatModel
from assistant.models import CustomerContext, IntentEvidence, Message, utcnow
from assistant.services import build_index, build_retriever
from assistant.settings import Settings
from assistant.turn.answer import Answerer
from assistant.turn.confidence import decide_after_answer, decide_before_answer, turn_confidence
from assistant.turn.grounding import SentenceVectors
from assistant.turn.intent import PolicyRules, frustration, wants_human
from evals.bench.retrieval import bench_index, standalone_for
from evals.datasets import DatasetMissingError, doc2dial_turns
from evals.suite import Metric
from knowledge.retriever import Retriever
from knowledge.types import Document

Progress = Callable[[str, int, int], None]
CLINC_COLLECTION = "bench_clinc150"


def auroc(positive: list[float], negative: list[float]) -> float:
    """P(score of a random positive > score of a random negative), ties counted half (Mann-Whitney U)."""
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


class SweepRow(BaseModel):
    threshold: float
    handoff_recall: float
    false_handoff_rate: float


class Doc2DialHandoffResult(BaseModel):
    benchmark: str = "handoff/doc2dial-removed-document"
    turns: int
    handoff_below: float
    handoff_recall: float  # removed-document turns handed off
    false_handoff_rate: float  # present-document turns handed off
    auroc: float  # confidence: present (should answer) vs removed (should not)
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
        ]

    def summary_rows(self) -> list[tuple[str, object]]:
        return [
            ("doc2dial turns (each with its document present and removed)", self.turns),
            ("doc2dial handoff recall, document removed", f"{self.handoff_recall:.3f}"),
            ("doc2dial false-handoff rate, document present", f"{self.false_handoff_rate:.3f}"),
            ("doc2dial AUROC (confidence, present vs removed)", f"{self.auroc:.3f}"),
        ]

    def sweep_rows(self) -> list[tuple[str, str, str]]:
        """The threshold sweep under `SWEEP_COLUMNS`."""
        return [(f"{r.threshold:.2f}", f"{r.handoff_recall:.3f}", f"{r.false_handoff_rate:.3f}") for r in self.sweep]


class ClincResult(BaseModel):
    benchmark: str = "handoff/clinc150-oos"
    in_scope: int
    out_of_scope: int
    auroc: float
    threshold_at_95_in_scope: float
    oos_recall_at_95_in_scope: float
    in_scope_answered_at_policy: float  # with the configured handoff_below
    oos_recall_at_policy: float

    def suite_metrics(self) -> list[Metric]:
        oos = self.out_of_scope
        return [
            Metric("clinc_auroc", self.auroc, n=oos),
            Metric("clinc_oos_recall_at_95_in_scope", self.oos_recall_at_95_in_scope, n=oos),
            Metric("clinc_in_scope_answered_at_policy", self.in_scope_answered_at_policy, n=self.in_scope),
            Metric("clinc_oos_recall_at_policy", self.oos_recall_at_policy, n=oos),
        ]

    def summary_rows(self, handoff_below: float) -> list[tuple[str, object]]:
        """`handoff_below`: the policy threshold the run used (CXA_POLICY__HANDOFF_BELOW)."""
        return [
            ("CLINC150 in-scope / out-of-scope queries", f"{self.in_scope} / {self.out_of_scope}"),
            ("CLINC150 AUROC (confidence, in-scope vs OOS)", f"{self.auroc:.3f}"),
            ("CLINC150 OOS recall at 95% in-scope answered", f"{self.oos_recall_at_95_in_scope:.3f}"),
            ("  (that threshold)", f"{self.threshold_at_95_in_scope:.3f}"),
            (
                f"CLINC150 at handoff_below={handoff_below}: in-scope answered / OOS handed off",
                f"{self.in_scope_answered_at_policy:.3f} / {self.oos_recall_at_policy:.3f}",
            ),
        ]


def _pipeline(settings: Settings, retriever: Retriever) -> Answerer:
    chat = ChatGateway(FakeSupportChatModel(), "fake", "unused")  # extractive mode never calls it
    answer = settings.answer.model_copy(update={"mode": "extractive"})
    return Answerer(chat, retriever.index.embedder, answer, settings.company_name)


def _confidence(
    answerer: Answerer,
    retriever: Retriever,
    settings: Settings,
    question: str,
    query: str,
    exclude: list[str] | None = None,
) -> float:
    hits = retriever.search(query, settings.retrieval.top_k, exclude_sources=exclude)
    gen = answerer.stream(question, hits, CustomerContext(), [], search_query=query)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return turn_confidence(stop.value.evidence, settings.answer.min_retrieval_score)


def _messages(history: list[tuple[str, str]]) -> list[Message]:
    now = utcnow()
    return [
        Message(
            id=str(i),
            conversation_id="bench",
            seq=i,
            role="customer" if r == "user" else "assistant",
            text=t,
            created_at=now,
        )
        for i, (r, t) in enumerate(history)
    ]


def run_doc2dial_handoff(
    settings: Settings, data_dir: Path, limit: int | None = None, seed: int = 0, progress: Progress | None = None
) -> Doc2DialHandoffResult:
    index, _ = bench_index(settings, data_dir, progress=progress)
    retriever = build_retriever(settings, index)
    answerer = _pipeline(settings, retriever)
    vectors = SentenceVectors(index.embedder)
    rules = PolicyRules(settings.policy.rules)
    turns = doc2dial_turns(data_dir)
    if limit is not None and limit < len(turns):
        turns = random.Random(seed).sample(turns, limit)
    present, removed, handed_present, handed_removed = [], [], 0, 0
    policy = settings.policy
    for i, t in enumerate(turns, 1):
        earlier = [u for role, u in t.history if role == "user"][-5:]
        fr = frustration(
            t.utterance,
            earlier,
            vectors.embed_one(t.utterance),
            vectors.embed(earlier) if earlier else None,
            policy.repeat_similarity,
        )
        intent = IntentEvidence(
            wants_human=wants_human(t.utterance),
            policy_topics=rules.topics(t.utterance),
            frustration=fr,
            frustration_score=fr.score,
        )
        pre = decide_before_answer(intent, policy)
        query = standalone_for(t)
        for exclude, scores in ((None, present), ([t.doc_id], removed)):
            conf = _confidence(answerer, retriever, settings, t.utterance, query, exclude)
            scores.append(conf)
            handed = pre is not None or decide_after_answer(conf, "extractive", policy).action == "handoff"
            if exclude is None:
                handed_present += handed
            else:
                handed_removed += handed
        if progress:
            progress("turns", i, len(turns))
    sweep = []
    for th in np.round(np.arange(0.05, 0.71, 0.05), 2):
        sweep.append(
            SweepRow(
                threshold=float(th),
                handoff_recall=round(float(np.mean(np.asarray(removed) < th)), 4),
                false_handoff_rate=round(float(np.mean(np.asarray(present) < th)), 4),
            )
        )
    best = max(sweep, key=lambda s: s.handoff_recall - s.false_handoff_rate)
    return Doc2DialHandoffResult(
        turns=len(turns),
        handoff_below=policy.handoff_below,
        handoff_recall=round(handed_removed / len(turns), 4),
        false_handoff_rate=round(handed_present / len(turns), 4),
        auroc=round(auroc(present, removed), 4),
        mean_confidence_present=round(float(np.mean(present)), 4),
        mean_confidence_removed=round(float(np.mean(removed)), 4),
        sweep=sweep,
        best_threshold_youden=best.threshold,
    )


def clinc_rows(data_dir: Path) -> dict[str, list[list[str]]]:
    path = data_dir / "clinc150" / "dev.json"
    if not path.is_file():
        raise DatasetMissingError(f"dataset file not found: {path} (set CXA_SHARED_DATA_DIR or --data)")
    return json.loads(path.read_text(encoding="utf-8"))


def run_clinc(
    settings: Settings, data_dir: Path, limit: int | None = None, seed: int = 0, progress: Progress | None = None
) -> ClincResult:
    rows = clinc_rows(data_dir)
    index = build_index(settings.model_copy(update={"collection": CLINC_COLLECTION}))
    docs = [
        Document(
            source_id=f"{intent}/{i}",
            title=intent.replace("_", " "),
            text=text,
            format="text",
            metadata={"intent": intent},
        )
        for i, (text, intent) in enumerate(rows["train"])
    ]
    index.ingest(
        docs, origin="clinc150", prune=True, progress=(lambda d, t: progress("ingest", d, t)) if progress else None
    )
    retriever = build_retriever(settings, index)
    answerer = _pipeline(settings, retriever)
    in_scope = [q for q, _ in rows["val"]]
    oos = [q for q, _ in rows["oos_val"]]
    if limit is not None and limit < len(in_scope):
        in_scope = random.Random(seed).sample(in_scope, limit)
    scores_in, scores_oos = [], []
    total = len(in_scope) + len(oos)
    for i, q in enumerate([*in_scope, *oos], 1):
        conf = _confidence(answerer, retriever, settings, q, q)
        (scores_in if i <= len(in_scope) else scores_oos).append(conf)
        if progress:
            progress("queries", i, total)
    s_in, s_oos = np.asarray(scores_in), np.asarray(scores_oos)
    threshold = float(np.quantile(s_in, 0.05))  # 95% of in-scope queries are at or above it
    th_policy = settings.policy.handoff_below
    return ClincResult(
        in_scope=len(s_in),
        out_of_scope=len(s_oos),
        auroc=round(auroc(scores_in, scores_oos), 4),
        threshold_at_95_in_scope=round(threshold, 4),
        oos_recall_at_95_in_scope=round(float(np.mean(s_oos < threshold)), 4),
        in_scope_answered_at_policy=round(float(np.mean(s_in >= th_policy)), 4),
        oos_recall_at_policy=round(float(np.mean(s_oos < th_policy)), 4),
    )
