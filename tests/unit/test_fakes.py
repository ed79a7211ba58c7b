"""The test chat model's own contract (`tests.fakes.FakeChatModel`), which many tests lean on: queued replies
first, in order, then `reply`; an exception raised however often it is queued; every call recorded."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from tests.fakes import Call, FakeChatModel


def test_queued_replies_come_first_then_the_reply_and_every_call_is_recorded() -> None:
    down = RuntimeError("upstream 503")
    model = FakeChatModel(reply=lambda call: f"echo: {call.messages[-1].content}").enqueue(down, down, "two  words")
    for _ in range(2):  # fails twice
        with pytest.raises(RuntimeError, match="upstream 503"):
            model.invoke("hi")
    pieces = [str(c.content) for c in model.stream([HumanMessage("hi")], max_tokens=5)]
    assert "".join(pieces) == "two  words" and len([p for p in pieces if p]) == 2
    assert model.invoke("again").content == "echo: again"
    assert [c.options for c in model.calls] == [{}, {}, {"max_tokens": 5}, {}]
    assert isinstance(model.calls[0], Call) and model.calls[0].messages[0].content == "hi"


def test_without_a_reply_an_unqueued_call_fails() -> None:
    model = FakeChatModel().enqueue("only one")
    assert model.invoke("a").content == "only one"
    with pytest.raises(LookupError):
        model.invoke("b")
