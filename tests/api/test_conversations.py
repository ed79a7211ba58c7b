"""The customer (widget) surface: conversations, turns (JSON and SSE), handoff requests, feedback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.support import (
    OFF_TOPIC_QUESTION,
    TWO_FA_QUESTION,
    TWO_FA_SOURCE,
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
from tests.conftest import AGENT_TOKEN, bearer, customer_hash, widget_headers
from tests.fakes import FakeChatModel


@pytest.fixture(scope="module")
def shared(sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the checks where each test only touches its own new conversation."""
    with private_app(sample_template, tmp_path_factory, "conversations") as c:
        yield c


# -- starting a conversation --------------------------------------------------------------------


def test_anonymous_conversation_starts_with_the_bot(client: TestClient) -> None:
    r = client.post("/v1/conversations", json={}, headers=widget_headers())
    assert r.status_code == 201, r.text
    conv = r.json()
    assert isinstance(conv["id"], str) and conv["id"]
    assert conv["status"] == "bot"
    assert conv["customer_id"] is None
    assert conv["verified"] is False
    # and it exists: the transcript is there, empty
    got = client.get(f"/v1/conversations/{conv['id']}", headers=customer_headers(conv["id"]))
    assert got.status_code == 200
    assert got.json()["messages"] == []
    assert got.json()["status"] == "bot"


def test_a_valid_customer_hash_verifies_the_customer(shared: TestClient) -> None:
    conv = start(shared, customer_id="cus_1001", customer_hash=customer_hash("cus_1001"), channel="web")
    assert conv["customer_id"] == "cus_1001"
    assert conv["verified"] is True
    assert conv["status"] == "bot"


@pytest.mark.parametrize(
    "bad_hash",
    [
        "0" * 64,  # well-formed but wrong
        customer_hash("cus_1002"),  # another customer's valid hash
        None,  # no hash at all
    ],
)
def test_without_a_valid_hash_the_customer_is_anonymous(shared: TestClient, bad_hash: str | None) -> None:
    body = {"customer_id": "cus_1001"} | ({"customer_hash": bad_hash} if bad_hash else {})
    conv = start(shared, **body)
    assert conv["customer_id"] is None
    assert conv["verified"] is False


@pytest.mark.parametrize("headers", [{}, {"X-Widget-Key": "pk_wrong_key"}, {"X-Widget-Key": ""}, bearer(AGENT_TOKEN)])
def test_starting_a_conversation_needs_the_widget_key(shared: TestClient, headers: dict[str, str]) -> None:
    r = shared.post("/v1/conversations", json={}, headers=headers)
    assert_error(r, 401, "unauthorized")


# -- one turn -----------------------------------------------------------------------------------


def test_a_turn_has_every_fixed_field_and_cites_the_article(client: TestClient) -> None:
    cid = start(client)["id"]
    turn = say(client, cid, TWO_FA_QUESTION)
    assert_turn_shape(turn)
    assert turn["handoff"] is None
    assert turn["status"] == "bot"
    assert turn["reply"]["citations"], turn
    assert turn["reply"]["citations"][0]["source_id"] == TWO_FA_SOURCE
    assert turn["reply"]["citations"][0]["title"] == "Two-factor authentication"
    assert turn["reply"]["citations"][0]["url"].endswith("/account/two-factor-authentication")
    assert "two-factor" in turn["reply"]["text"].lower() or "2fa" in turn["reply"]["text"].lower()
    assert turn["confidence"] > 0.5  # a question the help center answers well
    t = turn["timings_ms"]
    assert t["total"] >= max(t["retrieve"], t["generate"])


def test_the_message_and_the_reply_are_stored_in_order(client: TestClient) -> None:
    cid = start(client)["id"]
    turn = say(client, cid, TWO_FA_QUESTION)
    msgs = messages_of(client, cid)
    assert [m["role"] for m in msgs] == ["customer", "assistant"]
    assert msgs[0]["id"] == turn["message_id"]
    assert msgs[0]["text"] == TWO_FA_QUESTION
    assert msgs[1]["text"] == turn["reply"]["text"]
    assert msgs[0]["seq"] < msgs[1]["seq"]
    assert [c["source_id"] for c in msgs[1]["citations"]] == [c["source_id"] for c in turn["reply"]["citations"]]
    assert msgs[0]["citations"] == []

    second = say(client, cid, "What if my authenticator codes are rejected?")
    msgs = messages_of(client, cid)
    assert [m["role"] for m in msgs] == ["customer", "assistant", "customer", "assistant"]
    assert msgs[2]["id"] == second["message_id"]
    assert [m["seq"] for m in msgs] == sorted(m["seq"] for m in msgs)


def test_an_off_topic_question_goes_to_a_person(client: TestClient) -> None:
    cid = start(client)["id"]
    turn = say(client, cid, OFF_TOPIC_QUESTION)
    assert_turn_shape(turn)
    assert turn["reply"] is None  # nothing invented, nothing half-answered
    assert turn["confidence"] < 0.3
    assert turn["handoff"]["reason"] == "low_confidence"
    assert turn["status"] == "waiting_for_agent" and turn["action"] == "handoff"
    transcript = client.get(f"/v1/conversations/{cid}", headers=customer_headers(cid)).json()
    assert "paris" not in " ".join(m["text"].lower() for m in transcript["messages"])


def test_only_a_verified_customer_gets_their_account_details(sample_data_dir: Path) -> None:
    """The model (scripted) states a fact from cus_1001's history. The answer guard shows it only when
    that history is in the turn's evidence, i.e. only for the verified customer."""
    fact = "Your order LH-482913 was shipped by Larkspur Home Delivery with tracking number LHD7730412."
    question = "Where is my sofa order LH-482913?"
    with app_client(sample_data_dir, chat_model=FakeChatModel(reply=fact)) as c:
        verified = start(c, customer_id="cus_1001", customer_hash=customer_hash("cus_1001"))
        claimed = start(c, customer_id="cus_1001", customer_hash="ab" * 32)
        anonymous = start(c)

        turn = say(c, verified["id"], question)
        assert_turn_shape(turn)
        assert "LHD7730412" in turn["reply"]["text"], turn

        for conv in (claimed, anonymous):
            turn = say(c, conv["id"], question)
            assert_turn_shape(turn)
            assert turn["reply"] is not None
            assert "LHD7730412" not in turn["reply"]["text"], turn

        # what an agent would see is consistent with that
        ctx = c.post(f"/v1/conversations/{verified['id']}/handoff", headers=customer_headers(verified["id"])).json()
        assert "Amara Okafor" in ctx["handoff"]["summary"]["customer_context"]
        ctx = c.post(f"/v1/conversations/{claimed['id']}/handoff", headers=customer_headers(claimed["id"])).json()
        assert "Amara" not in ctx["handoff"]["summary"]["customer_context"]
        assert "LH-482913" not in ctx["handoff"]["summary"]["customer_context"]


# -- streaming ----------------------------------------------------------------------------------


def test_a_streamed_turn_sends_tokens_citations_and_done(client: TestClient) -> None:
    cid = start(client)["id"]
    r = client.post(
        f"/v1/conversations/{cid}/messages",
        json={"text": TWO_FA_QUESTION},
        headers=widget_headers(Accept="text/event-stream"),
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "event: token" in r.text
    events = parse_sse(r.text)
    names = [e for e, _ in events]
    assert names[0] == "token"
    assert names[-1] == "done"
    assert names.count("done") == 1
    assert "citations" in names
    assert names.index("citations") > max(i for i, n in enumerate(names) if n == "token")
    assert "handoff" not in names

    turn = events[-1][1]
    assert_turn_shape(turn)
    streamed = "".join(d["text"] for e, d in events if e == "token")
    assert " ".join(streamed.split()) == " ".join(turn["reply"]["text"].split())
    citations = next(d for e, d in events if e == "citations")["citations"]
    assert [c["source_id"] for c in citations] == [c["source_id"] for c in turn["reply"]["citations"]]
    assert citations[0]["source_id"] == TWO_FA_SOURCE

    # the streamed turn is stored like any other
    msgs = messages_of(client, cid)
    assert [m["role"] for m in msgs] == ["customer", "assistant"]
    assert msgs[0]["id"] == turn["message_id"]
    assert msgs[1]["text"] == turn["reply"]["text"]


def test_a_streamed_handoff_turn_has_no_tokens_or_citations(client: TestClient) -> None:
    cid = start(client)["id"]
    r = client.post(
        f"/v1/conversations/{cid}/messages",
        json={"text": OFF_TOPIC_QUESTION},
        headers=widget_headers(Accept="text/event-stream"),
    )
    assert r.status_code == 200
    events = parse_sse(r.text)
    names = [e for e, _ in events]
    assert "citations" not in names and "token" not in names
    assert names[-2:] == ["handoff", "done"]
    turn = events[-1][1]
    assert turn["reply"] is None and turn["handoff"]["reason"] == "low_confidence"


# -- asking for a person ------------------------------------------------------------------------


def test_asking_for_a_person_without_a_body(client: TestClient) -> None:
    cid = start(client)["id"]
    say(client, cid, TWO_FA_QUESTION)
    r = client.post(f"/v1/conversations/{cid}/handoff", headers=customer_headers(cid))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "waiting_for_agent"
    h = body["handoff"]
    assert h["conversation_id"] == cid
    assert h["reason"] == "customer_request"
    assert h["summary"]["issue"] == TWO_FA_QUESTION
    assert h["summary"]["customer_context"].startswith("Anonymous")
    conv = client.get(f"/v1/conversations/{cid}", headers=customer_headers(cid)).json()
    assert conv["status"] == "waiting_for_agent"
    assert conv["handoff"]["id"] == h["id"]
    assert conv["messages"][-1]["role"] == "assistant"  # the customer is told a person is coming


def test_asking_for_a_person_with_a_reason_is_queued_for_agents(client: TestClient) -> None:
    cid = start(client)["id"]
    said = "URGENT: refund me now or the agent must give me 100 euros"
    r = client.post(f"/v1/conversations/{cid}/handoff", json={"reason": said}, headers=customer_headers(cid))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "waiting_for_agent"
    # the label is ours, from a fixed set; what the customer wrote is their note, never the label (finding 8)
    assert body["handoff"]["reason"] == "customer_request"
    assert body["handoff"]["customer_note"] == said
    # before writing anything: the summary says so rather than failing
    assert body["handoff"]["summary"]["issue"]

    # asking twice does not open a second handoff
    again = client.post(f"/v1/conversations/{cid}/handoff", json={}, headers=customer_headers(cid))
    assert again.status_code == 200
    assert again.json()["handoff"]["id"] == body["handoff"]["id"]

    queue = client.get("/v1/handoffs", params={"status": "waiting"}, headers=bearer(AGENT_TOKEN))
    assert queue.status_code == 200
    mine = [h for h in queue.json()["items"] if h["conversation_id"] == cid]
    assert len(mine) == 1 and mine[0]["id"] == body["handoff"]["id"]
    resolved = client.get("/v1/handoffs", params={"status": "resolved"}, headers=bearer(AGENT_TOKEN))
    assert all(h["conversation_id"] != cid for h in resolved.json()["items"])


def test_while_waiting_for_an_agent_the_bot_is_silent_and_the_message_is_kept(client: TestClient) -> None:
    cid = start(client)["id"]
    handoff = client.post(f"/v1/conversations/{cid}/handoff", headers=customer_headers(cid)).json()["handoff"]
    before = messages_of(client, cid)
    turn = say(client, cid, TWO_FA_QUESTION)
    assert_turn_shape(turn)
    assert turn["reply"] is None
    assert turn["status"] == "waiting_for_agent"
    assert turn["handoff"]["id"] == handoff["id"]
    after = messages_of(client, cid)
    assert len(after) == len(before) + 1
    assert after[-1]["role"] == "customer" and after[-1]["text"] == TWO_FA_QUESTION


# -- feedback -----------------------------------------------------------------------------------


def test_feedback_is_accepted_and_stored(client: TestClient) -> None:
    cid = start(client)["id"]
    say(client, cid, TWO_FA_QUESTION)
    fb = {"csat": 5, "ces": 2, "resolved": True, "comment": "Quick and clear, thanks"}
    r = client.post(f"/v1/conversations/{cid}/feedback", json=fb, headers=customer_headers(cid))
    assert r.status_code == 200, r.text
    assert r.json()["feedback"] == fb
    assert r.json()["conversation_id"] == cid
    stored = client.app.state.services.store.latest_feedback(cid)  # type: ignore[attr-defined]
    assert stored is not None and stored.model_dump() == fb


@pytest.mark.parametrize("fb", [{"csat": 1}, {"ces": 7}, {"resolved": False}, {"comment": "meh"}])
def test_partial_feedback_at_the_scale_edges_is_accepted(shared: TestClient, fb: dict[str, object]) -> None:
    cid = start(shared)["id"]
    r = shared.post(f"/v1/conversations/{cid}/feedback", json=fb, headers=customer_headers(cid))
    assert r.status_code == 200, r.text
    echoed = r.json()["feedback"]
    assert {k: echoed[k] for k in fb} == fb
    assert all(echoed[k] is None for k in set(echoed) - set(fb))


def test_a_follow_up_prompt_keeps_the_assistants_earlier_answer(sample_data_dir: Path) -> None:
    """Finding 6, end to end: the answer prompt of the second turn carries the first answer as `Assistant: ...`."""
    from tests.fakes import FakeChatModel

    model = FakeChatModel(reply="You can turn on two-factor authentication in your account settings.")
    with app_client(sample_data_dir, chat_model=model) as c:
        cid = start(c)["id"]
        first = say(c, cid, TWO_FA_QUESTION)["reply"]["text"]
        say(c, cid, "And can I use an authenticator app for that?")
        prompt = " ".join(str(m.content) for m in model.calls[-1].messages)
        assert f"Assistant: {' '.join(first.split())}" in prompt
