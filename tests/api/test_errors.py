"""Bad input and failures: every error is `{"error": {"code", "message"}}` with a 4xx/5xx status, and no
customer message is ever lost (a failing model hands the conversation to a person)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.support import (
    SUMMARY_FIELDS,
    TWO_FA_QUESTION,
    app_client,
    assert_error,
    assert_turn_shape,
    messages_of,
    parse_sse,
    private_app,
    say,
    start,
)
from tests.conftest import ADMIN_TOKEN, AGENT_TOKEN, CX_TOKEN, bearer, widget_headers
from tests.fakes import FakeChatModel

UNKNOWN = "conv_does_not_exist"


@pytest.fixture(scope="module")
def shared(sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the validation checks of this module (each check makes its own conversation)."""
    with private_app(sample_template, tmp_path_factory, "errors") as c:
        yield c


# -- messages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": ""}, 422, "invalid_request"),
        ({"text": "   \n\t  "}, 422, "invalid_request"),
        ({"text": "x" * 4001}, 422, "invalid_request"),
        ({"text": 5}, 422, "invalid_request"),
        ({"text": None}, 422, "invalid_request"),
        ({"text": ["hello"]}, 422, "invalid_request"),
        ({"text": {"value": "hello"}}, 422, "invalid_request"),
        ({}, 422, "invalid_request"),
        ({"message": "hello"}, 422, "invalid_request"),
        ([], 422, "invalid_request"),
        ("hello", 422, "invalid_request"),
    ],
    ids=[
        "empty",
        "whitespace",
        "4001-chars",
        "int",
        "null",
        "list",
        "object",
        "no-text",
        "wrong-field",
        "array-body",
        "string-body",
    ],
)
def test_a_bad_message_is_rejected_and_nothing_is_stored(shared: TestClient, body: Any, status: int, code: str) -> None:
    cid = start(shared)["id"]
    say(shared, cid, TWO_FA_QUESTION)
    before = messages_of(shared, cid)
    r = shared.post(f"/v1/conversations/{cid}/messages", json=body, headers=widget_headers())
    assert_error(r, status, code)
    assert messages_of(shared, cid) == before


@pytest.mark.parametrize(
    "raw",
    [b'{"text": ', b"{'text': 'hi'}", b'{"text": "hi",}', b"\xff\xfe"],
    ids=["truncated", "single-quotes", "trailing-comma", "not-utf8"],
)
def test_malformed_json_is_400_invalid_json_and_nothing_is_stored(shared: TestClient, raw: bytes) -> None:
    cid = start(shared)["id"]
    r = shared.post(
        f"/v1/conversations/{cid}/messages", content=raw, headers=widget_headers(**{"Content-Type": "application/json"})
    )
    assert_error(r, 400, "invalid_json")
    assert messages_of(shared, cid) == []


def test_an_empty_body_is_rejected(shared: TestClient) -> None:
    cid = start(shared)["id"]
    r = shared.post(
        f"/v1/conversations/{cid}/messages", content=b"", headers=widget_headers(**{"Content-Type": "application/json"})
    )
    assert r.status_code in (400, 422)
    assert_error(r, r.status_code)
    assert messages_of(shared, cid) == []


def test_a_streamed_bad_message_is_a_json_error_not_a_stream(shared: TestClient) -> None:
    cid = start(shared)["id"]
    r = shared.post(
        f"/v1/conversations/{cid}/messages",
        json={"text": "x" * 4001},
        headers=widget_headers(Accept="text/event-stream"),
    )
    assert_error(r, 422, "invalid_request")
    assert messages_of(shared, cid) == []


def test_a_message_of_exactly_4000_characters_is_accepted_and_stored(shared: TestClient) -> None:
    text = (TWO_FA_QUESTION + " ") * 100
    text = text[:3999] + "?"
    assert len(text) == 4000
    cid = start(shared)["id"]
    turn = say(shared, cid, text)
    assert_turn_shape(turn)
    msgs = messages_of(shared, cid)
    assert msgs[0]["id"] == turn["message_id"]
    assert msgs[0]["text"] == text
    assert len(msgs[0]["text"]) == 4000


def test_multibyte_characters_count_as_characters(shared: TestClient) -> None:
    cid = start(shared)["id"]
    ok = shared.post(f"/v1/conversations/{cid}/messages", json={"text": "é" * 4000}, headers=widget_headers())
    assert ok.status_code == 200, ok.text
    too_long = shared.post(f"/v1/conversations/{cid}/messages", json={"text": "é" * 4001}, headers=widget_headers())
    assert_error(too_long, 422, "invalid_request")
    assert [m["text"] for m in messages_of(shared, cid) if m["role"] == "customer"] == ["é" * 4000]


# -- unknown conversations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"/v1/conversations/{UNKNOWN}/messages", {"text": "hello"}),
        ("POST", f"/v1/conversations/{UNKNOWN}/handoff", {}),
        ("POST", f"/v1/conversations/{UNKNOWN}/feedback", {"csat": 4}),
        ("GET", f"/v1/conversations/{UNKNOWN}", None),
    ],
)
def test_an_unknown_conversation_is_404(shared: TestClient, method: str, path: str, body: Any) -> None:
    r = shared.request(method, path, json=body, headers=widget_headers())
    assert_error(r, 404, "conversation_not_found")


def test_an_unknown_conversation_is_404_before_a_stream_starts(shared: TestClient) -> None:
    r = shared.post(
        f"/v1/conversations/{UNKNOWN}/messages",
        json={"text": "hello"},
        headers=widget_headers(Accept="text/event-stream"),
    )
    assert_error(r, 404, "conversation_not_found")


# -- other widget routes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"csat": 6}, 422, "invalid_request"),
        ({"csat": 0}, 422, "invalid_request"),
        ({"ces": 8}, 422, "invalid_request"),
        ({"csat": 4.5}, 422, "invalid_request"),
        ({"csat": "five"}, 422, "invalid_request"),
        ({"resolved": "maybe"}, 422, "invalid_request"),
        ({}, 422, "invalid_request"),
        ({"comment": ""}, 422, "invalid_request"),
        ({"comment": "x" * 4001}, 422, "invalid_request"),
    ],
    ids=[
        "csat6",
        "csat0",
        "ces8",
        "csat-float",
        "csat-str",
        "resolved-str",
        "nothing",
        "empty-comment",
        "long-comment",
    ],
)
def test_bad_feedback_is_rejected(shared: TestClient, body: dict[str, Any], status: int, code: str) -> None:
    cid = start(shared)["id"]
    r = shared.post(f"/v1/conversations/{cid}/feedback", json=body, headers=widget_headers())
    assert_error(r, status, code)
    assert shared.app.state.services.store.latest_feedback(cid) is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [
        {"customer_id": ""},
        {"customer_id": 1001},
        {"channel": "fax"},
        {"metadata": "not an object"},
        {"metadata": {"blob": "x" * 5000}},
    ],
)
def test_a_bad_conversation_body_is_422(shared: TestClient, body: dict[str, Any]) -> None:
    r = shared.post("/v1/conversations", json=body, headers=widget_headers())
    assert_error(r, 422, "invalid_request")


@pytest.mark.parametrize("body", [{"reason": 5}, {"reason": "x" * 201}])
def test_a_bad_handoff_body_is_422_and_does_not_hand_off(shared: TestClient, body: dict[str, Any]) -> None:
    cid = start(shared)["id"]
    r = shared.post(f"/v1/conversations/{cid}/handoff", json=body, headers=widget_headers())
    assert_error(r, 422, "invalid_request")
    conv = shared.get(f"/v1/conversations/{cid}", headers=widget_headers()).json()
    assert conv["status"] == "bot" and conv["handoff"] is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/conversations/{cid}"),
        ("POST", "/v1/conversations/{cid}/messages"),
        ("POST", "/v1/conversations/{cid}/handoff"),
        ("POST", "/v1/conversations/{cid}/feedback"),
    ],
)
def test_widget_routes_need_the_widget_key(shared: TestClient, method: str, path: str) -> None:
    cid = start(shared)["id"]
    # Staff tokens may read a transcript (the console and dashboard do: tests/api/test_web_api.py), not write one.
    staff = () if method == "GET" else (bearer(ADMIN_TOKEN),)
    for headers in ({}, {"X-Widget-Key": "pk_wrong"}, *staff):
        r = shared.request(method, path.format(cid=cid), json={"text": "hi", "csat": 3}, headers=headers)
        assert_error(r, 401, "unauthorized")
    assert messages_of(shared, cid) == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (widget_headers(), 401),
        (bearer("not-a-token"), 401),
        ({"Authorization": AGENT_TOKEN}, 401),
        (bearer(CX_TOKEN), 403),
    ],
)
def test_the_handoff_queue_is_for_agents(shared: TestClient, headers: dict[str, str], status: int) -> None:
    assert_error(shared.get("/v1/handoffs", headers=headers), status)


def test_the_handoff_queue_rejects_an_unknown_status(shared: TestClient) -> None:
    assert_error(
        shared.get("/v1/handoffs", params={"status": "lost"}, headers=bearer(AGENT_TOKEN)), 422, "invalid_request"
    )


def test_unknown_routes_and_methods_use_the_error_shape(shared: TestClient) -> None:
    assert_error(shared.get("/v1/nothing-here"), 404)
    assert_error(shared.delete("/healthz"), 405)


# -- a failing chat model -------------------------------------------------------------------------


@pytest.fixture
def failing(sample_data_dir: Path) -> Iterator[TestClient]:
    """The app on a model whose every call fails, like a provider that is down."""
    down = FakeChatModel(reply=RuntimeError("the model provider is down"))
    with app_client(sample_data_dir, chat_model=down) as c:
        yield c


def test_a_failing_model_hands_the_conversation_to_a_person(failing: TestClient) -> None:
    cid = start(failing)["id"]
    turn = say(failing, cid, TWO_FA_QUESTION)
    assert_turn_shape(turn)
    assert turn["reply"] is None
    assert turn["status"] == "waiting_for_agent"
    assert turn["handoff"] is not None
    assert turn["handoff"]["reason"] == "error"
    assert turn["confidence"] == 0.0

    msgs = messages_of(failing, cid)
    assert msgs[0]["role"] == "customer" and msgs[0]["text"] == TWO_FA_QUESTION
    assert msgs[0]["id"] == turn["message_id"]
    assert all(m["role"] != "assistant" or not m["citations"] for m in msgs)  # no half-made answer

    queue = failing.get("/v1/handoffs", headers=bearer(AGENT_TOKEN))
    assert queue.status_code == 200
    items = [h for h in queue.json()["items"] if h["conversation_id"] == cid]
    assert len(items) == 1
    h = items[0]
    assert {"id", "conversation_id", "reason", "created_at", "summary"} <= set(h)
    assert h["id"] == turn["handoff"]["id"]
    assert h["reason"] == "error"
    s = h["summary"]
    assert set(s) >= SUMMARY_FIELDS
    assert isinstance(s["issue"], str) and "two-factor" in s["issue"]
    assert isinstance(s["customer_goal"], str) and s["customer_goal"]
    assert isinstance(s["attempted"], list) and all(isinstance(a, str) for a in s["attempted"])
    assert isinstance(s["customer_context"], str) and s["customer_context"]
    assert isinstance(s["sentiment"], str) and s["sentiment"]
    assert isinstance(s["effort"], (int, float)) and 1.0 <= s["effort"] <= 7.0
    assert isinstance(s["suggested_next_step"], str) and s["suggested_next_step"]

    # the agent can open the packet
    one = failing.get(f"/v1/handoffs/{h['id']}", headers=bearer(AGENT_TOKEN))
    assert one.status_code == 200 and one.json()["conversation_id"] == cid


def test_after_a_failure_the_bot_stays_silent_and_keeps_the_messages(failing: TestClient) -> None:
    cid = start(failing)["id"]
    first = say(failing, cid, TWO_FA_QUESTION)
    second = say(failing, cid, "Hello? Is anyone there?")
    assert_turn_shape(second)
    assert second["reply"] is None
    assert second["status"] == "waiting_for_agent"
    assert second["handoff"]["id"] == first["handoff"]["id"]  # still the one handoff
    customer = [m for m in messages_of(failing, cid) if m["role"] == "customer"]
    assert [m["text"] for m in customer] == [TWO_FA_QUESTION, "Hello? Is anyone there?"]
    assert customer[1]["id"] == second["message_id"]
    waiting = failing.get("/v1/handoffs", params={"status": "waiting"}, headers=bearer(AGENT_TOKEN)).json()["items"]
    assert sum(h["conversation_id"] == cid for h in waiting) == 1


def test_a_failing_model_in_a_stream_ends_with_a_handoff_event(failing: TestClient) -> None:
    cid = start(failing)["id"]
    r = failing.post(
        f"/v1/conversations/{cid}/messages",
        json={"text": TWO_FA_QUESTION},
        headers=widget_headers(Accept="text/event-stream"),
    )
    assert r.status_code == 200
    events = parse_sse(r.text)
    names = [e for e, _ in events]
    assert "handoff" in names and names[-1] == "done"
    assert names.index("handoff") < names.index("done")
    assert "citations" not in names
    handoff = next(d for e, d in events if e == "handoff")
    turn = events[-1][1]
    assert_turn_shape(turn)
    assert handoff["reason"] == "error" and turn["handoff"]["id"] == handoff["id"]
    assert turn["reply"] is None and turn["status"] == "waiting_for_agent"
    assert messages_of(failing, cid)[0]["text"] == TWO_FA_QUESTION
