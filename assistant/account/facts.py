"""The customer's record folded into facts: orders (with their shipments, deliveries, cancellations, returns and
refunds), the membership, payment failures and tickets, each with the events it was read from.

Events are data written by the company's systems through the admin API, so nothing here trusts their shape: a
field that is missing, of the wrong type or unparsable is left out (and logged), never an exception. The event
vocabulary (docs: customers API) is `order_placed`, `order_shipped`, `order_delivered`, `order_cancelled`,
`return_requested`, `refund_issued`, `subscription_started|changed|cancelled`, `payment_failed` and `ticket`;
other types are kept and shown to agents, and ignored here.

Time matters: an order past its delivery slot (or past the policy's wait after dispatch) without a delivery
scan is `late`; a refund past its method's window is `overdue`. "Now" is passed in, so answers and tests agree.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from assistant.models import (
    CustomerEvent,
    MembershipFacts,
    OrderFacts,
    OrderItem,
    PaymentFailure,
    RecordRef,
    RefundFacts,
    ReturnFacts,
    TicketFacts,
)
from assistant.settings import AccountSettings

logger = logging.getLogger(__name__)

AccountPolicy = AccountSettings  # the account settings, as the facts and answers read them (a public name here)


def add_business_days(start: datetime, days: int) -> datetime:
    """`start` plus `days` weekdays (Saturday and Sunday skipped; public holidays are not known here)."""
    t = start
    left = days
    while left > 0:
        t += timedelta(days=1)
        if t.weekday() < 5:
            left -= 1
    return t


# -- reading event data defensively ----------------------------------------------------------------------------


def _str(data: dict[str, Any], key: str) -> str | None:
    v = data.get(key)
    if v is None or isinstance(v, (dict, list)):
        return None
    s = str(v).strip()
    return s[:300] or None


def _num(data: dict[str, Any], key: str) -> float | None:
    v = data.get(key)
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.replace(",", ""))
        except ValueError:
            return None
    return None


def _time(data: dict[str, Any], key: str) -> datetime | None:
    v = data.get(key)
    if not isinstance(v, str) or not v.strip():
        return None
    try:
        t = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
    except ValueError:
        logger.warning("account data: %s=%r is not a time", key, v[:40])
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


_SLOT = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")


def _slot(data: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """A delivery slot "YYYY-MM-DD HH:MM-HH:MM" (the customer's local time, read as UTC)."""
    v = data.get("delivery_slot")
    m = _SLOT.match(v) if isinstance(v, str) else None
    if m is None:
        return None, None
    try:
        day = m.group(1)
        start = datetime.fromisoformat(f"{day}T{m.group(2).zfill(5)}").replace(tzinfo=UTC)
        end = datetime.fromisoformat(f"{day}T{m.group(3).zfill(5)}").replace(tzinfo=UTC)
    except ValueError:
        return None, None
    return start, end


def _items(value: Any) -> list[OrderItem]:
    out: list[OrderItem] = []
    if not isinstance(value, list):
        return out
    for raw in value[:50]:
        if not isinstance(raw, dict):
            continue
        name = _str(raw, "name") or _str(raw, "sku")
        if not name:
            continue
        qty = raw.get("qty")
        out.append(
            OrderItem(
                name=name,
                sku=_str(raw, "sku"),
                qty=qty if isinstance(qty, int) and not isinstance(qty, bool) and 0 < qty < 10_000 else 1,
                price=_num(raw, "price"),
            )
        )
    return out


def _ref(e: CustomerEvent) -> RecordRef:
    return RecordRef(event_id=e.id, type=e.type, at=e.at)


# -- folding -----------------------------------------------------------------------------------------------------


class AccountFacts(BaseModel):
    """Everything the account tools know about one customer, as of `now`."""

    now: datetime
    country: str | None = None
    orders: list[OrderFacts] = Field(default_factory=list, description="newest first")
    membership: MembershipFacts = Field(default_factory=MembershipFacts)
    payment_failures: list[PaymentFailure] = Field(default_factory=list, description="newest first")
    payment_failure_events: list[RecordRef] = Field(default_factory=list)
    tickets: list[TicketFacts] = Field(default_factory=list, description="newest first")

    def order(self, order_id: str) -> OrderFacts | None:
        key = normalise_order_id(order_id)
        return next((o for o in self.orders if normalise_order_id(o.order_id) == key), None)


def normalise_order_id(order_id: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", order_id.upper())


def fold(
    events: Iterable[CustomerEvent], now: datetime, policy: AccountPolicy, country: str | None = None
) -> AccountFacts:
    """The facts of a customer's events (any order); events dated after `now` are ignored (logged): a record
    cannot have happened yet."""
    ordered = sorted(events, key=lambda e: (e.at, e.id or 0))
    orders: dict[str, OrderFacts] = {}
    refunds_without_order: list[RefundFacts] = []
    membership = MembershipFacts()
    failures: list[tuple[PaymentFailure, RecordRef]] = []
    tickets: list[TicketFacts] = []
    for e in ordered:
        if e.at > now + timedelta(minutes=5):
            logger.warning("account data: event %s (%s) is dated in the future (%s); ignored", e.id, e.type, e.at)
            continue
        data = e.data if isinstance(e.data, dict) else {}
        try:
            if e.type.startswith(("order_", "return_", "refund_")):
                _fold_order_event(e, data, orders, refunds_without_order, policy, now)
            elif e.type.startswith("subscription_"):
                membership = _fold_membership(e, data, membership)
            elif e.type == "payment_failed":
                failures.append((_payment_failure(e, data), _ref(e)))
            elif e.type == "ticket":
                subject = _str(data, "subject")
                if subject:
                    tickets.append(
                        TicketFacts(
                            subject=subject,
                            status=_str(data, "status"),
                            channel=_str(data, "channel"),
                            at=e.at,
                            event=_ref(e),
                        )
                    )
        except Exception:  # a shape nobody foresaw: the event is skipped, the customer still gets an answer
            logger.warning("account data: event %s (%s) could not be read; skipped", e.id, e.type, exc_info=True)
    for o in orders.values():
        _judge_lateness(o, now, policy, country)
    # failed payments count against the membership when they are about it and came after its last change
    last_change = max((r.at for r in membership.events), default=None)
    membership.failed_payments = [
        f
        for f, _ in failures
        if f.kind in (None, "subscription_renewal", "subscription") and (last_change is None or f.at > last_change)
    ]
    for f, r in failures:
        if f in membership.failed_payments:
            membership.events.append(r)
    return AccountFacts(
        now=now,
        country=country,
        orders=sorted(orders.values(), key=lambda o: o.placed_at or o.events[0].at, reverse=True),
        membership=membership,
        payment_failures=[f for f, _ in reversed(failures)],
        payment_failure_events=[r for _, r in reversed(failures)],
        tickets=list(reversed(tickets)),
    )


def _fold_order_event(
    e: CustomerEvent,
    data: dict[str, Any],
    orders: dict[str, OrderFacts],
    loose_refunds: list[RefundFacts],
    policy: AccountPolicy,
    now: datetime,
) -> None:
    oid = _str(data, "order_id")
    if oid is None:
        if e.type == "refund_issued":
            loose_refunds.append(_refund(e, data, None, policy, now))
        return
    o = orders.setdefault(oid, OrderFacts(order_id=oid))
    o.events.append(_ref(e))
    note = _str(data, "note")
    if e.type == "order_placed":
        o.placed_at = e.at
        o.items = _items(data.get("items")) or o.items
        o.total = _num(data, "total")
        o.currency = _str(data, "currency")
        o.payment_method = _str(data, "payment_method")
        o.delivery = _str(data, "delivery")
        o.delivery_fee = _num(data, "delivery_fee")
        o.promo_code = _str(data, "promo_code")
        o.discount = _num(data, "discount")
    elif e.type == "order_shipped":
        exchange = _open_exchange(o, e.at)
        if exchange is not None:  # the replacement of an exchange
            exchange.replacement_shipped_at, exchange.replacement_tracking = e.at, _str(data, "tracking")
        if o.state != "cancelled":
            o.state = "shipped"
        o.shipped_at = e.at
        o.carrier = _str(data, "carrier") or o.carrier
        o.tracking = _str(data, "tracking") or o.tracking
        o.slot_start, o.slot_end = _slot(data)
        o.collect_point = _str(data, "collect_point") or o.collect_point
        o.delivered_at = None  # a new shipment (an exchange's replacement) is on its way again
    elif e.type == "order_delivered":
        exchange = _open_exchange(o, e.at)
        if exchange is not None and exchange.replacement_shipped_at is not None:
            exchange.replacement_delivered_at = e.at
        o.state = "delivered"
        o.delivered_at = e.at
        o.carrier = _str(data, "carrier") or o.carrier
        method, by = _str(data, "method"), _str(data, "collected_by")
        if method == "click_and_collect":
            o.delivered_note = "collected" + (f" by the {by.replace('_', ' ')}" if by else "")
    elif e.type == "order_cancelled":
        o.state = "cancelled"
        o.cancelled_at = e.at
        o.cancel_reason = _str(data, "reason")
    elif e.type == "return_requested":
        o.returns.append(
            ReturnFacts(
                order_id=oid,
                rma=_str(data, "rma"),
                at=e.at,
                items=_items(data.get("items")),
                reason=_str(data, "reason"),
                method=_str(data, "method"),
                kind=_str(data, "type") or "return",
                exchange_for=_str(data["exchange_for"], "name") if isinstance(data.get("exchange_for"), dict) else None,
            )
        )
    elif e.type == "refund_issued":
        o.refunds.append(_refund(e, data, oid, policy, now))
    if note:
        o.notes.append(note)


def _open_exchange(o: OrderFacts, at: datetime) -> ReturnFacts | None:
    """The order's latest exchange booked before `at` whose replacement has not been delivered."""
    for r in reversed(o.returns):
        if r.kind == "exchange" and r.at <= at and r.replacement_delivered_at is None:
            return r
    return None


def _refund(
    e: CustomerEvent, data: dict[str, Any], oid: str | None, policy: AccountPolicy, now: datetime
) -> RefundFacts:
    method = _str(data, "method")
    days = policy.refund_days.get((method or "").lower().replace(" ", "_"), policy.refund_days_default)
    expected = add_business_days(e.at, days)
    deductions = [d for d in data.get("deductions") or [] if isinstance(d, dict)][:10]
    return RefundFacts(
        order_id=oid,
        rma=_str(data, "rma"),
        at=e.at,
        amount=_num(data, "amount"),
        currency=_str(data, "currency"),
        method=method,
        reason=_str(data, "reason"),
        note=_str(data, "note"),
        deductions=deductions,
        expected_by=expected,
        overdue=now > expected,
    )


def _fold_membership(e: CustomerEvent, data: dict[str, Any], m: MembershipFacts) -> MembershipFacts:
    m = m.model_copy(deep=True)
    m.events.append(_ref(e))
    m.plan = _str(data, "plan") or m.plan
    price = _num(data, "price")
    if price is not None:
        m.price, m.currency = price, _str(data, "currency") or m.currency
    if e.type == "subscription_started":
        m.started_at = e.at
        m.trial_ends_at = _time(data, "trial_ends_at")
        m.status = "trial" if m.trial_ends_at and m.trial_ends_at > e.at else "active"
        m.renews_at = _time(data, "renews_at")
        day = data.get("billing_day")
        m.billing_day = day if isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= 31 else None
        m.benefits_until = None
    elif e.type == "subscription_changed":
        status = _str(data, "status")
        if status == "paused":
            m.status = "paused"
            m.paused_from = _time(data, "paused_from")
            m.resumes_at = _time(data, "resumes_at")
        else:
            m.status = "active"
            m.paused_from = m.resumes_at = None
        m.renews_at = _time(data, "renews_at") or m.renews_at
    elif e.type == "subscription_cancelled":
        m.status = "cancelled"
        m.benefits_until = _time(data, "benefits_until")
        m.renews_at = None
    return m


def _payment_failure(e: CustomerEvent, data: dict[str, Any]) -> PaymentFailure:
    return PaymentFailure(
        at=e.at,
        kind=_str(data, "kind"),
        amount=_num(data, "amount"),
        currency=_str(data, "currency"),
        reason=_str(data, "reason"),
        error_code=_str(data, "error_code"),
        next_retry_at=_time(data, "next_retry_at"),
    )


def _judge_lateness(o: OrderFacts, now: datetime, policy: AccountPolicy, country: str | None) -> None:
    """Late = not delivered (nor cancelled) past the promised time: the booked slot's end, or the policy's wait
    after dispatch (standard, express, abroad)."""
    if o.state != "shipped" or o.shipped_at is None:
        return
    if o.slot_end is not None:
        due = o.slot_end
    elif country and policy.home_country and country.upper() != policy.home_country.upper():
        due = add_business_days(o.shipped_at, policy.international_wait_days)
    elif (o.delivery or "") in ("express", "next_day"):
        due = add_business_days(add_business_days(o.shipped_at, 1), policy.express_wait_days)
    elif (o.delivery or "") in ("email", "digital"):
        return
    else:
        due = add_business_days(o.shipped_at, policy.standard_wait_days)
    if now > due:
        o.late, o.late_since = True, due
