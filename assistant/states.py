"""The conversation's lifecycle: which status may follow which, in one table.

    from ↓ / to →      bot  waiting_for_agent  with_agent  resolved  abandoned
    bot                  .          yes                .         yes       yes
    waiting_for_agent    .           .                yes         .        yes
    with_agent           .           .                 .         yes        .
    resolved            yes         yes                .          .         .
    abandoned           yes         yes                .          .         .

Why each transition exists (and why the others do not):

- `bot -> waiting_for_agent`: the assistant hands off (low confidence, error, a rule) or the customer
  presses "talk to a person".
- `bot -> resolved`, `bot -> abandoned`: a conversation the bot closed (the customer confirmed it is
  solved) or that the customer walked away from; closing idle conversations is the telemetry's job.
- `waiting_for_agent -> with_agent`: an agent claims the handoff. This is the contested step (two agents
  clicking at once), which is why the store applies every transition as a conditional UPDATE.
- `waiting_for_agent -> abandoned`: the customer left before a person came.
- `with_agent -> resolved`: the agent closes the handoff, whether or not the problem was solved (the
  conversation's `outcome` says which). There is no `with_agent -> bot`: a person never silently gives
  the customer back to the bot mid-conversation, and no `with_agent -> abandoned`: the agent who holds
  the conversation closes it (resolve with `resolved: false`).
- `resolved -> bot`, `abandoned -> bot`: the customer writes again in the same conversation; the bot
  picks up, with the agent's messages in the transcript it sees.
- `resolved -> waiting_for_agent`, `abandoned -> waiting_for_agent`: the customer came back and asked for
  a person straight away (the same as passing through `bot`, in one step).
- Not allowed on purpose: `waiting_for_agent -> bot` (the bot never takes back a conversation promised
  to a person), `with_agent -> waiting_for_agent` (no release/transfer route exists yet; add the
  transition with the route), and any status to itself (claiming twice is a conflict, not a no-op).

`check(from, to)` raises `TransitionError` (a `ConflictError`: HTTP 409 `conflict`) for anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeGuard, get_args

from assistant.errors import ConflictError
from assistant.models import ConversationStatus

STATUSES: tuple[ConversationStatus, ...] = get_args(ConversationStatus)

TRANSITIONS: Mapping[ConversationStatus, frozenset[ConversationStatus]] = {
    "bot": frozenset({"waiting_for_agent", "resolved", "abandoned"}),
    "waiting_for_agent": frozenset({"with_agent", "abandoned"}),
    "with_agent": frozenset({"resolved"}),
    "resolved": frozenset({"bot", "waiting_for_agent"}),
    "abandoned": frozenset({"bot", "waiting_for_agent"}),
}


class TransitionError(ConflictError):
    """The conversation cannot go from its current status to the one asked for: 409 `conflict`."""

    def __init__(self, current: str, target: str, detail: str = "") -> None:
        self.current, self.target = current, target
        super().__init__(detail or f"the conversation is {current}; it cannot become {target}")


def is_status(value: str) -> TypeGuard[ConversationStatus]:
    """A status the table knows (a column holds a plain string)."""
    return value in STATUSES


def can(current: str, target: str) -> bool:
    return is_status(current) and target in TRANSITIONS[current]


def sources(target: ConversationStatus) -> frozenset[ConversationStatus]:
    """Every status from which `target` may be reached."""
    return frozenset(s for s, nexts in TRANSITIONS.items() if target in nexts)


def check(current: str, target: str) -> None:
    if target not in STATUSES:
        raise ValueError(f"unknown conversation status {target!r}")
    if not can(current, target):
        raise TransitionError(current, target)


def allowed_sources(target: ConversationStatus, expected_from: Iterable[ConversationStatus] | None) -> list[str]:
    """The statuses a conditional UPDATE to `target` may start from: `expected_from` narrowed to what the
    table allows (a caller asking for a transition the table forbids is a bug, hence ValueError)."""
    allowed = sources(target)
    if expected_from is None:
        return sorted(allowed)
    wanted = set(expected_from)
    forbidden = wanted - allowed
    if forbidden:
        raise ValueError(f"{sorted(forbidden)} -> {target} is not a transition of the state machine")
    return sorted(wanted)
