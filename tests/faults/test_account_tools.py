"""Account answers with an OpenAI-compatible model: the model calls the account tools by function calling
(over real HTTP, against the fake server that speaks the tool-call protocol), the results go back to it, and
what it writes is shown only where the results support it; a model that invents or fails leaves the customer
with the template answer, never without the facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from assistant.store.tables import LLMCallRow
from tests.api.support import say, start
from tests.conftest import ADMIN_TOKEN, bearer, customer_hash
from tests.faults.fake_openai import FakeOpenAI

ADMIN = bearer(ADMIN_TOKEN)


def _customer(c: TestClient, cid: str, order_id: str) -> str:
    now = datetime.now(UTC)
    assert c.put(
        f"/v1/customers/{cid}", json={"name": "Tool Tester", "attributes": {"country": "GB"}}, headers=ADMIN
    ).status_code in (200, 201)
    slot = f"{(now + timedelta(days=3)).date().isoformat()} 12:00-16:00"
    for e in (
        {
            "type": "order_placed",
            "at": (now - timedelta(days=4)).isoformat(),
            "data": {
                "order_id": order_id,
                "items": [{"name": "Oak sideboard", "qty": 1, "price": 450}],
                "total": 450.0,
                "currency": "GBP",
            },
        },
        {
            "type": "order_shipped",
            "at": (now - timedelta(days=1)).isoformat(),
            "data": {"order_id": order_id, "carrier": "Home Delivery", "tracking": "HDX55501", "delivery_slot": slot},
        },
    ):
        assert c.post(f"/v1/customers/{cid}/events", json=e, headers=ADMIN).status_code == 201
    return str(start(c, customer_id=cid, customer_hash=customer_hash(cid))["id"])


def test_the_model_calls_the_tools_and_words_the_answer(openai_client: TestClient, fake_openai: FakeOpenAI) -> None:
    fake_openai.set("ok")
    conv = _customer(openai_client, "cus_tools_1", "QX-700100")
    turn = say(openai_client, conv, "has my order QX-700100 shipped?")
    reply = turn["reply"]
    assert reply["mode"] == "account" and turn["handoff"] is None
    assert "QX-700100" in reply["text"] and "Home Delivery" in reply["text"]
    assert reply["citations"][0]["source_id"] == "account:order:QX-700100"
    services = openai_client.app.state.services  # type: ignore[attr-defined]
    record = services.store.get_turn(turn["turn_id"])
    assert record is not None and record.tool_calls[0].name == "order_status"
    assert record.tool_calls[0].arguments == {"order_id": "QX-700100"}
    with services.store.session() as s:
        prompts = s.scalars(select(LLMCallRow.prompt_name).where(LLMCallRow.turn_id == turn["turn_id"])).all()
    assert list(prompts) == ["account_tools", "account_tools"]  # the tool call, then the answer from its result


def test_what_the_results_do_not_support_is_never_shown(openai_client: TestClient, fake_openai: FakeOpenAI) -> None:
    fake_openai.set("invent")
    conv = _customer(openai_client, "cus_tools_2", "QX-700200")
    turn = say(openai_client, conv, "where is my order QX-700200?")
    text = turn["reply"]["text"]
    assert "QX-700200" in text and "999" not in text and "goodwill" not in text


def test_a_failing_model_leaves_the_template_answer(openai_client: TestClient, fake_openai: FakeOpenAI) -> None:
    fake_openai.set("error_500")
    conv = _customer(openai_client, "cus_tools_3", "QX-700300")
    turn = say(openai_client, conv, "when will my sideboard arrive?")
    assert turn["handoff"] is None and turn["reply"]["mode"] == "account"
    assert "QX-700300" in turn["reply"]["text"] and "12:00" in turn["reply"]["text"]
