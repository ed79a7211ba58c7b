"""SQLAlchemy 2 tables. SQLite by default, PostgreSQL by URL; JSON columns work on both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored and compared in UTC and read back UTC-aware, whatever the database. PostgreSQL's
    timestamptz keeps the instant of a time given with another offset; SQLite keeps no offset at all, and
    stored such a time as its wall-clock reading (an event at 10:30+01:00 came back as 10:30 UTC). Naive
    times are UTC (everything we write is)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _NoNul:
    """Text with NUL characters removed before it is written, on every database: PostgreSQL refuses them in text
    columns (a 500 on a message or profile a fuzzer or a broken client sent), SQLite stores them. A NUL is never
    meaningful in what we store (messages, names, notes), so removing it keeps both databases the same."""

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return value.replace("\x00", "") if value and "\x00" in value else value


class SafeString(_NoNul, TypeDecorator[str]):
    impl = String
    cache_ok = True  # on the class itself: SQLAlchemy does not look it up on a mixin


class SafeText(_NoNul, TypeDecorator[str]):
    impl = Text
    cache_ok = True


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


class SafeJSON(TypeDecorator[Any]):
    """JSON with NUL characters removed from its strings (keys too) before it is written: PostgreSQL's JSON
    operators refuse a `\u0000` escape (a 500 on any later query reading that column), SQLite keeps it."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        try:
            return _without_nul(value)
        except RecursionError:  # nested deeper than Python recurses: written as it is (as it was before)
            return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: SafeJSON(), list[Any]: SafeJSON(), datetime: UTCDateTime(), str: SafeText()}


class CustomerRow(Base):
    __tablename__ = "customers"
    id: Mapped[str] = mapped_column(SafeString(200), primary_key=True)
    name: Mapped[str | None] = mapped_column(SafeString(200))
    email: Mapped[str | None] = mapped_column(SafeString(320))
    phone: Mapped[str | None] = mapped_column(SafeString(50))
    locale: Mapped[str | None] = mapped_column(SafeString(20))
    created_at: Mapped[datetime | None]
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class CustomerEventRow(Base):
    __tablename__ = "customer_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(SafeString(64))
    at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    __table_args__ = (Index("ix_customer_events_customer_at", "customer_id", "at"),)


class ConversationRow(Base):
    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(SafeString(200), index=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(SafeString(32), default="bot", index=True)
    channel: Mapped[str] = mapped_column(SafeString(32), default="web")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", SafeJSON(), default=dict)
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    topic: Mapped[str | None] = mapped_column(SafeString(100))
    outcome: Mapped[str | None] = mapped_column(SafeString(64))
    summary: Mapped[str | None] = mapped_column(SafeText)
    next_seq: Mapped[int] = mapped_column(Integer, default=0)


class MessageRow(Base):
    __tablename__ = "messages"
    id: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(SafeString(16))
    text: Mapped[str] = mapped_column(SafeText)
    created_at: Mapped[datetime]
    citations: Mapped[list[Any]] = mapped_column(default=list)
    author_id: Mapped[str | None] = mapped_column(SafeString(200))
    turn_id: Mapped[str | None] = mapped_column(SafeString(64))
    # The text as typed when it held payment data (`text` is masked), kept CXA_PRIVACY__PAYMENT_DATA_RETENTION_DAYS.
    original_text: Mapped[str | None] = mapped_column(SafeText)
    __table_args__ = (UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),)


class TurnRow(Base):
    """One customer message and everything the assistant did with it: the record that explains a turn."""

    __tablename__ = "turns"
    id: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(SafeString(64))
    reply_message_id: Mapped[str | None] = mapped_column(SafeString(64))
    state: Mapped[str] = mapped_column(SafeString(16), default="pending")  # pending | done | error
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    query: Mapped[str | None] = mapped_column(SafeText)
    chunk_ids: Mapped[list[Any]] = mapped_column(default=list)
    chunk_scores: Mapped[list[Any]] = mapped_column(default=list)
    cited_chunk_ids: Mapped[list[Any]] = mapped_column(default=list)
    reply_mode: Mapped[str | None] = mapped_column(SafeString(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    handoff_id: Mapped[str | None] = mapped_column(SafeString(64))
    timings_ms: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(SafeText)


class LLMCallRow(Base):
    """Every chat-model call, as simonw/llm logs them: prompt name and version, model, tokens, time."""

    __tablename__ = "llm_calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    turn_id: Mapped[str | None] = mapped_column(SafeString(64), index=True)
    conversation_id: Mapped[str | None] = mapped_column(SafeString(64), index=True)
    prompt_name: Mapped[str] = mapped_column(SafeString(64))
    prompt_version: Mapped[str] = mapped_column(SafeString(16))
    provider: Mapped[str] = mapped_column(SafeString(32))
    model: Mapped[str] = mapped_column(SafeString(200))
    messages: Mapped[list[Any]] = mapped_column(default=list)
    output: Mapped[str | None] = mapped_column(SafeText)
    input_tokens: Mapped[int | None]
    output_tokens: Mapped[int | None]
    duration_ms: Mapped[float | None] = mapped_column(Float)
    first_token_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(SafeText)
    created_at: Mapped[datetime]


class HandoffRow(Base):
    __tablename__ = "handoffs"
    id: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(SafeString(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(SafeString(16), default="waiting", index=True)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary_source: Mapped[str] = mapped_column(SafeString(16), default="extractive")
    created_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(SafeString(200))
    claimed_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(SafeText)
    customer_note: Mapped[str | None] = mapped_column(SafeText)  # what the customer wrote asking for a person


class FeedbackRow(Base):
    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    csat: Mapped[int | None]
    ces: Mapped[int | None]
    resolved: Mapped[bool | None]
    comment: Mapped[str | None] = mapped_column(SafeText)
    created_at: Mapped[datetime]


class SignalEventRow(Base):
    """Append-only effort and resolution signals (assistant.telemetry.signals); never updated, never deleted alone."""

    __tablename__ = "signal_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    turn_id: Mapped[str | None] = mapped_column(SafeString(64))
    kind: Mapped[str] = mapped_column(SafeString(32), index=True)
    value: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(index=True)


class ConversationFactsRow(Base):
    """What the events say about a conversation (derived by assistant.telemetry.signals, recomputed, never typed in)."""

    __tablename__ = "conversation_facts"
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(SafeString(200), index=True)
    started_at: Mapped[datetime] = mapped_column(index=True)
    last_activity_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(SafeString(32), index=True)
    outcome: Mapped[str] = mapped_column(SafeString(32), index=True)
    durable: Mapped[bool | None]
    topic: Mapped[str | None] = mapped_column(SafeString(100), index=True)
    effort: Mapped[float] = mapped_column(Float, index=True)
    customer_turns: Mapped[int] = mapped_column(Integer)
    handed_off: Mapped[bool] = mapped_column(Boolean)
    agent_wait_s: Mapped[float | None] = mapped_column(Float)
    csat: Mapped[int | None]
    ces: Mapped[int | None]
    sentiment_trend: Mapped[float | None] = mapped_column(Float)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ScorecardRow(Base):
    """A conversation's quality scores (evals.scorecard); a new row per scoring, the latest is current."""

    __tablename__ = "scorecards"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    evaluators: Mapped[dict[str, Any]] = mapped_column(default=dict)
    evaluator: Mapped[str] = mapped_column(SafeString(200))
    notes: Mapped[list[Any]] = mapped_column(default=list)
    score: Mapped[float | None] = mapped_column(Float, index=True)
    scored_at: Mapped[datetime] = mapped_column(index=True)
    duration_ms: Mapped[float | None] = mapped_column(Float)


class ReviewRow(Base):
    """A person's good/bad label on a conversation, with tags and optional per-dimension scores."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(SafeString(8), index=True)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    note: Mapped[str | None] = mapped_column(SafeText)
    reviewer: Mapped[str | None] = mapped_column(SafeString(200))
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class ApprovedAnswerRow(Base):
    """A person's answer served word for word to customers who ask its question (assistant.approved). Retired ones
    stay (hits, history) with status `retired`; the source conversation may be deleted later (no foreign key)."""

    __tablename__ = "approved_answers"
    id: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    question: Mapped[str] = mapped_column(SafeText)
    question_key: Mapped[str] = mapped_column(SafeString(500), index=True)
    variants: Mapped[list[Any]] = mapped_column(default=list)
    answer: Mapped[str] = mapped_column(SafeText)
    status: Mapped[str] = mapped_column(SafeString(16), default="active", index=True)
    approved_by: Mapped[str | None] = mapped_column(SafeString(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)
    review_at: Mapped[datetime | None]
    source_conversation_id: Mapped[str | None] = mapped_column(SafeString(64))
    sources: Mapped[list[Any]] = mapped_column(default=list)
    flags: Mapped[list[Any]] = mapped_column(default=list)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]


class SuggestionRow(Base):
    """A reply drafted for the agent of a handoff (the copilot) and what the agent did with it: sent as is,
    edited, or ignored (null while undecided)."""

    __tablename__ = "suggestions"
    id: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    handoff_id: Mapped[str] = mapped_column(ForeignKey("handoffs.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(SafeText)
    citations: Mapped[list[Any]] = mapped_column(default=list)
    sources: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(index=True)
    outcome: Mapped[str | None] = mapped_column(SafeString(16))
    outcome_at: Mapped[datetime | None]
    reply_message_id: Mapped[str | None] = mapped_column(SafeString(64))


class IdempotencyKeyRow(Base):
    """A customer POST sent with an `Idempotency-Key` (assistant.store.idempotency): the first request's
    fingerprint and, once it finished, its response, replayed to a retry within the key's lifetime."""

    __tablename__ = "idempotency_keys"
    scope: Mapped[str] = mapped_column(SafeString(200), primary_key=True)
    key: Mapped[str] = mapped_column(SafeString(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(SafeString(64))
    status_code: Mapped[int | None]
    body: Mapped[dict[str, Any] | None] = mapped_column(SafeJSON())
    created_at: Mapped[datetime] = mapped_column(index=True)
    completed_at: Mapped[datetime | None]
