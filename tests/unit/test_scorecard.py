"""The scorecard's evaluators on hand-written transcripts: each deterministic rule with a case that scores high
and one that scores low; the LLM judge with valid, partly invalid and garbage output; Cohen's kappa."""

from __future__ import annotations

import pytest
from langchain_core.language_models.chat_models import BaseChatModel

from assistant.handoff.summary import HANDOFF_TEXT
from assistant.llm import ChatGateway, FakeSupportChatModel
from assistant.settings import EvalSettings, PolicySettings
from assistant.turn.grounding import SentenceVectors
from evals.calibrate import agreement, cohen_kappa
from evals.cases import CaseTurn, Observed, Transcript
from evals.judges import ConversationJudge, grade
from evals.scorecard import (
    ScorecardBuilder,
    effort,
    handoff_appropriate,
    mean_score,
    relevance,
    resolution,
    tone,
    verdict,
)
from knowledge.embeddings import shared_embedder
from tests.fakes import FakeChatModel

REFUNDS = (
    "Card refunds take 5-10 business days to appear after we issue the refund. PayPal refunds take 3-5 business days."
)
GIFT = "At checkout, choose Gift card under payment. Enter the 16-digit card number and the 4-digit PIN."


@pytest.fixture(scope="module")
def vectors() -> SentenceVectors:
    return SentenceVectors(shared_embedder())


@pytest.fixture(scope="module")
def builder(vectors: SentenceVectors) -> ScorecardBuilder:
    return ScorecardBuilder(vectors, EvalSettings(), PolicySettings())


def c(text: str) -> CaseTurn:
    return CaseTurn(role="customer", text=text)


def a(text: str, mode: str = "generated", cites: list[str] | None = None, confidence: float | None = 0.8) -> CaseTurn:
    return CaseTurn(role="assistant", text=text, mode=mode, citations=cites or [], confidence=confidence)


def agent(text: str) -> CaseTurn:
    return CaseTurn(role="agent", text=text)


HANDOFF = CaseTurn(role="assistant", text=HANDOFF_TEXT, mode="handoff")


def conv(*turns: CaseTurn, **observed: object) -> Transcript:
    sources = {"refunds": REFUNDS, "gift-cards": GIFT}
    return Transcript(conversation_id="conv_t", turns=list(turns), observed=Observed(sources=sources, **observed))


# -- groundedness ---------------------------------------------------------------------------------------


def test_groundedness_high_when_the_answer_is_in_the_cited_source(builder: ScorecardBuilder) -> None:
    t = conv(c("How long does a PayPal refund take?"), a("PayPal refunds take 3-5 business days.", cites=["refunds"]))
    card = builder.build(t, use_judge=False)
    assert card.scores["groundedness"] == 1.0 and card.evaluators["groundedness"] == "rule:grounding@1"


def test_groundedness_low_for_an_invented_figure_or_an_uncited_claim(builder: ScorecardBuilder) -> None:
    t = conv(
        c("How long does a PayPal refund take?"),
        a("PayPal refunds take 24 hours and we add a 10 pound voucher.", cites=["refunds"]),
        c("And for cards?"),
        a("Card refunds are instant on weekends.", cites=[]),
    )
    card = builder.build(t, use_judge=False)
    assert card.scores["groundedness"] == 0.0
    assert "0 of 2" in card.reasons["groundedness"]


def test_groundedness_is_not_applicable_without_an_answer(builder: ScorecardBuilder) -> None:
    card = builder.build(conv(c("agent please"), HANDOFF), use_judge=False)
    assert card.scores["groundedness"] is None and card.scores["relevance"] is None


# -- relevance ------------------------------------------------------------------------------------------


def test_relevance_high_for_an_answer_to_the_question(vectors: SentenceVectors) -> None:
    t = conv(c("How do I use a gift card?"), a("At checkout, choose Gift card under payment and enter the PIN."))
    assert (relevance(t, vectors).value or 0) >= 0.75


def test_relevance_low_for_an_answer_to_another_question(vectors: SentenceVectors) -> None:
    t = conv(c("my sofa cushion arrived torn"), a("PayPal refunds take 3-5 business days."))
    score = relevance(t, vectors)
    assert score.value is not None and score.value < 0.5 and "weakest" in score.reason


# -- resolution and effort ------------------------------------------------------------------------------


def test_resolution_from_the_outcome_and_the_customers_verdict() -> None:
    assert resolution(conv(outcome="resolved_by_bot_confirmed")).value == 1.0
    assert resolution(conv(outcome="resolved_by_bot_confirmed", durable=False)).value == 0.5
    assert resolution(conv(outcome="abandoned")).value == 0.0
    assert resolution(conv(outcome="resolved_by_bot_assumed", feedback_resolved=False)).value == 0.0
    assert resolution(conv(outcome="open")).value is None


def test_effort_maps_ces_to_one_for_effortless() -> None:
    assert effort(conv(effort=1.0)).value == 1.0
    assert effort(conv(effort=6.5)).value == pytest.approx(0.083, abs=1e-3)
    assert effort(conv(effort=1.0, ces=7)).value == 0.0  # the customer's own rating wins


# -- tone -----------------------------------------------------------------------------------------------


def test_tone_high_when_an_upset_customer_gets_an_apology() -> None:
    t = conv(c("This is ridiculous, still not working!!"), a("I'm sorry about that, let me help you fix it."))
    assert tone(t).value == 1.0


def test_tone_low_for_blame_and_curt_refusals() -> None:
    blame = conv(c("It still doesn't work"), agent("As I said, you should have read the instructions."))
    assert (tone(blame).value or 1) < 0.5
    curt = conv(c("Can I get a refund?"), agent("No, I can't do that."), agent("Sorry, I can't change that."))
    score = tone(curt)
    assert score.value is not None and score.value < 0.5 and "curt refusal" in score.reason


# -- policy ---------------------------------------------------------------------------------------------


def test_policy_clean_conversation_scores_one(builder: ScorecardBuilder) -> None:
    t = conv(c("How long does a PayPal refund take?"), a("PayPal refunds take 3-5 business days.", cites=["refunds"]))
    assert builder.build(t, use_judge=False).scores["policy"] == 1.0


def test_policy_unsupported_promise_leak_and_missed_escalation(builder: ScorecardBuilder) -> None:
    promise = conv(
        c("How long does a refund take?"), a("We guarantee a full refund within 24 hours.", cites=["refunds"])
    )
    assert builder.build(promise, use_judge=False).scores["policy"] == 0.3
    leak = conv(c("What's my order status?"), a("The order for jane.doe@example.com shipped.", mode="extractive"))
    assert builder.build(leak, use_judge=False).scores["policy"] == 0.0
    legal = conv(c("I will contact my lawyer about this charge"), a("PayPal refunds take 3-5 business days."))
    card = builder.build(legal, use_judge=False)
    assert card.scores["policy"] == 0.0 and "legal" in card.reasons["policy"]


# -- handoff appropriateness ----------------------------------------------------------------------------


def test_handoff_right_when_asked_and_given_at_once(vectors: SentenceVectors) -> None:
    t = conv(c("I want to talk to a person"), HANDOFF, handoff_reasons=["customer_request"])
    assert handoff_appropriate(t, vectors, PolicySettings()).value == 1.0


def test_handoff_never_given_late_or_unnecessary_scores_low(vectors: SentenceVectors) -> None:
    policy = PolicySettings()
    never = conv(c("Can I speak to a human agent please?"), a("PayPal refunds take 3-5 business days."))
    assert handoff_appropriate(never, vectors, policy).value == 0.0
    late = conv(
        c("my sofa cushion arrived torn"),
        a("PayPal refunds take 3-5 business days.", confidence=0.5),
        c("my sofa cushion arrived torn"),
        a("Card refunds take 5-10 business days.", confidence=0.5),
        c("I already told you, the cushion on my sofa is torn!!"),
        HANDOFF,
        handoff_reasons=["frustration"],
    )
    score = handoff_appropriate(late, vectors, policy)
    assert score.value is not None and score.value < 0.5 and "too late" in score.reason
    unnecessary = conv(
        c("How long does a PayPal refund take?"),
        a("PayPal refunds take 3-5 business days.", confidence=0.9),
        c("And for cards?"),
        HANDOFF,
        handoff_reasons=["low_confidence"],
    )
    assert (handoff_appropriate(unnecessary, vectors, policy).value or 1) < 0.5


def test_no_handoff_needed_is_not_applicable(vectors: SentenceVectors) -> None:
    t = conv(c("How do I use a gift card?"), a("At checkout, choose Gift card under payment."), c("thanks!"))
    assert handoff_appropriate(t, vectors, PolicySettings()).value is None


def test_verdict_and_mean() -> None:
    assert verdict({"a": 0.9, "b": None}) == "good" and verdict({"a": 0.9, "b": 0.2}) == "bad"
    assert mean_score({"a": 1.0, "b": 0.5, "c": None}) == 0.75 and mean_score({"a": None}) is None


# -- the judge ------------------------------------------------------------------------------------------


def judge_with(model: BaseChatModel | str) -> ConversationJudge:
    """A judge on `model`; on a text, on a model that replies it to every call."""
    chat = FakeChatModel(reply=model) if isinstance(model, str) else model
    return ConversationJudge(ChatGateway(chat, "custom", "test-model"), EvalSettings())


GIFT_CONV = conv(
    c("How do I use a gift card?"),
    a("At checkout, choose Gift card under payment.", cites=["gift-cards"]),
    outcome="resolved_by_bot_assumed",
    effort=1.0,
)


def test_grades_map_to_zero_one_and_garbage_is_refused() -> None:
    assert grade(5) == 1.0 and grade(1) == 0.0 and grade("3") == 0.5 and grade(4.0) == 0.75
    for bad in (0, 6, "five", None, True, 2.5, [3]):
        assert grade(bad) is None


def test_a_valid_judge_scores_tone_and_joins_relevance_and_policy(vectors: SentenceVectors) -> None:
    reply = '{"relevance": 3, "tone": 2, "policy": 2, "reason": "The answer skips the PIN step."}'
    judge = judge_with(reply)
    card = ScorecardBuilder(vectors, EvalSettings(), PolicySettings(), judge).build(GIFT_CONV)
    assert card.scores["tone"] == 0.25 and card.evaluators["tone"] == "judge:test-model@conversation_judge.v1"
    assert card.scores["policy"] == 0.25  # the judge is stricter than the rule (1.0): the lower wins
    assert card.evaluators["relevance"].startswith("rule:relevance@1+judge:")
    assert card.evaluator == "rules+judge:test-model" and not card.notes


def test_judge_garbage_falls_back_to_the_rules_per_score(vectors: SentenceVectors) -> None:
    rules = ScorecardBuilder(vectors, EvalSettings(), PolicySettings()).build(GIFT_CONV, use_judge=False)
    for reply in ("I think this conversation went well!", '{"relevance": "great", "tone": 9, "policy": null}', "{"):
        card = ScorecardBuilder(vectors, EvalSettings(), PolicySettings(), judge_with(reply)).build(GIFT_CONV)
        assert card.scores == rules.scores, reply
        assert card.evaluators["tone"] == "rule:tone@1"
        assert any(n.startswith("judge fell back") for n in card.notes), card.notes
    partial = '{"relevance": 7, "tone": 5, "policy": "ok", "reason": "Polite and correct."}'
    card = ScorecardBuilder(vectors, EvalSettings(), PolicySettings(), judge_with(partial)).build(GIFT_CONV)
    assert card.scores["tone"] == 1.0 and card.evaluators["tone"].startswith("judge:")
    assert card.scores["relevance"] == rules.scores["relevance"] and card.evaluators["relevance"] == "rule:relevance@1"
    assert any("rejected" in n for n in card.notes)


def test_the_fake_support_model_answers_the_judge_schema(vectors: SentenceVectors) -> None:
    card = ScorecardBuilder(vectors, EvalSettings(), PolicySettings(), judge_with(FakeSupportChatModel())).build(
        GIFT_CONV
    )
    assert card.scores["tone"] == 1.0 and card.evaluators["tone"].startswith("judge:")


# -- kappa ----------------------------------------------------------------------------------------------


def test_cohen_kappa_on_a_hand_checked_example() -> None:
    # 10 items: agreement 7/10; rater A says yes 6/10, rater B 5/10 -> chance 0.6*0.5 + 0.4*0.5 = 0.5
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    a_ = [1, 1, 0, 1, 0, 0, 1, 1, 1, 0]
    b_ = [1, 0, 0, 1, 0, 1, 1, 1, 0, 0]
    assert cohen_kappa(a_, b_) == pytest.approx(0.4)
    assert cohen_kappa([1, 1, 1], [1, 1, 1]) is None  # both raters constant: undefined
    assert cohen_kappa([1, 0], [0, 1]) == pytest.approx(-1.0)
    got = agreement([True, True, False, False], [True, False, False, False])
    assert got.n == 4 and got.agreement == 0.75 and got.kappa == pytest.approx(0.5)
