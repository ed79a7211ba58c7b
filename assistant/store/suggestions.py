"""Copilot suggestions: stored when shown to an agent, each with what the agent did with it (`outcome`: sent as is,
edited, ignored), set once by a conditional UPDATE (the first decision counts)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from assistant.models import Citation, Suggestion, SuggestionOutcome, utcnow
from assistant.store.convert import aware
from assistant.store.db import Repository, rowcount
from assistant.store.tables import SuggestionRow


def _model(r: SuggestionRow) -> Suggestion:
    return Suggestion(
        id=r.id,
        handoff_id=r.handoff_id,
        conversation_id=r.conversation_id,
        text=r.text,
        citations=[Citation.model_validate(c) for c in r.citations or []],
        sources=list(r.sources or []),
        created_at=aware(r.created_at),
        outcome=r.outcome,  # type: ignore[arg-type]  # a str column; pydantic checks the literal (see convert.py)
        outcome_at=aware(r.outcome_at),
    )


class Suggestions(Repository):
    def add(self, s: Suggestion) -> Suggestion:
        with self.db.session() as session:
            row = SuggestionRow(
                id=s.id,
                handoff_id=s.handoff_id,
                conversation_id=s.conversation_id,
                text=s.text,
                citations=[c.model_dump(mode="json") for c in s.citations],
                sources=list(s.sources),
                created_at=s.created_at,
            )
            session.add(row)
            session.flush()
            return _model(row)

    def latest(self, handoff_id: str) -> Suggestion | None:
        with self.db.session() as s:
            row = s.scalars(
                select(SuggestionRow)
                .where(SuggestionRow.handoff_id == handoff_id)
                .order_by(SuggestionRow.created_at.desc())
                .limit(1)
            ).first()
            return _model(row) if row is not None else None

    def get(self, suggestion_id: str) -> Suggestion | None:
        with self.db.session() as s:
            row = s.get(SuggestionRow, suggestion_id)
            return _model(row) if row is not None else None

    def undecided(self, conversation_id: str) -> list[Suggestion]:
        """The conversation's suggestions the agent has not acted on yet, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(SuggestionRow)
                .where(SuggestionRow.conversation_id == conversation_id, SuggestionRow.outcome.is_(None))
                .order_by(SuggestionRow.created_at)
            )
            return [_model(r) for r in rows]

    def decide(self, suggestion_id: str, outcome: SuggestionOutcome, message_id: str | None = None) -> bool:
        """Record what the agent did with it, unless that was already recorded (False then)."""
        with self.db.session() as s:
            done = s.execute(
                update(SuggestionRow)
                .where(SuggestionRow.id == suggestion_id, SuggestionRow.outcome.is_(None))
                .values(outcome=outcome, outcome_at=utcnow(), reply_message_id=message_id)
            )
            return bool(rowcount(done))

    def find(self, since: datetime | None, until: datetime | None) -> list[Suggestion]:
        with self.db.session() as s:
            q = select(SuggestionRow)
            if since is not None:
                q = q.where(SuggestionRow.created_at >= since)
            if until is not None:
                q = q.where(SuggestionRow.created_at < until)
            return [_model(r) for r in s.scalars(q.order_by(SuggestionRow.created_at))]
