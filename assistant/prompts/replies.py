"""Reply templates: the sentences the assistant writes from facts without a model (account answers), each with a
name and a version like the prompts. A template is filled with `str.format` from facts the code has checked;
its name and version go into the turn record's tool calls, so a change of wording is a new version.
"""

from __future__ import annotations

import string

from pydantic import BaseModel, ConfigDict


class ReplyTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    text: str
    description: str = ""

    @property
    def variables(self) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(self.text) if f}

    def fill(self, **values: str) -> str:
        missing = self.variables - values.keys()
        if missing:
            raise ValueError(f"template {self.name}: missing {sorted(missing)}")
        return self.text.format(**{k: v for k, v in values.items() if k in self.variables})

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def _t(name: str, text: str, description: str = "", version: str = "1") -> ReplyTemplate:
    return ReplyTemplate(name=name, version=version, text=text, description=description)


ORDER_SHIPPED_SLOT = _t(
    "order_shipped_slot",
    "Your order {order} ({items}) was dispatched on {shipped} with {carrier}{tracking}. "
    "It's booked for delivery on {slot_day}, between {slot_from} and {slot_to}.",
)
ORDER_SHIPPED = _t(
    "order_shipped",
    "Your order {order} ({items}) was dispatched on {shipped} with {carrier}{tracking}. "
    "It hasn't been delivered yet; {wait}",
)
ORDER_COLLECT_POINT = _t(
    "order_collect_point", "It's going to {collect_point}, where you can collect it once it arrives."
)
ORDER_LATE_SLOT = _t(
    "order_late_slot",
    "Your order {order} ({items}) was due on {slot_day} between {slot_from} and {slot_to}, with {carrier}{tracking}, "
    "and there's no delivery scan yet, so it's late. I'm sorry about that.",
)
ORDER_LATE = _t(
    "order_late",
    "Your order {order} ({items}) was dispatched on {shipped} with {carrier}{tracking} and hasn't been delivered. "
    "That's more than the {days} business days {kind} delivery should take, so it's late. I'm sorry about that.",
)
ORDER_DELIVERED = _t("order_delivered", "Your order {order} ({items}) was delivered on {delivered}{carrier}{how}.")
ORDER_PROCESSING = _t(
    "order_processing", "Your order {order} ({items}), placed on {placed}, hasn't been dispatched yet."
)
ORDER_CANCELLED = _t("order_cancelled", "Your order {order} ({items}) was cancelled on {cancelled}{reason}.")
ORDER_DETAILS = _t(
    "order_details",
    "Your order {order}, placed on {placed}: {items_priced}. {total}{promo}{payment}{delivery}",
)
ORDERS_LIST = _t("orders_list", "Your most recent orders: {orders}.")
WHICH_ORDER = _t("which_order", "I can see {n} orders that could be the one you mean: {orders}. Which one is it?")
ORDER_NOT_FOUND = _t(
    "order_not_found",
    "I can't find {what} on your account. {hint}",
    "an order number that is not this customer's: nothing of anyone else's is ever said",
)
NO_ORDERS = _t("no_orders", "I can't see any orders on your account.")

REFUND_ISSUED = _t(
    "refund_issued",
    "A refund of {amount} for order {order} was issued on {issued} to your {method}{reason}. "
    "{method_cap} refunds can take up to {days_text} to arrive, so it should reach you by {expected}.",
)
REFUND_OVERDUE = _t(
    "refund_overdue",
    "A refund of {amount} for order {order} was issued on {issued} to your {method}{reason}. "
    "It should have reached you by {expected} ({days_text}), so it's overdue. I'm sorry about that.",
)
REFUND_DUE_BY = _t(
    "refund_due_by",
    "A refund of {amount} for order {order} was issued on {issued} to your {method}{reason}. "
    "{method_cap} refunds take up to {days_text}, so it should have reached you by {expected}.",
    "a refund past its policy window; called overdue only when the customer says it has not arrived",
)
REFUND_DEDUCTIONS = _t("refund_deductions", "{deductions} {verb} deducted from it.")
REFUND_NOTE = _t("refund_note", "Note on the refund: {note}.")
REFUND_NONE = _t("refund_none", "I can't see a refund on your account{scope} yet.")
RETURN_STATUS = _t(
    "return_status",
    "Your {kind} {rma}for {items} from order {order} was booked on {booked}{method}{reason}.",
)
EXCHANGE_REPLACEMENT = _t("exchange_replacement", "{replacement}")
RETURN_NONE = _t("return_none", "I can't see a return on your account{scope}.")

MEMBERSHIP_ACTIVE = _t("membership_active", "You're on the {plan} plan{price}. {renewal}")
MEMBERSHIP_TRIAL = _t(
    "membership_trial", "You're on a free trial of the {plan} plan, which ends on {trial_end}.{after}"
)
MEMBERSHIP_PAUSED = _t(
    "membership_paused", "Your {plan} membership{price} is paused{since} and starts again on {resumes}.", version="2"
)
MEMBERSHIP_CANCELLED = _t("membership_cancelled", "Your {plan} membership was cancelled on {cancelled}.{until}")
MEMBERSHIP_NONE = _t("membership_none", "You don't have a membership on your account.")
MEMBERSHIP_PAYMENT_FAILED = _t(
    "membership_payment_failed",
    "Your {plan} payment of {amount} didn't go through {times} ({reason}), most recently on {last}.{retry}",
)
PAYMENT_FAILED = _t(
    "payment_failed",
    "Your payment of {amount} on {when} didn't go through: {reason}{code}.{more}",
)
PAYMENT_THEN_ORDER = _t(
    "payment_then_order",
    "Then order {order} went through on {placed}{total_short}, so it was charged once.",
    "a failed checkout followed by the order that succeeded: one charge, not two",
)
PAYMENTS_NONE = _t("payments_none", "I can't see any failed payments on your account.")

TICKETS = _t("tickets", "{tickets}")
TICKET_LINE = _t("ticket_line", 'Your {channel}request "{subject}" from {opened} is {status}.')
TICKETS_NONE = _t("tickets_none", "I can't see any open requests on your account.")
PAST_CONVERSATION = _t("past_conversation", "When we last spoke, on {when}{about}: {summary}")
PAST_NONE = _t("past_none", "I can't see an earlier conversation with you.")

NOT_SIGNED_IN = _t(
    "not_signed_in",
    "I can't see any account details here because you're not signed in. If you sign in and open this chat "
    "again, I can look it up for you, or I can connect you with a member of our team.",
    "an anonymous visitor asked about their own order or account: no record details, ever",
)
SIGN_IN_TO_CHECK = _t(
    "sign_in_to_check",
    "If this is about an order or payment of yours, sign in and open this chat again, and I can check it for you.",
    "after the help center's answer to an anonymous visitor who spoke of their own order or account",
)
RECORD_UNAVAILABLE = _t(
    "record_unavailable",
    "I can't open your account details right now, so I can't check that for you.",
)

GREETING = _t(
    "greeting",
    "Hi{name}! How can I help you today?",
    "a message that only greets: greeted back (a greeting is not a question for the help center)",
)

ACCOUNT_TEMPLATES: tuple[ReplyTemplate, ...] = tuple(
    v for v in list(globals().values()) if isinstance(v, ReplyTemplate)
)
