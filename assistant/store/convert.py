"""Rows to domain models: what every repository returns (never rows). And the one model the store writes back as a
JSON column of its own layout, the turn record's evidence (`turn_evidence`, the inverse of `turn`).

JSON columns are read through `assistant.safety.payload.scrub`: a row stored before the input validation existed
(a lone surrogate, NaN, a structure nested hundreds deep) comes back serialisable, so it cannot break the agent
queue, a transcript or a turn.

Columns hold plain `str` where the models have literals (a status, a role, a label): pydantic checks the value when
the model is built, so only the static type is waived there (`# type: ignore[arg-type]`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from assistant.models import (
    AnswerEvidence,
    Citation,
    Conversation,
    ConversationFacts,
    CustomerEvent,
    CustomerProfile,
    Feedback,
    Handoff,
    HandoffSummary,
    IntentEvidence,
    Message,
    Review,
    Scorecard,
    SignalEvent,
    ToolCall,
    TurnRecord,
    is_handoff_reason,
)
from assistant.safety.payload import scrub
from assistant.store.tables import (
    ConversationFactsRow,
    ConversationRow,
    CustomerEventRow,
    CustomerRow,
    FeedbackRow,
    HandoffRow,
    MessageRow,
    ReviewRow,
    ScorecardRow,
    SignalEventRow,
    TurnRow,
)


@overload
def aware(dt: datetime) -> datetime: ...
@overload
def aware(dt: None) -> None: ...
@overload
def aware(dt: datetime | None) -> datetime | None: ...
def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything we store is UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def customer(r: CustomerRow) -> CustomerProfile:
    return CustomerProfile(
        id=r.id,
        name=r.name,
        email=r.email,
        phone=r.phone,
        locale=r.locale,
        created_at=aware(r.created_at),
        attributes=scrub(r.attributes or {}),
    )


def event(r: CustomerEventRow) -> CustomerEvent:
    return CustomerEvent(id=r.id, customer_id=r.customer_id, type=r.type, at=aware(r.at), data=scrub(r.data or {}))


def conversation(r: ConversationRow) -> Conversation:
    return Conversation(
        id=r.id,
        customer_id=r.customer_id,
        verified=bool(r.verified),
        status=r.status,  # type: ignore[arg-type]
        channel=r.channel,
        metadata=scrub(r.meta or {}),
        created_at=aware(r.created_at),
        updated_at=aware(r.updated_at),
        topic=r.topic,
        outcome=r.outcome,
        summary=r.summary,
    )


def message(r: MessageRow) -> Message:
    return Message(
        id=r.id,
        conversation_id=r.conversation_id,
        seq=r.seq,
        role=r.role,  # type: ignore[arg-type]
        text=r.text,
        created_at=aware(r.created_at),
        citations=[Citation.model_validate(c) for c in r.citations or []],
        author_id=r.author_id,
    )


def turn(r: TurnRow) -> TurnRecord:
    """A stored turn, typed. The evidence column holds the answer's evidence (absent when no answer was composed)
    with the intent, the action and the tool calls beside it."""
    ev = dict(scrub(r.evidence or {}))
    intent, action, calls = ev.pop("intent", None), ev.pop("action", None), ev.pop("tool_calls", None) or []
    approved = ev.pop("approved", None) or {}
    prompt_tokens = ev.pop("prompt_tokens", None)
    return TurnRecord(
        id=r.id,
        conversation_id=r.conversation_id,
        message_id=r.message_id,
        state=r.state,  # type: ignore[arg-type]
        created_at=aware(r.created_at),
        finished_at=aware(r.finished_at),
        query=r.query,
        chunk_ids=list(r.chunk_ids or []),
        chunk_scores=list(r.chunk_scores or []),
        cited_chunk_ids=list(r.cited_chunk_ids or []),
        reply_message_id=r.reply_message_id,
        reply_mode=r.reply_mode,  # type: ignore[arg-type]
        confidence=r.confidence,
        evidence=AnswerEvidence.model_validate(ev) if ev.get("mode") else None,
        intent=IntentEvidence.model_validate(intent) if intent else None,
        action=action,
        tool_calls=[ToolCall.model_validate(c) for c in calls],
        approved_id=approved.get("id"),
        approved_score=approved.get("score"),
        handoff_id=r.handoff_id,
        timings_ms=dict(r.timings_ms or {}),
        error=r.error,
        prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else None,
    )


def turn_evidence(record: TurnRecord) -> dict[str, Any]:
    """The evidence column of a turn record, as `turn` reads it: the answer's evidence with the intent, the action,
    the tool calls and the approved answer matched beside it."""
    evidence: dict[str, Any] = record.evidence.model_dump(mode="json") if record.evidence is not None else {}
    if record.intent is not None:
        evidence["intent"] = record.intent.model_dump(mode="json")
    if record.action is not None:
        evidence["action"] = record.action
    if record.tool_calls:
        evidence["tool_calls"] = [c.model_dump(mode="json") for c in record.tool_calls]
    if record.approved_id is not None:
        evidence["approved"] = {"id": record.approved_id, "score": record.approved_score}
    if record.prompt_tokens is not None:
        evidence["prompt_tokens"] = record.prompt_tokens
    return evidence


def handoff(r: HandoffRow) -> Handoff:
    # A reason that is not a label is a customer's free text stored before reasons were a fixed set (migration
    # 0003 moves those): shown as what it is, the customer's note.
    known = is_handoff_reason(r.reason)
    return Handoff(
        id=r.id,
        conversation_id=r.conversation_id,
        reason=r.reason if known else "customer_request",
        confidence=r.confidence,
        status=r.status,  # type: ignore[arg-type]
        summary=HandoffSummary.model_validate(scrub(r.summary or {})),
        summary_source=r.summary_source,  # type: ignore[arg-type]
        created_at=aware(r.created_at),
        claimed_by=r.claimed_by,
        claimed_at=aware(r.claimed_at),
        resolved_at=aware(r.resolved_at),
        note=r.note,
        customer_note=r.customer_note if known or r.customer_note else r.reason,
    )


def feedback(r: FeedbackRow) -> Feedback:
    return Feedback(csat=r.csat, ces=r.ces, resolved=r.resolved, comment=r.comment)


def signal(r: SignalEventRow) -> SignalEvent:
    return SignalEvent(
        conversation_id=r.conversation_id,
        kind=r.kind,  # type: ignore[arg-type]
        at=aware(r.at),
        value=r.value,
        turn_id=r.turn_id,
        data=scrub(r.data or {}),
    )


def facts(r: ConversationFactsRow) -> ConversationFacts:
    return ConversationFacts(
        conversation_id=r.conversation_id,
        customer_id=r.customer_id,
        started_at=aware(r.started_at),
        last_activity_at=aware(r.last_activity_at),
        status=r.status,
        outcome=r.outcome,  # type: ignore[arg-type]
        durable=r.durable,
        topic=r.topic,
        effort=r.effort,
        customer_turns=r.customer_turns,
        handed_off=bool(r.handed_off),
        agent_wait_s=r.agent_wait_s,
        csat=r.csat,
        ces=r.ces,
        sentiment_trend=r.sentiment_trend,
        counts=r.counts or {},
    )


def scorecard(r: ScorecardRow) -> Scorecard:
    return Scorecard(
        conversation_id=r.conversation_id,
        scores=r.scores or {},
        reasons=r.reasons or {},
        evaluators=r.evaluators or {},
        evaluator=r.evaluator,
        notes=r.notes or [],
        score=r.score,
        scored_at=aware(r.scored_at),
        duration_ms=r.duration_ms,
    )


def review(r: ReviewRow) -> Review:
    return Review(
        id=r.id,
        conversation_id=r.conversation_id,
        label=r.label,  # type: ignore[arg-type]
        tags=r.tags or [],
        note=r.note,
        reviewer=r.reviewer,
        scores=r.scores or {},
        created_at=aware(r.created_at),
    )
