"""Feedback: the customer's rating at the end of a conversation (CSAT, CES, resolved, a comment); the latest counts."""

from __future__ import annotations

from sqlalchemy import select

from assistant.errors import ConversationNotFoundError
from assistant.models import Feedback, utcnow
from assistant.store import convert
from assistant.store.db import Repository
from assistant.store.tables import ConversationRow, FeedbackRow


class FeedbackLog(Repository):
    def add(self, conversation_id: str, fb: Feedback) -> None:
        with self.db.session() as s:
            if s.get(ConversationRow, conversation_id) is None:
                raise ConversationNotFoundError(conversation_id)
            s.add(FeedbackRow(conversation_id=conversation_id, created_at=utcnow(), **fb.model_dump()))

    def latest(self, conversation_id: str) -> Feedback | None:
        with self.db.session() as s:
            row = s.scalars(
                select(FeedbackRow)
                .where(FeedbackRow.conversation_id == conversation_id)
                .order_by(FeedbackRow.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            return convert.feedback(row)
