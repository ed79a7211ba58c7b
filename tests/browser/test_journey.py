"""The three users in real browsers: a customer chats in the widget (streamed, cited answer), asks for a
person; an agent in another browser context claims and replies from the console; the reply reaches the
widget live; the customer rates; the CX dashboard shows the conversation and the figures."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

QUESTION = "How do I turn on two-factor authentication for my account?"

# Records every length the last assistant bubble's text went through while it streamed.
WATCH_STREAM = """() => {
  const root = document.querySelector('cxa-widget').shadowRoot;
  window.__lengths = [];
  new MutationObserver(() => {
    const bubbles = root.querySelectorAll('.msg.assistant .text');
    const last = bubbles[bubbles.length - 1];
    if (last) window.__lengths.push(last.textContent.length);
  }).observe(root.querySelector('.log'), {childList: true, subtree: true, characterData: true});
}"""


def open_widget(page: Page) -> None:
    page.get_by_role("button", name=re.compile("Open chat")).click()
    expect(page.get_by_role("textbox", name="Your message")).to_be_focused()


def ask(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Your message")
    box.fill(text)
    box.press("Enter")


def test_customer_agent_and_cx_team(live_server: LiveServer, new_page) -> None:  # noqa: ANN001
    url = live_server.url
    customer: Page = new_page(viewport={"width": 1280, "height": 800})
    customer.goto(f"{url}/demo?customer=cus_1001")
    expect(customer.get_by_text("Now chatting as")).to_contain_text("Amara Okafor")
    open_widget(customer)
    customer.evaluate(WATCH_STREAM)
    ask(customer, QUESTION)

    answer = customer.locator(".msg.assistant").last
    expect(answer).to_have_attribute("data-done", "true")
    expect(answer).to_contain_text("Two-factor authentication")
    tokens = int(answer.get_attribute("data-tokens") or 0)
    lengths = [n for n in customer.evaluate("window.__lengths") if n]
    assert tokens >= 2, f"the answer came in {tokens} token event(s)"
    assert len(set(lengths)) >= 2 and min(lengths) < max(lengths), f"no partial text seen: {lengths}"
    source = answer.get_by_role("link", name=re.compile("two-factor", re.I)).first
    expect(source).to_have_attribute("href", re.compile(r"^https://help\.larkspurhome\.example/account/"))
    expect(source).to_have_attribute("rel", "noopener noreferrer")

    customer.get_by_role("button", name="Talk to a person").click()
    banner = customer.get_by_role("status").filter(has_text="A person will join")
    expect(banner).to_contain_text("next in the queue")
    conversation_id = customer.evaluate("window.__cxaWidget.conversationId")

    # The agent, in another browser context (own storage), opens the console.
    agent: Page = new_page(viewport={"width": 1280, "height": 800})
    agent.goto(f"{url}/console")
    agent.get_by_label("Agent token").fill(live_server.agent_token)
    agent.get_by_role("button", name="Sign in").click()
    agent.get_by_placeholder("your name").fill("sam")
    item = agent.locator(".items .item").filter(has_text="cus_1001").first
    expect(item).to_contain_text("customer request")
    item.click()
    packet = agent.locator(".packet")
    expect(packet).to_contain_text("Issue")
    expect(packet).to_contain_text("Suggested next step")
    expect(packet).to_contain_text("two-factor")
    # The summary comes first, then the transcript (with the citation) and the verified customer's profile.
    boxes = agent.locator(".packet, .transcript").all()
    assert boxes[0].evaluate("e => e.classList.contains('packet')")
    expect(agent.locator(".transcript .cites a").first).to_have_attribute("href", re.compile("^https://"))
    for cites in agent.locator(".transcript .cites").all():  # one link per article, however many passages
        titles = [t.split(" (")[0] for t in cites.locator("li").all_inner_texts()]
        assert len(titles) == len(set(titles)), titles
    expect(agent.locator("#detail")).to_contain_text("Amara Okafor")

    agent.get_by_role("button", name="Claim").click()
    reply = agent.get_by_role("textbox", name="Reply to the customer")
    expect(reply).to_be_focused()
    reply.fill("Hi Amara, <b>Sam</b> here. Which step fails?")
    agent.get_by_role("button", name="Send reply").click()

    # Live in the widget, as text (never as HTML).
    agent_msg = customer.locator(".msg.agent").last
    expect(agent_msg).to_contain_text("<b>Sam</b> here", timeout=10_000)
    assert customer.locator("cxa-widget").evaluate("h => h.shadowRoot.querySelectorAll('.msg.agent b').length") == 0
    expect(customer.get_by_text("A person has joined the chat.")).to_be_visible()

    ask(customer, "The QR code does not scan")
    expect(agent.locator(".transcript")).to_contain_text("The QR code does not scan", timeout=10_000)

    agent.get_by_label("Closing note").fill("walked through the app setup")
    agent.get_by_role("button", name="Resolve").click()
    expect(agent.locator("#detail")).to_contain_text("walked through the app setup")

    # The conversation ended: the widget asks for a rating.
    csat = customer.get_by_role("radiogroup", name=re.compile("How satisfied"))
    csat.get_by_role("radio", name=re.compile("^5 of 5")).click(timeout=10_000)
    ces = customer.get_by_role("radiogroup", name=re.compile("How much effort"))
    ces.get_by_role("radio", name=re.compile("^2 of 7")).click()
    customer.get_by_role("button", name="Send rating").click()
    expect(customer.get_by_text("Thank you for your feedback!")).to_be_visible()

    # The CX team sees it.
    cx: Page = new_page(viewport={"width": 1400, "height": 1000})
    cx.goto(f"{url}/dashboard")
    cx.get_by_label("CX token").fill(live_server.cx_token)
    cx.get_by_role("button", name="Sign in").click()
    expect(cx.locator("#figures")).to_contain_text("conversations")
    expect(cx.locator("#figures .figure").filter(has_text="CSAT")).to_contain_text("5.00")
    row = cx.locator(f'#conversations tr[data-id="{conversation_id}"]')
    expect(row).to_contain_text("resolved by agent")
    row.click()
    drill = cx.locator("#drill")
    expect(drill).to_contain_text("The QR code does not scan")
    # The scorecard is computed on demand (rules judge under the fake model), each score with its evaluator.
    card = drill.locator("section.scorecard")
    expect(card).to_contain_text("handoff appropriate")
    expect(card).to_contain_text("rule:grounding@1")
    expect(card).not_to_contain_text("null")
    # A CX reviewer labels it; the label is stored and shown in the list.
    review = drill.locator("form.review")
    review.get_by_label("bad").check()
    review.get_by_label("Tags").fill("late_handoff, tone")
    review.get_by_role("button", name="Save review").click()
    expect(review).to_contain_text("saved: bad")
    expect(cx.locator("#evals")).to_contain_text("No eval run yet")
    expect(cx.locator("#chart-outcomes")).to_be_visible()

    for page in (customer, agent, cx):
        assert not page.js_errors, page.js_errors
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {live_server.cx_token}"}) as api:
        items = api.get("/v1/conversations", params={"sort": "worst"}).json()["items"]
        mine = next(i for i in items if i["id"] == conversation_id)
        assert mine["csat"] == 5 and mine["ces"] == 2 and mine["outcome"] == "resolved_by_agent"
        assert mine["review"] == "bad" and mine["score"] is not None
        stored = api.get(f"/v1/conversations/{conversation_id}/review").json()
        assert stored["tags"] == ["late_handoff", "tone"]
