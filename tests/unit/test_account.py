"""Account answers: the record folded into facts (defensively), the router, and the answers the templates write,
on customers built here (not the samples), with a fixed "now"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from assistant.account.answer import AccountAnswerer
from assistant.account.facts import add_business_days, fold
from assistant.account.router import AccountRouter
from assistant.models import Citation, Conversation, CustomerEvent, CustomerProfile, Message, PastConversation
from assistant.settings import AccountSettings
from assistant.turn.grounding import SentenceVectors
from knowledge.embeddings import shared_embedder

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # a Wednesday
POLICY = AccountSettings()


def ev(i: int, type_: str, days_ago: float, **data: Any) -> CustomerEvent:
    return CustomerEvent(id=i, customer_id="c1", type=type_, at=NOW - timedelta(days=days_ago), data=data)


def sofa_order(slot: str | None = "2026-06-08 08:00-12:00", delivered: bool = False) -> list[CustomerEvent]:
    shipped = {"order_id": "AB-100200", "carrier": "Fastvan", "tracking": "FV123"}
    if slot:
        shipped["delivery_slot"] = slot
    events = [
        ev(
            1,
            "order_placed",
            9,
            order_id="AB-100200",
            items=[{"sku": "S1", "name": "Corner sofa", "qty": 1, "price": 700}],
            total=720.0,
            currency="GBP",
            payment_method="card",
            delivery="two_person",
            delivery_fee=20.0,
        ),
        ev(2, "order_shipped", 5, **shipped),
    ]
    if delivered:
        events.append(ev(3, "order_delivered", 2, order_id="AB-100200", carrier="Fastvan"))
    return events


@pytest.fixture(scope="module")
def router() -> AccountRouter:
    return AccountRouter(SentenceVectors(shared_embedder()))


def answerer(
    router: AccountRouter,
    events: list[CustomerEvent],
    past: list[PastConversation] | None = None,
    profile: CustomerProfile | None = None,
) -> AccountAnswerer:
    profile = profile or CustomerProfile(id="c1", name="Test Customer", attributes={"country": "GB"})
    return AccountAnswerer(lambda cid, conv: (profile, events, past or []), router, POLICY, clock=lambda: NOW)


def conversation(verified: bool = True) -> Conversation:
    return Conversation(
        id="conv1", customer_id="c1" if verified else None, verified=verified, created_at=NOW, updated_at=NOW
    )


# -- facts ----------------------------------------------------------------------------------------------------


def test_business_days_skip_weekends() -> None:
    friday = datetime(2026, 6, 5, tzinfo=UTC)
    assert add_business_days(friday, 1).weekday() == 0  # Monday
    assert add_business_days(friday, 5) == datetime(2026, 6, 12, tzinfo=UTC)


def test_an_order_past_its_slot_without_a_delivery_scan_is_late() -> None:
    facts = fold(sofa_order(), NOW, POLICY, "GB")
    order = facts.order("ab-100200")  # numbers match whatever their case or dashes
    assert order is not None and order.state == "shipped" and order.late
    assert order.slot_end == datetime(2026, 6, 8, 12, 0, tzinfo=UTC)
    delivered = fold(sofa_order(delivered=True), NOW, POLICY, "GB").orders[0]
    assert delivered.state == "delivered" and not delivered.late


def test_standard_and_international_waits_come_from_the_policy() -> None:
    shipped = [
        ev(1, "order_placed", 12, order_id="AB-1", delivery="standard"),
        ev(2, "order_shipped", 10, order_id="AB-1", carrier="Post"),
    ]
    assert fold(shipped, NOW, POLICY, "GB").orders[0].late  # 10 days > 7 business days
    assert not fold(shipped, NOW, POLICY, "US").orders[0].late  # abroad: 15 business days


def test_refund_windows_by_method() -> None:
    events = [
        ev(1, "refund_issued", 3, order_id="AB-1", amount=10, currency="GBP", method="paypal"),
        ev(2, "refund_issued", 20, order_id="AB-2", amount=12, currency="GBP", method="card"),
    ]
    facts = fold(events, NOW, POLICY)
    recent, old = facts.order("AB-1").refunds[0], facts.order("AB-2").refunds[0]  # type: ignore[union-attr]
    assert not recent.overdue and recent.expected_by == add_business_days(recent.at, 5)
    assert old.overdue


def test_membership_states() -> None:
    started = ev(1, "subscription_started", 100, plan="plus_monthly", price=7.99, currency="GBP", billing_day=3)
    assert fold([started], NOW, POLICY).membership.status == "active"
    paused = ev(2, "subscription_changed", 10, plan="plus_monthly", status="paused", resumes_at="2026-08-01T06:00:00Z")
    m = fold([started, paused], NOW, POLICY).membership
    assert m.status == "paused" and m.resumes_at == datetime(2026, 8, 1, 6, tzinfo=UTC)
    cancelled = ev(3, "subscription_cancelled", 5, plan="plus_monthly", benefits_until="2026-06-20T00:00:00Z")
    assert fold([started, paused, cancelled], NOW, POLICY).membership.status == "cancelled"


def test_bad_event_data_is_skipped_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    events = [
        ev(1, "order_placed", 5, order_id="AB-9", items="a sofa", total="ninety", currency=["GBP"]),
        ev(2, "order_shipped", 4, order_id="AB-9", delivery_slot="next tuesday", tracking={"x": 1}),
        ev(3, "refund_issued", 3, amount=True),  # no order id: a loose refund
        ev(4, "subscription_started", 2, trial_ends_at="soon", billing_day=99),
        ev(5, "some_future_thing", 1, whatever=[1, 2, 3]),
        ev(6, "order_delivered", -30, order_id="AB-9"),  # dated in the future: ignored
        ev(7, "ticket", 1),  # no subject
    ]
    facts = fold(events, NOW, POLICY)
    order = facts.order("AB-9")
    assert order is not None and order.items == [] and order.total is None and order.currency is None
    assert order.state == "shipped" and order.slot_end is None and order.tracking is None
    assert facts.membership.billing_day is None and facts.tickets == []
    assert "in the future" in caplog.text


# -- the router -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tool"),
    [
        ("hi, has my parcel been sent out yet?", "order_status"),
        ("I'm still waiting on my refund", "refund_status"),
        ("when's my subscription up for renewal", "membership"),
        ("is there any update on the case I opened", "tickets"),
        ("what's going on with order AB-100200", "order_status"),
    ],
)
def test_account_questions_find_their_tool(router: AccountRouter, text: str, tool: str) -> None:
    intent = router.route(text)
    assert intent is not None and intent.tool == tool, intent


@pytest.mark.parametrize(
    "text",
    [
        "How long does a refund to my card take?",
        "what's your returns policy",
        "How do I reset my password?",
        "do you ship to Canada",
    ],
)
def test_general_questions_are_not_account_questions(router: AccountRouter, text: str) -> None:
    assert router.route(text) is None


def test_a_general_clause_makes_the_question_mixed(router: AccountRouter) -> None:
    intent = router.route("my sofa is late, can I still return it?")
    assert intent is not None and intent.tool == "order_status" and intent.mixed


# -- answers --------------------------------------------------------------------------------------------------


def test_a_late_delivery_is_named_and_handed_off(router: AccountRouter) -> None:
    a = answerer(router, sofa_order()).answer("where is my sofa?", conversation(), [])
    assert a is not None
    assert "AB-100200" in a.text and "late" in a.text and "Monday 8 June" in a.text and "FV123" in a.text
    assert a.handoff_reason == "late_delivery"
    assert [c.source_id for c in a.citations] == ["account:order:AB-100200"]
    assert a.tool_calls[0].name == "order_status" and a.tool_calls[0].cited == ["order_placed:1", "order_shipped:2"]


def test_an_order_on_its_way_gives_its_slot(router: AccountRouter) -> None:
    a = answerer(router, sofa_order(slot="2026-06-12 12:00-16:00")).answer("when is my delivery?", conversation(), [])
    assert a is not None and a.handoff_reason is None
    assert "Friday 12 June" in a.text and "12:00" in a.text and "16:00" in a.text


def test_another_customers_order_number_is_not_found(router: AccountRouter) -> None:
    a = answerer(router, sofa_order()).answer("where is order ZZ-777777?", conversation(), [])
    assert a is not None and "can't find order ZZ-777777" in a.text
    assert "AB-100200" in a.text  # their own recent orders, to pick from


def test_anonymous_visitors_get_no_record_details(router: AccountRouter) -> None:
    a = answerer(router, sofa_order()).answer("where is my order?", conversation(verified=False), [])
    assert a is not None and "not signed in" in a.text and "AB-100200" not in a.text and a.offer
    assert a.citations == [] and a.tool_calls == []


def test_several_open_orders_ask_which(router: AccountRouter) -> None:
    events = [
        *sofa_order(slot="2026-06-12 12:00-16:00"),
        ev(10, "order_placed", 2, order_id="AB-100300", items=[{"name": "Desk lamp", "qty": 1}]),
    ]
    a = answerer(router, events).answer("where is my order?", conversation(), [])
    assert a is not None and "Which one" in a.text and "AB-100200" in a.text and "AB-100300" in a.text
    by_item = answerer(router, events).answer("where is my lamp?", conversation(), [])
    assert by_item is not None and "AB-100300" in by_item.text and "AB-100200" not in by_item.text


def test_a_follow_up_stays_on_the_order(router: AccountRouter) -> None:
    events = [
        *sofa_order(slot="2026-06-12 12:00-16:00"),
        ev(10, "order_placed", 2, order_id="AB-100300", items=[{"name": "Desk lamp", "qty": 1}]),
    ]
    earlier = Message(
        id="m1",
        conversation_id="conv1",
        seq=2,
        role="assistant",
        text="...",
        created_at=NOW,
        citations=[Citation(source_id="account:order:AB-100200", title="t", snippet="s", score=1.0)],
    )
    a = answerer(router, events).answer("and what's the tracking number for it?", conversation(), [earlier])
    assert a is not None and "AB-100200" in a.text and "FV123" in a.text


def test_an_overdue_refund_the_customer_has_not_seen_goes_to_a_person(router: AccountRouter) -> None:
    events = [
        ev(1, "order_placed", 40, order_id="AB-5", items=[{"name": "Rug"}], currency="GBP"),
        ev(2, "refund_issued", 30, order_id="AB-5", amount=80, currency="GBP", method="card"),
    ]
    seen = answerer(router, events).answer("how much was my refund?", conversation(), [])
    assert seen is not None and "£80.00" in seen.text and seen.handoff_reason is None and "overdue" not in seen.text
    missing = answerer(router, events).answer("I never got my refund", conversation(), [])
    assert missing is not None and "overdue" in missing.text and missing.handoff_reason == "refund_overdue"


def test_membership_renewal_and_failed_payments(router: AccountRouter) -> None:
    events = [
        ev(
            1,
            "subscription_changed",
            60,
            plan="plus_annual",
            price=69,
            currency="GBP",
            renews_at="2027-04-11T06:00:00Z",
        ),
        ev(2, "payment_failed", 3, kind="subscription_renewal", amount=69, currency="GBP", reason="card_expired"),
    ]
    a = answerer(router, events).answer("when does my membership renew?", conversation(), [])
    assert a is not None and "Sunday 11 April 2027" in a.text and "card had expired" in a.text
    assert a.help_query is not None  # how to update the card comes from the help center


def test_no_record_for_a_deleted_customer(router: AccountRouter) -> None:
    gone = AccountAnswerer(lambda cid, conv: (None, [], []), router, POLICY, clock=lambda: NOW)
    a = gone.answer("where is my order?", conversation(), [])
    assert a is not None and a.offer and a.citations == []
