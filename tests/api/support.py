"""Helpers shared by the API tests (not fixtures: those live in tests/conftest.py).

Only the chat model is ever replaced, by `tests.fakes.FakeChatModel` (`app_client(..., chat_model=...)`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from langchain_core.language_models.chat_models import BaseChatModel

from api.app import create_app
from evals.sse import parse_sse  # noqa: F401 - re-exported for tests
from tests.conftest import make_settings, widget_headers

TWO_FA_QUESTION = "How do I turn on two-factor authentication for my account?"
TWO_FA_SOURCE = "account/two-factor-authentication"
OFF_TOPIC_QUESTION = "what is the capital of France?"
TURN_FIELDS = {"message_id", "reply", "confidence", "handoff", "status", "timings_ms"}
CITATION_FIELDS = {"source_id", "title", "url", "snippet", "score"}
SUMMARY_FIELDS = {
    "issue",
    "customer_goal",
    "attempted",
    "customer_context",
    "sentiment",
    "effort",
    "suggested_next_step",
}


@contextmanager
def private_app(template: Path, tmp_path_factory: Any, name: str, **overrides: object) -> Iterator[TestClient]:
    """The real app on a fresh copy of `template` (for module-scoped fixtures)."""
    data = tmp_path_factory.mktemp(name) / "data"
    shutil.copytree(template, data)
    with app_client(data, **overrides) as c:
        yield c


@contextmanager
def app_client(data_dir: Path, chat_model: BaseChatModel | None = None, **overrides: object) -> Iterator[TestClient]:
    """The real app on `data_dir` with the given chat model / settings overrides."""
    with TestClient(create_app(make_settings(data_dir, **overrides), chat_model=chat_model)) as c:
        yield c


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the error contract: the status, JSON `{"error": {"code": str, "message": str}}`."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    err = body.get("error")
    assert isinstance(err, dict), body
    assert isinstance(err.get("code"), str) and err["code"], body
    assert isinstance(err.get("message"), str) and err["message"], body
    assert "Traceback" not in r.text
    if code is not None:
        assert err["code"] == code, body
    return body


_TOKENS: dict[str, str] = {}  # conversation id -> its X-Conversation-Token, as a widget keeps it


def start(client: TestClient, **body: Any) -> dict[str, Any]:
    """A new conversation (its token remembered for `customer_headers`, as the widget keeps it)."""
    r = client.post("/v1/conversations", json=body, headers=widget_headers())
    assert r.status_code == 201, r.text
    conv: dict[str, Any] = r.json()
    _TOKENS[conv["id"]] = conv["token"]
    return conv


def customer_headers(conversation_id: str, **extra: str) -> dict[str, str]:
    """What the customer's widget sends for this conversation: the widget key and the conversation's token."""
    token = _TOKENS.get(conversation_id)
    return widget_headers(**({"X-Conversation-Token": token} if token else {}), **extra)


def say(client: TestClient, conversation_id: str, text: str) -> dict[str, Any]:
    r = client.post(
        f"/v1/conversations/{conversation_id}/messages", json={"text": text}, headers=customer_headers(conversation_id)
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def messages_of(client: TestClient, conversation_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/conversations/{conversation_id}", headers=customer_headers(conversation_id))
    assert r.status_code == 200, r.text
    return r.json()["messages"]  # type: ignore[no-any-return]


def assert_turn_shape(turn: dict[str, Any]) -> None:
    """Every [fixed] field of API.md's Turn, with its type."""
    assert set(turn) >= TURN_FIELDS, turn
    assert isinstance(turn["message_id"], str) and turn["message_id"]
    assert isinstance(turn["confidence"], (int, float)) and 0.0 <= turn["confidence"] <= 1.0
    assert turn["status"] in {"bot", "waiting_for_agent", "with_agent", "resolved", "abandoned"}
    assert {"retrieve", "generate", "total"} <= set(turn["timings_ms"]), turn["timings_ms"]
    assert all(isinstance(v, (int, float)) and v >= 0 for v in turn["timings_ms"].values())
    if turn["reply"] is not None:
        assert isinstance(turn["reply"]["text"], str) and turn["reply"]["text"].strip()
        for c in turn["reply"]["citations"]:
            assert set(c) >= CITATION_FIELDS, c
            assert isinstance(c["source_id"], str) and isinstance(c["title"], str)
            assert c["url"] is None or isinstance(c["url"], str)
            assert isinstance(c["snippet"], str) and c["snippet"]
            assert 0.0 <= c["score"] <= 1.0
    if turn["handoff"] is not None:
        h = turn["handoff"]
        assert {"id", "reason", "summary"} <= set(h), h
        assert set(h["summary"]) >= SUMMARY_FIELDS, h["summary"]
