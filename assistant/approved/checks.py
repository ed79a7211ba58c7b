"""What a person should look at before trusting an approved answer. None of these refuses the answer (a person
approved it, and the help center may be the one that is out of date); each becomes a flag on it.

- **Contradicts the help center.** The help center's best passages for the question are compared with the answer,
  sentence by sentence: where an answer sentence says the same thing as a passage sentence (similar in meaning)
  but with other figures ("3 days" against "5-10 business days") or the opposite polarity ("you can" against
  "you cannot"), the answer is flagged with the passage it disagrees with.
- **Markup.** HTML in an answer is stored and shown as text (the widget never renders it): the customer would see
  the tags, which is worth a look.
"""

from __future__ import annotations

import re

import numpy as np

from assistant.approved.matcher import negated
from assistant.models import ApprovedFlag, SearchHit
from assistant.turn.grounding import SentenceVectors, chunk_sentences
from knowledge.chunking import split_sentences

_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>|<!--|&lt;|&#x?\d+;")
_FIGURE = re.compile(r"\d+(?:[.,]\d+)?")
SAME_CLAIM = 0.6  # answer and passage sentences this similar make the same kind of claim
SAME_STATEMENT = 0.72  # this similar, opposite polarity is a contradiction


def has_markup(text: str) -> bool:
    return bool(_TAG.search(text))


def _figures(text: str) -> set[str]:
    return {f.replace(",", "") for f in _FIGURE.findall(text)}


def contradictions(answer: str, hits: list[SearchHit], vectors: SentenceVectors) -> list[ApprovedFlag]:
    """Flags for answer sentences that the help center's passages (`hits`, already the question's strong ones)
    state otherwise; one flag per passage sentence at most."""
    mine = [s for s in split_sentences(answer) if len(s.split()) >= 3]
    theirs: list[tuple[str, SearchHit]] = []
    for h in hits:
        theirs += [(s, h) for s in chunk_sentences(h.chunk)]
    if not mine or not theirs:
        return []
    sims = vectors.embed(mine) @ vectors.embed([s for s, _ in theirs], persist=True).T
    flags: list[ApprovedFlag] = []
    seen: set[str] = set()
    for i, sentence in enumerate(mine):
        for j in np.argsort(-sims[i])[:3]:
            sim = float(sims[i, int(j)])
            passage, hit = theirs[int(j)]
            if sim < SAME_CLAIM or passage in seen:
                continue
            a, b = _figures(sentence), _figures(passage)
            differs = bool(a - b and b - a)  # each gives a figure the other does not
            opposite = sim >= SAME_STATEMENT and negated(sentence) != negated(passage)
            if differs or opposite:
                seen.add(passage)
                what = "other figures" if differs else "the opposite"
                flags.append(
                    ApprovedFlag(
                        kind="contradicts_help_center",
                        detail=f'says {what} than "{hit.chunk.title}": "{passage}"',
                        ref=hit.chunk.source_id,
                    )
                )
    return flags
