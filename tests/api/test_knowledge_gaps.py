"""Knowledge gaps through the real app: questions the help center does not cover, handed off and answered by an
agent, come back grouped, worst first, with the agents' answers; a gap's draft becomes an approved answer, after
which the gap is covered and the next customer gets the answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.support import app_client, assert_error, customer_headers, say, start
from tests.conftest import AGENT_TOKEN, CX_TOKEN, bearer


@pytest.fixture
def client(sample_data_dir: Path) -> Iterator[TestClient]:
    """The loop is fed by handoffs: questions the help center does not cover must be handed off here, so the turns
    are handed off below p 0.5 (`handoff_below`). At the default threshold (0.11) a near page's passage is quoted
    for some of them (gift wrapping -> gift cards; "student discount" -> the page on how discounts are shared,
    p 0.37), the open gap noted in issue 18: the loop, not the threshold, is under test here."""
    with app_client(sample_data_dir, policy={"handoff_below": 0.5}) as c:
        yield c


AGENT = bearer(AGENT_TOKEN)
CX = bearer(CX_TOKEN)
GIFT = ["Do you offer gift wrapping?", "Can you gift wrap my order?", "Is gift wrapping available at checkout?"]
GIFT_REPLY = "Thanks for waiting! Yes, we gift wrap for £4 per item: tick 'gift wrap' at checkout. Anything else?"
STUDENT = ["Do you have a student discount?", "Is there a discount for students?"]
STUDENT_REPLY = "We don't offer a student discount at the moment, but Larkspur Plus members get 10% off."


def handed_off_and_answered(client: TestClient, question: str, reply: str) -> str:
    cid = start(client)["id"]
    turn = say(client, cid, question)
    assert turn["handoff"] is not None, turn  # the help center does not cover it
    hid = turn["handoff"]["id"]
    assert client.post(f"/v1/handoffs/{hid}/claim", json={"agent_id": "ana"}, headers=AGENT).status_code == 200
    r = client.post(f"/v1/conversations/{cid}/agent-messages", json={"text": reply}, headers=AGENT)
    assert r.status_code == 201, r.text
    assert client.post(f"/v1/handoffs/{hid}/resolve", json={"resolved": True}, headers=AGENT).status_code == 200
    return cid


def gaps(client: TestClient, **params: str) -> dict[str, Any]:
    r = client.get("/v1/insights/knowledge-gaps", params=params, headers=CX)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_gaps_grouped_worst_first_with_the_agents_answers(client: TestClient) -> None:
    gift = [handed_off_and_answered(client, q, GIFT_REPLY) for q in GIFT]
    student = [handed_off_and_answered(client, q, STUDENT_REPLY) for q in STUDENT]
    handed_off_and_answered(client, "Is there a showroom near London?", "Not yet, sorry.")  # alone: no gap
    answered = say(client, start(client)["id"], "How do I turn on two-factor authentication for my account?")
    assert answered["handoff"] is None

    report = gaps(client)
    assert {"since", "until", "items"} <= set(report)
    items = report["items"]
    assert len(items) == 2, [i["label"] for i in items]
    first, second = items
    assert {"id", "label", "conversations", "examples"} <= set(first)
    assert first["conversations"] == 3 and sorted(first["conversation_ids"]) == sorted(gift)
    assert set(first["examples"]) == set(GIFT) and first["label"] in GIFT
    assert first["customers"] == 3 and first["reasons"] == {"low_confidence": 3}
    assert first["agent_answers"] == [GIFT_REPLY] and first["trend"] == "new"
    assert first["covered_by"] is None and sum(first["daily"]) == 3 and len(first["daily"]) == 14
    assert second["conversations"] == 2 and sorted(second["conversation_ids"]) == sorted(student)
    assert first["id"].startswith("gap_") and first["id"] != second["id"]
    assert gaps(client)["items"][0]["id"] == first["id"]  # stable from one report to the next

    # a period before any of it: nothing
    before = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    assert gaps(client, until=before)["items"] == []


def test_the_draft_becomes_an_approved_answer_and_covers_the_gap(client: TestClient) -> None:
    for q in GIFT:
        handed_off_and_answered(client, q, GIFT_REPLY)
    gap = gaps(client)["items"][0]
    r = client.post(f"/v1/insights/knowledge-gaps/{gap['id']}/draft", json={"kind": "approved_answer"}, headers=CX)
    assert r.status_code == 200, r.text
    draft = r.json()
    assert draft["gap_id"] == gap["id"] and draft["written_by"] == "extractive"
    assert draft["question"] in GIFT and set(draft["variants"]) == set(GIFT) - {draft["question"]}
    assert draft["answer"] == "Yes, we gift wrap for £4 per item: tick 'gift wrap' at checkout."  # no pleasantries
    assert draft["source_conversation_id"] in gap["conversation_ids"]

    outline = client.post(
        f"/v1/insights/knowledge-gaps/{gap['id']}/draft", json={"kind": "article_outline"}, headers=CX
    ).json()
    assert outline["outline"].startswith("# ") and "## What customers ask" in outline["outline"]
    assert "Yes, we gift wrap for £4 per item" in outline["outline"]

    body = {k: draft[k] for k in ("question", "answer", "variants", "source_conversation_id")}
    made = client.post("/v1/approved-answers", json=body, headers=CX)
    assert made.status_code == 201, made.text
    covered = gaps(client)["items"][0]
    assert covered["id"] == gap["id"] and covered["covered_by"] == f"approved:{made.json()['id']}"
    assert covered["score"] < gap["score"]

    turn = say(client, start(client)["id"], "Can you gift wrap my order?")
    assert turn["reply"]["mode"] == "approved" and turn["handoff"] is None


def test_an_answer_rated_badly_is_a_gap_too(client: TestClient) -> None:
    for q in ("How do I change the email address on my account?", "How can I change my account email address?"):
        cid = start(client)["id"]
        assert say(client, cid, q)["handoff"] is None  # answered...
        r = client.post(
            f"/v1/conversations/{cid}/feedback", json={"csat": 1, "resolved": False}, headers=customer_headers(cid)
        )
        assert r.status_code == 200, r.text  # ...badly
    [gap] = gaps(client)["items"]
    assert gap["conversations"] == 2 and gap["reasons"] == {"rated_badly": 2}, gap


def test_errors_and_roles(client: TestClient) -> None:
    assert_error(client.get("/v1/insights/knowledge-gaps", headers=AGENT), 403)
    assert_error(client.get("/v1/insights/knowledge-gaps"), 401)
    r = client.post("/v1/insights/knowledge-gaps/gap_nope/draft", json={"kind": "approved_answer"}, headers=CX)
    assert_error(r, 404, "gap_not_found")
    r = client.post("/v1/insights/knowledge-gaps/gap_nope/draft", json={"kind": "poem"}, headers=CX)
    assert_error(r, 422)
    assert_error(
        client.get("/v1/insights/knowledge-gaps", params={"since": "2030-01-02", "until": "2030-01-01"}, headers=CX),
        422,
    )


def test_the_configured_model_writes_the_draft_when_its_figures_hold(sample_data_dir) -> None:  # noqa: ANN001
    from tests.api.support import app_client
    from tests.fakes import Call, FakeChatModel

    written = ["Gift wrapping costs £4 per item: choose it at checkout.", "Gift wrapping is £6 per item."]

    def model(call: Call) -> str:
        system = str(call.messages[0].content)
        if "standard answer" in system:
            return written.pop(0)
        if "outline help-center articles" in system:
            return "# Gift wrapping\n\n## How to get it\n- Tick gift wrap at checkout: £4 per item."
        return "I don't know."

    overrides = {"insights": {"draft": "model"}, "policy": {"answerable_share": 0.5}}  # handed off: see `client`
    with app_client(sample_data_dir, chat_model=FakeChatModel(reply=model), **overrides) as client:
        for q in GIFT:
            handed_off_and_answered(client, q, GIFT_REPLY)
        gap = gaps(client)["items"][0]
        url = f"/v1/insights/knowledge-gaps/{gap['id']}/draft"
        first = client.post(url, json={"kind": "approved_answer"}, headers=CX).json()
        assert (
            first["written_by"] == "model"
            and first["answer"] == "Gift wrapping costs £4 per item: choose it at checkout."
        )
        invented = client.post(url, json={"kind": "approved_answer"}, headers=CX).json()  # £6: not what agents said
        assert invented["written_by"] == "extractive" and "£4 per item" in invented["answer"]
        outline = client.post(url, json={"kind": "article_outline"}, headers=CX).json()
        assert outline["written_by"] == "model" and outline["outline"].startswith("# Gift wrapping")
