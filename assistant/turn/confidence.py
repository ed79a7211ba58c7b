"""Turn confidence (0..1) from independent evidence recorded on the turn, and the handoff policy.

Knowledge confidence: retrieval support (the similarity of the chunks actually cited, or of the best
chunk when nothing was cited) and grounding (the support of each sentence shown, from
`assistant.turn.grounding`, which does not trust the generator). An extractive fallback is capped (the
model's own answer was not usable); a declined answer is low by construction. Intent signals
(asking for a person, policy topics, frustration: `assistant.turn.intent`) decide on their own, before
the knowledge is consulted. Thresholds live in `Settings.policy` and are calibrated with
`cxa bench handoff` on the dev splits.

    retrieval  = clip((cited score - min_retrieval_score) / (0.75 - min_retrieval_score))
    relevance  = clip((similarity of the shown text to the question - 0.3) / 0.5)
    confidence = 0.4 * retrieval + 0.4 * relevance + 0.2 * grounding
"""

from __future__ import annotations

from assistant.models import AnswerEvidence, Decision, IntentEvidence
from assistant.settings import PolicySettings

RETRIEVAL_CEILING = 0.75
RELEVANCE_FLOOR, RELEVANCE_CEILING = 0.3, 0.8
DECLINED_CAP = 0.15
ABSTENTION_PENALTY = 0.1


def _scale(x: float, lo: float, hi: float) -> float:
    return min(1.0, max(0.0, (x - lo) / max(1e-6, hi - lo)))


def turn_confidence(ev: AnswerEvidence, min_retrieval_score: float) -> float:
    """0.4 retrieval support + 0.4 relevance of what is shown to the question + 0.2 grounding.

    Measured on doc2dial dev with the gold document removed vs present, the relevance of the best
    available passage to the question separates the two best (AUROC 0.63), then query-term coverage
    and the chunk's own similarity (0.57-0.60); none is strong alone, so they are combined. A quote is
    grounded by construction (1.0); a generated answer by its sentence support."""
    if ev.mode in ("declined", "error"):
        return round(min(DECLINED_CAP, ev.retrieval_top * 0.2), 4)
    score = max(ev.cited_scores) if ev.cited_scores else ev.retrieval_top
    retrieval = _scale(score, min_retrieval_score, RETRIEVAL_CEILING)
    if ev.used_history and not ev.cited_scores:
        retrieval = max(retrieval, 0.6)  # answered from the customer's own records
    relevance = _scale(ev.answer_relevance, RELEVANCE_FLOOR, RELEVANCE_CEILING)
    grounding = sum(ev.sentence_support) / len(ev.sentence_support) if ev.sentence_support else 0.0
    conf = 0.4 * retrieval + 0.4 * relevance + 0.2 * min(1.0, grounding)
    if ev.abstained:  # the model itself said it does not know: weak evidence from a small model, so a small step
        conf -= ABSTENTION_PENALTY
    return round(max(0.0, min(1.0, conf)), 4)


# -- the handoff policy ---------------------------------------------------------------------------------


def decide_before_answer(intent: IntentEvidence, policy: PolicySettings) -> Decision | None:
    """Intent decides alone, before any knowledge is consulted: a request for a person, a policy topic or a
    frustrated customer goes to a person now (answering first would only add effort)."""
    if intent.wants_human:
        return Decision(action="handoff", reason="customer_request")
    if intent.policy_topics:
        return Decision(action="handoff", reason=f"policy:{intent.policy_topics[0]}")
    if intent.frustration_score >= policy.frustration_handoff:
        return Decision(action="handoff", reason="frustration")
    return None


def decide_after_answer(confidence: float, mode: str, policy: PolicySettings) -> Decision:
    """From the turn's confidence: hand off below `handoff_below`, offer a person below `offer_below`."""
    if confidence < policy.handoff_below:
        return Decision(action="handoff", reason="low_confidence")
    if confidence < policy.offer_below or mode == "declined":
        return Decision(action="answer_and_offer")
    return Decision(action="answer")
