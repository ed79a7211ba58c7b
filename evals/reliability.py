"""Does a probability mean what it says? Ranking (AUROC) and calibration (reliability curve, expected calibration
error) of predicted probabilities against what happened.

- `reliability_table(p, y, bins=10)`: equal-width bins over [0, 1] (the last one closed); per bin the mean
  prediction, the observed rate of positives and the count. Empty bins are kept (n = 0, means None) so tables
  of different runs line up.
- `expected_calibration_error`: sum over bins of n_b / N * |observed_b - mean predicted_b| (Naeini et al. 2015;
  10 equal-width bins, the usual choice). 0 = every bin's predictions came true as often as they said.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from assistant.models import ReliabilityBin


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(score of a random positive > score of a random negative), ties counted half (Mann-Whitney U)."""
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))  # ties get their average rank
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def reliability_table(
    predicted: Sequence[float], observed: Sequence[int | bool], bins: int = 10
) -> list[ReliabilityBin]:
    p = np.clip(np.asarray(predicted, dtype=float), 0.0, 1.0)
    y = np.asarray(observed, dtype=float)
    if len(p) != len(y):
        raise ValueError("predictions and outcomes differ in length")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        out.append(
            ReliabilityBin(
                lo=round(b / bins, 4),
                hi=round((b + 1) / bins, 4),
                mean_predicted=round(float(p[mask].mean()), 4) if n else None,
                observed=round(float(y[mask].mean()), 4) if n else None,
                n=n,
            )
        )
    return out


def expected_calibration_error(predicted: Sequence[float], observed: Sequence[int | bool], bins: int = 10) -> float:
    table = reliability_table(predicted, observed, bins)
    total = sum(b.n for b in table)
    if not total:
        return float("nan")
    return float(sum(b.n / total * abs((b.observed or 0.0) - (b.mean_predicted or 0.0)) for b in table if b.n))


def recall_at_kept(positive: Sequence[float], negative: Sequence[float], kept: float = 0.95) -> tuple[float, float]:
    """The threshold that keeps `kept` of the positives at or above it, and the share of negatives below it
    (CLINC150's OOS recall at 95% in-scope answered)."""
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    threshold = float(np.quantile(pos, 1 - kept))
    return threshold, float(np.mean(neg < threshold)) if len(neg) else float("nan")
