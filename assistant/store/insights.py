"""What the loop-back reports read (`assistant.insights`): customers' turns in a period with what came of them
(the turn record, the handoff's reason, the rating, the agents' replies), in a few queries whatever the period."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select

from assistant.models import AskedTurn, ClaimTiming, Handoff
from assistant.store import convert
from assistant.store.db import Repository
from assistant.store.tables import (
    ConversationFactsRow,
    ConversationRow,
    FeedbackRow,
    HandoffRow,
    MessageRow,
    SuggestionRow,
    TurnRow,
)


class Insights(Repository):
    def asked(self, since: datetime | None, until: datetime | None, limit: int = 20_000) -> list[AskedTurn]:
        """The customers' turns begun in [since, until) (the newest `limit`), oldest first, each with its
        conversation's customer, topic, rating and agents' replies, and the reason of the handoff it made."""
        with self.db.session() as s:
            q = (
                select(TurnRow, MessageRow.text, ConversationRow, HandoffRow.reason)
                .join(MessageRow, MessageRow.id == TurnRow.message_id)
                .join(ConversationRow, ConversationRow.id == TurnRow.conversation_id)
                .outerjoin(HandoffRow, HandoffRow.id == TurnRow.handoff_id)
            )
            if since is not None:
                q = q.where(TurnRow.created_at >= since)
            if until is not None:
                q = q.where(TurnRow.created_at < until)
            rows = list(s.execute(q.order_by(TurnRow.created_at.desc()).limit(limit)))[::-1]
            ids = sorted({r[0].conversation_id for r in rows})
            facts: dict[str, tuple[str | None, int | None]] = {}
            resolved: dict[str, bool | None] = {}
            replies: dict[str, list[str]] = defaultdict(list)
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                for cid, topic, csat in s.execute(
                    select(
                        ConversationFactsRow.conversation_id, ConversationFactsRow.topic, ConversationFactsRow.csat
                    ).where(ConversationFactsRow.conversation_id.in_(part))
                ):
                    facts[cid] = (topic, csat)
                for cid, value in s.execute(
                    select(FeedbackRow.conversation_id, FeedbackRow.resolved)
                    .where(FeedbackRow.conversation_id.in_(part))
                    .order_by(FeedbackRow.id)
                ):
                    resolved[cid] = value if value is not None else resolved.get(cid)
                for cid, text in s.execute(
                    select(MessageRow.conversation_id, MessageRow.text)
                    .where(MessageRow.conversation_id.in_(part), MessageRow.role == "agent")
                    .order_by(MessageRow.conversation_id, MessageRow.seq)
                ):
                    replies[cid].append(text)
            out = []
            for turn, text, conv, reason in rows:
                topic, csat = facts.get(turn.conversation_id, (conv.topic, None))
                out.append(
                    AskedTurn(
                        record=convert.turn(turn),
                        text=text,
                        customer_id=conv.customer_id,
                        simulated=bool((conv.meta or {}).get("simulated")),
                        topic=topic or conv.topic,
                        handoff_reason=reason,
                        csat=csat,
                        resolved=resolved.get(turn.conversation_id),
                        agent_replies=replies.get(turn.conversation_id, []),
                    )
                )
            return out

    def claims(self, since: datetime | None, until: datetime | None) -> list[ClaimTiming]:
        """Handoffs claimed in [since, until), each with the first agent reply after the claim and whether a
        copilot suggestion was shown before it."""
        with self.db.session() as s:
            q = select(HandoffRow.id, HandoffRow.conversation_id, HandoffRow.claimed_at).where(
                HandoffRow.claimed_at.is_not(None)
            )
            if since is not None:
                q = q.where(HandoffRow.claimed_at >= since)
            if until is not None:
                q = q.where(HandoffRow.claimed_at < until)
            out = []
            for hid, cid, claimed in s.execute(q.order_by(HandoffRow.claimed_at)).all():
                assert claimed is not None  # the query keeps claimed handoffs only
                first = s.scalar(
                    select(func.min(MessageRow.created_at)).where(
                        MessageRow.conversation_id == cid, MessageRow.role == "agent", MessageRow.created_at >= claimed
                    )
                )
                shown = s.scalar(select(func.min(SuggestionRow.created_at)).where(SuggestionRow.handoff_id == hid))
                first, shown, claimed = convert.aware(first), convert.aware(shown), convert.aware(claimed)
                suggested = shown is not None and (first is None or shown <= first)
                out.append(
                    ClaimTiming(
                        handoff_id=hid,
                        conversation_id=cid,
                        claimed_at=claimed,
                        first_reply_at=first,
                        suggested=suggested,
                    )
                )
            return out

    def handoffs(self, since: datetime | None, until: datetime | None, limit: int = 2000) -> list[Handoff]:
        """Handoffs created in [since, until), the newest `limit`, oldest first."""
        with self.db.session() as s:
            q = select(HandoffRow)
            if since is not None:
                q = q.where(HandoffRow.created_at >= since)
            if until is not None:
                q = q.where(HandoffRow.created_at < until)
            rows = list(s.scalars(q.order_by(HandoffRow.created_at.desc()).limit(limit)))
            return [convert.handoff(r) for r in rows[::-1]]
