"""Simulated conversations (`cxa demo`'s two weeks of history, marked `metadata.simulated`): counted, and moved back
in time after they ran, since every turn records the time it ran at.

`shift` moves every timestamp of one conversation (the conversation, its messages, turns, model calls, handoffs,
feedback, signal events, facts, scorecards, reviews, copilot suggestions) back by `by`; those at or after its first
handoff claim move `agent_wait` less, as if the agent had taken that long to come, and the wait recorded by the
agent's reply signal grows by as much. Only for simulated data: nothing else rewrites history.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from assistant.store.convert import aware
from assistant.store.db import Repository
from assistant.store.tables import (
    ConversationFactsRow,
    ConversationRow,
    FeedbackRow,
    HandoffRow,
    LLMCallRow,
    MessageRow,
    ReviewRow,
    ScorecardRow,
    SignalEventRow,
    SuggestionRow,
    TurnRow,
)

# every table with a conversation's times: (row class, its time columns)
_TIMES: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (MessageRow, ("created_at",)),
    (TurnRow, ("created_at", "finished_at")),
    (LLMCallRow, ("created_at",)),
    (HandoffRow, ("created_at", "claimed_at", "resolved_at")),
    (FeedbackRow, ("created_at",)),
    (SignalEventRow, ("at",)),
    (ConversationFactsRow, ("started_at", "last_activity_at")),
    (ScorecardRow, ("scored_at",)),
    (ReviewRow, ("created_at",)),
    (SuggestionRow, ("created_at", "outcome_at")),
)


class SimulatedHistory(Repository):
    def count(self) -> tuple[int, datetime | None, datetime | None]:
        """(simulated conversations, the first one's start, the last one's)."""
        simulated = ConversationRow.meta["simulated"].as_boolean().is_(True)
        with self.db.session() as s:
            n, first, last = s.execute(
                select(
                    func.count(ConversationRow.id),
                    func.min(ConversationRow.created_at),
                    func.max(ConversationRow.created_at),
                ).where(simulated)
            ).one()
            return int(n or 0), aware(first), aware(last)

    def shift(self, conversation_id: str, by: timedelta, agent_wait: timedelta = timedelta(0)) -> None:
        """Move the conversation `by` back in time; from its first handoff claim on, `agent_wait` less (the agent
        took that long to come)."""
        with self.db.session() as s:
            conv = s.get(ConversationRow, conversation_id)
            if conv is None or not (conv.meta or {}).get("simulated"):
                raise ValueError(f"{conversation_id} is not a simulated conversation")
            claimed = s.scalar(
                select(func.min(HandoffRow.claimed_at)).where(HandoffRow.conversation_id == conversation_id)
            )
            cut = aware(claimed) if claimed is not None and agent_wait else None
            pause = agent_wait

            def moved(t: datetime) -> datetime:
                t = aware(t)
                return t - by + (pause if cut is not None and t >= cut else timedelta(0))

            for table, columns in _TIMES:
                for row in s.scalars(select(table).where(table.conversation_id == conversation_id)):
                    waited = table is SignalEventRow and row.kind == "agent_reply" and row.value is not None
                    if waited and cut is not None and aware(row.at) >= cut:
                        row.value = round(row.value + pause.total_seconds(), 3)
                    for col in columns:
                        value = getattr(row, col)
                        setattr(row, col, None if value is None else moved(value))
            conv.created_at, conv.updated_at = moved(conv.created_at), moved(conv.updated_at)
