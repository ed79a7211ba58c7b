"""Account tools: typed, read-only views of one verified customer's record (`AccountFacts`), each call recorded
as a `ToolCall` with the events it read and turned into citations (`account:order:<id>`, `account:membership`,
`account:payment:<event>`, `account:ticket:<event>`). Also the wording of facts (money, dates, items), shared by
every template so that an order reads the same in every answer.

The same tools are offered to an OpenAI-compatible model by function calling (`TOOL_SPECS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from assistant.account.facts import AccountFacts, AccountPolicy, add_business_days
from assistant.models import (
    Citation,
    MembershipFacts,
    OrderFacts,
    PastConversation,
    PaymentFailure,
    RecordRef,
    ReturnFacts,
    TicketFacts,
    ToolCall,
)
from assistant.prompts import replies as R

CURRENCY = {"GBP": "£", "EUR": "€", "USD": "$"}
WORDS = {
    "two_person": "two-person",
    "home_collection": "home collection",
    "click_and_collect": "click and collect",
    "card_expired": "the card had expired",
    "declined_by_bank": "declined by the bank",
    "billing_address_mismatch": "the billing address didn't match the card",
    "insufficient_funds": "insufficient funds",
    "ordered_by_mistake": "ordered by mistake",
    "changed_mind": "change of mind",
    "price_promise": "price promise",
    "order_cancelled": "order cancelled",
    "not_ordering_often_enough": "not ordering often enough",
    "subscription_renewal": "renewal",
    "paypal": "PayPal",
    "klarna": "Klarna",
    "apple_pay": "Apple Pay",
    "google_pay": "Google Pay",
    "gift_card": "gift card",
    "ideal": "iDEAL",
}


class ToolResult(BaseModel):
    call: ToolCall
    citations: list[Citation] = Field(default_factory=list)


def money(amount: float | None, currency: str | None) -> str:
    if amount is None:
        return "an amount not on record"
    symbol = CURRENCY.get((currency or "").upper())
    value = f"{amount:,.2f}"
    return f"{symbol}{value}" if symbol else f"{value} {currency or ''}".strip()


def day(t: datetime | None, now: datetime) -> str:
    """ "Tuesday 25 November" (with the year when it is not this year's)."""
    if t is None:
        return "a date not on record"
    text = f"{t:%A} {t.day} {t:%B}"
    return text + (f" {t.year}" if t.year != now.year else "")


def clock(t: datetime | None) -> str:
    return f"{t:%H:%M}" if t is not None else ""


ACRONYMS = frozenset({"dhl", "ups", "dpd", "usps", "us", "uk", "eu", "vat", "rma", "id"})


def words(code: str | None) -> str:
    """A code from the record in words: `home_collection` -> "home collection", `dhl_drop_off` -> "DHL drop off"."""
    if not code:
        return ""
    if code in WORDS:
        return WORDS[code]
    return " ".join(w.upper() if w.lower() in ACRONYMS else w for w in code.replace("_", " ").split())


def items_text(o: OrderFacts, priced: bool = False) -> str:
    names = []
    for i in o.items[:6]:
        name = f"{i.qty} x {i.name}" if i.qty > 1 else i.name
        if priced and i.price is not None:
            name += f" at {money(i.price, o.currency)}" + (" each" if i.qty > 1 else "")
        names.append(name)
    if len(o.items) > 6:
        names.append(f"{len(o.items) - 6} more items")
    if not names:
        return "items not on record"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _plan(plan: str | None) -> str:
    return (plan or "membership").replace("_", " ").title()


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


class AccountTools:
    def __init__(self, facts: AccountFacts, past: Sequence[PastConversation], policy: AccountPolicy) -> None:
        self.facts = facts
        self.past = list(past)
        self.policy = policy

    # -- calls and citations ------------------------------------------------------------------------------------

    def call(self, name: str, arguments: dict[str, Any], result: Any) -> ToolResult:
        """Record one tool call: its typed result as JSON, the events it rests on, and the citations."""
        refs: list[RecordRef] = []
        citations: list[Citation] = []
        values = result if isinstance(result, list) else [result]
        for v in values:
            if isinstance(v, OrderFacts):
                refs += v.events
                citations.append(self._cite_order(v))
            elif isinstance(v, MembershipFacts):
                refs += v.events
                if v.events:
                    citations.append(
                        Citation(
                            source_id="account:membership",
                            title="Your account: membership",
                            snippet=self.membership_line(v),
                            score=1.0,
                        )
                    )
            elif isinstance(v, PaymentFailure):
                ref = self._payment_ref(v)
                if ref is not None:
                    refs.append(ref)
                    citations.append(
                        Citation(
                            source_id=f"account:payment:{ref.event_id}",
                            title="Your account: payments",
                            snippet=f"payment of {money(v.amount, v.currency)} failed on {day(v.at, self.facts.now)}",
                            score=1.0,
                        )
                    )
            elif isinstance(v, TicketFacts):
                refs.append(v.event)
                citations.append(
                    Citation(
                        source_id=f"account:ticket:{v.event.event_id}",
                        title="Your account: support requests",
                        snippet=v.subject,
                        score=1.0,
                    )
                )
        payload = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in values]
        call = ToolCall(
            name=name,
            arguments=arguments,
            result={"items": payload} if isinstance(result, list) else (payload[0] if payload else {}),
            cited=[f"{r.type}:{r.event_id}" for r in refs],
        )
        return ToolResult(call=call, citations=citations)

    def _payment_ref(self, f: PaymentFailure) -> RecordRef | None:
        for failure, ref in zip(self.facts.payment_failures, self.facts.payment_failure_events, strict=False):
            if failure == f:
                return ref
        return None

    def _cite_order(self, o: OrderFacts) -> Citation:
        return Citation(
            source_id=f"account:order:{o.order_id}",
            title=f"Your account: order {o.order_id}",
            snippet=self.describe_order(o),
            score=1.0,
        )

    # -- the wording of facts -----------------------------------------------------------------------------------

    def describe_order(self, o: OrderFacts) -> str:
        """ "LH-482913 (Oakley 3-seater sofa, placed Friday 14 November, dispatched)"."""
        state = {
            "processing": "not dispatched yet",
            "shipped": "late" if o.late else "dispatched",
            "delivered": "delivered",
            "cancelled": "cancelled",
        }[o.state]
        if o.refunds:
            state += ", refunded"
        elif o.returns:
            state += ", return booked"
        placed = f", placed {day(o.placed_at, self.facts.now)}" if o.placed_at else ""
        return f"{o.order_id} ({items_text(o)}{placed}, {state})"

    def order_values(self, o: OrderFacts) -> dict[str, str]:
        now = self.facts.now
        kind, days, due = self._wait(o)
        total = f"The total was {money(o.total, o.currency)}" if o.total is not None else ""
        if total and o.delivery_fee:
            total += f", including {money(o.delivery_fee, o.currency)} delivery"
        return {
            "order": o.order_id,
            "items": items_text(o),
            "items_priced": items_text(o, priced=True),
            "placed": day(o.placed_at, now),
            "shipped": day(o.shipped_at, now),
            "carrier": o.carrier or "our courier",
            "tracking": f" (tracking number {o.tracking})" if o.tracking else "",
            "slot_day": day(o.slot_start, now),
            "slot_from": clock(o.slot_start),
            "slot_to": clock(o.slot_end),
            "delivered": day(o.delivered_at, now),
            "how": f", {o.delivered_note}" if o.delivered_note else "",
            "cancelled": day(o.cancelled_at, now),
            "reason": f" ({words(o.cancel_reason)})" if o.cancel_reason else "",
            "collect_point": o.collect_point or "",
            "days": str(days),
            "kind": kind,
            "wait": f"{kind} delivery takes up to {days} business days from dispatch, so it should arrive by "
            f"{day(due, now)}."
            if due
            else "it should arrive soon.",
            "total": (total + ". ") if total else "",
            "total_short": f" for {money(o.total, o.currency)}" if o.total is not None else "",
            "payment": f"You paid by {words(o.payment_method)}. " if o.payment_method else "",
            "promo": (
                f"Promo code {o.promo_code} was applied"
                + (f" ({money(o.discount, o.currency)} off). " if o.discount else ". ")
                if o.promo_code
                else ""
            ),
            "delivery": f"Delivery: {words(o.delivery)}." if o.delivery else "",
        } | ({"carrier": f" by {o.carrier}"} if o.state == "delivered" and o.carrier else {})

    def _wait(self, o: OrderFacts) -> tuple[str, int, datetime | None]:
        p = self.policy
        country = self.facts.country
        if (o.delivery or "") in ("express", "next_day"):
            return "express", p.express_wait_days + 1, None
        if country and p.home_country and country.upper() != p.home_country.upper():
            kind, days = "international", p.international_wait_days
        else:
            kind, days = words(o.delivery) or "standard", p.standard_wait_days
        due = add_business_days(o.shipped_at, days) if o.shipped_at else None
        return kind, days, due

    def refund_parts(self, o: OrderFacts, not_received: bool = False) -> list[tuple[R.ReplyTemplate, dict[str, str]]]:
        """The order's refunds (the last two). Past its policy window, a refund "should have arrived by" then; only
        when the customer says it has not is it called overdue."""
        parts: list[tuple[R.ReplyTemplate, dict[str, str]]] = []
        now = self.facts.now
        for r in o.refunds[-2:]:
            method = words(r.method) or "original payment method"
            days = self.policy.refund_days.get((r.method or "").lower(), self.policy.refund_days_default)
            values = {
                "amount": money(r.amount, r.currency),
                "order": o.order_id,
                "issued": day(r.at, now),
                "method": method,
                "method_cap": method[:1].upper() + method[1:],
                "reason": f" ({words(r.reason)})" if r.reason and r.reason not in ("return",) else "",
                "days": str(days),
                "days_text": "1 business day" if days == 1 else f"{days} business days",
                "expected": day(r.expected_by, now),
            }
            if not r.overdue:
                parts.append((R.REFUND_ISSUED, values))
            elif not_received:
                parts.append((R.REFUND_OVERDUE, values))
            else:
                parts.append((R.REFUND_DUE_BY, values))
            if r.deductions:
                names = [
                    f"{words(str(d.get('type') or 'a charge'))} of {money(_f(d.get('amount')), r.currency)}"
                    for d in r.deductions
                ]
                parts.append(
                    (
                        R.REFUND_DEDUCTIONS,
                        {"deductions": ", ".join(names), "verb": "was" if len(names) == 1 else "were"},
                    )
                )
        return parts

    def order_after_failure(self, f: PaymentFailure) -> OrderFacts | None:
        """The order placed within three hours after a failed checkout (the retry that went through)."""
        if f.kind not in (None, "checkout"):
            return None
        later = [
            o for o in self.facts.orders if o.placed_at and timedelta(0) <= o.placed_at - f.at <= timedelta(hours=3)
        ]
        return min(later, key=lambda o: o.placed_at or f.at) if later else None

    def replacement_values(self, r: ReturnFacts) -> dict[str, str]:
        now = self.facts.now
        new = f" ({r.exchange_for})" if r.exchange_for else ""
        if r.replacement_delivered_at:
            text = f"The replacement{new} was delivered on {day(r.replacement_delivered_at, now)}."
        elif r.replacement_shipped_at:
            track = f" (tracking number {r.replacement_tracking})" if r.replacement_tracking else ""
            text = f"The replacement{new} was sent on {day(r.replacement_shipped_at, now)}{track}."
        else:
            text = f"The replacement{new} hasn't been sent yet."
        return {"replacement": text}

    def return_values(self, o: OrderFacts, r: ReturnFacts) -> dict[str, str]:
        items = ", ".join(i.name for i in r.items) or items_text(o)
        return {
            "kind": "exchange" if r.kind == "exchange" else "return",
            "rma": f"{r.rma} " if r.rma else "",
            "items": items,
            "order": o.order_id,
            "booked": day(r.at, self.facts.now),
            "method": f" ({words(r.method)})" if r.method else "",
            "reason": f", reason: {words(r.reason)}" if r.reason else "",
        }

    def membership_line(self, m: MembershipFacts) -> str:
        return f"{_plan(m.plan)}: {m.status}" + (f", renews {day(m.renews_at, self.facts.now)}" if m.renews_at else "")

    def membership_parts(self, m: MembershipFacts) -> tuple[list[tuple[R.ReplyTemplate, dict[str, str]]], str | None]:
        now = self.facts.now
        plan = _plan(m.plan)
        price = f" at {money(m.price, m.currency)}" if m.price is not None else ""
        if m.plan and "annual" in m.plan:
            price += " a year" if price else ""
        elif m.plan and "month" in m.plan:
            price += " a month" if price else ""
        parts: list[tuple[R.ReplyTemplate, dict[str, str]]] = []
        help_query: str | None = None
        if m.status == "none" or not m.events:
            return [(R.MEMBERSHIP_NONE, {})], None
        if m.status == "cancelled":
            until = ""
            if m.benefits_until:
                verb = "last" if m.benefits_until > now else "lasted"
                until = f" Your benefits {verb} until {day(m.benefits_until, now)}."
            cancelled = next((r.at for r in reversed(m.events) if r.type == "subscription_cancelled"), None)
            parts.append((R.MEMBERSHIP_CANCELLED, {"plan": plan, "cancelled": day(cancelled, now), "until": until}))
        elif m.status == "paused":
            since = f" from {day(m.paused_from, now)}" if m.paused_from else ""
            paused_price = f" ({price.strip()})" if price else ""
            values = {"plan": plan, "price": paused_price, "since": since, "resumes": day(m.resumes_at, now)}
            parts.append((R.MEMBERSHIP_PAUSED, values))
        elif m.status == "trial" and m.trial_ends_at and m.trial_ends_at > now:
            after = (
                f" After that it's {money(m.price, m.currency)}" + (" a month." if "month" in (m.plan or "") else ".")
                if m.price
                else ""
            )
            parts.append((R.MEMBERSHIP_TRIAL, {"plan": plan, "trial_end": day(m.trial_ends_at, now), "after": after}))
        else:
            renewal = self._renewal(m)
            parts.append((R.MEMBERSHIP_ACTIVE, {"plan": plan, "price": price, "renewal": renewal}))
        if m.failed_payments and m.status != "cancelled":
            last = m.failed_payments[-1]
            retry = ""
            if last.next_retry_at and last.next_retry_at > now:
                retry = f" The next try is on {day(last.next_retry_at, now)}."
            parts.append(
                (
                    R.MEMBERSHIP_PAYMENT_FAILED,
                    {
                        "plan": plan,
                        "amount": money(last.amount, last.currency),
                        "times": _times(len(m.failed_payments)),
                        "reason": words(last.reason) or "no reason given",
                        "last": day(last.at, now),
                        "retry": retry,
                    },
                )
            )
            help_query = "How do I update my payment method after a failed payment?"
        return parts, help_query

    def _renewal(self, m: MembershipFacts) -> str:
        now = self.facts.now
        if m.renews_at and m.renews_at > now:
            return f"It renews on {day(m.renews_at, now)}."
        if m.billing_day:
            year, month = now.year, now.month
            if now.day >= m.billing_day:
                month += 1
                if month > 12:
                    year, month = year + 1, 1
            for d in (m.billing_day, 30, 29, 28):
                try:
                    nxt = now.replace(year=year, month=month, day=d)
                    break
                except ValueError:
                    continue
            return (
                f"You're billed on the {_ordinal(m.billing_day)} of each month; the next payment is on {day(nxt, now)}."
            )
        if m.renews_at:  # in the past: the renewal has not been recorded
            return f"It was due to renew on {day(m.renews_at, now)}."
        return ""

    def payment_values(self, failures: list[PaymentFailure]) -> dict[str, str]:
        f = failures[0]
        same_day = [x for x in failures if x.at.date() == f.at.date()]
        more = f" That was the last of {len(same_day)} failed tries that day." if len(same_day) > 1 else ""
        return {
            "amount": money(f.amount, f.currency),
            "when": day(f.at, self.facts.now),
            "reason": words(f.reason) or "no reason given",
            "code": f" (error {f.error_code})" if f.error_code else "",
            "more": more,
        }

    def ticket_values(self, t: TicketFacts) -> dict[str, str]:
        return {
            "channel": f"{t.channel} " if t.channel else "",
            "subject": t.subject,
            "opened": day(t.at, self.facts.now),
            "status": t.status or "open",
        }

    def past_values(self, c: PastConversation) -> dict[str, str]:
        return {
            "when": day(c.started_at, self.facts.now),
            "about": f", about {c.topic}" if c.topic else "",
            "summary": c.summary,
        }


def _f(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
