"""The loop in real browsers: a customer's question the help center does not answer goes to a person; the agent
answers it in the console and saves the reply as an approved answer in one click; the next customer who asks gets
it word for word in the widget; the CX dashboard counts the hit."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer
from tests.browser.test_journey import ask, open_widget

pytestmark = pytest.mark.browser

QUESTION = "Do you offer gift wrapping?"
ANSWER = "Yes: choose gift wrapping at checkout for £4 per item. We add a gift receipt without prices."


def test_agent_reply_becomes_the_next_customers_answer(live_server: LiveServer, new_page) -> None:  # noqa: ANN001
    url = live_server.url
    first: Page = new_page(viewport={"width": 1280, "height": 800})
    first.goto(f"{url}/demo")
    open_widget(first)
    ask(first, QUESTION)
    expect(first.locator(".msg.assistant, .msg.system").last).to_be_visible()
    if not first.get_by_role("status").filter(has_text="A person will join").count():
        first.get_by_role("button", name="Talk to a person").click()
    expect(first.get_by_role("status").filter(has_text="A person will join")).to_be_visible()

    agent: Page = new_page(viewport={"width": 1280, "height": 900})
    agent.goto(f"{url}/console")
    agent.get_by_label("Agent token").fill(live_server.agent_token)
    agent.get_by_role("button", name="Sign in").click()
    agent.get_by_placeholder("your name").fill("lee")
    agent.locator(".items .item").filter(has_text="anonymous").filter(has_text=re.compile("gift", re.I)).first.click()
    agent.get_by_role("button", name="Claim").click()
    expect(agent.locator("#copilot")).to_contain_text("Suggested reply")  # nothing approved yet to draft from
    reply = agent.get_by_role("textbox", name="Reply to the customer")
    reply.fill(ANSWER)
    agent.get_by_role("button", name="Send reply").click()
    expect(first.locator(".msg.agent").last).to_contain_text("£4 per item", timeout=10_000)

    sent = agent.locator(".transcript .msg.agent").last
    sent.get_by_role("button", name="Save as approved answer").click()
    expect(sent.locator("button.save-approved")).to_contain_text("Saved as approved answer")

    # The next customer gets it, verbatim, as the assistant's reply.
    second: Page = new_page(viewport={"width": 1280, "height": 800})
    second.goto(f"{url}/demo")
    open_widget(second)
    ask(second, "do you offer gift wrapping")
    answer = second.locator(".msg.assistant").last
    expect(answer).to_have_attribute("data-done", "true")
    expect(answer).to_contain_text(ANSWER)
    expect(second.get_by_role("status").filter(has_text="A person will join")).to_have_count(0)

    # The CX dashboard counts the hit.
    cx: Page = new_page(viewport={"width": 1400, "height": 1000})
    cx.goto(f"{url}/dashboard")
    cx.get_by_label("CX token").fill(live_server.cx_token)
    cx.get_by_role("button", name="Sign in").click()
    row = cx.locator("#approved-table tbody tr").filter(has_text=QUESTION)
    expect(row.locator("td.hits")).to_have_text("1")
    expect(row).to_contain_text("by lee")

    for page in (first, agent, second, cx):
        assert not page.js_errors, page.js_errors
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {live_server.cx_token}"}) as api:
        [made] = [a for a in api.get("/v1/approved-answers").json()["items"] if a["question"] == QUESTION]
        assert made["answer"] == ANSWER and made["hits"] == 1 and made["source_conversation_id"]
