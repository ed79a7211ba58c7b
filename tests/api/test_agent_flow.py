"""The agent side of a handoff, through the real app (fake chat model only): the queue, the packet, claim ->
reply -> resolve, live delivery to the customer on /events, the bot staying silent while a person has the
conversation, the 409s of the state machine, auth, and the signed webhook."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from assistant.store.tables import LLMCallRow
from evals.sse import Event, iter_sse
from tests.api.support import (
    OFF_TOPIC_QUESTION,
    SUMMARY_FIELDS,
    TWO_FA_QUESTION,
    app_client,
    assert_error,
    assert_turn_shape,
    customer_headers,
    messages_of,
    parse_sse,
    private_app,
    say,
    start,
)
from tests.conftest import ADMIN_TOKEN, AGENT_TOKEN, CX_TOKEN, bearer, customer_hash, widget_headers
from tests.webhook_receiver import WebhookReceiver

AGENT = bearer(AGENT_TOKEN)
AGENT_REPLY = "Hi Amara, I'm Sam from Larkspur Home. I've found your order and I'm on it."
STREAM_LIMIT_S = 15.0  # no test below can wait longer than this for an event


@pytest.fixture(scope="module")
def shared(sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the checks where each test only touches its own new conversation."""
    with private_app(sample_template, tmp_path_factory, "agent_flow") as c:
        yield c


# -- helpers ------------------------------------------------------------------------------------


def handed_off(client: TestClient, **conversation: Any) -> tuple[str, dict[str, Any]]:
    """A conversation the help center could not answer, in the agent queue: (conversation id, handoff)."""
    cid = start(client, **conversation)["id"]
    turn = say(client, cid, OFF_TOPIC_QUESTION)
    assert_turn_shape(turn)
    assert turn["reply"] is None or turn["reply"]["citations"] == []  # nothing in the help center covers it
    if turn["handoff"] is None:  # declined, with a person offered: the customer presses "talk to a person"
        r = client.post(f"/v1/conversations/{cid}/handoff", headers=customer_headers(cid))
        assert r.status_code == 200, r.text
        return cid, r.json()["handoff"]
    return cid, turn["handoff"]


def claim(client: TestClient, handoff_id: str, agent_id: str = "agent_sam") -> dict[str, Any]:
    r = client.post(f"/v1/handoffs/{handoff_id}/claim", json={"agent_id": agent_id}, headers=AGENT)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def reply(client: TestClient, conversation_id: str, text: str) -> dict[str, Any]:
    r = client.post(f"/v1/conversations/{conversation_id}/agent-messages", json={"text": text}, headers=AGENT)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def resolve(client: TestClient, handoff_id: str, resolved: bool = True, **extra: Any) -> dict[str, Any]:
    r = client.post(f"/v1/handoffs/{handoff_id}/resolve", json={"resolved": resolved, **extra}, headers=AGENT)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


class EventReader:
    """Reads an open SSE response event by event, never past a deadline (the server also closes the stream
    after `max_s`, so a missing event fails the test instead of hanging it)."""

    def __init__(self, response: Any, deadline_s: float = STREAM_LIMIT_S) -> None:
        self.deadline = time.monotonic() + deadline_s
        self.events = iter_sse(self._lines(response))
        self.seen: list[Event] = []

    def _lines(self, response: Any) -> Iterator[str]:
        for line in response.iter_lines():
            if time.monotonic() > self.deadline:
                return
            yield line

    def next_event(self) -> Event | None:
        """The next event, or None when the server ended the stream or the deadline passed."""
        ev = next(self.events, None)
        if ev is not None:
            self.seen.append(ev)
        return ev

    def until(self, predicate: Any) -> Event:
        while (ev := self.next_event()) is not None:
            if predicate(ev):
                return ev
        raise AssertionError(f"the awaited event never came; saw {[(e[0], e[1]) for e in self.seen]}")


def events_url(cid: str) -> str:
    return f"/v1/conversations/{cid}/events"


# -- the whole flow (issue 3) -------------------------------------------------------------------


def test_customer_to_agent_and_back_end_to_end(client: TestClient) -> None:
    """customer asks what the help center does not cover -> handoff -> queue with summary -> agent opens the
    packet and claims -> agent replies -> the customer receives it live -> resolve."""
    cid, handoff = handed_off(client, customer_id="cus_1001", customer_hash=customer_hash("cus_1001"))
    hid = handoff["id"]
    assert client.get(f"/v1/conversations/{cid}", headers=customer_headers(cid)).json()["status"] == "waiting_for_agent"

    # the queue lists it, with the summary fields of API.md
    queue = client.get("/v1/handoffs", params={"status": "waiting"}, headers=AGENT)
    assert queue.status_code == 200
    [item] = [h for h in queue.json()["items"] if h["id"] == hid]
    assert {"id", "conversation_id", "reason", "created_at", "summary"} <= set(item)
    assert item["conversation_id"] == cid
    assert set(item["summary"]) >= SUMMARY_FIELDS
    assert item["summary"]["issue"]

    # the packet: summary, whole transcript, the verified customer's profile and history
    packet = client.get(f"/v1/handoffs/{hid}", headers=AGENT)
    assert packet.status_code == 200, packet.text
    p = packet.json()
    assert p["id"] == hid and p["status"] == "waiting"
    assert [m["text"] for m in p["transcript"] if m["role"] == "customer"] == [OFF_TOPIC_QUESTION]
    assert p["customer"]["id"] == "cus_1001" and p["customer"]["name"] == "Amara Okafor"
    assert p["customer_events"], "the verified customer's account events are in the packet"
    assert p["conversation"]["id"] == cid and p["conversation"]["verified"] is True

    # the customer's widget is listening before the agent acts
    with client.stream(
        "GET", events_url(cid), params={"poll_s": 0.2, "max_s": STREAM_LIMIT_S}, headers=customer_headers(cid)
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = EventReader(stream)
        events.until(lambda e: e[0] == "status" and e[1]["status"] == "waiting_for_agent")

        claimed = claim(client, hid, "agent_sam")
        assert claimed["status"] == "claimed"
        assert claimed["claimed_by"] == "agent_sam"
        assert claimed["claimed_at"]
        assert claimed["conversation_status"] == "with_agent"
        events.until(lambda e: e[0] == "status" and e[1]["status"] == "with_agent")

        sent = reply(client, cid, AGENT_REPLY)
        assert sent["role"] == "agent" and sent["author_id"] == "agent_sam"
        name, data, id_ = events.until(lambda e: e[0] == "message" and e[1]["role"] == "agent")
        assert data["text"] == AGENT_REPLY
        assert data["author_id"] == "agent_sam"
        assert id_ == str(data["seq"]) == str(sent["seq"])  # SSE id = message seq, for Last-Event-ID resume

    # the queue moved it along
    assert hid in [h["id"] for h in client.get("/v1/handoffs?status=claimed", headers=AGENT).json()["items"]]
    assert hid not in [h["id"] for h in client.get("/v1/handoffs?status=waiting", headers=AGENT).json()["items"]]

    done = resolve(client, hid, True, note="Refund issued for the missing cushion.")
    assert done["status"] == "resolved" and done["resolved_at"]
    assert done["note"] == "Refund issued for the missing cushion."
    assert done["conversation_status"] == "resolved"
    assert done["outcome"] == "resolved_by_agent"
    conv = client.get(f"/v1/conversations/{cid}", headers=customer_headers(cid)).json()
    assert conv["status"] == "resolved"
    assert conv["handoff"] is None  # nothing open any more
    assert hid in [h["id"] for h in client.get("/v1/handoffs?status=resolved", headers=AGENT).json()["items"]]
    assert client.app.state.services.store.get_conversation(cid).outcome == "resolved_by_agent"  # type: ignore[attr-defined]


def test_the_bot_stays_silent_while_an_agent_has_the_conversation(shared: TestClient) -> None:
    cid, handoff = handed_off(shared)
    claim(shared, handoff["id"])
    reply(shared, cid, "Hello, Sam here. What's the order number?")
    before = messages_of(shared, cid)

    # a question the bot could answer well: it still says nothing, and the message goes to the agent
    turn = say(shared, cid, TWO_FA_QUESTION)
    assert_turn_shape(turn)
    assert turn["reply"] is None
    assert turn["status"] == "with_agent"
    assert turn["handoff"]["id"] == handoff["id"]
    after = messages_of(shared, cid)
    assert after[: len(before)] == before
    assert [(m["role"], m["text"]) for m in after[len(before) :]] == [("customer", TWO_FA_QUESTION)]

    # streamed, too: no tokens, just `done` with reply null
    r = shared.post(
        f"/v1/conversations/{cid}/messages",
        json={"text": "and can you also check my refund?"},
        headers=widget_headers(Accept="text/event-stream"),
    )
    events = parse_sse(r.text)
    assert [e for e, _ in events] == ["done"]
    assert events[0][1]["reply"] is None and events[0][1]["status"] == "with_agent"

    # the customer's messages reach the agent's transcript, in order, after the agent's
    packet = shared.get(f"/v1/handoffs/{handoff['id']}", headers=AGENT).json()
    roles_texts = [(m["role"], m["text"]) for m in packet["transcript"]]
    assert roles_texts[-3:] == [
        ("agent", "Hello, Sam here. What's the order number?"),
        ("customer", TWO_FA_QUESTION),
        ("customer", "and can you also check my refund?"),
    ]
    assert all(m["role"] != "assistant" for m in packet["transcript"][len(before) :])


def test_while_waiting_the_bot_is_silent_and_the_agent_sees_the_message(shared: TestClient) -> None:
    cid, handoff = handed_off(shared)
    turn = say(shared, cid, "hello? is anyone there?")
    assert turn["reply"] is None and turn["status"] == "waiting_for_agent"
    packet = shared.get(f"/v1/handoffs/{handoff['id']}", headers=AGENT).json()
    assert packet["transcript"][-1]["text"] == "hello? is anyone there?"
    assert packet["customer"] is None  # anonymous: no profile


def test_after_resolve_the_bot_picks_up_and_sees_the_agents_messages(shared: TestClient) -> None:
    cid, handoff = handed_off(shared)
    claim(shared, handoff["id"])
    agent_text = "I have reset your delivery slot to Friday morning."
    reply(shared, cid, agent_text)
    resolve(shared, handoff["id"], False)
    assert shared.get(f"/v1/conversations/{cid}", headers=customer_headers(cid)).json()["status"] == "resolved"

    turn = say(shared, cid, TWO_FA_QUESTION)  # the customer comes back with a new question
    assert_turn_shape(turn)
    assert turn["status"] == "bot"
    assert turn["reply"] is not None

    # the answer prompt of that turn carried the agent's message in its transcript
    store = shared.app.state.services.store  # type: ignore[attr-defined]
    with store.session() as s:
        calls = s.scalars(
            select(LLMCallRow).where(
                LLMCallRow.conversation_id == cid, LLMCallRow.turn_id == _turn_id(store, turn["message_id"])
            )
        ).all()
        prompts = [json.dumps(c.messages) for c in calls if c.prompt_name == "answer"]
    assert prompts, "the bot answered with the model"
    assert any(f"Agent: {agent_text}" in p for p in prompts), prompts


def _turn_id(store: Any, message_id: str) -> str:
    from assistant.store.tables import TurnRow

    with store.session() as s:
        return str(s.scalar(select(TurnRow.id).where(TurnRow.message_id == message_id)))


def test_resolved_false_is_recorded_as_unresolved(shared: TestClient) -> None:
    cid, handoff = handed_off(shared)
    claim(shared, handoff["id"])
    done = resolve(shared, handoff["id"], False)
    assert done["outcome"] == "unresolved" and done["conversation_status"] == "resolved"
    assert done["note"] is None


# -- live delivery: resume ----------------------------------------------------------------------


def test_events_resume_after_last_event_id(shared: TestClient) -> None:
    cid, handoff = handed_off(shared)
    claim(shared, handoff["id"])
    first = reply(shared, cid, "first agent message")
    second = reply(shared, cid, "second agent message")

    def messages(**kw: Any) -> list[tuple[str, Any, str | None]]:
        with shared.stream("GET", events_url(cid), headers=widget_headers(**kw.pop("headers", {})), params=kw) as r:
            reader = EventReader(r)
            while reader.next_event() is not None:
                pass
        return [e for e in reader.seen if e[0] == "message"]

    everything = messages(poll_s=0.2, max_s=1)
    assert [e[1]["seq"] for e in everything] == sorted(e[1]["seq"] for e in everything)
    assert everything[-1][1]["text"] == "second agent message"
    assert all(e[2] == str(e[1]["seq"]) for e in everything)

    resumed = messages(poll_s=0.2, max_s=1, headers={"Last-Event-ID": str(first["seq"])})
    assert [e[1]["id"] for e in resumed] == [second["id"]]
    assert [e[1]["id"] for e in messages(poll_s=0.2, max_s=1, after=first["seq"])] == [second["id"]]
    # a garbled Last-Event-ID is ignored (everything again), never an error
    assert len(messages(poll_s=0.2, max_s=1, headers={"Last-Event-ID": "garbage"})) == len(everything)


def test_events_of_an_unknown_conversation_are_404(shared: TestClient) -> None:
    assert_error(shared.get(events_url("conv_missing"), headers=widget_headers()), 404, "conversation_not_found")


# -- the state machine's 409s -------------------------------------------------------------------


def test_a_handoff_cannot_be_claimed_twice(shared: TestClient) -> None:
    _, handoff = handed_off(shared)
    claim(shared, handoff["id"], "agent_sam")
    r = shared.post(f"/v1/handoffs/{handoff['id']}/claim", json={"agent_id": "agent_kim"}, headers=AGENT)
    body = assert_error(r, 409, "conflict")
    assert "agent_sam" in body["error"]["message"]
    assert shared.get(f"/v1/handoffs/{handoff['id']}", headers=AGENT).json()["claimed_by"] == "agent_sam"


def test_no_reply_before_claim(shared: TestClient) -> None:
    cid, _ = handed_off(shared)
    r = shared.post(f"/v1/conversations/{cid}/agent-messages", json={"text": "hello"}, headers=AGENT)
    assert_error(r, 409, "conflict")
    assert all(m["role"] != "agent" for m in messages_of(shared, cid))


def test_no_reply_to_a_conversation_the_bot_has(shared: TestClient) -> None:
    cid = start(shared)["id"]
    r = shared.post(f"/v1/conversations/{cid}/agent-messages", json={"text": "hello"}, headers=AGENT)
    assert_error(r, 409, "conflict")


def test_no_reply_after_resolve_and_no_second_resolve_or_claim(shared: TestClient) -> None:
    cid, handoff = handed_off(shared)
    claim(shared, handoff["id"])
    resolve(shared, handoff["id"])
    r = shared.post(f"/v1/conversations/{cid}/agent-messages", json={"text": "one more thing"}, headers=AGENT)
    assert_error(r, 409, "conflict")
    r = shared.post(f"/v1/handoffs/{handoff['id']}/resolve", json={"resolved": True}, headers=AGENT)
    body = assert_error(r, 409, "conflict")
    assert "already resolved" in body["error"]["message"]
    r = shared.post(f"/v1/handoffs/{handoff['id']}/claim", json={"agent_id": "agent_kim"}, headers=AGENT)
    assert_error(r, 409, "conflict")


def test_no_resolve_before_claim(shared: TestClient) -> None:
    cid, handoff = handed_off(shared)
    r = shared.post(f"/v1/handoffs/{handoff['id']}/resolve", json={"resolved": True}, headers=AGENT)
    assert_error(r, 409, "conflict")
    assert shared.get(f"/v1/conversations/{cid}", headers=customer_headers(cid)).json()["status"] == "waiting_for_agent"


def test_unknown_ids_are_404(shared: TestClient) -> None:
    assert_error(shared.get("/v1/handoffs/ho_missing", headers=AGENT), 404, "handoff_not_found")
    r = shared.post("/v1/handoffs/ho_missing/claim", json={"agent_id": "a"}, headers=AGENT)
    assert_error(r, 404, "handoff_not_found")
    assert_error(
        shared.post("/v1/handoffs/ho_missing/resolve", json={"resolved": True}, headers=AGENT), 404, "handoff_not_found"
    )
    r = shared.post("/v1/conversations/conv_missing/agent-messages", json={"text": "hi"}, headers=AGENT)
    assert_error(r, 404, "conversation_not_found")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/handoffs/{hid}/claim", {}),
        ("/v1/handoffs/{hid}/claim", {"agent_id": ""}),
        ("/v1/handoffs/{hid}/claim", {"agent_id": "  "}),
        ("/v1/conversations/{cid}/agent-messages", {"text": ""}),
        ("/v1/conversations/{cid}/agent-messages", {"text": "   "}),
        ("/v1/conversations/{cid}/agent-messages", {"text": "x" * 4001}),
        ("/v1/handoffs/{hid}/resolve", {}),
        ("/v1/handoffs/{hid}/resolve", {"resolved": "maybe"}),
        ("/v1/handoffs/{hid}/resolve", {"resolved": True, "note": "x" * 4001}),
    ],
)
def test_invalid_bodies_are_422(shared: TestClient, path: str, body: dict[str, Any]) -> None:
    r = shared.post(path.format(hid="ho_any", cid="conv_any"), json=body, headers=AGENT)
    assert_error(r, 422, "invalid_request")


def test_a_4000_character_agent_reply_is_accepted(shared: TestClient) -> None:
    cid, handoff = handed_off(shared)
    claim(shared, handoff["id"])
    assert len(reply(shared, cid, "y" * 4000)["text"]) == 4000


# -- auth ---------------------------------------------------------------------------------------

AGENT_ROUTES = [
    ("GET", "/v1/handoffs", None),
    ("GET", "/v1/handoffs/{hid}", None),
    ("POST", "/v1/handoffs/{hid}/claim", {"agent_id": "agent_x"}),
    ("POST", "/v1/conversations/{cid}/agent-messages", {"text": "hello"}),
    ("POST", "/v1/handoffs/{hid}/resolve", {"resolved": True}),
]


@pytest.mark.parametrize(("method", "path", "body"), AGENT_ROUTES)
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (widget_headers(), 401),
        (bearer("not-a-token-at-all-0123456789"), 401),
        ({"Authorization": AGENT_TOKEN}, 401),  # no "Bearer "
        (bearer(CX_TOKEN), 403),
    ],
)
def test_agent_routes_need_the_agent_token(
    shared: TestClient, method: str, path: str, body: Any, headers: dict[str, str], status: int
) -> None:
    cid, handoff = handed_off(shared)
    r = shared.request(method, path.format(hid=handoff["id"], cid=cid), json=body, headers=headers)
    assert_error(r, status, "unauthorized" if status == 401 else "forbidden")
    # and nothing changed
    assert shared.get(f"/v1/handoffs/{handoff['id']}", headers=AGENT).json()["status"] == "waiting"


def test_the_admin_token_may_act_as_an_agent(shared: TestClient) -> None:
    _, handoff = handed_off(shared)
    r = shared.post(f"/v1/handoffs/{handoff['id']}/claim", json={"agent_id": "lead"}, headers=bearer(ADMIN_TOKEN))
    assert r.status_code == 200, r.text


def test_the_customer_cannot_post_as_an_agent(shared: TestClient) -> None:
    cid, handoff = handed_off(shared)
    claim(shared, handoff["id"])
    url = f"/v1/conversations/{cid}/agent-messages"
    r = shared.post(url, json={"text": "I am the agent"}, headers=widget_headers())
    assert_error(r, 401, "unauthorized")
    assert all(m["text"] != "I am the agent" for m in messages_of(shared, cid))


# -- the webhook, through the app -----------------------------------------------------------------


def test_a_handoff_posts_the_signed_packet_to_the_webhook(sample_data_dir: Path) -> None:
    secret = "whsec-app-test-0123456789"
    with (
        WebhookReceiver(secret) as rx,
        app_client(sample_data_dir, handoff_webhook_url=rx.url, handoff_webhook_secret=secret) as c,
    ):
        cid, handoff = handed_off(c, customer_id="cus_1001", customer_hash=customer_hash("cus_1001"))
        t0 = time.perf_counter()
        say(c, cid, "anyone?")  # no second handoff, no second delivery
        assert time.perf_counter() - t0 < 5
        [d] = rx.wait_for(1)
        time.sleep(0.2)
        assert len(rx.deliveries) == 1
    assert d.signature_ok
    assert d.headers["x-cxa-event"] == "handoff.created"
    packet = json.loads(d.body)
    assert packet["id"] == handoff["id"] and packet["conversation_id"] == cid
    assert set(packet["summary"]) >= SUMMARY_FIELDS
    assert OFF_TOPIC_QUESTION in [m["text"] for m in packet["transcript"]]
    assert packet["customer"]["id"] == "cus_1001"


def test_a_dead_webhook_never_fails_the_handoff(sample_data_dir: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with app_client(sample_data_dir, handoff_webhook_url=f"http://127.0.0.1:{port}/gone") as c:
        t0 = time.perf_counter()
        cid, _ = handed_off(c)
        assert time.perf_counter() - t0 < 5
        assert c.get(f"/v1/conversations/{cid}", headers=customer_headers(cid)).json()["status"] == "waiting_for_agent"
