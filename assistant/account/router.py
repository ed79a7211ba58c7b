"""Which part of the customer's record a message asks about, without a chat model.

A message is an account question when it is about the customer's own things (an order number, or "my order",
"I ordered", "my refund"...) and it reads like one of a tool's example questions more than like a general
help-center question ("how long do card refunds take?"). Examples are compared by meaning (the offline
embedding model), so phrasings never seen here still find their tool; order and RMA numbers are found by
pattern. A message with a second, general clause ("my sofa is late, can I still return it?") is `mixed`: the
answer uses the record and the help center.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

from assistant.turn.grounding import SentenceVectors

# Tools and how customers ask for them. General (help-center) questions are the negatives: a message closer to
# them than to any tool's examples is not an account question, even when it says "my".
EXAMPLES: dict[str, list[str]] = {
    "order_status": [
        "Where is my order?",
        "Has my order shipped yet?",
        "When will my parcel arrive?",
        "What's the tracking number for my order?",
        "My delivery hasn't turned up",
        "my package still hasn't arrived",
        "Is my order on its way?",
        "When is my delivery slot?",
        "Can you track my order for me",
        "Which courier is delivering my order?",
        "the sofa I ordered has not come",
        "my order is late",
        "what time are you delivering tomorrow",
        "I was supposed to get my delivery this morning and nobody came",
        "has my stuff been dispatched",
        "was my order cancelled?",
        "did my cancellation go through",
        "status of my order please",
        "where's my parcel",
        "did my order get delivered",
    ],
    "order_details": [
        "What did I order?",
        "How much did I pay for my last order?",
        "What was in my order?",
        "Which payment method did I use for my order?",
        "how much was the delivery charge on my order",
        "what's the total of my order",
        "can you show me my recent orders",
        "list my orders",
        "what have I bought from you",
        "Did I use a promo code on my order?",
    ],
    "refund_status": [
        "Where is my refund?",
        "Have you refunded me yet?",
        "When will I get my money back?",
        "I still haven't received my refund",
        "How much was I refunded?",
        "did my refund go through",
        "when will the refund reach my card",
        "I was promised a refund and haven't seen it",
        "has the money been returned to my account",
        "why was my refund less than I paid",
    ],
    "return_status": [
        "What's happening with my return?",
        "Did you receive my return?",
        "What is my RMA number?",
        "Has my return been collected?",
        "status of my exchange",
        "I sent the item back, what now",
        "when is the courier collecting my return",
        "did my exchange get sent out",
    ],
    "membership": [
        "When does my membership renew?",
        "Am I a Plus member?",
        "How much am I paying for my subscription?",
        "When does my free trial end?",
        "Is my membership paused?",
        "When do my Plus benefits end?",
        "what plan am I on",
        "why was I charged for my membership",
        "is my subscription still active",
        "when will my membership start again",
        "when is my next billing date",
    ],
    "payments": [
        "Why did my payment fail?",
        "My card was declined",
        "why won't my payment go through",
        "my membership payment failed",
        "was I charged twice",
        "what does my payment error mean",
    ],
    "tickets": [
        "Is there an update on my complaint?",
        "What's happening with my support ticket?",
        "any news on my case",
        "I reported a problem last week, what's the status",
        "you were investigating my missing parcel, any news",
        "has anyone looked at my complaint",
        "is my request sorted yet",
        "did you deal with the request I sent",
    ],
    "past_conversations": [
        "What did we talk about last time?",
        "I spoke to someone yesterday about this",
        "what did your agent tell me before",
        "as I said in my last chat",
    ],
}
GENERAL: list[str] = [
    "How long do refunds take?",
    "How long does a refund to my card take?",
    "How long does it take to process a return?",
    "How long does delivery take?",
    "When do you charge my card for an order?",
    "How long do PayPal refunds take?",
    "How do I return an item?",
    "What is your return policy?",
    "How much does delivery cost?",
    "Do you deliver abroad?",
    "How do I reset my password?",
    "How do I change my email address?",
    "What is Larkspur Plus?",
    "What are the benefits of membership?",
    "How do I cancel my membership?",
    "How do I pause my subscription?",
    "How do I use a gift card?",
    "What payment methods do you accept?",
    "Can I change my delivery address after ordering?",
    "How do I cancel an order?",
    "Do I have to pay customs?",
    "How does click and collect work?",
    "My app keeps crashing",
    "I can't log in to my account",
    "I'm not receiving your emails",
    "How do I turn on two-factor authentication?",
    "How do I delete my account?",
    "Can I get a VAT invoice?",
    "What do I do if an item arrives damaged?",
    "An item is missing from my parcel",
    "What happens if I miss my delivery?",
    "How do I start a return?",
    "Can I exchange an item for a different size?",
    "How do promo codes work?",
    "I don't recognise a charge on my statement",
    "Why was my card declined at checkout?",
    "Can I switch to annual billing?",
    "What are your opening hours?",
    "Can I speak to someone?",
    "hello",
    "thank you",
]

ORDER_ID = re.compile(r"\b([A-Z]{2,5}-?\d{4,10})\b", re.I)
RMA_ID = re.compile(r"\bRMA-?\d{3,10}\b", re.I)
_MINE = re.compile(
    r"\b(my|mine|i|i'm|i've|i'd|im|ive|me|we|our|us)\b|\b(ordered|bought|purchased|paid|returned|sent back)\b", re.I
)
_GENERAL_CLAUSE = re.compile(
    r"\b(can i|could i|may i|am i able|is it possible|how do i|how can i|how long (do|does)|what is your|"
    r"what's your|do you|policy|allowed|still return|still cancel|still exchange)\b",
    re.I,
)
# "a refund", "an order", "how long does ... take": about how things work, not about one of the customer's own
_GENERIC = re.compile(
    r"\b(a|an|any|every)\s+(\w+\s+)?(refund|order|return|parcel|package|item|product|delivery|exchange|payment|membership|card|code|voucher)s?\b"
    r"|\bhow long (does|do|will) (it|a|an|refunds?|returns?|deliver(y|ies))\b",
    re.I,
)
_CLAUSE_SPLIT = re.compile(r"[?.!;]+|,\s*(?:and|but|so)?\s*|\s+(?:and|but|also)\s+(?=\w+\s+\w+)", re.I)


class AccountIntent(BaseModel):
    tool: str
    score: float = Field(description="similarity to the tool's closest example")
    general: float = Field(description="similarity to the closest general (help-center) question")
    order_ids: list[str] = Field(default_factory=list, description="order numbers in the message")
    rmas: list[str] = Field(default_factory=list)
    mixed: bool = Field(False, description="a clause also asks something the help center answers")
    general_clause: str | None = None


@dataclass
class AccountRouter:
    """`route(text)` -> the account tool the message needs, or None (not about the customer's own record)."""

    vectors: SentenceVectors
    min_score: float = 0.55
    margin: float = 0.02
    _tools: list[str] = field(default_factory=list)
    _matrix: np.ndarray | None = None
    _general: np.ndarray | None = None

    def _ready(self) -> tuple[np.ndarray, np.ndarray]:
        if self._matrix is None or self._general is None:
            texts, tools = [], []
            for tool, examples in EXAMPLES.items():
                texts += examples
                tools += [tool] * len(examples)
            self._tools = tools
            self._matrix = self.vectors.embed(texts)
            self._general = self.vectors.embed(GENERAL)
        return self._matrix, self._general

    def _scores(self, text: str) -> tuple[str, float, float]:
        matrix, general = self._ready()
        q = self.vectors.embed_one(text)
        sims = matrix @ q
        best = int(np.argmax(sims))
        return self._tools[best], float(sims[best]), float(np.max(general @ q))

    def route(self, text: str, follow_up: bool = False, items: frozenset[str] = frozenset()) -> AccountIntent | None:
        """`follow_up`: the conversation is already about one of the customer's orders, and the message refers
        back to it ("when will it arrive?"): it need not say "my" to be about the record. `items`: words of the
        names of things the customer bought; naming one ("where is my lamp?") is as good as an order number."""
        order_ids = list(dict.fromkeys(m.upper() for m in ORDER_ID.findall(text) if not RMA_ID.fullmatch(m)))
        rmas = list(dict.fromkeys(m.upper() for m in RMA_ID.findall(text)))
        specific = re.sub(r"\b(a|an|any|every)\s+[\w-]+(\s+[\w-]+)?", " ", text.lower())  # not "a gift card"
        named = bool(items & set(re.findall(r"[a-z]{3,}", specific)))  # "my lamp", "the sofa"
        if not (order_ids or rmas or follow_up or named or _MINE.search(text)):
            return None  # not about the customer's own things
        tool, score, general = self._scores(text)
        clauses = [c.strip() for c in _CLAUSE_SPLIT.split(text) if c and len(c.split()) >= 2]
        mixed_clause: str | None = None
        if len(clauses) > 1:
            scored = [(c, *self._scores(c)) for c in clauses]
            account_clauses = [s for s in scored if s[2] >= self.min_score and s[2] > s[3] + self.margin]
            general_clauses = [s for s in scored if _GENERAL_CLAUSE.search(s[0]) and s[3] >= s[2] - 0.05]
            if account_clauses and general_clauses:
                best = max(account_clauses, key=lambda s: s[2])
                tool, score, general = best[1], best[2], best[3]
                mixed_clause = general_clauses[0][0]
        if mixed_clause is None and _GENERAL_CLAUSE.search(text):
            mixed_clause = text  # "can I return my sofa?": the record says where the sofa is, the help center the rest
        margin = self.margin + (0.15 if _GENERIC.search(text) else 0.0)
        is_account = score >= self.min_score and score > general + margin
        # a short message far closer to a tool than to any general question ("where is my lamp?")
        is_account = is_account or (score >= self.min_score - 0.15 and score > general + margin + 0.1)
        if not is_account and named and score > general - 0.05:
            is_account = True
        if not is_account and (order_ids or rmas):
            is_account = True  # a number of theirs: the record answers, whichever tool reads closest
            if rmas and tool not in ("return_status", "refund_status"):
                tool = "return_status"
            elif tool not in ("order_status", "order_details", "refund_status", "return_status"):
                tool = "order_status"
        if not is_account:
            return None
        return AccountIntent(
            tool=tool,
            score=round(score, 4),
            general=round(general, 4),
            order_ids=order_ids,
            rmas=rmas,
            mixed=mixed_clause is not None,
            general_clause=mixed_clause,
        )
