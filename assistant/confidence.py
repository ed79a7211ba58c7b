"""Turn confidence (0..1) from independent evidence recorded on the turn.

This is the first version: retrieval support (the similarity of the chunks actually cited, or of
the best chunk when nothing was cited) and grounding (the support of each sentence shown, from
`assistant.grounding`, which does not trust the generator). An extractive fallback is capped (the
model's own answer was not usable); a declined answer is low by construction. The handoff issue
adds intent signals (asking for a person, frustration, policy topics) and calibrates thresholds.

    retrieval = clip((score - floor) / (ceiling - floor), 0, 1)   floor = min_retrieval_score, ceiling = 0.75
    confidence = 0.5 * retrieval + 0.5 * mean(sentence support)
"""

from __future__ import annotations

from assistant.answer import AnswerEvidence

RETRIEVAL_CEILING = 0.75
EXTRACTIVE_CAP = 0.7
DECLINED_CAP = 0.15


def turn_confidence(ev: AnswerEvidence, min_retrieval_score: float) -> float:
    if ev.mode in ("declined", "error"):
        return round(min(DECLINED_CAP, ev.retrieval_top * 0.2), 4)
    score = max(ev.cited_scores) if ev.cited_scores else ev.retrieval_top
    span = max(1e-6, RETRIEVAL_CEILING - min_retrieval_score)
    retrieval = min(1.0, max(0.0, (score - min_retrieval_score) / span))
    if ev.used_history and not ev.cited_scores:
        retrieval = max(retrieval, 0.6)  # answered from the customer's own records
    grounding = sum(ev.sentence_support) / len(ev.sentence_support) if ev.sentence_support else 0.0
    conf = 0.5 * retrieval + 0.5 * min(1.0, grounding)
    if ev.mode == "extractive":
        conf = min(conf, EXTRACTIVE_CAP)
    return round(max(0.0, min(1.0, conf)), 4)
