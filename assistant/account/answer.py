"""Account answers without a chat model: route the message to a tool (`assistant.account.router`), read the
verified customer's record through it (`assistant.account.tools`), and phrase the reply from templates
(`assistant.prompts.replies`) filled with the facts. Each answer cites the records it read
(`account:order:<id>`, `account:membership`, ...) and carries its tool calls for the turn record.

Privacy is decided here, before any fact is read: an anonymous visitor gets no record details, only how to sign
in (or a person); an order number that is not on this customer's account is "not found", never looked up
elsewhere. What the record says about time is said plainly: a late delivery or an overdue refund is named as
such, and the conversation goes to a person with a typed reason (`late_delivery`, `refund_overdue`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Generator
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field, PrivateAttr

from assistant.account.calling import ToolCallingPhraser, ToolOutcome
from assistant.account.facts import AccountFacts, AccountPolicy, fold, normalise_order_id
from assistant.account.router import EXAMPLES, ORDER_ID, AccountIntent, AccountRouter, items_named
from assistant.account.tools import AccountTools, ToolResult
from assistant.errors import StoreUnavailableError
from assistant.models import (
    Citation,
    Conversation,
    CustomerRecord,
    Message,
    OrderFacts,
    TicketFacts,
    ToolCall,
    utcnow,
)
from assistant.prompts import replies as R

logger = logging.getLogger(__name__)

TOOL_NAMES = frozenset(EXAMPLES)

# (customer_id, this conversation's id) -> profile (None: no record), events, earlier conversations
RecordLoader = Callable[[str, str], CustomerRecord]

_NOT_RECEIVED = re.compile(
    r"\b(not|never|nothing|haven'?t|hasn'?t|havent|hasnt|didn'?t|didnt|isn'?t|isnt|wasn'?t|wasnt|"
    r"still (no|not|waiting)|no sign|missing|where is|where's|wheres)\b",
    re.I,
)
_FOLLOW_UP = re.compile(
    r"\b(it|its|it's|that|this|they|them|those|the order|the parcel|the delivery|the refund)\b"
    r"|^\s*(and|also|so|what about|how about|then)\b",
    re.I,
)
_LATEST = re.compile(r"\b(last|latest|recent|newest|most recent)\b(?!\s+(week|month|year|time|night))", re.I)
_AMOUNT = re.compile(r"[£€$]\s?(\d+(?:[.,]\d{1,2})?)|(\d+(?:[.,]\d{1,2})?)\s?(?:pounds|euros?|dollars)", re.I)


class AccountAnswer(BaseModel):
    """What the record says in reply to one message (worded by the templates; `AccountAnswerer.phrase` may
    have a configured model word it, from the same facts)."""

    text: str
    citations: list[Citation] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    intent: AccountIntent | None = None
    handoff_reason: str | None = Field(None, description="the record itself needs a person (late_delivery, ...)")
    offer: bool = Field(False, description="answer, and offer a person")
    confidence: float = 0.9
    help_query: str | None = Field(None, description="a help-center question whose best passage completes the answer")
    help_in_context: bool = Field(
        False, description="help_query is a follow-up: searched with the conversation, not alone"
    )
    help_first: bool = Field(
        False, description="the help center's passage answers; the record's part (a sign-in offer) follows it"
    )
    templates: list[str] = Field(default_factory=list)
    by_model: bool = Field(False, description="worded by the configured model from the tools' results")
    _tools: AccountTools | None = PrivateAttr(default=None)
    _current: str | None = PrivateAttr(default=None)


class AccountAnswerer:
    def __init__(
        self,
        records: RecordLoader,
        router: AccountRouter,
        policy: AccountPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        phraser: ToolCallingPhraser | None = None,
    ) -> None:
        self.records = records
        self.router = router
        self.policy = policy or AccountPolicy()
        self.clock = clock
        self.phraser = phraser

    def answer(
        self,
        text: str,
        conversation: Conversation,
        previous: list[Message],
        last_call: ToolCall | None = None,
        record: CustomerRecord | None = None,
    ) -> AccountAnswer | None:
        """The account answer to `text`, or None when it is not about the customer's own record. `last_call`: the
        account tool the previous answer in this conversation called (a follow-up keeps to it). `record`: the
        customer's record as this turn read it already (`RECORD_EVENTS` events, `RECORD_PAST` conversations: the
        engine's history step reads it once for both); None = read here."""
        current = _current_order(previous)
        follow_up = (current is not None or last_call is not None) and bool(_FOLLOW_UP.search(text))
        previous_tool = (str(last_call.arguments.get("for") or last_call.name) if last_call else None) or None
        candidates = [str(c) for c in last_call.arguments.get("candidates", [])] if last_call else []
        if not conversation.verified or not conversation.customer_id:  # no record details, ever
            intent = self.router.route(text, follow_up=follow_up, anonymous=True)
            if intent is None:
                return None
            reply = self._reply(intent, [(R.NOT_SIGNED_IN, {})], offer=True, confidence=0.7, help_query=text)
            reply.help_first = True  # "how long do PayPal refunds take?" is answered first; signing in is on offer
            return reply
        started = time.perf_counter()
        try:
            if record is None:
                record = self.records(conversation.customer_id, conversation.id)
            profile, events, past = record
        except StoreUnavailableError:
            raise
        except Exception:  # anything but the store failing (the engine's to handle) is a bad record
            logger.warning("account record of %s could not be read", conversation.customer_id, exc_info=True)
            profile, events, past = None, [], []
        facts = None
        if profile is not None:
            country = profile.attributes.get("country")
            facts = fold(events, self.clock(), self.policy, country if isinstance(country, str) else None)
        intent = self.router.route(
            text,
            follow_up=follow_up,
            items=_item_words(facts.orders) if facts else frozenset(),
            previous_tool=previous_tool if previous_tool in TOOL_NAMES else None,
        )
        if intent is None and facts is not None:
            intent = self._route_with_earlier(text, previous, _item_words(facts.orders))
        if intent is None:
            return None
        if profile is None or facts is None:  # deleted mid-conversation, or never loaded
            return self._reply(intent, [(R.RECORD_UNAVAILABLE, {})], offer=True, confidence=0.5)
        tools = AccountTools(facts, past, self.policy)
        if candidates and not intent.order_ids:  # the answer to "which one is it?"
            picked = _orders_by_item([o for o in facts.orders if o.order_id in candidates], text)
            if len(picked) == 1:
                intent.order_ids = [picked[0].order_id]
        if intent.tool != "tickets" and _UPDATE.search(text) and _best_by_words(facts.tickets, text, _subject, least=2):
            intent.tool = "tickets"  # "any news on the replacement door?" is a request already open
        answer = self._dispatch(intent, tools, text, current)
        if intent.also and intent.also != intent.tool:  # two questions in one: both answered
            second = self._dispatch(intent.model_copy(update={"tool": intent.also, "also": None}), tools, text, current)
            answer = _merge(answer, second)
        if intent.mixed and answer.handoff_reason == "late_delivery":
            # the customer asks something more than where it is: the facts, the help center, and a person on offer
            answer.handoff_reason, answer.offer = None, True
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        for call in answer.tool_calls:
            call.latency_ms = elapsed
        if intent.mixed and intent.general_clause and answer.help_query is None:
            answer.help_query = intent.general_clause
        answer._tools, answer._current = tools, current
        return answer

    def _route_with_earlier(self, text: str, previous: list[Message], items: frozenset[str]) -> AccountIntent | None:
        """ "hi, I have a question about the rug" - "when is it coming?": a message that refers back to one of the
        customer's things named in their last messages is routed with them."""
        earlier = [m.text for m in previous if m.role == "customer"][-2:]
        if not earlier or not (_FOLLOW_UP.search(text) or len(text.split()) <= 10):
            return None
        joined = " ".join([*earlier, text])
        if not (items_named(" ".join(earlier), items) or ORDER_ID.search(" ".join(earlier))):
            return None
        return self.router.route(joined, follow_up=True, items=items)

    def phrase(
        self,
        answer: AccountAnswer,
        question: str,
        transcript: str,
        *,
        turn_id: str | None = None,
        conversation_id: str | None = None,
    ) -> Generator[str, None, AccountAnswer]:
        """The answer's text as the customer reads it: the templates' (embedded default), or, with a configured
        model (`ToolCallingPhraser`), the model's words from the tools it calls, held to their results."""
        tools = answer._tools
        if self.phraser is None or tools is None:
            yield answer.text
            return answer
        current = answer._current

        def run(name: str, args: dict[str, Any]) -> ToolOutcome:
            oid, rma = args.get("order_id"), args.get("rma")
            intent = AccountIntent(
                tool=name,
                score=1.0,
                general=0.0,
                order_ids=[str(oid).upper()] if oid else [],
                rmas=[str(rma).upper()] if rma else [],
            )
            done = self._dispatch(intent, tools, question, current)
            return ToolOutcome(summary=done.text, calls=done.tool_calls, citations=done.citations)

        phrased = yield from self.phraser.phrase(
            question, transcript, run, answer.text, turn_id=turn_id, conversation_id=conversation_id
        )
        if not phrased.by_model:
            return answer
        citations = list(answer.citations)
        for c in phrased.citations:
            if c.source_id not in {x.source_id for x in citations}:
                citations.append(c)
        return answer.model_copy(
            update={
                "text": phrased.text,
                "tool_calls": phrased.calls or answer.tool_calls,
                "citations": citations,
                "by_model": True,
            }
        )

    # -- by tool ---------------------------------------------------------------------------------------------

    def _dispatch(self, intent: AccountIntent, tools: AccountTools, text: str, current: str | None) -> AccountAnswer:
        if intent.order_ids:
            missing = [o for o in intent.order_ids if tools.facts.order(o) is None]
            if missing:
                return self._not_found(intent, tools, "order " + " or ".join(missing))
        if intent.tool in ("membership",):
            return self._membership(intent, tools)
        if intent.tool == "payments":
            return self._payments(intent, tools)
        if intent.tool == "tickets":
            return self._tickets(intent, tools, text)
        if intent.tool == "past_conversations":
            return self._past(intent, tools, text)
        if intent.tool == "return_status" and intent.rmas:
            found = [r for o in tools.facts.orders for r in o.returns if r.rma and r.rma.upper() in intent.rmas]
            if not found:
                return self._not_found(intent, tools, "return " + " or ".join(intent.rmas))
        if not tools.facts.orders:
            return self._reply(intent, [(R.NO_ORDERS, {})], offer=True, confidence=0.8)
        orders = self._pick_orders(intent, tools.facts, text, current)
        if len(orders) > 1:
            listing = ", ".join(tools.describe_order(o) for o in orders[:5])
            result = tools.call("find_orders", {"candidates": [o.order_id for o in orders], "for": intent.tool}, orders)
            return self._reply(
                intent, [(R.WHICH_ORDER, {"n": str(len(orders)), "orders": listing})], [result], confidence=0.85
            )
        order = orders[0]
        if intent.tool == "refund_status":
            return self._refund(intent, tools, order, text)
        if intent.tool == "return_status":
            return self._return(intent, tools, order)
        if intent.tool == "order_details":
            if _LATEST.search(text) or intent.order_ids or current:
                return self._details(intent, tools, order)
            if re.search(r"\b(orders|list|history|bought)\b", text, re.I):
                recent = tools.facts.orders[:5]
                result = tools.call("list_orders", {"for": "order_details"}, recent)
                listing = "; ".join(tools.describe_order(o) for o in recent)
                return self._reply(intent, [(R.ORDERS_LIST, {"orders": listing})], [result])
            return self._details(intent, tools, order)
        return self._status(intent, tools, order)

    def _pick_orders(
        self, intent: AccountIntent, facts: AccountFacts, text: str, current: str | None
    ) -> list[OrderFacts]:
        """The order(s) the message means: a number it names, an item it names, the one this conversation is
        about, else by what is asked (the one on its way; the one with a refund or a return; the latest)."""
        if intent.order_ids:
            return [o for oid in intent.order_ids if (o := facts.order(oid)) is not None]
        named = _orders_by_item(facts.orders, text)
        if named:
            return named[:1] if _LATEST.search(text) else named
        amounts = {float(a or b) for a, b in _AMOUNT.findall(text.replace(",", ""))}
        if amounts:
            refunded = [o for o in facts.orders if amounts & {r.amount for r in o.refunds if r.amount is not None}]
            paid = [o for o in facts.orders if o.total is not None and o.total in amounts]
            by_amount = (refunded or paid) if intent.tool == "refund_status" else (paid or refunded)
            if by_amount:
                return by_amount[:1]
        if current is not None and (o := facts.order(current)) is not None:
            return [o]
        if _LATEST.search(text):
            return facts.orders[:1]
        recent = facts.orders
        if intent.tool == "refund_status":
            pool = [o for o in recent if o.refunds or o.returns or o.state == "cancelled"]
        elif intent.tool == "return_status":
            pool = [o for o in recent if o.returns]
        elif intent.tool == "order_status":
            pool = [o for o in recent if o.state in ("processing", "shipped")]
        else:
            pool = []
        if not pool:
            return recent[:1]
        if intent.tool in ("refund_status", "return_status"):
            newest = max((t for o in pool for t in _refund_return_times(o)), default=None)
            latest = [o for o in pool if newest in _refund_return_times(o)]
            return latest[:1] or pool[:1]
        return pool

    def _status(self, intent: AccountIntent, tools: AccountTools, o: OrderFacts) -> AccountAnswer:
        result = tools.call("order_status", {"order_id": o.order_id}, o)
        v = tools.order_values(o)
        parts: list[tuple[R.ReplyTemplate, dict[str, str]]] = []
        reason: str | None = None
        if o.state == "cancelled":
            parts.append((R.ORDER_CANCELLED, v))
            parts += tools.refund_parts(o)
        elif o.state == "delivered":
            parts.append((R.ORDER_DELIVERED, v))
        elif o.state == "processing":
            parts.append((R.ORDER_PROCESSING, v))
        elif o.late and o.slot_end is not None:
            parts.append((R.ORDER_LATE_SLOT, v))
            reason = "late_delivery"
        elif o.late:
            parts.append((R.ORDER_LATE, v))
            reason = "late_delivery"
        elif o.slot_start is not None:
            parts.append((R.ORDER_SHIPPED_SLOT, v))
        else:
            parts.append((R.ORDER_SHIPPED, v))
        if o.collect_point and o.state == "shipped":
            parts.append((R.ORDER_COLLECT_POINT, v))
        return self._reply(intent, parts, [result], handoff_reason=reason)

    def _details(self, intent: AccountIntent, tools: AccountTools, o: OrderFacts) -> AccountAnswer:
        result = tools.call("order_details", {"order_id": o.order_id}, o)
        return self._reply(intent, [(R.ORDER_DETAILS, tools.order_values(o))], [result])

    def _refund(self, intent: AccountIntent, tools: AccountTools, o: OrderFacts, text: str) -> AccountAnswer:
        result = tools.call("refund_status", {"order_id": o.order_id}, o)
        if not o.refunds:
            parts: list[tuple[R.ReplyTemplate, dict[str, str]]] = [
                (R.REFUND_NONE, {"scope": f" for order {o.order_id}"})
            ]
            if o.returns:
                parts.insert(0, (R.RETURN_STATUS, tools.return_values(o, o.returns[-1])))
            help_query = "When will I get my refund after my return?" if o.returns else None
            return self._reply(intent, parts, [result], offer=True, help_query=help_query)
        missing = bool(_NOT_RECEIVED.search(text))
        parts = tools.refund_parts(o, not_received=missing)
        overdue = o.refunds[-1].overdue and missing
        return self._reply(intent, parts, [result], handoff_reason="refund_overdue" if overdue else None)

    def _return(self, intent: AccountIntent, tools: AccountTools, o: OrderFacts) -> AccountAnswer:
        result = tools.call("return_status", {"order_id": o.order_id}, o)
        if not o.returns:
            return self._reply(intent, [(R.RETURN_NONE, {"scope": f" for order {o.order_id}"})], [result], offer=True)
        ret = o.returns[-1]
        parts = [(R.RETURN_STATUS, tools.return_values(o, ret))]
        if ret.kind == "exchange":
            parts.append((R.EXCHANGE_REPLACEMENT, tools.replacement_values(ret)))
            return self._reply(intent, parts, [result])
        parts += tools.refund_parts(o)
        if not o.refunds:
            parts.append((R.REFUND_NONE, {"scope": " for it"}))
        return self._reply(intent, parts, [result])

    def _membership(self, intent: AccountIntent, tools: AccountTools) -> AccountAnswer:
        m = tools.facts.membership
        result = tools.call("membership", {}, m)
        parts, help_query = tools.membership_parts(m)
        return self._reply(intent, parts, [result], help_query=help_query)

    def _payments(self, intent: AccountIntent, tools: AccountTools) -> AccountAnswer:
        failures = tools.facts.payment_failures
        result = tools.call("payments", {}, failures)
        if not failures:
            if tools.facts.membership.events:  # "am I being charged?": where the membership stands says it
                parts, help_query = tools.membership_parts(tools.facts.membership)
                member = tools.call("membership", {}, tools.facts.membership)
                return self._reply(intent, [(R.PAYMENTS_NONE, {}), *parts], [result, member], help_query=help_query)
            return self._reply(intent, [(R.PAYMENTS_NONE, {})], [result], offer=True)
        if tools.facts.membership.failed_payments and failures[0] in tools.facts.membership.failed_payments:
            parts, help_query = tools.membership_parts(tools.facts.membership)
            parts = parts[1:] + parts[:1]  # what failed first, then where the membership stands
            return self._reply(intent, parts, [result], help_query=help_query)
        parts = [(R.PAYMENT_FAILED, tools.payment_values(failures))]
        results = [result]
        after = tools.order_after_failure(failures[0])
        if after is not None:  # the customer tried again and it went through: one charge, not two
            parts.append((R.PAYMENT_THEN_ORDER, tools.order_values(after)))
            results.append(tools.call("order_details", {"order_id": after.order_id}, after))
        return self._reply(intent, parts, results, help_query="Why was my payment declined at checkout?")

    def _tickets(self, intent: AccountIntent, tools: AccountTools, text: str) -> AccountAnswer:
        tickets = tools.facts.tickets
        open_ = [t for t in tickets if (t.status or "open") not in ("closed", "resolved")]
        named = _best_by_words(tickets, text, lambda t: t.subject)
        shown = named or open_ or tickets[:1]
        result = tools.call("tickets", {"open_only": bool(open_)}, shown)
        if not shown:
            return self._reply(intent, [(R.TICKETS_NONE, {})], [result], offer=True)
        lines = " ".join(R.TICKET_LINE.fill(**tools.ticket_values(t)) for t in shown[:3])
        return self._reply(intent, [(R.TICKETS, {"tickets": lines})], [result], offer=bool(open_))

    def _past(self, intent: AccountIntent, tools: AccountTools, text: str) -> AccountAnswer:
        past = _best_by_words(tools.past, text, lambda c: f"{c.topic or ''} {c.summary}") or tools.past[:1]
        result = tools.call("past_conversations", {}, past)
        if not past:
            return self._reply(intent, [(R.PAST_NONE, {})], [result])
        return self._reply(intent, [(R.PAST_CONVERSATION, tools.past_values(past[0]))], [result])

    def _not_found(self, intent: AccountIntent, tools: AccountTools, what: str) -> AccountAnswer:
        recent = tools.facts.orders[:3]
        hint = (
            "Your recent orders are " + "; ".join(tools.describe_order(o) for o in recent) + ". Is it one of these?"
            if recent
            else "Could you check the number in your order confirmation email?"
        )
        result = tools.call("find_orders", {"asked": what}, recent)
        return self._reply(intent, [(R.ORDER_NOT_FOUND, {"what": what, "hint": hint})], [result], confidence=0.85)

    # -- assembling --------------------------------------------------------------------------------------------

    def _reply(
        self,
        intent: AccountIntent,
        parts: list[tuple[R.ReplyTemplate, dict[str, str]]],
        results: list[ToolResult] | None = None,
        *,
        handoff_reason: str | None = None,
        offer: bool = False,
        confidence: float = 0.92,
        help_query: str | None = None,
    ) -> AccountAnswer:
        text = " ".join(t.fill(**values) for t, values in parts if t is not None)
        results = results or []
        for r in results:
            r.call.summary = " ".join(text.split())
        citations: list[Citation] = []
        for r in results:
            for c in r.citations:
                if c.source_id not in {x.source_id for x in citations}:
                    citations.append(c)
        return AccountAnswer(
            text=" ".join(text.split()),
            citations=citations,
            tool_calls=[r.call for r in results],
            intent=intent,
            handoff_reason=handoff_reason,
            offer=offer,
            confidence=confidence,
            help_query=help_query,
            templates=[t.ref for t, _ in parts],
        )


def _current_order(previous: list[Message]) -> str | None:
    """The order this conversation is about: the last one an account answer cited on its own (a reply listing
    several, such as "which one is it?", settles none)."""
    for m in reversed(previous):
        cited = [c.source_id for c in m.citations if c.source_id.startswith("account:order:")]
        if len(cited) == 1:
            return cited[0].removeprefix("account:order:")
        if cited:
            return None
    return None


def _merge(a: AccountAnswer, b: AccountAnswer) -> AccountAnswer:
    """One answer to a message that asked two things of the record."""
    citations = list(a.citations) + [c for c in b.citations if c.source_id not in {x.source_id for x in a.citations}]
    return a.model_copy(
        update={
            "text": f"{a.text} {b.text}",
            "citations": citations,
            "tool_calls": [*a.tool_calls, *b.tool_calls],
            "handoff_reason": a.handoff_reason or b.handoff_reason,
            "offer": a.offer or b.offer,
            "help_query": a.help_query or b.help_query,
            "templates": [*a.templates, *b.templates],
            "confidence": min(a.confidence, b.confidence),
        }
    )


def _refund_return_times(o: OrderFacts) -> list[datetime]:
    """When each of the order's refunds and returns happened."""
    return [r.at for r in o.refunds] + [r.at for r in o.returns]


def _subject(t: TicketFacts) -> str:
    return t.subject


_UPDATE = re.compile(r"\b(news|updates?|progress|heard|any word|what'?s happening)\b(?!d)", re.I)


def _best_by_words(items: list[T], text: str, words_of: Callable[[T], str], least: int = 1) -> list[T]:
    """The items whose words the message shares most (at least `least`; two, or one that is rare among them)."""
    asked = {w.rstrip("s") for w in re.findall(r"[a-z]{3,}", text.lower())} - _COMMON - _WEAK
    if not asked or not items:
        return []
    bags = [{w.rstrip("s") for w in re.findall(r"[a-z]{3,}", words_of(i).lower())} for i in items]
    scored = [(len(asked & bag), i) for bag, i in zip(bags, items, strict=True)]
    best = max(s for s, _ in scored)
    if best == 0 or best < least:
        return []
    top = [i for s, i in scored if s == best]
    return top if best >= 2 or len(top) == 1 else []


_WEAK = frozenset({"ticket", "complaint", "request", "email", "chat", "open", "closed", "still", "status", "update"})
T = TypeVar("T")


def _item_words(orders: list[OrderFacts]) -> frozenset[str]:
    """Distinctive words of the names of things the customer bought ("sofa", "halden", "lamp")."""
    names = " ".join(i.name for o in orders for i in o.items).lower()
    return frozenset(re.findall(r"[a-z]{3,}", names)) - _COMMON - _DESCRIPTIVE


# Words of product names that say what something is like, not what it is ("oak", "grey", "set"): naming one is not
# naming an item ("grey" in "why is my account grey?").
_DESCRIPTIVE = frozenset(
    {"oak", "grey", "gray", "green", "white", "black", "blue", "red", "brass", "linen", "cotton", "wool", "pair"}
)


def _orders_by_item(orders: list[OrderFacts], text: str) -> list[OrderFacts]:
    """Orders with an item the message names ("my sofa", "the Halden lamp")."""
    words = {w for w in re.findall(r"[a-z]{3,}", text.lower())} - _COMMON
    if not words:
        return []
    scored = []
    for o in orders:
        names = " ".join(i.name for i in o.items).lower()
        item_words = {w.rstrip("s") for w in re.findall(r"[a-z]{3,}", names)} - _COMMON
        hit = len({w.rstrip("s") for w in words} & item_words)
        if hit:
            scored.append((hit, o))
    if not scored:
        return []
    best = max(h for h, _ in scored)
    return [o for h, o in scored if h == best]


_COMMON = frozenset(
    {
        "the",
        "and",
        "for",
        "with",
        "set",
        "you",
        "your",
        "are",
        "was",
        "has",
        "have",
        "not",
        "yet",
        "when",
        "where",
        "what",
        "why",
        "how",
        "can",
        "will",
        "order",
        "orders",
        "item",
        "items",
        "delivery",
        "deliver",
        "delivered",
        "refund",
        "return",
        "parcel",
        "package",
        "arrive",
        "arrived",
        "still",
        "this",
        "that",
        "there",
        "from",
        "did",
        "does",
        "get",
        "got",
        "been",
        "just",
        "about",
        "any",
        "new",
        "old",
        "big",
        "small",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
    }
)


def same_order(a: str, b: str) -> bool:
    return normalise_order_id(a) == normalise_order_id(b)
