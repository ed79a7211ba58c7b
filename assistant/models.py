"""Domain types: the pydantic models that cross every boundary (store <-> engine <-> api).

The knowledge layer's types are re-exported here so that layers above import one module.
No LangChain message or Chroma dict ever travels between layers; they are converted at the edge.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from knowledge.types import Chunk, Document, IngestReport, SearchHit

__all__ = [
    "Chunk",
    "Document",
    "IngestReport",
    "SearchHit",
    "ConversationStatus",
    "Role",
    "CustomerProfile",
    "CustomerEvent",
    "Citation",
    "Message",
    "Conversation",
    "PastConversation",
    "CustomerContext",
    "Reply",
    "HandoffSummary",
    "Handoff",
    "HandoffPacket",
    "HANDOFF_REASONS",
    "is_handoff_reason",
    "Turn",
    "Feedback",
    "TurnRecord",
    "ToolCall",
    "TokenEvent",
    "CitationsEvent",
    "HandoffEvent",
    "DoneEvent",
    "TurnEvent",
    "Scorecard",
    "Review",
    "ReviewLabel",
    "SCORE_NAMES",
    "utcnow",
]

ConversationStatus = Literal["bot", "waiting_for_agent", "with_agent", "resolved", "abandoned"]
Role = Literal["customer", "assistant", "agent", "system"]
ReplyMode = Literal[
    "generated", "extractive", "account", "approved", "declined", "error", "handoff", "closing", "greeting"
]
HandoffStatus = Literal["waiting", "claimed", "resolved"]

# Why a conversation went to a person: a label from this fixed set, or `policy:<topic>` for a policy topic
# (CXA_POLICY__RULES). Never the customer's own words: what they type asking for a person is the handoff's
# `customer_note`. late_delivery and refund_overdue come from the customer's record (assistant.account).
HANDOFF_REASONS: tuple[str, ...] = (
    "customer_request",
    "low_confidence",
    "error",
    "frustration",
    "late_delivery",
    "refund_overdue",
)
_POLICY_REASON = re.compile(r"^policy:[a-z0-9][a-z0-9_.-]{0,56}$")


def is_handoff_reason(value: str) -> bool:
    """Is `value` one of the handoff reason labels (`HANDOFF_REASONS` or `policy:<topic>`)?"""
    return value in HANDOFF_REASONS or _POLICY_REASON.match(value) is not None


def utcnow() -> datetime:
    return datetime.now(UTC)


class CustomerProfile(BaseModel):
    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@-]+$")
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=50)
    locale: str | None = Field(None, max_length=20)
    created_at: datetime | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, description="plan, country, lifetime value, ...")


class CustomerEvent(BaseModel):
    """Something that happened to a customer: an order, a subscription change, a ticket."""

    id: int | None = None
    customer_id: str
    type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    at: datetime
    data: dict[str, Any] = Field(default_factory=dict)


class Citation(BaseModel):
    source_id: str
    title: str
    url: str | None = None
    snippet: str
    score: float
    chunk_id: str | None = None


class Message(BaseModel):
    id: str
    conversation_id: str
    seq: int
    role: Role
    text: str
    created_at: datetime
    citations: list[Citation] = Field(default_factory=list)
    author_id: str | None = Field(None, description="the agent's id for agent messages")


class Conversation(BaseModel):
    id: str
    customer_id: str | None = None
    verified: bool = Field(False, description="customer identity proven by customer_hash; only then is history loaded")
    status: ConversationStatus = "bot"
    channel: str = "web"
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    topic: str | None = None
    outcome: str | None = None
    summary: str | None = None


class PastConversation(BaseModel):
    """An earlier conversation as the history block shows it."""

    id: str
    started_at: datetime
    channel: str
    topic: str | None = None
    outcome: str | None = None
    summary: str


# A verified customer's record as read for one turn: the profile (None: not on file), the newest events first and the
# earlier conversations, newest first (`Store.customer_context`).
CustomerRecord = tuple[CustomerProfile | None, list[CustomerEvent], list[PastConversation]]


class CustomerContext(BaseModel):
    """What the model is told about the customer, already cut to the token budget."""

    profile: CustomerProfile | None = None
    events: list[CustomerEvent] = Field(default_factory=list)
    past_conversations: list[PastConversation] = Field(default_factory=list)
    text: str = Field("", description="the rendered block given to the model")
    tokens: int = 0
    truncated: bool = False


class Reply(BaseModel):
    text: str
    citations: list[Citation] = Field(default_factory=list)
    mode: ReplyMode = "generated"


class HandoffSummary(BaseModel):
    """What an agent reads first: enough that the customer never has to repeat themselves."""

    issue: str
    customer_goal: str
    attempted: list[str] = Field(default_factory=list, description="what the assistant tried, with its sources")
    customer_context: str = ""
    sentiment: str = "neutral"
    effort: float = Field(0.0, description="predicted customer effort so far, CES scale 1..7")
    suggested_next_step: str = ""


class Handoff(BaseModel):
    id: str
    conversation_id: str
    reason: str = Field(description="a label: " + ", ".join(HANDOFF_REASONS) + " or policy:<topic>")
    confidence: float | None = None
    status: HandoffStatus = "waiting"
    summary: HandoffSummary
    summary_source: Literal["model", "extractive"] = "extractive"
    created_at: datetime
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    resolved_at: datetime | None = None
    note: str | None = Field(None, description="the agent's closing note")
    customer_note: str | None = Field(None, description="what the customer wrote when asking for a person")

    @field_validator("reason")
    @classmethod
    def _a_label(cls, v: str) -> str:
        if not is_handoff_reason(v):
            raise ValueError(f"not a handoff reason label: {v[:40]!r}")
        return v


class HandoffPacket(Handoff):
    """What an agent opens (and what the handoff webhook posts): the handoff with the conversation, its
    full transcript and, for a verified customer only, their profile and recent account events."""

    conversation: Conversation
    transcript: list[Message] = Field(default_factory=list)
    customer: CustomerProfile | None = Field(None, description="None for an anonymous (unverified) customer")
    customer_events: list[CustomerEvent] = Field(default_factory=list, description="newest first")
    turns: list[TurnTrace] = Field(
        default_factory=list, description="what the assistant did with each message (the console's turn trace)"
    )


class Turn(BaseModel):
    """The result of one customer message (the [fixed] Turn of API.md, plus extra fields)."""

    model_config = ConfigDict(populate_by_name=True)

    message_id: str
    conversation_id: str
    turn_id: str
    reply: Reply | None = None
    confidence: float = 0.0
    handoff: Handoff | None = None
    status: ConversationStatus = "bot"
    action: Literal["answer", "answer_and_offer", "handoff"] = Field(
        "answer", description="the handoff policy's decision: answer_and_offer = show the 'talk to a person' offer"
    )
    query: str | None = Field(None, description="the standalone question that was searched")
    timings_ms: dict[str, float] = Field(default_factory=dict)

    @field_validator("timings_ms")
    @classmethod
    def _fixed_timings(cls, v: dict[str, float]) -> dict[str, float]:
        """API.md names retrieve, generate and total on every turn; a step that did not run took 0 ms
        (a silent turn while an agent has the conversation, a turn handed off before generating)."""
        return {"retrieve": 0.0, "generate": 0.0, **v, "total": v.get("total", 0.0)}


class Feedback(BaseModel):
    csat: int | None = Field(None, ge=1, le=5)
    ces: int | None = Field(None, ge=1, le=7)
    resolved: bool | None = None
    comment: str | None = Field(None, max_length=4000)


# -- streaming: what a turn yields as it runs --------------------------------------------------------


class TokenEvent(BaseModel):
    type: Literal["token"] = "token"
    text: str


class CitationsEvent(BaseModel):
    type: Literal["citations"] = "citations"
    citations: list[Citation]


class HandoffEvent(BaseModel):
    type: Literal["handoff"] = "handoff"
    handoff: Handoff


class DoneEvent(BaseModel):
    type: Literal["done"] = "done"
    turn: Turn


TurnEvent = Annotated[TokenEvent | CitationsEvent | HandoffEvent | DoneEvent, Field(discriminator="type")]


# -- conversation quality (scored by `evals.scorecard`, stored by the store) ----------------------------

SCORE_NAMES: tuple[str, ...] = (
    "groundedness",
    "relevance",
    "resolution",
    "effort",
    "tone",
    "policy",
    "handoff_appropriate",
)
ReviewLabel = Literal["good", "bad"]


class Scorecard(BaseModel):
    """One conversation's quality scores, 0..1 each (None = not applicable), with the reason and the evaluator
    of each (e.g. `rule:grounding@1`, `judge:<model>@conversation_judge.v1`)."""

    conversation_id: str
    scores: dict[str, float | None]
    reasons: dict[str, str] = Field(default_factory=dict)
    evaluators: dict[str, str] = Field(default_factory=dict)
    evaluator: str = Field(description="the combination that produced the card, e.g. rules or rules+judge:<model>")
    notes: list[str] = Field(default_factory=list)
    score: float | None = Field(None, description="mean of the applicable scores")
    scored_at: datetime
    duration_ms: float | None = None


class Review(BaseModel):
    """A person's verdict on a conversation; labelled conversations become regression cases."""

    id: int | None = None
    conversation_id: str
    label: ReviewLabel
    tags: list[str] = Field(default_factory=list)
    note: str | None = None
    reviewer: str | None = None
    scores: dict[str, float | None] = Field(default_factory=dict, description="optional per-dimension human scores")
    created_at: datetime


# -- the evidence of one turn (written by assistant.turn, read by confidence, scorecards and the dashboard) ----------


class FrustrationSignals(BaseModel):
    repeat_of: float = Field(0.0, description="highest similarity to an earlier customer message (0..1)")
    repeated: bool = False
    rephrased: bool = Field(False, description="says again, in other words, what an earlier message asked")
    already_told: bool = False
    negative: int = Field(0, description="negative expressions in this message")
    negative_trend: int = Field(0, description="negative expressions in the customer's last three messages")

    @property
    def score(self) -> float:
        """0..1: how frustrated the customer seems (used by the handoff policy)."""
        s = 0.0
        if self.repeated:
            s += 0.4
        elif self.rephrased:
            s += 0.2
        if self.already_told:
            s += 0.5
        s += min(0.4, 0.2 * self.negative) + min(0.2, 0.05 * self.negative_trend)
        return round(min(1.0, s), 3)


Action = Literal["answer", "answer_and_offer", "handoff"]


class IntentEvidence(BaseModel):
    """What the customer's message says about who should answer, independent of the knowledge."""

    wants_human: bool = False
    policy_topics: list[str] = Field(default_factory=list)
    frustration: FrustrationSignals = Field(default_factory=FrustrationSignals)
    frustration_score: float = 0.0


class Decision(BaseModel):
    action: Action
    reason: str | None = None


class ReliabilityBin(BaseModel):
    """One bin of a reliability curve: predictions in [lo, hi), their mean, and how often they came true."""

    lo: float
    hi: float
    mean_predicted: float | None
    observed: float | None
    n: int


class AnswerabilityEvidence(BaseModel):
    """The calibrated answerability of a turn (`assistant.turn.answerability`) and why it came out so."""

    probability: float = Field(description="P(the knowledge answers this turn); the turn's confidence")
    threshold: float = Field(description="below this the turn is handed off (CXA_POLICY__*)")
    model_version: str
    intercept: float
    features: dict[str, float] = Field(default_factory=dict)
    contributions: dict[str, float] = Field(
        default_factory=dict,
        description="coef * scaled value per feature, in log-odds: with the intercept they sum to logit(p)",
    )

    def decisive(self, n: int = 3) -> list[tuple[str, float]]:
        """The features that pulled the probability down most (what sent a handoff), most negative first."""
        return sorted(((k, v) for k, v in self.contributions.items() if v < 0), key=lambda kv: kv[1])[:n]


class AnswerEvidence(BaseModel):
    """What the reply rests on; recorded on the turn and read by `assistant.turn.confidence`."""

    mode: ReplyMode
    retrieval_top: float = 0.0
    cited_scores: list[float] = Field(default_factory=list)
    sentence_support: list[float] = Field(default_factory=list, description="support of each shown sentence")
    dropped: list[str] = Field(default_factory=list, description="generated sentences withheld as unsupported")
    guarded: list[str] = Field(
        default_factory=list,
        description="why generated sentences were refused by the output guard (assistant.safety.guard)",
    )
    abstained: bool = False
    used_history: bool = False
    answer_relevance: float = Field(0.0, description="similarity of the shown text to the question searched")
    generated_text: str = ""
    fallback: str | None = Field(
        None, description="why the model's answer was not used: model_slow (first-token deadline)"
    )
    answerability: AnswerabilityEvidence | None = Field(
        None, description="the calibrated estimate the turn's confidence is (None: a mode with its own confidence)"
    )


class AnswerResult(BaseModel):
    text: str
    citations: list[Citation]
    evidence: AnswerEvidence
    streamed: bool = Field(
        True,
        description="the text was yielded to the customer as it was approved (generated); False: it is shown only "
        "once the turn is judged (a quote or a decline: whole before it is shown, so a weak one is never seen)",
    )


# -- telemetry: effort and resolution signals (assistant.telemetry) ----------------------------------------------

SignalKind = Literal[
    "customer_turn",
    "repeat",
    "rephrase",
    "already_told",
    "sentiment",
    "confirmation",
    "contradiction",
    "answered",
    "dead_end",
    "handoff",
    "agent_reply",
    "agent_resolved",
    "feedback",
    "long_gap",
    "channel_switch",
    "recontact",
    "recontacted",
    "abandoned",
    "assumed_resolved",
    "topic",
]
Outcome = Literal[
    "open", "resolved_by_bot_confirmed", "resolved_by_bot_assumed", "resolved_by_agent", "unresolved", "abandoned"
]
RESOLVED: frozenset[str] = frozenset({"resolved_by_bot_confirmed", "resolved_by_bot_assumed", "resolved_by_agent"})
BOT_RESOLVED: frozenset[str] = frozenset({"resolved_by_bot_confirmed", "resolved_by_bot_assumed"})


class SignalEvent(BaseModel):
    conversation_id: str
    kind: SignalKind
    at: datetime
    value: float | None = None
    turn_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ConversationFacts(BaseModel):
    conversation_id: str
    customer_id: str | None
    started_at: datetime
    last_activity_at: datetime
    status: str
    outcome: Outcome
    durable: bool | None = Field(None, description="resolved and no re-contact on the topic within the window")
    topic: str | None = None
    effort: float = Field(description="predicted customer effort, CES scale 1 (effortless) .. 7")
    customer_turns: int = 0
    handed_off: bool = False
    agent_wait_s: float | None = None
    csat: int | None = None
    ces: int | None = None
    sentiment_trend: float | None = None
    counts: dict[str, int] = Field(default_factory=dict)


# -- the record of one turn (what explains a turn afterwards: `Store.finish_turn` writes it, `get_turn` reads it) --

TurnState = Literal["pending", "done", "error"]


class ToolCall(BaseModel):
    """One call of an account tool during a turn: what was asked, what came back, which records it read."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    latency_ms: float = 0.0
    result: dict[str, Any] = Field(default_factory=dict, description="the tool's typed result, as JSON")
    cited: list[str] = Field(default_factory=list, description="ids of the customer events the result rests on")
    error: str | None = None
    summary: str = Field("", description="the result as the reply templates word it: what an answer may say")


class TurnRecord(BaseModel):
    """One customer message and everything the assistant did with it, step by step."""

    id: str
    conversation_id: str
    message_id: str
    state: TurnState = "pending"
    created_at: datetime
    finished_at: datetime | None = None
    query: str | None = Field(None, description="the standalone question that was searched")
    chunk_ids: list[str] = Field(default_factory=list, description="retrieved chunks, best first")
    chunk_scores: list[float] = Field(default_factory=list)
    cited_chunk_ids: list[str] = Field(default_factory=list)
    reply_message_id: str | None = None
    reply_mode: ReplyMode | None = None
    confidence: float | None = None
    evidence: AnswerEvidence | None = Field(None, description="what the reply rests on (None: no answer composed)")
    intent: IntentEvidence | None = Field(None, description="None until the message was assessed")
    action: Action | None = Field(None, description="the handoff policy's decision")
    tool_calls: list[ToolCall] = Field(default_factory=list)
    approved_id: str | None = Field(None, description="the approved answer the message matched best (served or not)")
    approved_score: float | None = Field(None, description="how well it matched (served at CXA_APPROVED__MIN_SCORE)")
    handoff_id: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    prompt_tokens: int | None = Field(None, description="tokens of the prompts this turn sent to the chat model")


# -- what the customer's widget and the agent queue read ----------------------------------------------------------


class QueueInfo(BaseModel):
    """Where a waiting customer stands, for the widget's "a person will join" line."""

    queue_position: int | None = Field(
        None, description="1 = next to be claimed; None when no handoff is waiting (claimed, resolved, none)"
    )
    expected_wait_s: float | None = Field(
        None, description="median wait for an agent's first reply over the last day's handed-off conversations"
    )


class ConversationView(BaseModel):
    """A conversation as its customer (or staff) reads it: transcript, open handoff, outcome and signals so far."""

    conversation: Conversation
    messages: list[Message]
    handoff: Handoff | None = None
    queue: QueueInfo = Field(default_factory=QueueInfo)
    facts: ConversationFacts | None = None
    signals: list[SignalEvent] = Field(default_factory=list)


class HandoffReceipt(BaseModel):
    """What the customer's "talk to a person" button gets back."""

    handoff: Handoff
    status: ConversationStatus
    queue: QueueInfo = Field(default_factory=QueueInfo)


class QueuedHandoff(BaseModel):
    """An entry of the agent queue: the handoff with its conversation (None if it was deleted)."""

    handoff: Handoff
    conversation: Conversation | None = None


# -- the customer's own record, as the account tools read it (assistant.account) ---------------------------------

DeliveryState = Literal["processing", "shipped", "delivered", "cancelled"]


class RecordRef(BaseModel):
    """One customer event an account answer rests on (cited as `account:<kind>:<key>`)."""

    event_id: int | None = None
    type: str
    at: datetime


class OrderItem(BaseModel):
    name: str
    sku: str | None = None
    qty: int = 1
    price: float | None = None


class ReturnFacts(BaseModel):
    order_id: str
    rma: str | None = None
    at: datetime
    items: list[OrderItem] = Field(default_factory=list)
    reason: str | None = None
    method: str | None = None
    kind: str = Field("return", description="return or exchange")
    exchange_for: str | None = Field(None, description="the item an exchange sends instead")
    replacement_shipped_at: datetime | None = None
    replacement_tracking: str | None = None
    replacement_delivered_at: datetime | None = None


class RefundFacts(BaseModel):
    order_id: str | None = None
    rma: str | None = None
    at: datetime
    amount: float | None = None
    currency: str | None = None
    method: str | None = None
    reason: str | None = None
    note: str | None = None
    deductions: list[dict[str, Any]] = Field(default_factory=list)
    expected_by: datetime | None = Field(None, description="latest arrival under the refund policy for its method")
    overdue: bool = Field(False, description="the policy window has passed")


class OrderFacts(BaseModel):
    """An order folded from its events: what was bought, where it is, what came back and what was refunded."""

    order_id: str
    placed_at: datetime | None = None
    items: list[OrderItem] = Field(default_factory=list)
    total: float | None = None
    currency: str | None = None
    payment_method: str | None = None
    delivery: str | None = Field(None, description="standard, express, two_person, click_and_collect, email, ...")
    delivery_fee: float | None = None
    promo_code: str | None = None
    discount: float | None = None
    state: DeliveryState = "processing"
    shipped_at: datetime | None = None
    carrier: str | None = None
    tracking: str | None = None
    slot_start: datetime | None = None
    slot_end: datetime | None = None
    collect_point: str | None = None
    delivered_at: datetime | None = None
    delivered_note: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    returns: list[ReturnFacts] = Field(default_factory=list)
    refunds: list[RefundFacts] = Field(default_factory=list)
    late: bool = Field(False, description="past its delivery slot or the policy's wait, and not delivered")
    late_since: datetime | None = None
    notes: list[str] = Field(default_factory=list)
    events: list[RecordRef] = Field(default_factory=list)


class PaymentFailure(BaseModel):
    at: datetime
    kind: str | None = Field(None, description="subscription_renewal, checkout, ...")
    amount: float | None = None
    currency: str | None = None
    reason: str | None = None
    error_code: str | None = None
    next_retry_at: datetime | None = None


class MembershipFacts(BaseModel):
    """The customer's membership (subscription), folded from its events."""

    plan: str | None = None
    status: Literal["active", "trial", "paused", "cancelled", "none"] = "none"
    price: float | None = None
    currency: str | None = None
    started_at: datetime | None = None
    renews_at: datetime | None = None
    trial_ends_at: datetime | None = None
    billing_day: int | None = None
    paused_from: datetime | None = None
    resumes_at: datetime | None = None
    benefits_until: datetime | None = None
    failed_payments: list[PaymentFailure] = Field(default_factory=list, description="since the last change")
    events: list[RecordRef] = Field(default_factory=list)


class TicketFacts(BaseModel):
    subject: str
    status: str | None = None
    channel: str | None = None
    at: datetime
    event: RecordRef


# -- the loop back: approved answers, knowledge gaps, the copilot, handoff quality (assistant.approved, .insights) --

ApprovedStatus = Literal["active", "retired"]
ApprovedFlagKind = Literal["contradicts_help_center", "similar_question", "source_conversation_missing", "markup"]


class ApprovedSource(BaseModel):
    """A help-center article an approved answer rests on, with the article's hash when the answer was approved:
    a different hash now (or no article) makes the answer stale."""

    source_id: str
    title: str | None = None
    doc_hash: str | None = None


class ApprovedFlag(BaseModel):
    """Something a person should look at before trusting an approved answer (it is still served)."""

    kind: ApprovedFlagKind
    detail: str
    ref: str | None = Field(None, description="the help article, approved answer or conversation it is about")


class ApprovedAnswer(BaseModel):
    """A person's answer to a question, served word for word to customers who ask it (API.md "Approved answers").
    The texts are plain text: shown to customers only as text, never as HTML."""

    id: str
    question: str
    answer: str
    variants: list[str] = Field(default_factory=list, description="other ways customers ask the same question")
    status: ApprovedStatus = "active"
    approved_by: str | None = Field(None, description="who approved it (an agent id, or the role)")
    created_at: datetime
    updated_at: datetime
    review_at: datetime | None = Field(None, description="after this the answer is stale until edited")
    source_conversation_id: str | None = Field(None, description="the conversation whose agent reply it came from")
    sources: list[ApprovedSource] = Field(default_factory=list)
    flags: list[ApprovedFlag] = Field(default_factory=list)
    hits: int = Field(0, description="times it was served verbatim to a customer")
    last_used_at: datetime | None = None
    retired_at: datetime | None = None
    stale: bool = False
    stale_reasons: list[str] = Field(default_factory=list, description="past its review date, a cited article changed")

    @property
    def texts(self) -> list[str]:
        """The question and its variants: what a customer's message is matched against."""
        return [self.question, *self.variants]


class ApprovedAnswerDraft(BaseModel):
    """A new approved answer as a person submits it (validated by `assistant.approved.service`)."""

    question: str
    answer: str
    variants: list[str] = Field(default_factory=list)
    source_conversation_id: str | None = None
    review_at: datetime | None = None
    approved_by: str | None = None
    sources: list[str] | None = Field(None, description="help articles it rests on; None = the best match found")


class ApprovedAnswerEdit(BaseModel):
    """A change to an approved answer: only the fields given change."""

    question: str | None = None
    answer: str | None = None
    variants: list[str] | None = None
    review_at: datetime | None = None
    clear_review_at: bool = False
    approved_by: str | None = None
    sources: list[str] | None = None
    clear_flags: bool = Field(False, description="a person reviewed the flags: remove them")


class ApprovedMatch(BaseModel):
    """The approved answer a message matched, how well, and through which of its texts."""

    answer: ApprovedAnswer
    score: float
    matched: str

    @property
    def source_id(self) -> str:
        return f"approved:{self.answer.id}"

    def citation(self) -> Citation:
        snippet = self.answer.answer if len(self.answer.answer) <= 240 else self.answer.answer[:239] + "…"
        return Citation(
            source_id=self.source_id,
            title=self.answer.question,
            url=None,
            snippet=snippet,
            score=round(max(0.0, min(1.0, self.score)), 4),
            chunk_id=self.source_id,
        )


GapReason = Literal["declined", "low_confidence", "escalated", "contradicted", "rephrased", "rated_badly"]
GapTrend = Literal["rising", "steady", "falling", "new"]
DraftAuthor = Literal["extractive", "model"]


class GapQuestion(BaseModel):
    """One question the assistant could not answer, as the gaps report groups them."""

    conversation_id: str
    message_id: str
    customer_id: str | None = None
    text: str
    at: datetime
    reason: GapReason
    topic: str | None = None
    agent_answers: list[str] = Field(default_factory=list, description="what agents replied in that conversation")
    simulated: bool = False


class KnowledgeGap(BaseModel):
    """Questions customers asked that the assistant could not answer, grouped (worst first in the report)."""

    id: str = Field(description="stable while its first question stays in the period: gap_<hash of that message>")
    label: str
    conversations: int
    customers: int = Field(description="distinct verified customers, plus each anonymous conversation")
    examples: list[str]
    topic: str | None = None
    reasons: dict[str, int] = Field(default_factory=dict)
    agent_answers: list[str] = Field(default_factory=list)
    first_seen: datetime
    last_seen: datetime
    trend: GapTrend = "steady"
    daily: list[int] = Field(default_factory=list, description="conversations per day over the period, oldest first")
    covered_by: str | None = Field(None, description="an approved answer that now matches it (approved:<id>)")
    simulated: int = Field(0, description="of its conversations, how many were simulated (cxa demo)")
    conversation_ids: list[str] = Field(default_factory=list)
    score: float = Field(0.0, description="how bad the gap is: the order of the report")


class GapDraft(BaseModel):
    """A draft made from a gap, for a person to edit and approve."""

    gap_id: str
    kind: Literal["approved_answer", "article_outline"]
    question: str
    variants: list[str] = Field(default_factory=list)
    answer: str = Field("", description="the approved answer's text (kind approved_answer)")
    outline: str = Field("", description="a help-article outline in Markdown (kind article_outline)")
    written_by: DraftAuthor = "extractive"
    source_conversation_id: str | None = None


SuggestionOutcome = Literal["sent", "edited", "ignored"]
SuggestionSource = Literal["approved", "account", "help_center"]


class Suggestion(BaseModel):
    """A reply drafted for the agent of a handoff (the copilot), from approved answers, the customer's record and
    the help center, with what the agent did with it."""

    id: str
    handoff_id: str
    conversation_id: str
    text: str
    citations: list[Citation] = Field(default_factory=list)
    sources: list[SuggestionSource] = Field(default_factory=list)
    created_at: datetime
    outcome: SuggestionOutcome | None = None
    outcome_at: datetime | None = None


class HandoffQuality(BaseModel):
    """Was a handoff needed, and did the agent have to ask again what the customer or the packet already gave?"""

    handoff_id: str
    conversation_id: str
    reason: str
    created_at: datetime
    avoidable: bool
    avoidable_by: str | None = Field(None, description="approved:<id> or the help article that answered it")
    avoidable_score: float | None = None
    reasked: list[str] = Field(default_factory=list, description="order_number, email, issue, ... asked again")
    simulated: bool = False


class AskedTurn(BaseModel):
    """A customer's turn with what came of it and where it happened: what the loop-back reports read
    (`Store.insights.asked`)."""

    record: TurnRecord
    text: str = Field(description="the customer's message")
    customer_id: str | None = None
    simulated: bool = Field(False, description="the conversation was simulated (cxa demo, simulations)")
    topic: str | None = None
    handoff_reason: str | None = None
    csat: int | None = None
    resolved: bool | None = Field(None, description="the customer's own answer to 'was it resolved?'")
    agent_replies: list[str] = Field(default_factory=list, description="agents' messages in the conversation")


class ClaimTiming(BaseModel):
    """A claimed handoff: when it was claimed, the agent's first reply after that, and whether a copilot
    suggestion had been shown before that reply."""

    handoff_id: str
    conversation_id: str
    claimed_at: datetime
    first_reply_at: datetime | None = None
    suggested: bool = False


class ClaimFigures(BaseModel):
    handoffs: int
    median_s: float | None = None
    mean_s: float | None = None


class CopilotFigures(BaseModel):
    """What agents did with the copilot's drafts over a period, and how fast they answered with and without one."""

    since: datetime | None = None
    until: datetime | None = None
    shown: int = 0
    sent_as_is: int = 0
    edited: int = 0
    ignored: int = 0
    undecided: int = 0
    empty: int = Field(0, description="handoffs for which nothing could be drafted")
    claim_to_first_reply_with: ClaimFigures = Field(default_factory=lambda: ClaimFigures(handoffs=0))
    claim_to_first_reply_without: ClaimFigures = Field(default_factory=lambda: ClaimFigures(handoffs=0))


class HandoffQualityReport(BaseModel):
    """Handoff quality over a period: how many handoffs were avoidable, and how many made the customer repeat."""

    since: datetime | None = None
    until: datetime | None = None
    handoffs: int = 0
    avoidable: int = 0
    avoidable_rate: float | None = None
    avoidable_by_approved: int = 0
    avoidable_by_help_center: int = 0
    reasked: int = Field(0, description="handoffs where the agent asked again for something the packet had")
    reask_rate: float | None = Field(None, description="of handoffs an agent replied to")
    replied: int = Field(0, description="handoffs an agent replied to")
    reasked_kinds: dict[str, int] = Field(default_factory=dict)
    by_reason: dict[str, dict[str, int]] = Field(default_factory=dict, description="reason -> handoffs, avoidable")
    items: list[HandoffQuality] = Field(default_factory=list, description="avoidable or re-asked first, newest first")


class TurnTrace(BaseModel):
    """A turn record as an agent reads it in the console: what was done, how sure, how long, which records were
    read. Not the model's raw output or the sentences the guard refused (`TurnRecord.evidence`): those can hold
    what an injection tried to get out, and stay in the turn record for the CX team's review."""

    id: str
    created_at: datetime
    reply_mode: ReplyMode | None = None
    confidence: float | None = None
    action: Action | None = None
    query: str | None = None
    cited_chunk_ids: list[str] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    handoff_id: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    prompt_tokens: int | None = Field(None, description="tokens of the prompts this turn sent to the chat model")
    fallback: str | None = Field(
        None, description="why the model's answer was not used: model_slow (it missed the first-token deadline)"
    )
    answerability: AnswerabilityEvidence | None = Field(
        None, description="the calibrated confidence with each feature's contribution (what sent a handoff)"
    )

    @classmethod
    def of(cls, r: TurnRecord) -> TurnTrace:
        trace = cls.model_validate(r.model_dump(include=set(cls.model_fields) - {"answerability", "fallback"}))
        if r.evidence is not None:
            trace.answerability, trace.fallback = r.evidence.answerability, r.evidence.fallback
        return trace
