"""Conversation topics: the topic classifier (`assistant.telemetry.topics`) on BANKING77, by stratified k-fold
cross-validation on its train split (10,003 queries, 77 intents).

Every query is embedded once (the embedding throughput is reported); each fold then trains a
`TopicClassifier` on the other folds' vectors and predicts its own. The regularisation C is chosen
inside each fold, never on the rows scored: a stratified 80/20 split of that fold's training part,
the C of `C_GRID` with the best macro-F1 on the 20% (the smaller C on a tie), then a refit on the
whole training part. Reported: accuracy and macro-F1 pooled over all folds and per fold, the share
of queries under the configured `min_probability` (they would be "other") and the accuracy of the
rest, and the latency of classifying one query, embedding included: the time a topic adds to a turn.
Folds and splits are fixed by `seed`.
"""

from __future__ import annotations

import random
import statistics
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from assistant.settings import Settings
from assistant.telemetry.topics import DEFAULT_C, TopicClassifier
from evals.datasets import banking77_rows
from evals.suite import Metric
from knowledge.embeddings import shared_embedder

Progress = Callable[[str, int, int], None]
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
_EMBED_BATCH = 256


class FoldFigures(BaseModel):
    fold: int
    train: int
    test: int
    C: float
    accuracy: float
    macro_f1: float


class TopicsResult(BaseModel):
    benchmark: str = "topics/banking77-cv"
    queries: int
    labels: int
    folds: int
    seed: int
    accuracy: float  # pooled over the folds' predictions
    macro_f1: float
    accuracy_fold_mean: float
    accuracy_fold_std: float
    macro_f1_fold_mean: float
    macro_f1_fold_std: float
    per_fold: list[FoldFigures]
    min_probability: float
    other_rate: float  # share of queries whose best topic is under min_probability
    accuracy_above_min_probability: float  # accuracy on the others
    embedding_texts_per_second: float
    latency_queries: int
    latency_ms_p50: float  # one query, embedding + classification
    latency_ms_p95: float
    seconds: float

    def suite_metrics(self) -> list[Metric]:
        return [
            Metric("accuracy", self.accuracy),
            Metric("macro_f1", self.macro_f1),
            Metric("latency_ms_p50", self.latency_ms_p50, higher_is_better=False, kind="info"),
        ]

    def summary_rows(self) -> list[tuple[str, object]]:
        return [
            ("queries / intents / folds", f"{self.queries} / {self.labels} / {self.folds}"),
            ("accuracy (pooled over folds)", f"{self.accuracy:.3f}"),
            ("macro-F1 (pooled over folds)", f"{self.macro_f1:.3f}"),
            ("accuracy per fold, mean ± sd", f"{self.accuracy_fold_mean:.3f} ± {self.accuracy_fold_std:.3f}"),
            ("macro-F1 per fold, mean ± sd", f"{self.macro_f1_fold_mean:.3f} ± {self.macro_f1_fold_std:.3f}"),
            ("C chosen per fold (inner 80/20 check)", ", ".join(f"{f.C:g}" for f in self.per_fold)),
            (
                f'"other" at min_probability={self.min_probability} / accuracy of the rest',
                f"{self.other_rate:.3f} / {self.accuracy_above_min_probability:.3f}",
            ),
            ("embedding throughput (queries/s)", f"{self.embedding_texts_per_second:.0f}"),
            ("topic latency p50 / p95 (ms, one query)", f"{self.latency_ms_p50:.1f} / {self.latency_ms_p95:.1f}"),
            ("wall time (s)", f"{self.seconds:.0f}"),
        ]


def stratified_sample(rows: list[tuple[str, str]], limit: int, seed: int) -> list[tuple[str, str]]:
    """`limit` rows taken round-robin over the labels (each label's rows shuffled by `seed`): every label
    keeps as many rows as the others, as far as it has them."""
    by_label: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row[1]].append(row)
    rng = random.Random(seed)
    queues = []
    for label in sorted(by_label):
        items = by_label[label][:]
        rng.shuffle(items)
        queues.append(items)
    out: list[tuple[str, str]] = []
    depth = 0
    while len(out) < limit and any(depth < len(q) for q in queues):
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out[:limit]


def _macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, average="macro", zero_division=0))


def choose_c(
    vectors: np.ndarray,
    labels: np.ndarray,
    seed: int,
    grid: tuple[float, ...] = C_GRID,
) -> float:
    """The C of `grid` with the best macro-F1 on a stratified 20% of these (training) rows."""
    from sklearn.model_selection import train_test_split

    try:
        fit_idx, val_idx = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=seed)
    except ValueError:  # too few rows per label to hold some out: the default
        return DEFAULT_C
    best_c, best_f1 = grid[0], -1.0
    for c in grid:
        clf = TopicClassifier(min_probability=0.0, C=c).fit_vectors(vectors[fit_idx], labels[fit_idx])
        predicted = np.asarray([p.label for p in clf.predict_vectors(vectors[val_idx])])
        f1 = _macro_f1(labels[val_idx], predicted)
        if f1 > best_f1 + 1e-9:
            best_c, best_f1 = c, f1
    return best_c


def run_topics(
    settings: Settings,
    data_dir: Path,
    folds: int = 5,
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
    c_grid: tuple[float, ...] = C_GRID,
    latency_queries: int = 200,
) -> TopicsResult:
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    started = time.perf_counter()
    rows = banking77_rows(data_dir)
    if limit is not None and limit < len(rows):
        rows = stratified_sample(rows, limit, seed)
    texts = [t for t, _ in rows]
    labels = np.asarray([label for _, label in rows])
    e = settings.embedding
    embedder = shared_embedder(
        e.model_path, e.tokenizer_path, e.max_length, e.batch_size, e.batch_tokens, e.spin_threads
    )

    t0 = time.perf_counter()
    parts = []
    for i in range(0, len(texts), _EMBED_BATCH):
        parts.append(embedder.embed(texts[i : i + _EMBED_BATCH]))
        if progress:
            progress("embedding", min(i + _EMBED_BATCH, len(texts)), len(texts))
    vectors = np.vstack(parts)
    embed_seconds = time.perf_counter() - t0

    # Figures are computed on the plain argmax (min_probability 0); the "other" share is reported apart.
    predicted = np.empty_like(labels)
    best_probability = np.zeros(len(labels))
    per_fold: list[FoldFigures] = []
    last: tuple[TopicClassifier, np.ndarray] | None = None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(vectors, labels))
    for k, (train_idx, test_idx) in enumerate(splits, 1):
        c = choose_c(vectors[train_idx], labels[train_idx], seed, c_grid)
        clf = TopicClassifier(embedder, min_probability=0.0, C=c).fit_vectors(vectors[train_idx], labels[train_idx])
        found = clf.predict_vectors(vectors[test_idx])
        fold_pred = np.asarray([p.label for p in found])
        predicted[test_idx] = fold_pred
        best_probability[test_idx] = [p.probability for p in found]
        per_fold.append(
            FoldFigures(
                fold=k,
                train=len(train_idx),
                test=len(test_idx),
                C=c,
                accuracy=round(float(np.mean(fold_pred == labels[test_idx])), 4),
                macro_f1=round(_macro_f1(labels[test_idx], fold_pred), 4),
            )
        )
        last = (clf, test_idx)
        if progress:
            progress("folds", k, folds)

    assert last is not None
    clf, test_idx = last
    sample = [texts[i] for i in test_idx]
    random.Random(seed).shuffle(sample)
    sample = sample[:latency_queries]
    clf.predict(sample[:3])  # warm-up: first runs allocate
    latencies = []
    for i, text in enumerate(sample, 1):
        t1 = time.perf_counter()
        clf.predict([text])
        latencies.append((time.perf_counter() - t1) * 1000)
        if progress:
            progress("latency", i, len(sample))

    correct = predicted == labels
    kept = best_probability >= settings.topics.min_probability
    fold_acc = [f.accuracy for f in per_fold]
    fold_f1 = [f.macro_f1 for f in per_fold]
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    return TopicsResult(
        queries=len(labels),
        labels=len(set(labels.tolist())),
        folds=folds,
        seed=seed,
        accuracy=round(float(np.mean(correct)), 4),
        macro_f1=round(_macro_f1(labels, predicted), 4),
        accuracy_fold_mean=round(statistics.mean(fold_acc), 4),
        accuracy_fold_std=round(statistics.stdev(fold_acc), 4),
        macro_f1_fold_mean=round(statistics.mean(fold_f1), 4),
        macro_f1_fold_std=round(statistics.stdev(fold_f1), 4),
        per_fold=per_fold,
        min_probability=settings.topics.min_probability,
        other_rate=round(float(np.mean(~kept)), 4),
        accuracy_above_min_probability=round(float(np.mean(correct[kept])), 4) if kept.any() else 0.0,
        embedding_texts_per_second=round(len(texts) / embed_seconds, 1) if embed_seconds > 0 else 0.0,
        latency_queries=len(latencies),
        latency_ms_p50=round(statistics.median(latencies), 2) if latencies else 0.0,
        latency_ms_p95=round(q[18], 2) if q else 0.0,
        seconds=round(time.perf_counter() - started, 1),
    )
