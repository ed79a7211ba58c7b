"""Handoffs: a conversation in the agents' queue, claimed by one agent, resolved. Each move changes the handoff and
its conversation's status (`conversations.update_status`) in one transaction of conditional UPDATEs, so of two
writers racing (two agents claiming at once) exactly one wins and the other gets a 409."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from assistant import states
from assistant.errors import ConflictError, HandoffNotFoundError
from assistant.models import Conversation, Handoff, HandoffSummary, is_handoff_reason, utcnow
from assistant.store import convert
from assistant.store.conversations import update_status
from assistant.store.db import Database, Repository, new_id
from assistant.store.messages import insert_message
from assistant.store.tables import HandoffRow

logger = logging.getLogger(__name__)

HandoffListener = Callable[[Handoff, Conversation], None]


class Handoffs(Repository):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._listeners: list[HandoffListener] = []

    def add_listener(self, listener: HandoffListener) -> None:
        """Call `listener(handoff, conversation)` after each new handoff is committed (e.g. the webhook).
        It runs on the writer's thread: it must return at once; its exceptions are logged, never raised."""
        self._listeners.append(listener)

    def create(
        self,
        conversation_id: str,
        reason: str,
        confidence: float | None,
        summary: HandoffSummary,
        summary_source: str = "extractive",
        customer_note: str | None = None,
        notice: str | None = None,
    ) -> Handoff:
        """Open a handoff and put the conversation in the agent queue (`waiting_for_agent`), through the
        state machine. If another writer opened one first (two handoffs racing), that one is returned and
        no second handoff exists. Listeners (`add_listener`) hear of a new one after it commits. `reason` must be
        a label (`assistant.models.is_handoff_reason`): what the customer wrote goes in `customer_note`.
        `notice`: the assistant's message telling the customer, added in the same transaction."""
        if not is_handoff_reason(reason):
            raise ValueError(f"not a handoff reason label: {reason[:40]!r}")
        with self.db.session() as s:
            try:
                conv = update_status(s, conversation_id, "waiting_for_agent")
            except states.TransitionError:
                existing = s.scalars(
                    select(HandoffRow)
                    .where(HandoffRow.conversation_id == conversation_id, HandoffRow.status != "resolved")
                    .order_by(HandoffRow.created_at.desc())
                    .limit(1)
                ).first()
                if existing is None:
                    raise
                if notice is not None:
                    insert_message(
                        s, conversation_id, "assistant", notice, None, None, None, keep_original=self.db.keep_originals
                    )
                return convert.handoff(existing)
            row = HandoffRow(
                id=new_id("ho"),
                conversation_id=conversation_id,
                reason=reason,
                confidence=confidence,
                status="waiting",
                summary=summary.model_dump(),
                summary_source=summary_source,
                customer_note=customer_note,
                created_at=conv.updated_at,
            )
            s.add(row)
            s.flush()
            handoff = convert.handoff(row)
            if notice is not None:
                insert_message(
                    s, conversation_id, "assistant", notice, None, None, None, keep_original=self.db.keep_originals
                )
        for listener in self._listeners:
            try:
                listener(handoff, conv)
            except Exception:  # a listener (the webhook) must never fail the handoff
                logger.exception("handoff listener %r failed for %s", listener, handoff.id)
        return handoff

    def replace_summary(self, handoff_id: str, summary: HandoffSummary, summary_source: str) -> bool:
        """Put a better summary on a handoff written with the extractive one (the model's, written after the
        customer was told a person is coming). Only while the summary is still extractive: never over one
        written since. True when it was replaced."""
        with self.db.session() as s:
            result = s.execute(
                update(HandoffRow)
                .where(HandoffRow.id == handoff_id, HandoffRow.summary_source == "extractive")
                .values(summary=summary.model_dump(), summary_source=summary_source)
            )
            return bool(getattr(result, "rowcount", 0))

    def claim(self, handoff_id: str, agent_id: str) -> tuple[Handoff, Conversation]:
        """`waiting` -> `claimed` by `agent_id`, and the conversation `waiting_for_agent` -> `with_agent`, in one
        transaction of conditional UPDATEs: of two agents claiming at once, the second gets 409."""
        now = utcnow()
        with self.db.session() as s:
            row = s.scalars(
                update(HandoffRow)
                .where(HandoffRow.id == handoff_id, HandoffRow.status == "waiting")
                .values(status="claimed", claimed_by=agent_id, claimed_at=now)
                .returning(HandoffRow)
            ).first()
            if row is None:
                raise _conflict(s, handoff_id, "claim")
            conv = update_status(s, row.conversation_id, "with_agent", ["waiting_for_agent"])
            return convert.handoff(row), conv

    def resolve(self, handoff_id: str, resolved: bool, note: str | None = None) -> tuple[Handoff, Conversation]:
        """`claimed` -> `resolved`, and the conversation `with_agent` -> `resolved` with its outcome
        (`resolved_by_agent`, or `unresolved`). Resolving a handoff nobody claimed, or twice, is a 409."""
        now = utcnow()
        with self.db.session() as s:
            row = s.scalars(
                update(HandoffRow)
                .where(HandoffRow.id == handoff_id, HandoffRow.status == "claimed")
                .values(status="resolved", resolved_at=now, note=note)
                .returning(HandoffRow)
            ).first()
            if row is None:
                raise _conflict(s, handoff_id, "resolve")
            outcome = "resolved_by_agent" if resolved else "unresolved"
            conv = update_status(s, row.conversation_id, "resolved", ["with_agent"], outcome=outcome)
            return convert.handoff(row), conv

    def abandon_waiting(self, conversation_id: str, note: str) -> Conversation:
        """`waiting_for_agent` -> `abandoned` and its waiting handoff closed, in one transaction: a handoff left
        `waiting` on an abandoned conversation stays in the agents' queue, cannot be claimed (409), and is
        handed back unchanged when the customer returns and asks for a person."""
        with self.db.session() as s:
            conv = update_status(s, conversation_id, "abandoned", ["waiting_for_agent"])
            s.execute(
                update(HandoffRow)
                .where(HandoffRow.conversation_id == conversation_id, HandoffRow.status == "waiting")
                .values(status="resolved", resolved_at=utcnow(), note=note)
            )
            return conv

    def open_for(self, conversation_id: str) -> Handoff | None:
        with self.db.session() as s:
            row = s.scalars(
                select(HandoffRow)
                .where(HandoffRow.conversation_id == conversation_id, HandoffRow.status != "resolved")
                .order_by(HandoffRow.created_at.desc())
                .limit(1)
            ).first()
            return convert.handoff(row) if row else None

    def get(self, handoff_id: str) -> Handoff:
        with self.db.session() as s:
            row = s.get(HandoffRow, handoff_id)
            if row is None:
                raise HandoffNotFoundError(handoff_id)
            return convert.handoff(row)

    def find(self, status: str | None = None, limit: int = 200) -> list[Handoff]:
        with self.db.session() as s:
            q = select(HandoffRow)
            if status:
                q = q.where(HandoffRow.status == status)
            return [convert.handoff(r) for r in s.scalars(q.order_by(HandoffRow.created_at).limit(limit))]

    def queue_position(self, handoff: Handoff) -> int | None:
        """1 = next: how many waiting handoffs were created before this one, plus one (None unless waiting)."""
        with self.db.session() as s:
            row = s.get(HandoffRow, handoff.id)
            if row is None or row.status != "waiting":
                return None
            ahead = s.scalar(
                select(func.count())
                .select_from(HandoffRow)
                .where(HandoffRow.status == "waiting")
                .where(
                    or_(
                        HandoffRow.created_at < row.created_at,
                        and_(HandoffRow.created_at == row.created_at, HandoffRow.id < row.id),
                    )
                )
            )
            return int(ahead or 0) + 1


def _conflict(s: Session, handoff_id: str, action: str) -> Exception:
    """Why a conditional handoff UPDATE matched nothing: unknown id (404) or the wrong status (409)."""
    row = s.get(HandoffRow, handoff_id)
    if row is None:
        return HandoffNotFoundError(handoff_id)
    if row.status == "claimed":
        return ConflictError(f"handoff {handoff_id} is already claimed by {row.claimed_by}")
    if row.status == "resolved":
        return ConflictError(f"handoff {handoff_id} is already resolved")
    return ConflictError(f"handoff {handoff_id} is {row.status}: claim it before you {action} it")
