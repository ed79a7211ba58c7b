"""The widget on its own: keyboard only, a reload keeps the conversation, a phone-sized screen, and a host
page whose CSS would wreck it if it were not in a shadow root."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser


def ask_on_the_demo(page: Page, live_server: LiveServer, text: str, customer: str | None = None) -> Locator:
    """Open the widget on the demo shop page (as `customer`, else anonymous), ask `text` with the keyboard and wait
    for the whole answer: its bubble."""
    page.goto(f"{live_server.url}/demo" + (f"?customer={customer}" if customer else ""))
    page.get_by_role("button", name=re.compile("Open chat")).click()
    box = page.get_by_role("textbox", name="Your message")
    box.fill(text)
    box.press("Enter")
    answer = page.locator(".msg.assistant").last
    expect(answer).to_have_attribute("data-done", "true")
    return answer


HOSTILE_PAGE = """<!doctype html><html><head><style>
* { font-family: "Comic Sans MS", cursive !important; color: #f0f !important; letter-spacing: 6px !important;
    line-height: 3 !important; box-sizing: content-box !important; }
div, section, form, p, textarea, header { display: none !important; }
button { background: hotpink !important; padding: 60px !important; border: 9px dotted lime !important;
         position: static !important; width: 10px !important; }
.panel, .launcher, .log, .msg { display: none !important; opacity: 0 !important; }
</style></head><body><h1>A shop with aggressive CSS</h1><button>host button</button>
<script src="/widget.js" data-widget-key="%s"></script></body></html>"""


def test_keyboard_only_reload_keeps_the_conversation(live_server: LiveServer, new_page) -> None:  # noqa: ANN001
    page: Page = new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{live_server.url}/demo")
    launcher = page.get_by_role("button", name=re.compile("Open chat"))
    for _ in range(30):  # Tab through the page until the launcher has focus
        page.keyboard.press("Tab")
        if launcher.evaluate("b => b.getRootNode().activeElement === b"):
            break
    else:
        pytest.fail("the launcher is not reachable with Tab")
    page.keyboard.press("Enter")
    box = page.get_by_role("textbox", name="Your message")
    expect(box).to_be_focused()
    page.keyboard.type("How can I track my order?")
    page.keyboard.press("Enter")
    answer = page.locator(".msg.assistant").last
    expect(answer).to_have_attribute("data-done", "true")
    expect(answer).to_contain_text("order")
    expect(page.get_by_role("button", name="Talk to a person")).to_be_visible()

    # Esc asks for a rating first (once), a second Esc closes and gives focus back to the launcher.
    page.keyboard.press("Escape")
    expect(page.get_by_role("radiogroup", name=re.compile("How satisfied"))).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(launcher).to_be_focused()

    page.reload()
    page.get_by_role("button", name=re.compile("Open chat")).click()
    log = page.get_by_role("log", name="Conversation")
    expect(log.locator(".msg.customer")).to_have_text(re.compile("How can I track my order"))
    expect(log.locator(".msg.assistant .cites a").first).to_have_attribute("href", re.compile("^https://"))
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]


def test_phone_sized_screen_gets_a_full_screen_panel(live_server: LiveServer, new_page) -> None:  # noqa: ANN001
    page: Page = new_page(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page.goto(f"{live_server.url}/demo?customer=cus_1002")
    page.get_by_role("button", name=re.compile("Open chat")).click()
    panel = page.get_by_role("dialog")
    box = panel.bounding_box()
    assert box is not None
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 375, 740), box
    for name in ("Close chat", "Send message", "Talk to a person"):
        b = page.get_by_role("button", name=name).bounding_box()
        assert b is not None and b["x"] >= 0 and b["x"] + b["width"] <= 375, (name, b)
        assert b["height"] >= 36, (name, b)  # big enough for a thumb
    page.get_by_role("textbox", name="Your message").fill("How long do PayPal refunds take?")
    page.get_by_role("button", name="Send message").click()
    answer = page.locator(".msg.assistant").last
    expect(answer).to_have_attribute("data-done", "true")
    width = answer.evaluate("e => e.getBoundingClientRect().right")
    assert width <= 375, "the answer overflows the screen"
    page.get_by_role("button", name="Close chat").click()  # asks for a rating first
    expect(page.get_by_role("radiogroup", name=re.compile("How satisfied"))).to_be_visible()


def test_host_page_css_cannot_reach_into_the_widget(live_server: LiveServer, new_page) -> None:  # noqa: ANN001
    page: Page = new_page(viewport={"width": 1280, "height": 800})
    hostile = f"{live_server.url}/hostile-shop"
    body = HOSTILE_PAGE % live_server.widget_key
    page.route(hostile, lambda route: route.fulfill(content_type="text/html", body=body))
    page.goto(hostile)
    launcher = page.get_by_role("button", name=re.compile("Open chat"))
    expect(launcher).to_be_visible()
    style = launcher.evaluate(
        "b => { const s = getComputedStyle(b); return [s.backgroundColor, s.fontFamily, s.position, s.color]; }"
    )
    assert style[0] == "rgb(47, 93, 80)" and "Comic" not in style[1] and style[2] == "fixed", style
    assert style[3] == "rgb(255, 255, 255)", style
    launcher.click()
    panel = page.get_by_role("dialog")
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert box is not None and round(box["width"]) == 380, box
    page.get_by_role("textbox", name="Your message").fill("How do I reset my password?")
    page.keyboard.press("Enter")
    expect(page.locator(".msg.assistant").last).to_have_attribute("data-done", "true")
    expect(page.locator(".msg.assistant").last).to_be_visible()
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]


def test_replies_render_their_markdown_as_lists_bold_and_safe_links(live_server: LiveServer, new_page) -> None:  # noqa: ANN001
    """An agent's reply in Markdown reaches the widget live as a list with bold text and a link; a link that is
    not http(s) stays text, and nothing in a reply is parsed as HTML."""
    import httpx

    page: Page = new_page(viewport={"width": 1280, "height": 800})
    ask_on_the_demo(page, live_server, "How can I track my order?")
    page.get_by_role("button", name="Talk to a person").click()
    expect(page.get_by_role("status").filter(has_text="A person will join")).to_be_visible()
    conversation_id = page.evaluate("window.__cxaWidget.conversationId")
    reply = (
        "While the order is **Processing** you can:\n"
        "- change the delivery address\n"
        "- remove items\n"
        "See [our guide](https://help.larkspurhome.example/orders/change) or [this](javascript:alert(1)) <b>x</b>"
    )
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {live_server.agent_token}"}) as api:
        queue = api.get("/v1/handoffs").json()["items"]
        handoff = next(h for h in queue if h["conversation_id"] == conversation_id)
        assert api.post(f"/v1/handoffs/{handoff['id']}/claim", json={"agent_id": "sam"}).status_code == 200
        r = api.post(f"/v1/conversations/{conversation_id}/agent-messages", json={"text": reply})
        assert r.status_code in (200, 201), r.text
    bubble = page.locator(".msg.agent .text").last
    expect(bubble.locator("li")).to_have_count(2)
    expect(bubble.locator("li").first).to_have_text("change the delivery address")
    expect(bubble.locator("strong")).to_have_text("Processing")
    link = bubble.get_by_role("link", name="our guide")
    expect(link).to_have_attribute("href", "https://help.larkspurhome.example/orders/change")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(bubble.locator("a")).to_have_count(1)  # the javascript: link stays text
    expect(bubble.locator("b")).to_have_count(0)  # HTML in a reply is text, never markup
    expect(bubble).to_contain_text("<b>x</b>")
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]


def test_records_of_one_kind_are_one_source(live_server: LiveServer, new_page) -> None:  # noqa: ANN001
    """Three failed payments are cited as three records; the customer reads one "Your account: payments"."""
    page: Page = new_page(viewport={"width": 1280, "height": 800})
    answer = ask_on_the_demo(page, live_server, "hi, did my last payment go through?", customer="cus_1003")
    labels = answer.locator(".cites li").all_inner_texts()
    assert labels and len(labels) == len(set(labels)), labels
    assert labels.count("Your account: payments") == 1, labels
