"""Approved answers through the real app: the [fixed] routes of API.md, validation and flags, and the engine serving
one verbatim (reply.mode `approved`, cited as `approved:<id>`, its hit counted) above the threshold, using it as
one more source below it, never serving a retired one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.support import assert_error, assert_turn_shape, customer_headers, say, start
from tests.conftest import ADMIN_TOKEN, AGENT_TOKEN, CX_TOKEN, bearer, widget_headers

AGENT = bearer(AGENT_TOKEN)
CX = bearer(CX_TOKEN)
GIFT_Q = "Do you offer gift wrapping?"
GIFT_A = "Yes: choose gift wrapping at checkout (£4 per item). We add a gift receipt without prices."


def create(client: TestClient, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    body = {"question": GIFT_Q, "answer": GIFT_A} | body
    r = client.post("/v1/approved-answers", json=body, headers=headers or AGENT)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def listed(client: TestClient, **params: str) -> list[dict[str, Any]]:
    r = client.get("/v1/approved-answers", params=params, headers=CX)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


def test_create_list_edit_retire_with_the_fixed_fields(client: TestClient) -> None:
    made = create(client, variants=["Can you gift wrap my order?", "  "], review_at="2999-01-01T00:00:00")
    assert {"id", "question", "answer", "variants", "hits"} <= set(made)
    assert made["question"] == GIFT_Q and made["answer"] == GIFT_A
    assert made["variants"] == ["Can you gift wrap my order?"] and made["hits"] == 0
    assert made["approved_by"] == "agent" and made["status"] == "active" and made["stale"] is False
    assert [a["id"] for a in listed(client)] == [made["id"]]

    r = client.put(
        f"/v1/approved-answers/{made['id']}", json={"answer": "Yes, for £4 an item.", "approved_by": "ana"}, headers=CX
    )
    assert r.status_code == 200, r.text
    assert r.json()["answer"] == "Yes, for £4 an item." and r.json()["approved_by"] == "ana"
    assert r.json()["variants"] == ["Can you gift wrap my order?"]

    r = client.delete(f"/v1/approved-answers/{made['id']}", headers=AGENT)
    assert r.status_code == 204 and r.content == b""
    assert listed(client) == []
    retired = listed(client, status="retired")
    assert [a["id"] for a in retired] == [made["id"]] and retired[0]["retired_at"]
    assert_error(client.put(f"/v1/approved-answers/{made['id']}", json={"answer": "x y z"}, headers=CX), 409)
    assert client.delete(f"/v1/approved-answers/{made['id']}", headers=CX).status_code == 204  # idempotent


def test_roles(client: TestClient) -> None:
    assert_error(client.get("/v1/approved-answers"), 401)
    assert_error(client.get("/v1/approved-answers", headers=widget_headers()), 401)
    assert client.get("/v1/approved-answers", headers=bearer(ADMIN_TOKEN)).status_code == 200
    assert_error(client.delete("/v1/approved-answers/aa_nope", headers=AGENT), 404, "approved_answer_not_found")
    assert_error(client.put("/v1/approved-answers/aa_nope", json={"answer": "a b c"}, headers=AGENT), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"question": "", "answer": "fine"},
        {"question": "   ", "answer": "fine"},
        {"question": "ok?", "answer": " \n "},
        {"question": "ok?", "answer": "x" * 4001},
        {"question": "q" * 501, "answer": "fine"},
        {"question": "ok?"},
        {"question": "ok?", "answer": "fine", "variants": ["v"] * 51},
        {"question": "ok?", "answer": "fine", "review_at": "next week"},
        {"question": "ok?", "answer": "fine", "source_conversation_id": "../../etc"},
        {"question": "?!", "answer": "fine"},
    ],
)
def test_bad_input_is_a_clear_4xx(client: TestClient, body: dict[str, Any]) -> None:
    r = client.post("/v1/approved-answers", json=body, headers=AGENT)
    assert_error(r, 422)
    assert listed(client) == []


def test_a_duplicate_question_is_a_409_naming_the_first(client: TestClient) -> None:
    first = create(client)
    body = assert_error(
        client.post(
            "/v1/approved-answers", json={"question": "do you offer GIFT-wrapping", "answer": "No."}, headers=CX
        ),
        409,
        "duplicate_question",
    )
    assert first["id"] in body["error"]["message"]
    as_variant = {"question": "Is gift wrap available?", "answer": "No.", "variants": [GIFT_Q.upper()]}
    assert_error(client.post("/v1/approved-answers", json=as_variant, headers=CX), 409, "duplicate_question")
    client.delete(f"/v1/approved-answers/{first['id']}", headers=CX)
    create(client)  # a retired answer's question is free again


def test_markup_is_stored_and_served_as_text(client: TestClient) -> None:
    answer = 'Yes! <script>alert("x")</script><b>bold</b> see <a href="javascript:x">here</a>'
    made = create(client, answer=answer)
    assert made["answer"] == answer
    assert "markup" in {f["kind"] for f in made["flags"]}
    turn = say(client, start(client)["id"], GIFT_Q)
    assert turn["reply"]["mode"] == "approved" and turn["reply"]["text"] == answer


def test_a_contradiction_with_the_help_center_is_flagged(client: TestClient) -> None:
    """The sample help center says card refunds take 5-10 business days."""
    made = create(
        client,
        question="How long does a refund take to reach my card?",
        answer="Card refunds reach your account within 2 business days after we receive the item.",
    )
    kinds = [f["kind"] for f in made["flags"]]
    assert "contradicts_help_center" in kinds, made["flags"]
    flag = next(f for f in made["flags"] if f["kind"] == "contradicts_help_center")
    assert flag["ref"].startswith("returns-refunds/")
    assert made["sources"] and made["sources"][0]["doc_hash"]
    cleared = client.put(f"/v1/approved-answers/{made['id']}", json={"clear_flags": True}, headers=CX).json()
    assert cleared["flags"] == []
    agreeing = create(
        client,
        question="How long do PayPal refunds take?",
        answer="PayPal refunds usually arrive within 3-5 business days once the refund is issued.",
    )
    assert "contradicts_help_center" not in [f["kind"] for f in agreeing["flags"]], agreeing["flags"]


def test_a_missing_source_conversation_is_a_flag_not_an_error(client: TestClient) -> None:
    made = create(client, source_conversation_id="conv_deleted_long_ago")
    assert [f["kind"] for f in made["flags"]] == ["source_conversation_missing"]
    conv = start(client)["id"]
    ok = create(client, question="Can I pay with a gift card and a card together?", source_conversation_id=conv)
    assert ok["source_conversation_id"] == conv
    assert "source_conversation_missing" not in [f["kind"] for f in ok["flags"]]


def test_a_similar_question_is_flagged(client: TestClient) -> None:
    first = create(client)
    similar = create(client, question="Do you offer a gift wrapping service?", answer="Ask in store.")
    flag = next(f for f in similar["flags"] if f["kind"] == "similar_question")
    assert flag["ref"] == first["id"]


def test_stale_past_review_date_or_when_its_article_changes(client: TestClient) -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    old = create(client, review_at=past)
    assert old["stale"] is True and "review date" in old["stale_reasons"][0]
    assert [a["id"] for a in listed(client, stale="true")] == [old["id"]]

    rests = create(client, question="How do I start a return?", answer="From your orders page: pick the item.")
    source = rests["sources"][0]["source_id"]
    assert rests["stale"] is False
    doc = {"source_id": source, "title": "Returns", "text": "# Returns\n\nReturns now start in the app only."}
    assert client.post("/v1/knowledge/documents", json=doc, headers=bearer(ADMIN_TOKEN)).status_code == 201
    now = client.get(f"/v1/approved-answers/{rests['id']}", headers=CX).json()
    assert now["stale"] is True and "changed" in now["stale_reasons"][0], now
    again = client.put(f"/v1/approved-answers/{rests['id']}", json={"variants": ["how to return"]}, headers=CX).json()
    assert again["stale"] is False, again  # an edit approves it again


def test_a_matching_question_gets_the_answer_verbatim_and_counts_a_hit(client: TestClient) -> None:
    made = create(client, variants=["Can my order come gift wrapped?"])
    cid = start(client)["id"]
    turn = say(client, cid, "do you offer gift wrapping")
    assert_turn_shape(turn)
    assert turn["reply"]["mode"] == "approved" and turn["reply"]["text"] == GIFT_A
    [citation] = turn["reply"]["citations"]
    assert citation["source_id"] == f"approved:{made['id']}" and citation["url"] is None
    assert turn["handoff"] is None and turn["confidence"] >= 0.88
    assert "approved" in turn["timings_ms"]
    after = client.get(f"/v1/approved-answers/{made['id']}", headers=CX).json()
    assert after["hits"] == 1 and after["last_used_at"]
    [record] = client.app.state.services.store.list_turns(cid)  # type: ignore[attr-defined]
    assert record.reply_mode == "approved" and record.approved_id == made["id"]
    assert record.approved_score is not None and record.approved_score >= 0.88 and "approved" in record.timings_ms

    # asked again in the same conversation: the approved answer did not help, the normal pipeline answers
    again = say(client, cid, "Can my order come gift wrapped?")
    assert again["reply"] is None or again["reply"]["mode"] != "approved"

    # streamed: the same reply, as tokens then citations
    streamed = start(client)["id"]
    r = client.post(
        f"/v1/conversations/{streamed}/messages",
        json={"text": GIFT_Q},
        headers=customer_headers(streamed, Accept="text/event-stream"),
    )
    assert r.status_code == 200 and f"approved:{made['id']}" in r.text
    assert client.get(f"/v1/approved-answers/{made['id']}", headers=CX).json()["hits"] == 2


def test_below_the_threshold_it_is_one_more_source_and_a_retired_one_is_never_served(client: TestClient) -> None:
    made = create(client)
    unrelated = say(client, start(client)["id"], "What is the capital of France?")
    assert unrelated["reply"] is None or unrelated["reply"]["mode"] != "approved"
    client.delete(f"/v1/approved-answers/{made['id']}", headers=CX)
    turn = say(client, start(client)["id"], GIFT_Q)
    assert turn["reply"] is None or turn["reply"]["mode"] != "approved"
    cited = [c["source_id"] for c in (turn["reply"] or {}).get("citations", [])]
    assert f"approved:{made['id']}" not in cited
    assert client.get(f"/v1/approved-answers/{made['id']}", headers=CX).json()["hits"] == 0


def test_below_the_threshold_the_answer_is_a_cited_source(client: TestClient) -> None:
    made = create(client)
    turn = say(client, start(client)["id"], "Buying a present for my mum: could you wrap the gift for me?")
    assert turn["reply"] is not None and turn["reply"]["mode"] != "approved", turn["reply"]
    assert f"approved:{made['id']}" in [c["source_id"] for c in turn["reply"]["citations"]], turn["reply"]
    assert "gift wrapping at checkout" in turn["reply"]["text"]
    assert client.get(f"/v1/approved-answers/{made['id']}", headers=CX).json()["hits"] == 0  # only verbatim counts
