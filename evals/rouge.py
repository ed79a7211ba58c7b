"""ROUGE-L (Lin, 2004): longest-common-subsequence overlap of a candidate with reference texts.

Tokenised as the reference `rouge-score` package does without stemming: lower-cased, every run of
non-alphanumeric characters a separator. With several references the best F1 is taken (the usual
multi-reference convention for TweetSumm).
"""

from __future__ import annotations

import re

from pydantic import BaseModel

_SPLIT = re.compile(r"[^a-z0-9]+")


class RougeScore(BaseModel):
    precision: float
    recall: float
    f1: float


def rouge_tokens(text: str) -> list[str]:
    return [t for t in _SPLIT.split(text.lower()) if t]


def lcs_length(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> RougeScore:
    c, r = rouge_tokens(candidate), rouge_tokens(reference)
    lcs = lcs_length(c, r)
    if lcs == 0:
        return RougeScore(precision=0.0, recall=0.0, f1=0.0)
    p, rec = lcs / len(c), lcs / len(r)
    return RougeScore(precision=p, recall=rec, f1=2 * p * rec / (p + rec))


def rouge_l_multi(candidate: str, references: list[str]) -> RougeScore:
    """The score against the reference it matches best (by F1)."""
    scores = [rouge_l(candidate, ref) for ref in references] or [RougeScore(precision=0, recall=0, f1=0)]
    return max(scores, key=lambda s: s.f1)
