"""Turn records: one customer message and everything the assistant did with it. A turn opens with the customer's
message in the same transaction (nothing the customer typed is lost, and no message is left without its record)
and is finished by one UPDATE."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from assistant.errors import ConversationNotFoundError
from assistant.models import Conversation, Message, TurnRecord, utcnow
from assistant.store import convert
from assistant.store.db import Repository, new_id
from assistant.store.messages import insert_message
from assistant.store.tables import ConversationRow, MessageRow, TurnRow


class Turns(Repository):
    def begin(self, conversation_id: str, text_: str) -> tuple[Message, str]:
        """Persist the customer's message and open its turn record, in one transaction."""
        with self.db.session() as s:
            return _begin(s, conversation_id, text_, self.db.keep_originals)

    def open(self, conversation_id: str, text_: str) -> tuple[Conversation, list[Message], Message, str]:
        """`begin` plus what a turn reads first, in the same transaction: the conversation (as it was
        before this message) and its messages so far. Raises `ConversationNotFoundError` before writing."""
        with self.db.session() as s:
            row = s.get(ConversationRow, conversation_id)
            if row is None:
                raise ConversationNotFoundError(conversation_id)
            conversation = convert.conversation(row)
            previous = [
                convert.message(r)
                for r in s.scalars(
                    select(MessageRow)
                    .where(MessageRow.conversation_id == conversation_id)
                    .order_by(MessageRow.seq)
                    .limit(1000)  # as Messages.list_for
                )
            ]
            msg, turn_id = _begin(s, conversation_id, text_, self.db.keep_originals)
            return conversation, previous, msg, turn_id

    def finish(self, record: TurnRecord) -> None:
        """Write the turn record's outcome and its end time: one UPDATE, nothing read first (an unknown turn changes
        nothing). The evidence column keeps the answer's evidence with the intent, the action and the tool calls."""
        evidence = convert.turn_evidence(record)
        with self.db.session() as s:
            s.execute(
                update(TurnRow)
                .where(TurnRow.id == record.id)
                .values(
                    state=record.state,
                    query=record.query,
                    chunk_ids=record.chunk_ids,
                    chunk_scores=record.chunk_scores,
                    cited_chunk_ids=record.cited_chunk_ids,
                    reply_message_id=record.reply_message_id,
                    reply_mode=record.reply_mode,
                    confidence=record.confidence,
                    evidence=evidence,
                    handoff_id=record.handoff_id,
                    timings_ms=record.timings_ms,
                    error=record.error,
                    finished_at=utcnow(),
                )
            )

    def get(self, turn_id: str) -> TurnRecord | None:
        with self.db.session() as s:
            row = s.get(TurnRow, turn_id)
            return convert.turn(row) if row is not None else None

    def list_for(self, conversation_id: str) -> list[TurnRecord]:
        """The conversation's turn records, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(TurnRow).where(TurnRow.conversation_id == conversation_id).order_by(TurnRow.created_at)
            )
            return [convert.turn(r) for r in rows]

    def pending(self, started_before: datetime) -> list[TurnRecord]:
        """Turn records still `pending` that began before `started_before` (a turn interrupted by a crash
        stays pending forever), oldest first, each with `reply_message_id` set when an assistant message of
        that turn exists."""
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    select(TurnRow)
                    .where(TurnRow.state == "pending", TurnRow.created_at < started_before)
                    .order_by(TurnRow.created_at)
                )
            )
            out = []
            for r in rows:
                reply = s.scalar(
                    select(MessageRow.id)
                    .where(MessageRow.turn_id == r.id, MessageRow.role == "assistant")
                    .order_by(MessageRow.seq)
                    .limit(1)
                )
                out.append(convert.turn(r).model_copy(update={"reply_message_id": reply}))
            return out


def _begin(s: Session, conversation_id: str, text_: str, keep_original: bool = False) -> tuple[Message, str]:
    turn_id = new_id("turn")
    msg = insert_message(s, conversation_id, "customer", text_, None, None, turn_id, keep_original=keep_original)
    s.add(
        TurnRow(
            id=turn_id,
            conversation_id=conversation_id,
            message_id=msg.id,
            state="pending",
            created_at=msg.created_at,
        )
    )
    return msg, turn_id
