"""Consistency: what the state machine and the handoff records do not allow together, found read-only, and the
two repairs that are safe. `assistant.doctor` decides what to repair."""

from __future__ import annotations

from sqlalchemy import func, select, update

from assistant import states
from assistant.models import utcnow
from assistant.store.db import Repository
from assistant.store.tables import ConversationRow, HandoffRow, MessageRow


class Consistency(Repository):
    def structural_problems(self) -> list[tuple[str, str, str]]:
        """(kind, conversation_id, detail) for every state the state machine and the handoff records do not
        allow together. Read-only; `assistant.doctor` decides what to repair.

        - `unknown_status`: a status outside the state machine.
        - `waiting_without_handoff` / `with_agent_without_claim`: the queue would never show the conversation.
        - `stale_handoff`: a handoff still `waiting`/`claimed` while its conversation is elsewhere (an agent
          could claim it and get a 409, or the customer's "talk to a person" would return it unchanged).
        - `several_open_handoffs`: more than one handoff not resolved.
        - `sequence`: duplicate message numbers, or a counter behind the highest number (the next message
          would collide)."""
        problems: list[tuple[str, str, str]] = []
        with self.db.session() as s:
            for cid, status in s.execute(
                select(ConversationRow.id, ConversationRow.status).where(ConversationRow.status.not_in(states.STATUSES))
            ):
                problems.append(("unknown_status", cid, f"status {status!r}"))
            open_ho = (
                select(HandoffRow.conversation_id, HandoffRow.status, HandoffRow.id)
                .where(HandoffRow.status != "resolved")
                .subquery()
            )
            rows = s.execute(
                select(ConversationRow.id, ConversationRow.status, open_ho.c.status, open_ho.c.id)
                .outerjoin(open_ho, open_ho.c.conversation_id == ConversationRow.id)
                .where((ConversationRow.status.in_(("waiting_for_agent", "with_agent"))) | open_ho.c.id.is_not(None))
            )
            by_conv: dict[str, tuple[str, list[tuple[str, str]]]] = {}
            for cid, status, ho_status, ho_id in rows:
                entry = by_conv.setdefault(cid, (status, []))
                if ho_id is not None:
                    entry[1].append((ho_id, ho_status))
            for cid, (status, open_handoffs) in by_conv.items():
                statuses = {h for _, h in open_handoffs}
                if status == "waiting_for_agent" and "waiting" not in statuses:
                    problems.append(("waiting_without_handoff", cid, "waiting_for_agent with no waiting handoff"))
                if status == "with_agent" and "claimed" not in statuses:
                    problems.append(("with_agent_without_claim", cid, "with_agent with no claimed handoff"))
                expected = {"waiting_for_agent": "waiting", "with_agent": "claimed"}.get(status)
                for ho_id, ho_status in open_handoffs:
                    if ho_status != expected:
                        problems.append(
                            ("stale_handoff", cid, f"handoff {ho_id} is {ho_status}; the conversation is {status}")
                        )
                if len(open_handoffs) > 1:
                    problems.append(("several_open_handoffs", cid, f"{len(open_handoffs)} handoffs not resolved"))
            seqs = s.execute(
                select(
                    MessageRow.conversation_id,
                    func.count(MessageRow.id),
                    func.count(func.distinct(MessageRow.seq)),
                    func.max(MessageRow.seq),
                    ConversationRow.next_seq,
                )
                .join(ConversationRow, ConversationRow.id == MessageRow.conversation_id)
                .group_by(MessageRow.conversation_id, ConversationRow.next_seq)
            )
            for cid, n, distinct, top, next_seq in seqs:
                if n != distinct:
                    problems.append(("sequence", cid, f"{n - distinct} duplicate message numbers"))
                if (next_seq or 0) < (top or 0):
                    problems.append(("sequence", cid, f"next_seq {next_seq} is behind message {top}"))
        return problems

    def close_stale_handoffs(self, conversation_id: str, note: str) -> list[str]:
        """Resolve the handoffs of `conversation_id` left open while the conversation is neither waiting for
        nor with an agent; returns their ids."""
        with self.db.session() as s:
            status = s.scalar(select(ConversationRow.status).where(ConversationRow.id == conversation_id))
            keep = {"waiting_for_agent": "waiting", "with_agent": "claimed"}.get(str(status), "")
            rows = s.scalars(
                update(HandoffRow)
                .where(
                    HandoffRow.conversation_id == conversation_id,
                    HandoffRow.status != "resolved",
                    HandoffRow.status != keep,
                )
                .values(status="resolved", resolved_at=utcnow(), note=note)
                .returning(HandoffRow.id)
            )
            return list(rows)

    def repair_sequence(self, conversation_id: str) -> None:
        """Move the message counter past the highest message number (never backwards)."""
        with self.db.session() as s:
            top = s.scalar(select(func.max(MessageRow.seq)).where(MessageRow.conversation_id == conversation_id))
            s.execute(
                update(ConversationRow)
                .where(ConversationRow.id == conversation_id, ConversationRow.next_seq < (top or 0))
                .values(next_seq=top or 0)
            )
