"""What the customer reads from the help center, through the real app: the same question gets the same answer
in two fresh conversations, and a quoted answer is whole sentences (a list kept as a list) with its citation.

The answer mode is `extractive` here, which is what `auto` resolves to with the embedded model (the default):
no chat model is asked for the answer, so these run with the product's fake model and say what the default
product sends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.settings import AnswerSettings, Settings
from tests.api.support import private_app, say, start


@pytest.fixture(scope="module")
def quoting(sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with private_app(sample_template, tmp_path_factory, "quoting", answer=AnswerSettings(mode="extractive")) as c:
        yield c


QUESTIONS = [
    "How long do PayPal refunds take?",
    "Can I change the delivery address after ordering?",
    "how do i turn on two factor authentication",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_same_question_gets_the_same_answer_and_citation(quoting: TestClient, question: str) -> None:
    first = say(quoting, start(quoting)["id"], question)
    second = say(quoting, start(quoting)["id"], question)
    assert first["reply"] is not None and first["reply"]["mode"] == "extractive", first
    assert first["reply"]["text"] == second["reply"]["text"]
    assert [c["source_id"] for c in first["reply"]["citations"]] == [
        c["source_id"] for c in second["reply"]["citations"]
    ]


def test_a_paypal_refund_question_is_answered_from_the_refund_timelines(quoting: TestClient) -> None:
    turn = say(quoting, start(quoting)["id"], "How long do PayPal refunds take?")
    reply = turn["reply"]
    assert "3-5 business days" in reply["text"]
    assert reply["text"][0].isupper() and reply["text"].rstrip()[-1] in ".!?:)*", reply["text"]
    assert "(" not in reply["text"].split()[0]  # no heading fragment in parentheses in front


def test_a_quoted_list_keeps_its_lines(quoting: TestClient) -> None:
    turn = say(quoting, start(quoting)["id"], "What can I still change while my order is processing?")
    lines = turn["reply"]["text"].splitlines()
    items = [line for line in lines if line.startswith("- ")]
    assert len(items) >= 2, turn["reply"]["text"]
    assert lines[0].endswith(":")  # the line that introduces the list comes with it


def test_auto_quotes_with_the_embedded_model_and_generates_with_a_configured_one(tmp_path: Path) -> None:
    embedded = Settings(data_dir=tmp_path, chat_provider="embedded")
    openai = Settings(data_dir=tmp_path, chat_provider="openai")
    assert embedded.answer_settings().mode == "extractive"
    assert openai.answer_settings().mode == "generative"
    pinned = Settings(data_dir=tmp_path, chat_provider="embedded", answer=AnswerSettings(mode="generative"))
    assert pinned.answer_settings().mode == "generative"
