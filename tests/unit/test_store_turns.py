"""Store methods that serve a turn in one transaction (real SQLite, or PostgreSQL in servers mode)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from assistant.errors import ConversationNotFoundError
from assistant.store.repo import Store
from assistant.store.tables import MessageRow, TurnRow
from tests.conftest import database_url


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(database_url(tmp_path))


def test_open_turn_reads_the_conversation_and_what_came_before_then_writes(store: Store) -> None:
    conv = store.create_conversation(None, False)
    store.add_message(conv.id, "customer", "first")
    store.add_message(conv.id, "assistant", "an answer")
    before, previous, msg, turn_id = store.open_turn(conv.id, "second")
    assert before.id == conv.id and before.status == "bot"
    assert [m.text for m in previous] == ["first", "an answer"]  # not the new message
    assert msg.text == "second" and msg.seq == 3 and msg.role == "customer"
    assert [m.text for m in store.list_messages(conv.id)] == ["first", "an answer", "second"]
    turn = store.get_turn(turn_id)
    assert turn is not None and turn.message_id == msg.id and turn.state == "pending"


def test_open_turn_on_an_unknown_conversation_writes_nothing(store: Store) -> None:
    with pytest.raises(ConversationNotFoundError):
        store.open_turn("conv_missing", "hello")
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(MessageRow)) == 0
        assert s.scalar(select(func.count()).select_from(TurnRow)) == 0
