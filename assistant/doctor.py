"""The consistency check: find (and repair) what a crash, a kill or an old bug can leave in the database.

A turn is one short transaction to store the customer's message, then the model, then a few more short
transactions (the reply or the handoff, the turn record). A process killed in between leaves a customer
message with no reply and a turn record `pending` forever: the customer waits for nothing and no agent
sees it. `check()` gives each such turn a clear outcome:

- its reply was stored (only the record was not finished): the record is closed as done;
- otherwise a `system` note says the assistant was interrupted, and a conversation still with the bot (or
  closed since) is handed to a person (reason `error`, summary written without the model), so an agent
  sees it; one already waiting for or with an agent keeps its handoff.

It also reports states the state machine (`assistant.states`) and the handoff records do not allow
together (`Store.structural_problems`), repairing the two that have a safe repair: a handoff left open on a
conversation that is no longer waiting for or with an agent is closed, and a message counter behind the
highest message number is moved forward. The rest are reported for a person to look at.

It runs at server start and with each background sweep (logging what it fixed), and as `cxa doctor`.
A turn counts as interrupted only once it has been pending for `interrupted_turn_s`, longer than any
live turn takes, so a check in one worker never cuts into another worker's turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from assistant.errors import AssistantError
from assistant.handoff.service import HandoffService
from assistant.models import CustomerContext, TurnRecord, utcnow
from assistant.store.repo import Store

logger = logging.getLogger(__name__)

INTERRUPTED_NOTE = (
    "The assistant was interrupted before it could reply to the message above. A member of our team will pick this up."
)

REPAIRABLE = {"stale_handoff", "sequence"}


@dataclass(frozen=True)
class Problem:
    kind: str
    conversation_id: str
    detail: str
    fixed: bool = False

    def __str__(self) -> str:
        return f"{self.kind} {self.conversation_id}: {self.detail}" + (" (fixed)" if self.fixed else "")


def check(
    store: Store,
    handoffs: HandoffService,
    *,
    interrupted_turn_s: float,
    fix: bool = True,
    on_change: Callable[[str], object] | None = None,
    on_handoff: Callable[[str, str], object] | None = None,
) -> list[Problem]:
    """Every inconsistency found, each marked `fixed` when `fix` repaired it. `on_change(conversation_id)`
    runs after each repair (the telemetry re-derives the conversation's facts); `on_handoff(conversation_id,
    reason)` after each handoff it opens (the telemetry records the handoff signal)."""
    found: list[Problem] = []
    changed: set[str] = set()
    # Structural repairs first: a stale handoff would otherwise swallow an interrupted turn's new one.
    for kind, cid, detail in store.structural_problems():
        repaired = False
        if fix and kind == "stale_handoff":
            closed = store.close_stale_handoffs(cid, "closed by the consistency check: the conversation moved on")
            repaired = bool(closed)
        elif fix and kind == "sequence" and "behind" in detail:
            store.repair_sequence(cid)
            repaired = True
        if repaired:
            changed.add(cid)
        found.append(Problem(kind, cid, detail, repaired))

    for turn in store.pending_turns(utcnow() - timedelta(seconds=interrupted_turn_s)):
        cid = turn.conversation_id
        if turn.reply_message_id:
            detail = f"turn {turn.id}: the reply was stored, the turn record never finished"
            if fix:
                store.finish_turn(turn.model_copy(update={"state": "done"}))
            found.append(Problem("unfinished_turn", cid, detail, fix))
            continue
        detail = f"turn {turn.id}: the customer's message has no reply (interrupted)"
        if not fix:
            found.append(Problem("interrupted_turn", cid, detail))
            continue
        try:
            handoff_id, created = _recover(store, handoffs, turn)
        except AssistantError as exc:  # e.g. a conflicting transition: leave it for the next check
            logger.warning("could not recover turn %s: %s", turn.id, exc)
            found.append(Problem("interrupted_turn", cid, f"{detail}; not recovered: {exc}"))
            continue
        changed.add(cid)
        if created and on_handoff is not None:
            on_handoff(cid, "error")
        found.append(Problem("interrupted_turn", cid, f"{detail}; handoff {handoff_id}", True))

    if on_change is not None:
        for cid in changed:
            try:
                on_change(cid)
            except Exception:  # the facts are re-derived on the next event anyway
                logger.exception("could not refresh %s after a repair", cid)
    for p in found:
        (logger.warning if p.fixed else logger.error)("consistency: %s", p)
    return found


def _recover(store: Store, handoffs: HandoffService, turn: TurnRecord) -> tuple[str | None, bool]:
    """Note the interruption where the agent will read it, and make sure a person has the conversation."""
    turn_id, conversation_id = turn.id, turn.conversation_id
    store.add_message(conversation_id, "system", INTERRUPTED_NOTE, turn_id=turn_id)
    conv = store.get_conversation(conversation_id)
    handoff_id: str | None = None
    created = False
    if conv.status == "with_agent":  # a person already has it and sees the note
        open_handoff = store.open_handoff(conversation_id)
        handoff_id = open_handoff.id if open_handoff else None
    else:  # bot, waiting_for_agent (returns the open handoff), resolved or abandoned (reopened for a person)
        handoff, created = handoffs.hand_off(conversation_id, "error", 0.0, CustomerContext())
        handoff_id = handoff.id
    store.finish_turn(
        turn.model_copy(
            update={
                "state": "error",
                "reply_mode": "handoff",
                "confidence": 0.0,
                "handoff_id": handoff_id,
                "error": "interrupted: the server stopped before the turn finished",
            }
        )
    )
    return handoff_id, created
