"""The conversation state machine: the table itself, and the store applying it as conditional UPDATEs
(real SQLite on a temp file, real threads for the race)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import states
from assistant.errors import ConflictError, ConversationNotFoundError, HandoffNotFoundError
from assistant.models import HandoffSummary
from assistant.store.repo import Store
from tests.conftest import database_url

ALLOWED = [
    ("bot", "waiting_for_agent"),
    ("bot", "resolved"),
    ("bot", "abandoned"),
    ("waiting_for_agent", "with_agent"),
    ("waiting_for_agent", "abandoned"),
    ("with_agent", "resolved"),
    ("resolved", "bot"),
    ("resolved", "waiting_for_agent"),
    ("abandoned", "bot"),
    ("abandoned", "waiting_for_agent"),
]
FORBIDDEN = [
    ("bot", "with_agent"),  # nobody claimed it
    ("waiting_for_agent", "bot"),  # the bot never takes back a conversation promised to a person
    ("waiting_for_agent", "resolved"),  # an agent claims before closing
    ("with_agent", "bot"),  # the bot never talks over an agent
    ("with_agent", "waiting_for_agent"),  # no release route (yet)
    ("with_agent", "abandoned"),  # the agent holding it closes it
    ("resolved", "with_agent"),
    ("abandoned", "with_agent"),
    ("resolved", "abandoned"),
] + [(s, s) for s in states.STATUSES]  # claiming twice is a conflict, not a no-op
SUMMARY = HandoffSummary(issue="my parcel is lost", customer_goal="a refund")


# -- the table ----------------------------------------------------------------------------------


def test_the_table_covers_exactly_the_statuses_of_the_model() -> None:
    assert set(states.STATUSES) == {"bot", "waiting_for_agent", "with_agent", "resolved", "abandoned"}
    assert set(states.TRANSITIONS) == set(states.STATUSES)
    assert all(targets <= set(states.STATUSES) for targets in states.TRANSITIONS.values())
    assert {(a, b) for a, targets in states.TRANSITIONS.items() for b in targets} == set(ALLOWED)


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_transitions_pass(current: str, target: str) -> None:
    assert states.can(current, target)
    states.check(current, target)  # does not raise


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_forbidden_transitions_are_conflicts(current: str, target: str) -> None:
    assert not states.can(current, target)
    with pytest.raises(ConflictError) as err:
        states.check(current, target)
    assert err.value.status == 409 and err.value.code == "conflict"
    assert isinstance(err.value, states.TransitionError)
    assert (err.value.current, err.value.target) == (current, target)
    assert current in str(err.value) and target in str(err.value)


def test_an_unknown_status_is_a_bug_not_a_conflict() -> None:
    with pytest.raises(ValueError):
        states.check("bot", "closed")


def test_sources_are_the_inverse_of_the_table() -> None:
    assert states.sources("with_agent") == {"waiting_for_agent"}
    assert states.sources("bot") == {"resolved", "abandoned"}
    assert states.sources("waiting_for_agent") == {"bot", "resolved", "abandoned"}
    assert states.allowed_sources("resolved", None) == ["bot", "with_agent"]
    assert states.allowed_sources("resolved", ["with_agent"]) == ["with_agent"]
    with pytest.raises(ValueError):
        states.allowed_sources("with_agent", ["bot"])  # asking the store for a forbidden move is a bug


# -- the store applies it -----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(database_url(tmp_path))
    yield s
    s.close()


def _conversation(store: Store, status: str = "bot") -> str:
    return store.create_conversation(None, False, status=status).id  # type: ignore[arg-type]


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_the_store_makes_every_allowed_transition(store: Store, current: str, target: str) -> None:
    cid = _conversation(store, current)
    conv = store.transition(cid, target)  # type: ignore[arg-type]
    assert conv.status == target
    assert store.get_conversation(cid).status == target


@pytest.mark.parametrize(("current", "target"), [t for t in FORBIDDEN if t[0] != t[1]])
def test_the_store_refuses_forbidden_transitions_and_changes_nothing(store: Store, current: str, target: str) -> None:
    cid = _conversation(store, current)
    with pytest.raises(states.TransitionError):
        store.transition(cid, target)  # type: ignore[arg-type]
    with pytest.raises(states.TransitionError):
        store.set_status(cid, target)  # type: ignore[arg-type]
    assert store.get_conversation(cid).status == current


def test_expected_from_narrows_the_transition(store: Store) -> None:
    cid = _conversation(store, "abandoned")
    with pytest.raises(states.TransitionError):
        store.transition(cid, "waiting_for_agent", expected_from=["bot"])
    assert store.get_conversation(cid).status == "abandoned"
    assert store.transition(cid, "waiting_for_agent", expected_from=["bot", "abandoned"]).status == "waiting_for_agent"


def test_set_status_keeps_working_for_the_engine(store: Store) -> None:
    cid = _conversation(store, "resolved")
    assert store.set_status(cid, "bot").status == "bot"  # the customer came back
    assert store.set_status(cid, "bot").status == "bot"  # already there: a no-op, not an error
    with pytest.raises(ConversationNotFoundError):
        store.set_status("conv_missing", "bot")
    with pytest.raises(ConversationNotFoundError):
        store.transition("conv_missing", "bot")


def test_a_handoff_moves_the_conversation_through_the_state_machine(store: Store) -> None:
    cid = _conversation(store)
    h = store.create_handoff(cid, "customer_request", None, SUMMARY)
    assert store.get_conversation(cid).status == "waiting_for_agent"
    # a second handoff racing the first gets the open one, not a second handoff
    again = store.create_handoff(cid, "low_confidence", 0.1, SUMMARY)
    assert again.id == h.id
    assert [x.id for x in store.list_handoffs()] == [h.id]


def test_claim_and_resolve_move_handoff_and_conversation_together(store: Store) -> None:
    cid = _conversation(store)
    h = store.create_handoff(cid, "customer_request", None, SUMMARY)
    handoff, conv = store.claim_handoff(h.id, "agent_ana")
    assert (handoff.status, handoff.claimed_by, conv.status) == ("claimed", "agent_ana", "with_agent")
    assert handoff.claimed_at is not None
    msg = store.add_agent_message(cid, "Hi, I'm Ana.")
    assert (msg.role, msg.author_id) == ("agent", "agent_ana")
    handoff, conv = store.resolve_handoff(h.id, False, "customer stopped answering")
    assert (handoff.status, handoff.note, conv.status, conv.outcome) == (
        "resolved",
        "customer stopped answering",
        "resolved",
        "unresolved",
    )
    with pytest.raises(ConflictError):
        store.add_agent_message(cid, "one more thing")
    with pytest.raises(HandoffNotFoundError):
        store.claim_handoff("ho_missing", "agent_ana")


def test_a_claim_that_the_conversation_refuses_changes_nothing(store: Store) -> None:
    """The handoff and conversation UPDATEs share a transaction: if the conversation cannot move (the customer
    was marked abandoned meanwhile), the handoff stays unclaimed too."""
    cid = _conversation(store)
    h = store.create_handoff(cid, "customer_request", None, SUMMARY)
    store.transition(cid, "abandoned")
    with pytest.raises(states.TransitionError):
        store.claim_handoff(h.id, "agent_ana")
    assert store.get_handoff(h.id).status == "waiting"
    assert store.get_handoff(h.id).claimed_by is None


def test_of_many_agents_claiming_at_once_exactly_one_wins(store: Store) -> None:
    cid = _conversation(store)
    h = store.create_handoff(cid, "customer_request", None, SUMMARY)
    n = 8
    barrier = threading.Barrier(n)
    results: dict[str, str] = {}

    def claim(agent: str) -> None:
        barrier.wait()
        try:
            store.claim_handoff(h.id, agent)
            results[agent] = "won"
        except ConflictError:
            results[agent] = "conflict"

    threads = [threading.Thread(target=claim, args=(f"agent_{i}",)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == n
    winners = [a for a, r in results.items() if r == "won"]
    assert len(winners) == 1, results
    assert store.get_handoff(h.id).claimed_by == winners[0]
    assert store.get_conversation(cid).status == "with_agent"
