"""Messages: numbered in their conversation by one atomic counter (`next_seq`), so concurrent writers never
collide or reorder. `insert_message(s, ...)` writes one in the caller's transaction (a turn's customer message
beside its turn record). Every message is stored with payment data masked (`assistant.safety.redact`), so nothing
read from here (prompts, summaries, the agent's view) holds a card number."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from assistant.errors import ConflictError, ConversationNotFoundError
from assistant.models import Citation, Message, Role, utcnow
from assistant.safety.redact import mask_payment_data
from assistant.store import convert, live
from assistant.store.db import Repository, new_id, rowcount
from assistant.store.tables import ConversationRow, HandoffRow, MessageRow


class Messages(Repository):
    def add(
        self,
        conversation_id: str,
        role: Role,
        text_: str,
        citations: list[Citation] | None = None,
        author_id: str | None = None,
        turn_id: str | None = None,
        created_at: datetime | None = None,
    ) -> Message:
        with self.db.session() as s:
            return insert_message(
                s, conversation_id, role, text_, citations, author_id, turn_id, created_at, self.db.keep_originals
            )

    def add_agent(self, conversation_id: str, text_: str) -> Message:
        """An agent's reply, authored by the agent who claimed the conversation. Only while the
        conversation is `with_agent` (checked in the same UPDATE that numbers the message, so a reply
        racing a resolve cannot slip in after it): otherwise `ConflictError` (409)."""
        now = utcnow()
        with self.db.session() as s:
            seq = next_seq(s, conversation_id, now, only_if_status="with_agent")
            if seq is None:
                current = s.scalar(select(ConversationRow.status).where(ConversationRow.id == conversation_id))
                if current is None:
                    raise ConversationNotFoundError(conversation_id)
                raise ConflictError(
                    f"the conversation is {current}: an agent can reply only to a conversation they claimed"
                    " (with_agent)"
                )
            agent = s.scalar(
                select(HandoffRow.claimed_by)
                .where(HandoffRow.conversation_id == conversation_id, HandoffRow.status == "claimed")
                .order_by(HandoffRow.claimed_at.desc())
                .limit(1)
            )
            row = MessageRow(
                id=new_id("msg"),
                conversation_id=conversation_id,
                seq=seq,
                role="agent",
                text=mask_payment_data(text_),
                created_at=now,
                citations=[],
                author_id=agent,
            )
            s.add(row)
            s.flush()
            return convert.message(row)

    def purge_originals(self, before: datetime) -> int:
        """Forget the typed text of messages stored before `before` (only the masked text remains)."""
        with self.db.session() as s:
            done = s.execute(
                update(MessageRow)
                .where(MessageRow.original_text.is_not(None), MessageRow.created_at < before)
                .values(original_text=None)
            )
            return int(rowcount(done) or 0)

    def list_for(self, conversation_id: str, after_seq: int = 0, limit: int = 1000) -> list[Message]:
        with self.db.session() as s:
            rows = s.scalars(
                select(MessageRow)
                .where(MessageRow.conversation_id == conversation_id, MessageRow.seq > after_seq)
                .order_by(MessageRow.seq)
                .limit(limit)
            )
            return [convert.message(r) for r in rows]


def insert_message(
    s: Session,
    conversation_id: str,
    role: Role,
    text_: str,
    citations: list[Citation] | None,
    author_id: str | None,
    turn_id: str | None,
    created_at: datetime | None = None,
    keep_original: bool = False,
) -> Message:
    """`Messages.add` in the caller's transaction. Payment data in the text is masked (`mask_payment_data`); with
    `keep_original`, the text as typed is kept beside it (`original_text`) until `purge_originals`."""
    masked = mask_payment_data(text_)
    now = created_at or utcnow()
    seq = next_seq(s, conversation_id, now)
    if seq is None:
        raise ConversationNotFoundError(conversation_id)
    row = MessageRow(
        id=new_id("msg"),
        conversation_id=conversation_id,
        seq=int(seq),
        role=role,
        text=masked,
        original_text=text_ if keep_original and masked != text_ else None,
        created_at=now,
        citations=[c.model_dump() for c in citations or []],
        author_id=author_id,
        turn_id=turn_id,
    )
    s.add(row)
    s.flush()
    return convert.message(row)


def next_seq(s: Session, conversation_id: str, now: datetime, only_if_status: str | None = None) -> int | None:
    """Allocate the next sequence number atomically (UPDATE ... RETURNING works on SQLite >= 3.35 and
    PostgreSQL), so concurrent writers to one conversation never collide or reorder. With
    `only_if_status`, None also when the conversation is not in that status (checked in the same UPDATE)."""
    q = update(ConversationRow).where(ConversationRow.id == conversation_id)
    if only_if_status is not None:
        q = q.where(ConversationRow.status == only_if_status)
    seq = s.execute(
        q.values(next_seq=ConversationRow.next_seq + 1, updated_at=now).returning(ConversationRow.next_seq)
    ).scalar()
    if seq is None:
        return None
    live.touch(s, conversation_id)
    return int(seq)
