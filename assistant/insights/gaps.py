"""Knowledge gaps: the questions the assistant could not answer, grouped, worst first, each with one action.

A customer's question counts as not answered when
- the assistant declined it (`reply.mode` `declined`: the help center does not cover it),
- it was handed off for low confidence (a weak answer, or none),
- the customer asked for a person right after the assistant's answer to it, or said it did not work,
- the customer said it again in other words (a rephrase or a repeat later in the conversation: the
  conversation's first question is the one that was not answered, whatever answered it), or
- the conversation was rated badly (CSAT at or below `CXA_INSIGHTS__BAD_CSAT`, or "not resolved"): its first
  question, unless an approved answer or the customer's record answered it.

Requests for a person, policy topics, thank-yous and one- or two-word messages are not questions. The questions
of the period are grouped by meaning (average-linkage clustering of their MiniLM vectors, cosine distance below
`1 - CXA_INSIGHTS__GAP_SIMILARITY`; a question an agent answered is moved half-way towards the vector of that
answer, without its pleasantries: questions agents answer alike are one gap more often than their words say); a
group with at least `CXA_INSIGHTS__GAP_MIN_CONVERSATIONS` conversations is
a gap, labelled by its most central question, with the distinct customers, the trend (the second half of the
period against the first), example questions, the topic, the agents' replies in those conversations, and the
approved answer that now covers it, if one does (covered gaps sink to the end). Worst first: conversations, plus
one for each bad rating and a half for each rephrase; a covered gap counts a quarter.

A gap's id follows its first question (`gap_<hash of that message id>`): the same gap keeps its id from one
report to the next while that question is in the period.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from assistant.approved.matcher import ApprovedMatcher
from assistant.errors import GapNotFoundError
from assistant.insights.replies import content
from assistant.models import AskedTurn, GapQuestion, GapReason, GapTrend, KnowledgeGap
from assistant.settings import InsightsSettings
from assistant.store.repo import Store
from assistant.telemetry.signals import is_contradiction
from assistant.turn.engine import is_thanks_only
from assistant.turn.grounding import SentenceVectors
from assistant.turn.intent import wants_human

logger = logging.getLogger(__name__)

MAX_QUESTIONS = 5000  # the newest questions of a long period (clustering is quadratic)
EXAMPLES = 5
ANSWERED_MODES = ("approved", "account", "closing")
ANSWERING_MODES = ("generated", "extractive", "account", "approved")  # the bot answered something
ANSWER_WEIGHT = 0.5  # of the agent's answer in a question's grouping vector


def is_question(text: str) -> bool:
    """A message that asks something: three words or more, not a request for a person, not a thank-you, not
    "that didn't work"."""
    return len(text.split()) >= 3 and not wants_human(text) and not is_thanks_only(text) and not is_contradiction(text)


def unanswered(turns: list[AskedTurn], bad_csat: int) -> list[GapQuestion]:
    """The questions among `turns` (oldest first) that the assistant could not answer, with why."""
    by_conv: dict[str, list[AskedTurn]] = defaultdict(list)
    for t in turns:
        by_conv[t.record.conversation_id].append(t)
    out: list[GapQuestion] = []
    for cid, conv in by_conv.items():
        found: dict[str, GapReason] = {}
        questions = [t for t in conv if _asks(t)]
        for t in questions:
            if t.record.reply_mode == "declined" or (t.record.evidence and t.record.evidence.mode == "declined"):
                found[t.record.message_id] = "declined"
            elif t.record.handoff_id and t.handoff_reason == "low_confidence":
                found[t.record.message_id] = "low_confidence"
        for before, after in zip(conv, conv[1:], strict=False):  # answered, then "a person, please" / "no"
            if not _asks(before) or before.record.reply_mode not in ANSWERING_MODES:
                continue
            if after.record.intent is not None and after.record.intent.wants_human:
                found.setdefault(before.record.message_id, "escalated")
            elif is_contradiction(after.text):
                found.setdefault(before.record.message_id, "contradicted")
        f = [t.record.intent.frustration for t in conv if t.record.intent is not None]
        if questions and any(x.rephrased or x.repeated for x in f):  # whatever answered it first did not help
            found.setdefault(questions[0].record.message_id, "rephrased")
        first = next((t for t in questions if t.record.reply_mode not in ANSWERED_MODES), None)
        rated_badly = (conv[0].csat is not None and conv[0].csat <= bad_csat) or conv[0].resolved is False
        if first is not None and rated_badly and not found:
            found[first.record.message_id] = "rated_badly"
        for t in questions:
            reason = found.get(t.record.message_id)
            if reason is None:
                continue
            out.append(
                GapQuestion(
                    conversation_id=cid,
                    message_id=t.record.message_id,
                    customer_id=t.customer_id,
                    text=" ".join(t.text.split()),
                    at=t.record.created_at,
                    reason=reason,
                    topic=t.topic,
                    agent_answers=t.agent_replies,
                    simulated=t.simulated,
                )
            )
    return sorted(out, key=lambda q: q.at)


def _asks(t: AskedTurn) -> bool:
    intent = t.record.intent
    if intent is not None and (intent.wants_human or intent.policy_topics):
        return False
    return t.record.state != "pending" and is_question(t.text)


def group(vectors: np.ndarray, similarity: float) -> list[list[int]]:
    """Indexes of `vectors` (unit rows) grouped by average-linkage clustering at cosine distance
    `1 - similarity`; each group in input order, groups by their first member."""
    n = len(vectors)
    if n == 0:
        return []
    if n == 1:
        return [[0]]
    from sklearn.cluster import AgglomerativeClustering

    labels = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=1.0 - similarity
    ).fit_predict(vectors)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels.tolist()):
        groups[label].append(i)
    return sorted(groups.values(), key=lambda g: g[0])


@dataclass
class Grouped:
    """One gap while it is being built: its questions and their vectors."""

    questions: list[GapQuestion]
    vectors: np.ndarray
    centroid: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        c = self.vectors.mean(axis=0)
        self.centroid = c / (np.linalg.norm(c) or 1.0)

    def central(self) -> GapQuestion:
        return self.questions[int(np.argmax(self.vectors @ self.centroid))]


def gap_id(first_message_id: str) -> str:
    return "gap_" + hashlib.sha1(first_message_id.encode()).hexdigest()[:12]


class KnowledgeGaps:
    def __init__(
        self,
        store: Store,
        vectors: SentenceVectors,
        settings: InsightsSettings,
        matcher: ApprovedMatcher | None = None,
    ) -> None:
        self.store = store
        self.vectors = vectors
        self.settings = settings
        self.matcher = matcher

    def period(self, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
        until = until or datetime.now(UTC)
        return since or until - timedelta(days=self.settings.gap_days), until

    def groups(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[tuple[KnowledgeGap, Grouped]]:
        """The gaps of [since, until) (default: the last `gap_days`), worst first, with their questions."""
        since, until = self.period(since, until)
        questions = unanswered(self.store.insights.asked(since, until), self.settings.bad_csat)[-MAX_QUESTIONS:]
        if not questions:
            return []
        vecs = self.vectors.embed([q.text for q in questions])
        found = []
        for members in group(self._grouping_vectors(questions, vecs), self.settings.gap_similarity):
            g = Grouped([questions[i] for i in members], vecs[members])
            if len({q.conversation_id for q in g.questions}) >= self.settings.gap_min_conversations:
                found.append((self._gap(g, since, until), g))
        found.sort(key=lambda pair: (-pair[0].score, -pair[0].last_seen.timestamp()))
        return found

    def _grouping_vectors(self, questions: list[GapQuestion], vecs: np.ndarray) -> np.ndarray:
        """Each question's vector, moved towards what the agent answered in its conversation (half weight): two
        questions that agents answered alike are the same gap more often than their wording says."""
        answers = [content(" ".join(q.agent_answers)) for q in questions]
        have = [i for i, a in enumerate(answers) if a]
        if not have:
            return vecs
        out = vecs.copy()
        out[have] += ANSWER_WEIGHT * self.vectors.embed([answers[i] for i in have])
        normalised: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True)
        return normalised

    def report(self, since: datetime | None = None, until: datetime | None = None) -> list[KnowledgeGap]:
        return [gap for gap, _ in self.groups(since, until)]

    def find(
        self, gap_id_: str, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[KnowledgeGap, Grouped]:
        """The gap with that id in the period (`GapNotFoundError` if none)."""
        for gap, g in self.groups(since, until):
            if gap.id == gap_id_:
                return gap, g
        raise GapNotFoundError(gap_id_)

    def _gap(self, g: Grouped, since: datetime, until: datetime) -> KnowledgeGap:
        qs = g.questions
        convs = {q.conversation_id for q in qs}
        central = g.central()
        customers = {q.customer_id for q in qs if q.customer_id} | {q.conversation_id for q in qs if not q.customer_id}
        examples: list[str] = []
        for q in sorted(qs, key=lambda q: -float(self.vectors.embed_one(q.text) @ g.centroid)):
            if q.text.lower() not in {e.lower() for e in examples}:
                examples.append(q.text)
            if len(examples) == EXAMPLES:
                break
        reasons: Counter[str] = Counter(q.reason for q in qs)
        topics = Counter(q.topic for q in qs if q.topic)
        answers = list(dict.fromkeys(a for q in qs for a in q.agent_answers))
        days = max(1, -(-(until - since) // timedelta(days=1)))
        daily = [0] * days
        per_day: dict[int, set[str]] = defaultdict(set)
        for q in qs:
            per_day[min(days - 1, max(0, (q.at - since) // timedelta(days=1)))].add(q.conversation_id)
        for d, cs in per_day.items():
            daily[d] = len(cs)
        covered = self.matcher.match(central.text) if self.matcher is not None else None
        score = len(convs) + reasons.get("rated_badly", 0) + 0.5 * reasons.get("rephrased", 0)
        return KnowledgeGap(
            id=gap_id(qs[0].message_id),
            label=central.text if len(central.text) <= 120 else central.text[:119].rsplit(" ", 1)[0] + "…",
            conversations=len(convs),
            customers=len(customers),
            examples=examples,
            topic=topics.most_common(1)[0][0] if topics else None,
            reasons=dict(reasons),
            agent_answers=answers[:10],
            first_seen=qs[0].at,
            last_seen=qs[-1].at,
            trend=_trend(qs, since, until),
            daily=daily,
            covered_by=covered.source_id if covered is not None else None,
            simulated=len({q.conversation_id for q in qs if q.simulated}),
            conversation_ids=sorted(convs),
            score=round(score * (0.25 if covered is not None else 1.0), 3),
        )


def _trend(qs: list[GapQuestion], since: datetime, until: datetime) -> GapTrend:
    """rising / falling: the second half of the period has half as many again / two thirds of the first's
    conversations; new: none before the last quarter of the period."""
    middle = since + (until - since) / 2
    early = len({q.conversation_id for q in qs if q.at < middle})
    late = len({q.conversation_id for q in qs if q.at >= middle})
    if qs[0].at >= since + (until - since) * 0.75:
        return "new"
    if late >= max(2, 1.5 * early):
        return "rising"
    if early >= max(2, 1.5 * late):
        return "falling"
    return "steady"
