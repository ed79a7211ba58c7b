"""Turn confidence and the handoff policy.

The confidence of a turn answered from the knowledge is the calibrated answerability estimate
(`assistant.turn.answerability`): P(the knowledge answers this turn), learned from doc2dial dev (gold page
present vs removed) and CLINC150 dev (in-scope vs out-of-scope). Account answers, approved answers,
greetings and closings keep their own confidence. Intent signals (asking for a person, policy topics,
frustration: `assistant.turn.intent`) decide on their own, before the knowledge is consulted.

The handoff threshold follows from two stated costs (`Settings.policy`): a turn is answered when the expected
cost of answering is no higher than that of handing off, p * cost_false_handoff >= (1 - p) * cost_wrong_answer,
that is p >= C_w / (C_w + C_fh); `CXA_POLICY__HANDOFF_BELOW` overrides it.
"""

from __future__ import annotations

from assistant.models import AnswerEvidence, Decision, IntentEvidence
from assistant.settings import PolicySettings
from assistant.turn.answerability import AnswerabilityModel, TurnEvidence
from assistant.turn.grounding import SentenceVectors


def turn_confidence(
    model: AnswerabilityModel, ev: AnswerEvidence, turn: TurnEvidence, vectors: SentenceVectors, threshold: float
) -> float:
    """The calibrated answerability of the turn, recorded on `ev` with its per-feature contributions."""
    ev.answerability = model.assess(turn, vectors, threshold)
    return ev.answerability.probability


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
    """From the turn's confidence: hand off below `policy.handoff_threshold`, offer a person below `offer_below`.
    A declined turn (nothing in the knowledge reached `CXA_ANSWER__MIN_RETRIEVAL_SCORE`) goes to a person whatever
    its p: the assistant has nothing to say, and a person can (its question is a knowledge gap)."""
    if confidence < policy.handoff_threshold or (mode == "declined" and policy.handoff_threshold > 0):
        return Decision(action="handoff", reason="low_confidence")
    if confidence < policy.offer_below or mode == "declined":
        return Decision(action="answer_and_offer")
    return Decision(action="answer")
