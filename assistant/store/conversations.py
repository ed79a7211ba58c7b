"""Conversations: create and read them, and move their status through the state machine (`assistant.states`).

`update_status(s, ...)` is the one statement that changes a status, in the caller's transaction: handoffs use it to
change a handoff and its conversation together. `select_past(s, ...)` is the customer's earlier conversations, for
the history that `Customers.context` reads in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from assistant import states
from assistant.errors import ConversationNotFoundError
from assistant.models import Conversation, ConversationStatus, PastConversation, utcnow
from assistant.store import convert, live
from assistant.store.db import Repository, new_id
from assistant.store.tables import ConversationRow, MessageRow


class Conversations(Repository):
    def create(
        self,
        customer_id: str | None,
        verified: bool,
        channel: str = "web",
        metadata: dict[str, Any] | None = None,
        *,
        status: ConversationStatus = "bot",
        created_at: datetime | None = None,
        topic: str | None = None,
        outcome: str | None = None,
        summary: str | None = None,
    ) -> Conversation:
        now = created_at or utcnow()
        with self.db.session() as s:
            row = ConversationRow(
                id=new_id("conv"),
                customer_id=customer_id,
                verified=verified,
                status=status,
                channel=channel,
                meta=metadata or {},
                created_at=now,
                updated_at=now,
                topic=topic,
                outcome=outcome,
                summary=summary,
                next_seq=0,
            )
            s.add(row)
            s.flush()
            return convert.conversation(row)

    def get(self, conversation_id: str) -> Conversation:
        with self.db.session() as s:
            row = s.get(ConversationRow, conversation_id)
            if row is None:
                raise ConversationNotFoundError(conversation_id)
            return convert.conversation(row)

    def get_many(self, conversation_ids: Iterable[str]) -> dict[str, Conversation]:
        """Several conversations by id in one query (unknown ids are left out)."""
        ids = list(set(conversation_ids))
        if not ids:
            return {}
        with self.db.session() as s:
            rows = s.scalars(select(ConversationRow).where(ConversationRow.id.in_(ids)))
            return {r.id: convert.conversation(r) for r in rows}

    def set_status(self, conversation_id: str, status: ConversationStatus) -> Conversation:
        """Move the conversation to `status` through the state machine (`assistant.states`); asking for the
        status it already has is a no-op. Raises `TransitionError` (409) for an impossible move."""
        current = self.get(conversation_id)
        if current.status == status:
            return current
        return self.transition(conversation_id, status)

    def transition(
        self,
        conversation_id: str,
        to: ConversationStatus,
        expected_from: Iterable[ConversationStatus] | None = None,
        *,
        outcome: str | None = None,
    ) -> Conversation:
        """Move the conversation to `to` if its status is one of `expected_from` (default: every status the
        state machine allows before `to`), as one conditional UPDATE, so that of two concurrent writers
        (two agents claiming at once) exactly one wins and the other gets `TransitionError` (409)."""
        with self.db.session() as s:
            return update_status(s, conversation_id, to, expected_from, outcome=outcome)

    def past(self, customer_id: str, exclude_id: str | None, limit: int) -> list[PastConversation]:
        """The customer's earlier conversations, newest first, each with a one-line summary."""
        with self.db.session() as s:
            return select_past(s, customer_id, exclude_id, limit)


def update_status(
    s: Session,
    conversation_id: str,
    to: ConversationStatus,
    expected_from: Iterable[ConversationStatus] | None = None,
    *,
    outcome: str | None = None,
) -> Conversation:
    """`Conversations.transition` in the caller's transaction."""
    starts = states.allowed_sources(to, expected_from)
    values: dict[str, Any] = {"status": to, "updated_at": utcnow()}
    if outcome is not None:
        values["outcome"] = outcome
    # The WHERE on the current status is the lock: no read-then-write window between two workers.
    row = s.scalars(
        update(ConversationRow)
        .where(ConversationRow.id == conversation_id, ConversationRow.status.in_(starts))
        .values(**values)
        .returning(ConversationRow)
    ).first()
    if row is None:
        current = s.scalar(select(ConversationRow.status).where(ConversationRow.id == conversation_id))
        if current is None:
            raise ConversationNotFoundError(conversation_id)
        raise states.TransitionError(current, to)
    live.touch(s, conversation_id)
    return convert.conversation(row)


def select_past(s: Session, customer_id: str, exclude_id: str | None, limit: int) -> list[PastConversation]:
    """`Conversations.past` in the caller's transaction."""
    q = select(ConversationRow).where(ConversationRow.customer_id == customer_id)
    if exclude_id:
        q = q.where(ConversationRow.id != exclude_id)
    rows = list(s.scalars(q.order_by(ConversationRow.created_at.desc()).limit(limit)))
    unsummarised = [r.id for r in rows if not r.summary]
    firsts: dict[str, str] = {}
    if unsummarised:  # no stored summary: the customer's first message says what it was about (one query)
        first = (
            select(MessageRow.conversation_id, func.min(MessageRow.seq).label("seq"))
            .where(MessageRow.conversation_id.in_(unsummarised), MessageRow.role == "customer")
            .group_by(MessageRow.conversation_id)
            .subquery()
        )
        firsts = {
            cid: text_
            for cid, text_ in s.execute(
                select(MessageRow.conversation_id, MessageRow.text).join(
                    first,
                    and_(MessageRow.conversation_id == first.c.conversation_id, MessageRow.seq == first.c.seq),
                )
            )
        }
    out: list[PastConversation] = []
    for r in rows:
        summary = r.summary
        if not summary:
            first_text = firsts.get(r.id)
            summary = f"Customer wrote: {first_text}" if first_text else "(no messages)"
        out.append(
            PastConversation(
                id=r.id,
                started_at=convert.aware(r.created_at),
                channel=r.channel,
                topic=r.topic,
                outcome=r.outcome or r.status,
                summary=summary,
            )
        )
    return out
