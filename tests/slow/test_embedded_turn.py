"""Real turns with the embedded SmolLM2 model (slow: loads llama.cpp, ~5-15 s per turn on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from assistant.services import Services
from tests.conftest import make_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, sample_template: Path) -> Services:
    import shutil

    data = tmp_path_factory.mktemp("embedded") / "data"
    shutil.copytree(sample_template, data)
    sv = Services.build(make_settings(data, chat_provider="embedded"))
    assert not sv.startup_problems, sv.startup_problems
    return sv


@pytest.mark.parametrize(
    ("question", "article"),
    [
        ("How do I turn on two-factor authentication?", "account/two-factor-authentication"),
        ("Can I pause my Larkspur Plus membership?", "subscriptions/pause-larkspur-plus"),
    ],
)
def test_a_real_turn_cites_the_right_article(services: Services, question: str, article: str) -> None:
    conv = services.engine.start_conversation(None, False)
    turn = services.engine.run_turn(conv.id, question)
    assert turn.reply is not None, turn
    assert turn.reply.mode in ("generated", "extractive")
    assert turn.reply.citations and turn.reply.citations[0].source_id == article
    with services.store.engine.connect() as c:
        query = text("SELECT count(*) FROM llm_calls WHERE turn_id = :turn")  # bound portably (SQLite, PostgreSQL)
        (calls,) = c.execute(query, {"turn": turn.turn_id}).one()
    assert calls == 1, "the embedded model was called for the answer"


def test_a_verified_customer_turn_with_history(services: Services) -> None:
    conv = services.engine.start_conversation("cus_1001", True)
    turn = services.engine.run_turn(conv.id, "How long do refunds take to reach my card?")
    assert turn.reply is not None and turn.reply.citations
    assert "refund" in turn.reply.citations[0].source_id or "refund" in turn.reply.text.lower()
