"""Real turns with the embedded SmolLM2 model (slow: loads llama.cpp, ~5-15 s per turn on 2 cores). By default
(`CXA_ANSWER__MODE=auto`) the embedded model's answers are quoted from the help center without asking it; with
`generative` it writes them."""

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
    assert turn.reply.mode == "extractive"
    assert turn.reply.citations and turn.reply.citations[0].source_id == article
    assert model_calls(services, turn.turn_id) == 0, "auto quotes without asking the embedded model"


def test_a_generative_turn_is_written_by_the_model(tmp_path: Path, sample_template: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(sample_template, data)
    sv = Services.build(make_settings(data, chat_provider="embedded", answer={"mode": "generative"}))
    try:
        conv = sv.engine.start_conversation(None, False)
        turn = sv.engine.run_turn(conv.id, "How do I turn on two-factor authentication?")
        assert turn.reply is not None and turn.reply.mode in ("generated", "extractive")
        assert turn.reply.citations and turn.reply.citations[0].source_id == "account/two-factor-authentication"
        assert model_calls(sv, turn.turn_id) == 1, "the embedded model was called for the answer"
    finally:
        sv.close()


def model_calls(services: Services, turn_id: str) -> int:
    with services.store.engine.connect() as c:
        query = text("SELECT count(*) FROM llm_calls WHERE turn_id = :turn")  # bound portably (SQLite, PostgreSQL)
        (calls,) = c.execute(query, {"turn": turn_id}).one()
    return int(calls)


def test_a_verified_customer_turn_with_history(services: Services) -> None:
    conv = services.engine.start_conversation("cus_1001", True)
    turn = services.engine.run_turn(conv.id, "How long do refunds take to reach my card?")
    assert turn.reply is not None and turn.reply.citations
    assert "refund" in turn.reply.citations[0].source_id or "refund" in turn.reply.text.lower()
