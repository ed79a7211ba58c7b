"""Telemetry: signal events (append-only) and the conversation facts derived from them (`assistant.telemetry`
derives them; this stores them, and queries the facts for the CX dashboard)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from assistant.errors import ConversationNotFoundError
from assistant.models import Conversation, ConversationFacts, SignalEvent
from assistant.store import convert
from assistant.store.db import Repository
from assistant.store.quality import latest_scorecards
from assistant.store.tables import ConversationFactsRow, ConversationRow, SignalEventRow


class Signals(Repository):
    def record(
        self,
        conversation_id: str,
        events: Iterable[SignalEvent],
        derive: Callable[[Conversation, list[SignalEvent]], ConversationFacts],
    ) -> ConversationFacts:
        """Append `events` (any conversation's) and store `conversation_id`'s facts as `derive` makes them
        from its status and all its events: one transaction, so the facts always match the events."""
        rows = [
            {
                "conversation_id": e.conversation_id,
                "turn_id": e.turn_id,
                "kind": e.kind,
                "value": e.value,
                "data": e.data,
                "at": e.at,
            }
            for e in events
        ]
        with self.db.session() as s:
            if rows:  # one INSERT for all of them (the ORM would insert row by row to learn their ids)
                # the Table itself: declarative types `__table__` as any FromClause, which has no insert()
                table = SignalEventRow.metadata.tables[SignalEventRow.__tablename__]
                s.execute(table.insert(), rows)
            row = s.get(ConversationRow, conversation_id)
            if row is None:
                raise ConversationNotFoundError(conversation_id)
            facts = derive(convert.conversation(row), _select_signals(s, conversation_id))
            s.merge(ConversationFactsRow(**facts.model_dump()))
            row.outcome, row.topic = facts.outcome, facts.topic
            return facts

    def list_for(self, conversation_id: str) -> list[SignalEvent]:
        with self.db.session() as s:
            return _select_signals(s, conversation_id)

    def get_facts(self, conversation_id: str) -> ConversationFacts | None:
        with self.db.session() as s:
            row = s.get(ConversationFactsRow, conversation_id)
            return convert.facts(row) if row else None

    def topic_history(
        self, conversation_id: str, customer_id: str, since: datetime
    ) -> tuple[set[str], list[ConversationFacts]]:
        """What a new topic's re-contact check reads, in one transaction: the kinds of signal `conversation_id` has,
        and the facts of the customer's conversations started since `since`, newest first (this one included):
        `query_facts(customer_id=..., since=...)` and `list_for`."""
        f = ConversationFactsRow
        q = select(f).where(f.started_at >= since, f.customer_id == customer_id).order_by(f.started_at.desc())
        with self.db.session() as s:
            kinds: set[str] = {e.kind for e in _select_signals(s, conversation_id)}
            return kinds, [convert.facts(r) for r in s.scalars(q)]

    def query_facts(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
        outcome: str | None = None,
        topic: str | None = None,
        customer_id: str | None = None,
        min_effort: float | None = None,
        idle_before: datetime | None = None,
        order: str = "recent",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ConversationFacts]:
        f = ConversationFactsRow
        q = select(f)
        if since is not None:
            q = q.where(f.started_at >= since)
        if until is not None:
            q = q.where(f.started_at < until)
        if idle_before is not None:
            q = q.where(f.last_activity_at < idle_before)
        if min_effort is not None:
            q = q.where(f.effort >= min_effort)
        for column, value in ((f.status, status), (f.outcome, outcome), (f.topic, topic), (f.customer_id, customer_id)):
            if value is not None:
                q = q.where(column == value)
        orders: dict[str, list[ColumnElement[Any]]] = {
            "recent": [f.started_at.desc()],
            "oldest": [f.started_at.asc()],
            # unrated after the worst-rated: NULLs sort first on SQLite and last on PostgreSQL unless told
            "worst": [f.effort.desc(), f.csat.asc().nulls_last(), f.started_at.desc()],
            "effort": [f.effort.asc(), f.started_at.desc()],
            "-effort": [f.effort.desc(), f.started_at.desc()],
        }
        if order == "score":  # lowest mean quality score first; conversations never scored last
            latest = latest_scorecards().subquery()
            q = q.outerjoin(latest, latest.c.conversation_id == f.conversation_id)
            orders["score"] = [latest.c.score.is_(None), latest.c.score.asc(), f.started_at.desc()]
        q = q.order_by(*orders[order]).offset(offset)
        if limit is not None:
            q = q.limit(limit)
        with self.db.session() as s:
            return [convert.facts(r) for r in s.scalars(q)]


def _select_signals(s: Session, conversation_id: str) -> list[SignalEvent]:
    rows = s.scalars(
        select(SignalEventRow)
        .where(SignalEventRow.conversation_id == conversation_id)
        .order_by(SignalEventRow.at, SignalEventRow.id)
    )
    return [convert.signal(r) for r in rows]
