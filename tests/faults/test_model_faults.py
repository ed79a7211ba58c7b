"""The chat model misbehaves (slow, 5xx, 429, garbage, broken streams, refused or reset connections):
through the real app and a real HTTP hop to a fake OpenAI-compatible server, every turn, JSON or SSE,
degrades to a handoff — 200, the message stored, bounded retries, bounded time, a consistent conversation
— and the next conversation is answered normally once the model is back."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from assistant.handoff.summary import HANDOFF_TEXT
from tests.api.support import TWO_FA_QUESTION, TWO_FA_SOURCE, assert_turn_shape, parse_sse, start
from tests.conftest import AGENT_TOKEN, bearer, widget_headers
from tests.faults.fake_openai import FakeOpenAI
from tests.faults.support import RETRIES, TURN_BOUND_S, free_port, openai_settings

# mode -> fake-server parameters. Each is tried as a JSON turn and as an SSE turn.
FAULTS: dict[str, dict[str, Any]] = {
    "slow": {"delay": 3.0},  # past the 1 s timeout, every attempt
    "slow_stream": {"delay": 3.0},  # the first word, then nothing within the timeout
    "error_500": {},
    "rate_limited": {"retry_after": "0.2"},  # a short Retry-After: waited for, within the bound
    "rate_limited_long": {"retry_after": "120"},  # a long one: not waited for (it held a turn 2 min per retry)
    "not_json": {},
    "truncated_json": {},
    "html": {},
    "broken_stream": {},
    "no_done_hang": {"delay": 3.0},
    "reset": {},
}


def send(client: TestClient, conversation_id: str, text: str, sse: bool) -> dict[str, Any]:
    """One customer turn; returns the Turn (for SSE: the `done` event's, after checking the stream)."""
    headers = widget_headers(**({"Accept": "text/event-stream"} if sse else {}))
    r = client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text}, headers=headers)
    assert r.status_code == 200, r.text
    if not sse:
        return r.json()  # type: ignore[no-any-return]
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    names = [name for name, _ in events]
    assert "error" not in names, events  # a failing model is not a stream error: it is a handoff
    assert names and names[-1] == "done", names
    assert names.count("done") == 1
    turn: dict[str, Any] = events[-1][1]
    if turn["handoff"] is not None:
        assert "handoff" in names
    return turn


def assert_handed_off(client: TestClient, conversation_id: str, turn: dict[str, Any], text: str) -> None:
    """The turn became a handoff, and the stored conversation says the same (nothing lost, nothing doubled)."""
    assert_turn_shape(turn)
    assert turn["reply"] is None
    assert turn["status"] == "waiting_for_agent"
    assert turn["handoff"] is not None and turn["handoff"]["reason"] == "error"
    r = client.get(f"/v1/conversations/{conversation_id}", headers=widget_headers())
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "waiting_for_agent"
    assert [(m["role"], m["text"]) for m in body["messages"]] == [("customer", text), ("assistant", HANDOFF_TEXT)]
    assert body["messages"][0]["id"] == turn["message_id"]
    queue = client.get("/v1/handoffs?status=waiting", headers=bearer(AGENT_TOKEN)).json()["items"]
    assert [h["id"] for h in queue if h["conversation_id"] == conversation_id] == [turn["handoff"]["id"]]
    services = client.app.state.services  # type: ignore[attr-defined]
    turns = services.store.list_turns(conversation_id)
    assert [(t.state, t.handoff_id) for t in turns] == [("error", turn["handoff"]["id"])]
    assert turns[0].error, turns[0]
    assert services.check_consistency(fix=False) == []


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_faulty_model_degrades_to_a_handoff(
    openai_client: TestClient, fake_openai: FakeOpenAI, fault: str, sse: bool
) -> None:
    mode = "rate_limited" if fault == "rate_limited_long" else fault
    fake_openai.set(mode, **FAULTS[fault])
    conv = start(openai_client)
    t0 = time.monotonic()
    turn = send(openai_client, conv["id"], TWO_FA_QUESTION, sse)
    elapsed = time.monotonic() - t0
    assert_handed_off(openai_client, conv["id"], turn, TWO_FA_QUESTION)
    assert elapsed < TURN_BOUND_S, f"{fault}: the turn took {elapsed:.1f}s"
    assert 1 <= fake_openai.requests <= 1 + RETRIES, f"{fault}: {fake_openai.requests} requests"
    if fault == "rate_limited_long":
        assert fake_openai.requests == 1, "a Retry-After past CXA_OPENAI__MAX_RETRY_WAIT_S is not waited for"
    if fault in ("error_500", "rate_limited", "reset", "slow"):
        assert fake_openai.requests == 1 + RETRIES, "a retryable failure is retried, exactly as configured"
    if fault in ("not_json", "html"):
        assert fake_openai.requests == 1, "garbage is not retried (a dropped connection with nothing shown is)"
    # the model is back: the next conversation is answered normally
    fake_openai.set("ok")
    again = start(openai_client)
    answered = send(openai_client, again["id"], TWO_FA_QUESTION, sse)
    assert answered["status"] == "bot" and answered["handoff"] is None
    assert answered["reply"] is not None and answered["reply"]["citations"][0]["source_id"] == TWO_FA_SOURCE


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
def test_an_empty_completion_falls_back_to_quoting_the_help_center(
    openai_client: TestClient, fake_openai: FakeOpenAI, sse: bool
) -> None:
    """A valid envelope with empty/null content is not an outage: nothing was generated, retrieval is strong,
    so the reply quotes the best passage with its citation (the design's extractive fallback), never empty."""
    fake_openai.set("empty")
    conv = start(openai_client)
    turn = send(openai_client, conv["id"], TWO_FA_QUESTION, sse)
    assert fake_openai.requests == 1
    assert turn["status"] == "bot" and turn["handoff"] is None
    assert turn["reply"]["mode"] == "extractive" and turn["reply"]["text"].strip()
    assert turn["reply"]["citations"][0]["source_id"] == TWO_FA_SOURCE
    services = openai_client.app.state.services  # type: ignore[attr-defined]
    assert services.check_consistency(fix=False) == []


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
def test_a_failure_on_a_follow_up_hands_off_within_one_deadline(
    openai_client: TestClient, fake_openai: FakeOpenAI, sse: bool
) -> None:
    """A follow-up calls the model twice (question rewrite, then the answer). When the rewrite fails, the
    turn hands off at once: it used to fall back to the heuristic and wait out the same dead model again."""
    fake_openai.set("ok")
    conv = start(openai_client)
    first = send(openai_client, conv["id"], TWO_FA_QUESTION, sse)
    assert first["status"] == "bot"
    fake_openai.set("slow", delay=3.0)
    t0 = time.monotonic()
    turn = send(openai_client, conv["id"], "and what if I lose my phone?", sse)
    assert time.monotonic() - t0 < TURN_BOUND_S
    assert fake_openai.requests <= 1 + RETRIES
    assert turn["status"] == "waiting_for_agent" and turn["handoff"]["reason"] == "error"
    roles = [
        m["role"]
        for m in openai_client.get(f"/v1/conversations/{conv['id']}", headers=widget_headers()).json()["messages"]
    ]
    assert roles == ["customer", "assistant", "customer", "assistant"]
    fake_openai.set("ok")


def test_connection_refused_degrades_to_a_handoff(sample_template: Path, tmp_path: Path) -> None:
    """Nothing listens on the configured port (the model server is down)."""
    data = tmp_path / "data"
    shutil.copytree(sample_template, data)
    url = f"http://127.0.0.1:{free_port()}/v1"
    with TestClient(create_app(openai_settings(data, url))) as c:
        for sse in (False, True):
            conv = start(c)
            t0 = time.monotonic()
            turn = send(c, conv["id"], TWO_FA_QUESTION, sse)
            assert time.monotonic() - t0 < TURN_BOUND_S
            assert_handed_off(c, conv["id"], turn, TWO_FA_QUESTION)
