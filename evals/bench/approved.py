"""Approved-answer matching: how often a customer's question gets the right approved answer, and how rarely a wrong
one, on real paraphrase groups: the intents of BANKING77 (train, 10,003 queries, 77 intents) and CLINC150 (dev
train + val, 18,000 in-scope queries over 150 intents, plus its 200 out-of-scope queries).

Each round (`seed`) shuffles a dataset's intents and gives half of them an approved answer: one query of the intent
as its question and `variants` more as its variants (the rest of the intent's queries are never seen). Every other
query is then asked, of every intent (with an answer or not) and every out-of-scope one: the matcher's score
(`assistant.approved.matcher.match_scores`, the product's own function on the product's embedding model) picks
the best answer, served when the score reaches the threshold.

- precision = served with the right answer / served (a wrong one is worse than a handoff: this is the goal,
  >= 0.97 at the default `CXA_APPROVED__MIN_SCORE`);
- recall = served with the right answer / queries whose intent has an answer.

Reported per dataset and pooled over both (three rounds each), at the configured threshold, with a sweep of
thresholds, the lowest threshold whose pooled precision reaches 0.97, and the same at 0 and 5 variants (more
variants, more recall at the same precision). The intents are the datasets' labels, which are noisy at the edges
(BANKING77's `card_arrival` and `card_delivery_estimate` share questions): part of what counts as wrong here is
a second right answer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from assistant.approved.matcher import match_scores, negated
from assistant.settings import Settings
from evals.datasets import banking77_rows, clinc150_queries
from evals.suite import Metric
from knowledge.embeddings import shared_embedder

Progress = Callable[[str, int, int], None]
SWEEP = tuple(round(0.70 + 0.02 * i, 2) for i in range(14))  # 0.70 .. 0.96
TARGET_PRECISION = 0.97
ROUNDS = 3
VARIANTS = 2
_BATCH = 256


class Counts(BaseModel):
    served: int = 0
    correct: int = 0
    answerable: int = 0  # queries whose intent has an approved answer

    @property
    def precision(self) -> float:
        return round(self.correct / self.served, 4) if self.served else 1.0

    @property
    def recall(self) -> float:
        return round(self.correct / self.answerable, 4) if self.answerable else 0.0

    def add(self, other: Counts) -> Counts:
        return Counts(
            served=self.served + other.served,
            correct=self.correct + other.correct,
            answerable=self.answerable + other.answerable,
        )


class DatasetFigures(BaseModel):
    dataset: str
    intents: int
    answers: int  # approved answers per round
    queries: int  # asked per round
    out_of_scope: int
    precision: float
    recall: float
    served: int


class SweepPoint(BaseModel):
    threshold: float
    precision: float
    recall: float
    banking77_precision: float
    clinc150_precision: float


class ApprovedMatchResult(BaseModel):
    benchmark: str = "approved/paraphrase-matching"
    threshold: float
    negation_penalty: float
    variants: int
    rounds: int
    precision: float  # pooled, at the threshold
    recall: float
    served: int
    queries: int
    datasets: list[DatasetFigures]
    sweep: list[SweepPoint]
    threshold_for_target: float | None  # the lowest swept threshold with pooled precision >= 0.97
    recall_at_target: float | None
    by_variants: dict[str, dict[str, float]]  # "0" / "5" variants: precision, recall at the threshold
    embedding_texts_per_second: float
    seconds: float

    def suite_metrics(self) -> list[Metric]:
        per = {d.dataset: d for d in self.datasets}
        out = [
            Metric("precision", self.precision, n=self.served),
            Metric("recall", self.recall, n=self.queries),
        ]
        for name in ("banking77", "clinc150"):
            if name in per:
                out.append(Metric(f"{name}_precision", per[name].precision, n=per[name].served))
                out.append(Metric(f"{name}_recall", per[name].recall, n=per[name].queries))
        return out

    def summary_rows(self) -> list[tuple[str, object]]:
        rows: list[tuple[str, object]] = [
            (
                "threshold (CXA_APPROVED__MIN_SCORE) / negation penalty / variants / rounds",
                f"{self.threshold} / {self.negation_penalty} / {self.variants} / {self.rounds}",
            ),
            ("pooled precision / recall at the threshold", f"{self.precision:.3f} / {self.recall:.3f}"),
        ]
        for d in self.datasets:
            rows.append(
                (
                    f"{d.dataset}: {d.answers} answers of {d.intents} intents, {d.queries} queries "
                    f"({d.out_of_scope} out of scope): precision / recall",
                    f"{d.precision:.3f} / {d.recall:.3f}",
                )
            )
        for n, fig in self.by_variants.items():
            rows.append((f"with {n} variants: precision / recall", f"{fig['precision']:.3f} / {fig['recall']:.3f}"))
        if self.threshold_for_target is not None:
            rows.append(
                (
                    f"lowest threshold with precision >= {TARGET_PRECISION} (recall there)",
                    f"{self.threshold_for_target} ({self.recall_at_target:.3f})",
                )
            )
        rows.append(
            (
                "embedding throughput (queries/s) / wall time (s)",
                f"{self.embedding_texts_per_second:.0f} / {self.seconds:.0f}",
            )
        )
        return rows


def _rounds(
    groups: dict[str, list[str]], oos: list[str], seed: int, variants: int, limit: int | None
) -> tuple[list[list[str]], list[tuple[str, int]]]:
    """One round: the approved answers (each a list of texts: question first) and the queries with the index of
    their intent's answer (-1 for none)."""
    rng = random.Random(seed)
    intents = sorted(groups)
    rng.shuffle(intents)
    covered = intents[: len(intents) // 2]
    answers: list[list[str]] = []
    queries: list[tuple[str, int]] = []
    for intent in intents:
        texts = groups[intent][:]
        rng.shuffle(texts)
        if intent in covered:
            answers.append(texts[: 1 + variants])
            asked = texts[1 + variants :]
            owner = len(answers) - 1
        else:
            asked, owner = texts, -1
        queries += [(q, owner) for q in asked[:limit]]
    queries += [(q, -1) for q in (oos[: limit * 2] if limit else oos)]
    return answers, queries


def _score(
    vec: Callable[[list[str]], np.ndarray], answers: list[list[str]], queries: list[tuple[str, int]], penalty: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query: the best answer's score, that answer, and the right answer (-1: none)."""
    texts = [t for a in answers for t in a]
    owners = np.array([i for i, a in enumerate(answers) for _ in a])
    q = [t for t, _ in queries]
    scores = match_scores(
        vec(q) @ vec(texts).T, np.array([negated(t) for t in q]), np.array([negated(t) for t in texts]), penalty
    )
    per_answer = np.full((len(q), len(answers)), -9.0)
    for j in range(len(answers)):
        per_answer[:, j] = scores[:, owners == j].max(axis=1)
    return per_answer.max(axis=1), per_answer.argmax(axis=1), np.array([o for _, o in queries])


def _counts(best: np.ndarray, chosen: np.ndarray, truth: np.ndarray, threshold: float) -> Counts:
    served = best >= threshold
    return Counts(
        served=int(served.sum()),
        correct=int((served & (chosen == truth)).sum()),
        answerable=int((truth >= 0).sum()),
    )


def run_approved(
    settings: Settings,
    data_dir: Path,
    limit: int | None = None,
    rounds: int = ROUNDS,
    variants: int = VARIANTS,
    seed: int = 0,
    progress: Progress | None = None,
) -> ApprovedMatchResult:
    """`limit`: at most this many queries asked per intent and round (None: all of them)."""
    t_start = time.perf_counter()
    banking: dict[str, list[str]] = {}
    for text, label in banking77_rows(data_dir):
        banking.setdefault(label, []).append(text)
    in_scope, oos = clinc150_queries(data_dir)
    clinc: dict[str, list[str]] = {}
    for text, label in in_scope:
        clinc.setdefault(label, []).append(text)
    datasets = {"banking77": (banking, []), "clinc150": (clinc, oos)}

    e = settings.embedding
    embedder = shared_embedder(e.model_path, e.tokenizer_path, e.max_length, e.batch_size, e.batch_tokens, True)
    unique = sorted({t for groups, extra in datasets.values() for ts in groups.values() for t in ts} | set(oos))
    if limit is not None:  # only what the rounds can ask
        wanted: set[str] = set()
        for groups, extra in datasets.values():
            for r in range(rounds):
                for nv in (0, variants, 5):
                    answers, queries = _rounds(groups, extra, seed + r, nv, limit)
                    wanted |= {t for a in answers for t in a} | {t for t, _ in queries}
        unique = sorted(wanted)
    t0 = time.perf_counter()
    vectors: dict[str, np.ndarray] = {}
    for i in range(0, len(unique), _BATCH):
        part = unique[i : i + _BATCH]
        vectors.update(zip(part, embedder.embed(part), strict=True))
        if progress:
            progress("embedding", min(i + _BATCH, len(unique)), len(unique))
    rate = len(unique) / max(1e-9, time.perf_counter() - t0)

    def vec(texts: list[str]) -> np.ndarray:
        return np.stack([vectors[t] for t in texts])

    threshold, penalty = settings.approved.min_score, settings.approved.negation_penalty
    at: dict[str, Counts] = {}
    sweep: dict[tuple[str, float], Counts] = {}
    by_variants: dict[int, Counts] = {0: Counts(), 5: Counts()}
    figures: list[DatasetFigures] = []
    for name, (groups, extra) in datasets.items():
        total = Counts()
        asked = 0
        for r in range(rounds):
            answers, queries = _rounds(groups, extra, seed + r, variants, limit)
            asked = len(queries)
            best, chosen, truth = _score(vec, answers, queries, penalty)
            total = total.add(_counts(best, chosen, truth, threshold))
            for th in SWEEP:
                sweep[(name, th)] = sweep.get((name, th), Counts()).add(_counts(best, chosen, truth, th))
            for nv in by_variants:
                a2, q2 = _rounds(groups, extra, seed + r, nv, limit)
                by_variants[nv] = by_variants[nv].add(_counts(*_score(vec, a2, q2, penalty), threshold))
            if progress:
                progress(f"matching {name}", r + 1, rounds)
        at[name] = total
        figures.append(
            DatasetFigures(
                dataset=name,
                intents=len(groups),
                answers=len(groups) // 2,
                queries=asked,
                out_of_scope=len(extra[: limit * 2] if limit else extra),
                precision=total.precision,
                recall=total.recall,
                served=total.served,
            )
        )
    pooled = at["banking77"].add(at["clinc150"])
    points = []
    for th in SWEEP:
        b, c = sweep[("banking77", th)], sweep[("clinc150", th)]
        both = b.add(c)
        points.append(
            SweepPoint(
                threshold=th,
                precision=both.precision,
                recall=both.recall,
                banking77_precision=b.precision,
                clinc150_precision=c.precision,
            )
        )
    target = next((p for p in points if p.precision >= TARGET_PRECISION), None)
    return ApprovedMatchResult(
        threshold=threshold,
        negation_penalty=penalty,
        variants=variants,
        rounds=rounds,
        precision=pooled.precision,
        recall=pooled.recall,
        served=pooled.served,
        queries=sum(f.queries for f in figures) * rounds,
        datasets=figures,
        sweep=points,
        threshold_for_target=target.threshold if target else None,
        recall_at_target=target.recall if target else None,
        by_variants={str(n): {"precision": c.precision, "recall": c.recall} for n, c in by_variants.items()},
        embedding_texts_per_second=round(rate, 1),
        seconds=round(time.perf_counter() - t_start, 1),
    )
