"""The agent's copilot through the real app: a drafted reply for a handoff ([fixed] `{"text", "citations"}`) from an
approved answer, the customer's record or the help center; what the agent did with it (sent as is, edited,
ignored) and the time from claim to first reply with and without a draft, in /v1/insights/copilot."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.support import assert_error, customer_headers, say, start
from tests.conftest import AGENT_TOKEN, CX_TOKEN, bearer, customer_hash

AGENT = bearer(AGENT_TOKEN)
CX = bearer(CX_TOKEN)
GIFT_Q = "Do you offer gift wrapping?"
GIFT_A = "Yes: choose gift wrapping at checkout (£4 per item)."


def handed_off(client: TestClient, *texts: str, **conversation: Any) -> tuple[str, str]:
    cid = start(client, **conversation)["id"]
    for text in texts:
        turn = say(client, cid, text)
    r = client.post(f"/v1/conversations/{cid}/handoff", json={}, headers=customer_headers(cid))
    assert r.status_code == 200, r.text
    assert turn is not None
    return cid, r.json()["handoff"]["id"]


def claim(client: TestClient, hid: str) -> None:
    assert client.post(f"/v1/handoffs/{hid}/claim", json={"agent_id": "ana"}, headers=AGENT).status_code == 200


def suggestion(client: TestClient, hid: str) -> dict[str, Any]:
    r = client.get(f"/v1/handoffs/{hid}/suggestion", headers=AGENT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["text"], str) and isinstance(body["citations"], list)
    return body  # type: ignore[no-any-return]


def reply(client: TestClient, cid: str, text: str, suggestion_id: str | None = None) -> None:
    body: dict[str, Any] = {"text": text} | ({"suggestion_id": suggestion_id} if suggestion_id else {})
    r = client.post(f"/v1/conversations/{cid}/agent-messages", json=body, headers=AGENT)
    assert r.status_code == 201, r.text


def test_drafts_from_an_approved_answer_the_record_and_the_help_center(client: TestClient) -> None:
    r = client.post("/v1/approved-answers", json={"question": GIFT_Q, "answer": GIFT_A}, headers=CX)
    assert r.status_code == 201
    approved_id = r.json()["id"]
    _, hid = handed_off(client, "Could you gift wrap my order please?")  # under 0.88, over the copilot's 0.75
    s = suggestion(client, hid)
    assert s["text"] == GIFT_A and s["sources"] == ["approved"]
    assert [c["source_id"] for c in s["citations"]] == [f"approved:{approved_id}"]
    assert suggestion(client, hid)["id"] == s["id"]  # shown once while undecided

    _, hid = handed_off(client, "How long do PayPal refunds take?")
    s = suggestion(client, hid)
    assert s["sources"] == ["help_center"] and s["text"] and s["citations"]
    assert all("/" in c["source_id"] and c["snippet"] for c in s["citations"])  # help articles, quoted

    _, hid = handed_off(client, "Where is my order?", customer_id="cus_1001", customer_hash=customer_hash("cus_1001"))
    s = suggestion(client, hid)
    assert "account" in s["sources"], s
    assert any(c["source_id"].startswith("account:") for c in s["citations"]), s["citations"]

    _, hid = handed_off(client, "Are your sofas pet friendly?")
    assert suggestion(client, hid)["text"] == ""  # nothing to draft from


def test_what_agents_did_with_the_drafts_is_counted(client: TestClient) -> None:
    cases = []
    for _ in range(4):
        cid, hid = handed_off(client, "How long do PayPal refunds take?")
        claim(client, hid)
        cases.append((cid, hid, suggestion(client, hid)))
    (c1, _, s1), (c2, _, s2), (c3, h3, _), (c4, _, _) = cases
    reply(client, c1, s1["text"], s1["id"])  # as is
    reply(client, c2, "Hi! " + s2["text"], s2["id"])  # edited
    r = client.post(f"/v1/handoffs/{h3}/suggestion/ignore", headers=AGENT)
    assert r.status_code == 200 and r.json()["outcome"] == "ignored"
    reply(client, c3, "Let me look into that for you.")
    reply(client, c4, "I'll check.")  # replied without it: ignored
    cid, hid = handed_off(client, "I have a question about my sofa")  # claimed and answered with no draft shown
    claim(client, hid)
    reply(client, cid, "Happy to help.")

    r = client.get("/v1/insights/copilot", headers=CX)
    assert r.status_code == 200, r.text
    f = r.json()
    assert (f["shown"], f["sent_as_is"], f["edited"], f["ignored"], f["undecided"]) == (4, 1, 1, 2, 0), f
    assert f["claim_to_first_reply_with"]["handoffs"] == 4 and f["claim_to_first_reply_without"]["handoffs"] == 1
    assert f["claim_to_first_reply_with"]["median_s"] >= 0


def test_errors_and_roles(client: TestClient) -> None:
    assert_error(client.get("/v1/handoffs/ho_nope/suggestion", headers=AGENT), 404, "handoff_not_found")
    assert_error(client.post("/v1/handoffs/ho_nope/suggestion/ignore", headers=AGENT), 404, "handoff_not_found")
    _, hid = handed_off(client, "How long do PayPal refunds take?")
    assert_error(client.get(f"/v1/handoffs/{hid}/suggestion", headers=CX), 403)
    assert_error(client.get("/v1/insights/copilot", headers=AGENT), 403)
    assert client.post(f"/v1/handoffs/{hid}/suggestion/ignore", headers=AGENT).json() is None  # none shown yet
