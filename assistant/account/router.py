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
        "how much did I get back",
        "refund?",
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
        "what's my return number",
        "has the replacement for my exchange been sent",
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
        "when will you try my payment again",
        "what was the error code on my payment",
        "am I being charged at the moment",
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
        "do I have any open tickets",
        "is my ticket still open",
    ],
    "past_conversations": [
        "What did we talk about last time?",
        "I spoke to someone yesterday about this",
        "what did your agent tell me before",
        "as I said in my last chat",
        "have I contacted you before",
        "what did we agree last time",
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
_NOT_A_REQUEST = r"(?! (have|get|see|know|check)\b)"  # "can I have the tracking number" asks for their facts
_GENERAL_CLAUSE = re.compile(
    rf"\b(can i{_NOT_A_REQUEST}|could i{_NOT_A_REQUEST}|may i|am i able|is it possible|how do i|how can i|"
    r"how long (do|does)|what is your|what's your|do you|policy|allowed|still return|still cancel|still exchange)\b",
    re.I,
)
# "how long until...", "what are the benefits?", "can I...": a question the help center answers for everyone, even
# when it speaks of "my" refund or parcel (against "where is my order?", which only the record answers)
_HOW_THINGS_WORK = re.compile(
    r"\b(how (long|many|much|do|does|can|soon)|what (is|are|does)|what's|can (i|we|someone)|could (i|someone)"
    r"|is it (possible|free)|do you|does it|am i meant|roughly)\b",
    re.I,
)


def asks_how_things_work(text: str) -> bool:
    return bool(_HOW_THINGS_WORK.search(text))


# "a refund", "an order", "how long does ... take": about how things work, not about one of the customer's own
_GENERIC = re.compile(
    r"\b(a|an|any|every)\s+(\w+\s+)?(refund|order|return|parcel|package|item|product|delivery|exchange|payment|membership|card|code|voucher)s?\b"
    r"|\bhow long (does|do|will) (it|a|an|refunds?|returns?|deliver(y|ies))\b",
    re.I,
)
# Words that name what a tool reads: a match adds `KEYWORD_BOOST` to that tool's similarity (meaning decides
# between tools that read alike; the words decide "refund??" or "when will you try again").
KEYWORDS: dict[str, re.Pattern[str]] = {
    tool: re.compile(pattern, re.I)
    for tool, pattern in {
        "refund_status": r"\b(refund\w*|money\b.{0,12}\bback|get (it |my money )?back|got back|reimburs\w*)\b",
        "return_status": r"\b(return (number|label|reference|code)|rma|exchange\w*|replacement|"
        r"sent (it |them )?back|(my|the) return|dropped (it |them |\w+ )?off|swapped)\b",
        "membership": r"\b(member\w*|plus|subscription|subscri\w+|plan|trial|renew\w*|billing date|paused?)\b",
        "payments": r"\b(payment\w* (fail\w*|declin\w*|bounc\w*|did ?n'?t go through|did not go through)|declined|"
        r"error code|charged twice|double charged|try (it |my payment )?again|retry|next try)\b",
        "tickets": r"\b(ticket\w*|complaint\w*|my case|investigation|request (about|for))\b",
        "past_conversations": r"\b(last time (i|we) (spoke|talked|chatted|contacted)|spoke to|talked to|chatted|"
        r"chatting to|talk(ed)? to (someone|somebody)|what did (we|they|you|\w+) (say|agree|tell)|contacted you|"
        r"(talk|spoke|chat)\w* .{0,20}\bbefore)\b",
        "order_details": r"\b(how much|what did i (pay|order|buy)|i paid|cost|price|total|promo|discount|"
        r"payment method|pay for|charged for)\b",
        "order_status": r"\b(where('?s| is)|arriv\w*|deliver(ed|y)|ship(ped|ping)?|dispatch\w*|track\w*|courier|"
        r"late|turn(ed)? up|on its way|(has|have)n'?t come|coming)\b",
    }.items()
}
KEYWORD_BOOST = 0.08
STRONG_KEYWORDS = {"past_conversations": 0.15}  # "did I talk to someone before" can only mean one thing
SHORT_FOLLOW_UP_WORDS = 5

_HYPOTHETICAL = re.compile(
    rf"\b(i can|can i{_NOT_A_REQUEST}|could i{_NOT_A_REQUEST}|would i|should i|if i|do i need to|last day)\b", re.I
)
# Clauses: sentences, comma-joined parts, and "... and <a new question>" ("where's my rug and how much did I pay"),
# never the "and" inside a name ("click and collect", "fig and cedar candle").
_CLAUSE_SPLIT = re.compile(
    r"[?.!;]+|,\s*(?:and|but|so)?\s*|\s+(?:and|but|also)\s+(?=(?:how|what|when|where|why|which|who|can|could|is|are|"
    r"was|do|does|did|will|would|has|have|i|i'm|my)\b)",
    re.I,
)


class AccountIntent(BaseModel):
    tool: str
    score: float = Field(description="similarity to the tool's closest example")
    general: float = Field(description="similarity to the closest general (help-center) question")
    order_ids: list[str] = Field(default_factory=list, description="order numbers in the message")
    rmas: list[str] = Field(default_factory=list)
    mixed: bool = Field(False, description="a clause also asks something the help center answers")
    general_clause: str | None = None
    also: str | None = Field(None, description="a second tool, when the message asks two things of the record")


ORDER_TOOLS = frozenset({"order_status", "order_details", "refund_status", "return_status"})


def items_named(text: str, items: frozenset[str]) -> bool:
    """The message names one of the customer's things ("my lamp", "the planters"; not "a gift card")."""
    specific = re.sub(r"\b(a|an|any|every)\s+[\w-]+(\s+[\w-]+)?", " ", text.lower())
    return bool({singular(w) for w in items} & {singular(w) for w in re.findall(r"[a-z]{3,}", specific)})


def singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


@dataclass
class Scores:
    tools: dict[str, float]  # each tool's closest example, plus the keyword boost
    raw: float  # the closest example of any tool, without boosts
    general: float  # the closest general question

    strong: str | None = None  # a tool its own words name beyond doubt ("did I talk to someone before")

    @property
    def tool(self) -> str:
        return self.strong or max(self.tools, key=lambda k: self.tools[k])

    @property
    def best(self) -> float:
        return self.tools[self.tool]


@dataclass
class AccountRouter:
    """`route(text)` -> the account tool the message needs, or None (not about the customer's own record)."""

    vectors: SentenceVectors
    min_score: float = 0.55
    margin: float = 0.02
    _tools: list[str] = field(default_factory=list)
    _matrix: np.ndarray | None = None
    _general: np.ndarray | None = None

    def warm(self) -> None:
        """Embed the example questions now (at start), not in the first customer's turn (~1 s on 2 cores)."""
        self._ready()

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

    def scores(self, text: str) -> Scores:
        """Each tool's score: its closest example's similarity, plus `KEYWORD_BOOST` when the message names what
        the tool reads; and the closest general (help-center) question's similarity."""
        matrix, general = self._ready()
        q = self.vectors.embed_one(text)
        sims = matrix @ q
        tools: dict[str, float] = {}
        for tool, s in zip(self._tools, sims, strict=True):
            tools[tool] = max(tools.get(tool, -1.0), float(s))
        raw = max(tools.values())
        strong = None
        for tool, pattern in KEYWORDS.items():
            if pattern.search(text):
                tools[tool] = tools.get(tool, 0.0) + STRONG_KEYWORDS.get(tool, KEYWORD_BOOST)
                strong = tool if tool in STRONG_KEYWORDS else strong
        return Scores(tools=tools, raw=raw, general=float(np.max(general @ q)), strong=strong)

    def _scores(self, text: str) -> tuple[str, float, float]:
        s = self.scores(text)
        return s.tool, s.best, s.general

    def route(
        self,
        text: str,
        follow_up: bool = False,
        items: frozenset[str] = frozenset(),
        previous_tool: str | None = None,
        anonymous: bool = False,
    ) -> AccountIntent | None:
        """`follow_up`: the conversation is already about one of the customer's orders, and the message refers
        back to it ("when will it arrive?"): it need not say "my" to be about the record. `items`: words of the
        names of things the customer bought; naming one ("where is my lamp?") is as good as an order number.
        `previous_tool`: what the last account answer of this conversation read; a short follow-up ("the rug
        one", "and after that?") keeps it unless it reads clearly as another tool."""
        order_ids = list(dict.fromkeys(m.upper() for m in ORDER_ID.findall(text) if not RMA_ID.fullmatch(m)))
        rmas = list(dict.fromkeys(m.upper() for m in RMA_ID.findall(text)))
        s = self.scores(text)
        short = len(text.split()) <= SHORT_FOLLOW_UP_WORDS
        asks_general = bool(_GENERAL_CLAUSE.search(text) or _HYPOTHETICAL.search(text))
        if previous_tool and (short or follow_up) and not asks_general and s.general < s.raw + 0.1:
            keep = previous_tool
            named_tools = [k for k, p in KEYWORDS.items() if p.search(text) and k != previous_tool]
            switch = max(named_tools, key=lambda k: s.tools[k], default=None)
            if (
                switch in ORDER_TOOLS
                and previous_tool not in ORDER_TOOLS
                and not (order_ids or items_named(text, items))
            ):
                switch = None  # "how much will it cost?" after a membership answer is about the membership
            if switch is not None and s.tools[switch] > s.tools.get(previous_tool, 0.0) + 0.05:
                keep = switch  # "and how much was it?" after a delivery question names another tool
            return AccountIntent(
                tool=keep,
                score=round(max(s.best, self.min_score), 4),
                general=round(s.general, 4),
                order_ids=order_ids,
                rmas=rmas,
            )
        named = items_named(text, items)
        terse = len(text.split()) <= 3 and any(p.search(text) for p in KEYWORDS.values())  # "tracking?", "refund??"
        personal = bool(order_ids or rmas or follow_up or named or terse or _MINE.search(text))
        # a terse or second-person message that can only be about the record ("refund??", "when will you try
        # my card again"): personal enough when it reads far more like a tool than like any general question
        if not personal and not (s.raw >= self.min_score + 0.15 and s.raw > s.general + 0.15):
            return None
        tool, score, general = s.tool, s.best, s.general
        mixed_clause: str | None = None
        also: str | None = None
        clauses = [c.strip() for c in _CLAUSE_SPLIT.split(text) if c and len(c.split()) >= 2]
        gate = s  # the reading that decides: the whole message, or its clearest clause (long chatty messages)
        if len(clauses) > 1:
            scored = [(c, self.scores(c)) for c in clauses]
            clearest = max((cs for _, cs in scored), key=lambda cs: cs.best - cs.general)
            if clearest.best - clearest.general > s.best - s.general:
                gate = clearest
                tool, score, general = clearest.tool, clearest.best, clearest.general
            account = [(c, cs) for c, cs in scored if cs.best >= self.min_score and cs.best > cs.general + self.margin]
            general_clauses = [c for c, cs in scored if _GENERAL_CLAUSE.search(c) and cs.general >= cs.raw - 0.05]
            if account and general_clauses:
                c, cs = max(account, key=lambda x: x[1].best)
                tool, score, general = cs.tool, cs.best, cs.general
                mixed_clause = general_clauses[0]
            tools_asked = list(dict.fromkeys(cs.tool for _, cs in account))
            if tools_asked and mixed_clause is None:
                tool = tools_asked[0]  # the clauses say it better than the whole ("how much were the tables and...")
            if len(tools_asked) > 1:  # "where's my rug and how much did I pay for it?"
                tool, also = tools_asked[0], tools_asked[1]
        hypothetical = mixed_clause is None and asks_general
        if hypothetical:
            mixed_clause = text  # "can I return my sofa?": the record says where the sofa is, the help center the rest
        margin = self.margin + (0.15 if _GENERIC.search(text) else 0.0)
        if hypothetical and not (named or order_ids or rmas):
            margin += 0.15  # "when's the last day I can order?" is about the shop, unless it names their things
        # a question about what could be done is weighed on meaning alone: "when's the last day I can order for
        # delivery?" names a tool's word, not one of the customer's things
        best = gate.raw if hypothetical and not (named or order_ids or rmas) else gate.best
        # an anonymous visitor can only be told to sign in: that reply must be for a question that needs the record
        floor = self.min_score + (0.1 if anonymous else 0.0)
        is_account = best >= floor and best > gate.general + margin
        # a short message far closer to a tool than to any general question, that says what it is about ("where is
        # my lamp?", "tracking for my parcel")
        says_what = named or any(p.search(text) for p in KEYWORDS.values())
        is_account = is_account or (says_what and best >= floor - 0.15 and best > gate.general + margin + 0.1)
        if not is_account and (named or s.strong) and best > gate.general - 0.05:
            is_account = True  # their own thing, or a question only their record answers ("did I talk to you before")
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
            also=also,
        )
