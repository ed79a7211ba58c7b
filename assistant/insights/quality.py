"""Handoff quality, which no one measures: per handoff, was it avoidable, and did the agent make the customer
repeat what they (or the packet) had already given?

**Avoidable**: the customer's questions before the handoff had an answer at the time:
- an approved answer that was active then (created before, not retired before) matched one of them at
  `CXA_APPROVED__MIN_SCORE`, or
- the help center had a passage at least `CXA_INSIGHTS__AVOIDABLE_MIN_SCORE` similar: the score retrieval recorded
  on the turn at the time; for a handoff made before any retrieval ("a person, please" as the first words after
  a question), the index is searched now (it keeps no history).
Handoffs that policy sends to a person (`policy:*`) or that the customer's record needs one for (`late_delivery`,
`refund_overdue`) are never avoidable, nor is one with no question before it.

**Re-asked**: an agent's replies ask for an order number, an email address, a phone number, the customer's name
or the issue itself, while the packet already had it: an order number in the customer's messages or orders in
their (verified) record; an email or phone in the messages or the profile; the name in the profile; the issue
when the customer had asked a question. Asking means a question about it ("could you send me your order
number?", "what seems to be the problem?"), not a mention.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import numpy as np

from assistant.account.router import ORDER_ID
from assistant.approved.matcher import match_scores, negated
from assistant.insights.gaps import is_question
from assistant.models import (
    ApprovedAnswer,
    Handoff,
    HandoffQuality,
    HandoffQualityReport,
    Message,
    SearchHit,
    TurnRecord,
)
from assistant.settings import Settings
from assistant.store.repo import Store
from assistant.turn.grounding import SentenceVectors
from knowledge.errors import KnowledgeError

logger = logging.getLogger(__name__)

Search = Callable[[str, int], list[SearchHit]]
NEEDS_A_PERSON = ("late_delivery", "refund_overdue")
AGENT_REPLIES_READ = 3  # the agent's first replies: where re-asking happens
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_PHONE = re.compile(r"(?:\+?\d[\s-]?){9,14}\d")
_ASKING = re.compile(
    r"\?|\b(?:could|can|would) you (?:please )?(?:send|give|share|tell|confirm|provide|let me know)|"
    r"\bplease (?:send|give|share|tell|confirm|provide)|\b(?:i|we) (?:need|will need|'ll need) (?:your|the)|"
    r"\bwhat(?:'s| is) your\b|\bmay i have\b",
    re.I,
)
ASKS: dict[str, re.Pattern[str]] = {
    "order_number": re.compile(r"\border (?:number|no\.?|id|reference|ref)\b|\bwhich order\b", re.I),
    "email": re.compile(r"\be-?mail(?: address)?\b", re.I),
    "phone": re.compile(r"\b(?:phone|mobile|telephone)(?: number)?\b", re.I),
    "name": re.compile(r"\byour (?:full )?name\b", re.I),
    "issue": re.compile(
        r"\bwhat (?:seems to be|is|was) the (?:problem|issue|matter)\b|\bhow can i help\b|\bwhat can i (?:do|help)\b"
        r"|\b(?:describe|explain) (?:the|your) (?:problem|issue)\b|\bwhat (?:happened|is wrong|went wrong)\b"
        r"|\bwhat (?:do you need|are you looking for)\b",
        re.I,
    ),
}


def asked_for(text: str) -> set[str]:
    """What an agent's message asks the customer for (kinds of `ASKS`), sentence by sentence."""
    found: set[str] = set()
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if _ASKING.search(sentence):
            found |= {kind for kind, pattern in ASKS.items() if pattern.search(sentence)}
    return found


class HandoffReview:
    def __init__(self, store: Store, vectors: SentenceVectors, search: Search, settings: Settings) -> None:
        self.store = store
        self.vectors = vectors
        self.search = search
        self.settings = settings

    def report(self, since: datetime | None, until: datetime | None) -> HandoffQualityReport:
        handoffs = self.store.insights.handoffs(since, until)
        answers = self.store.approved.find(None)
        items = [self.assess(h, answers) for h in handoffs]
        replied = [q for q, h in zip(items, handoffs, strict=True) if self._replied(h)]
        kinds = Counter(k for q in items for k in q.reasked)
        by_reason: dict[str, dict[str, int]] = {}
        for q in items:
            r = by_reason.setdefault(q.reason, {"handoffs": 0, "avoidable": 0})
            r["handoffs"] += 1
            r["avoidable"] += q.avoidable
        avoidable = [q for q in items if q.avoidable]
        reasked = [q for q in items if q.reasked]
        return HandoffQualityReport(
            since=since,
            until=until,
            handoffs=len(items),
            avoidable=len(avoidable),
            avoidable_rate=round(len(avoidable) / len(items), 4) if items else None,
            avoidable_by_approved=sum(1 for q in avoidable if (q.avoidable_by or "").startswith("approved:")),
            avoidable_by_help_center=sum(1 for q in avoidable if not (q.avoidable_by or "").startswith("approved:")),
            reasked=len(reasked),
            replied=len(replied),
            reask_rate=round(len(reasked) / len(replied), 4) if replied else None,
            reasked_kinds=dict(kinds),
            by_reason=by_reason,
            items=sorted(items, key=lambda q: (not (q.avoidable or q.reasked), -q.created_at.timestamp()))[:200],
        )

    def _replied(self, h: Handoff) -> bool:
        return any(m.role == "agent" for m in self.store.list_messages(h.conversation_id))

    def assess(self, h: Handoff, answers: list[ApprovedAnswer] | None = None) -> HandoffQuality:
        conversation = self.store.get_conversation(h.conversation_id)
        messages = self.store.list_messages(h.conversation_id)
        before = [m for m in messages if m.created_at <= h.created_at]
        questions = [m.text for m in before if m.role == "customer" and is_question(m.text)]
        avoidable_by, score = None, None
        policy = h.reason.startswith("policy:") or h.reason in NEEDS_A_PERSON
        if questions and not policy:
            turns = [t for t in self.store.list_turns(h.conversation_id) if t.created_at <= h.created_at]
            pool = answers if answers is not None else self.store.approved.find(None)
            avoidable_by, score = (
                self._approved_then(questions, pool, h.created_at)
                or self._help_center(questions, turns)
                or (None, None)
            )
        return HandoffQuality(
            handoff_id=h.id,
            conversation_id=h.conversation_id,
            reason=h.reason,
            created_at=h.created_at,
            avoidable=avoidable_by is not None,
            avoidable_by=avoidable_by,
            avoidable_score=score,
            reasked=sorted(self._reasked(h, conversation.verified, conversation.customer_id, messages, questions)),
            simulated=bool(conversation.metadata.get("simulated")),
        )

    def _approved_then(
        self, questions: list[str], answers: list[ApprovedAnswer], at: datetime
    ) -> tuple[str, float] | None:
        live = [a for a in answers if a.created_at <= at and (a.retired_at is None or a.retired_at > at)]
        texts = [t for a in live for t in a.texts]
        if not texts:
            return None
        owners = np.array([i for i, a in enumerate(live) for _ in a.texts])
        sims = match_scores(
            self.vectors.embed(questions) @ self.vectors.embed(texts).T,
            np.array([negated(q) for q in questions]),
            np.array([negated(t) for t in texts]),
            self.settings.approved.negation_penalty,
        )
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        best = float(sims[i, j])
        if best < self.settings.approved.min_score:
            return None
        return f"approved:{live[int(owners[j])].id}", round(best, 4)

    def _help_center(self, questions: list[str], turns: list[TurnRecord]) -> tuple[str, float] | None:
        floor = self.settings.insights.avoidable_min_score
        searched = [
            (t.chunk_scores[0], t.chunk_ids[0])
            for t in turns
            if t.chunk_scores and t.chunk_ids and not t.chunk_ids[0].startswith("approved:")
        ]
        if not searched:  # handed off before any retrieval: the help center as it is now
            try:
                hits = [h for q in questions[-2:] for h in self.search(q, 1)]
            except KnowledgeError as exc:
                logger.warning("handoff quality: the help center was not searched (%s)", exc)
                return None
            searched = [(h.score, h.chunk.source_id) for h in hits]
        if not searched:
            return None
        score, chunk = max(searched)
        return (chunk.split("::")[0], round(float(score), 4)) if score >= floor else None

    def _reasked(
        self, h: Handoff, verified: bool, customer_id: str | None, messages: list[Message], questions: list[str]
    ) -> set[str]:
        agent = [m for m in messages if m.role == "agent" and m.created_at >= h.created_at][:AGENT_REPLIES_READ]
        asked = set().union(*(asked_for(m.text) for m in agent)) if agent else set()
        if not asked:
            return set()
        first_agent = agent[0].seq
        said = " ".join(m.text for m in messages if m.role == "customer" and m.seq < first_agent)
        profile = self.store.get_customer(customer_id) if verified and customer_id else None
        had = set()
        orders = profile is not None and any(e.type == "order_placed" for e in self.store.list_events(profile.id, 50))
        if ORDER_ID.search(said) or orders:
            had.add("order_number")
        if _EMAIL.search(said) or (profile is not None and profile.email):
            had.add("email")
        if _PHONE.search(said) or (profile is not None and profile.phone):
            had.add("phone")
        if profile is not None and profile.name:
            had.add("name")
        if questions:  # the customer had said what the problem is
            had.add("issue")
        return asked & had
