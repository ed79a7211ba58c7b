"""The telemetry service: records signal events as conversations happen, keeps each conversation's
derived facts up to date, closes idle conversations, and answers the CX team's questions (figures
over a period, conversations by outcome, topic, effort).

It never breaks a customer's turn: every hook logs and swallows its own failures. Personal data
(emails, phones, cards, account numbers) is redacted from the event data it stores.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from assistant.errors import AssistantError
from assistant.models import (
    RESOLVED,
    Conversation,
    ConversationFacts,
    Feedback,
    FrustrationSignals,
    Message,
    SignalEvent,
    SignalKind,
    utcnow,
)
from assistant.safety.redact import Redactor
from assistant.settings import TelemetrySettings
from assistant.store.repo import Store
from assistant.telemetry.figures import (
    Bucket,
    Metrics,
    MetricsSeries,
    ScoredConversation,
    TopicBreakdown,
    bucket_period,
    by_topic,
    metrics_of,
    timeseries,
)
from assistant.telemetry.signals import TopicFn, derive, turn_signals, window_start

logger = logging.getLogger(__name__)
TOPICS_KEPT = 10_000  # conversations remembered to have their topic (the second message then reads nothing for it)
P = ParamSpec("P")
R = TypeVar("R")


def _never_raises(fn: Callable[P, R]) -> Callable[P, R | None]:
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return fn(*args, **kwargs)
        except Exception:
            logger.exception("telemetry: %s failed (the conversation goes on)", fn.__name__)
            return None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


class Telemetry:
    def __init__(self, store: Store, settings: TelemetrySettings, topic_fn: TopicFn | None = None) -> None:
        self.store = store
        self.settings = settings
        self.topic_fn = topic_fn
        self.redactor = Redactor(settings.redact)
        self._with_topic: OrderedDict[str, None] = OrderedDict()  # conversations with a topic event, most recent last
        self._topics_lock = threading.Lock()

    # -- recording ----------------------------------------------------------------------------------

    def _event(self, conversation_id: str, kind: SignalKind, value: float | None = None, **data: Any) -> SignalEvent:
        return SignalEvent(conversation_id=conversation_id, kind=kind, at=utcnow(), value=value, data=data)

    def _record(
        self, conversation_id: str, events: list[SignalEvent], now: datetime | None = None
    ) -> ConversationFacts:
        """Store the events (their data redacted) and the conversation's facts derived again, in one go."""
        redacted = [e.model_copy(update={"data": self.redactor.data(e.data)}) for e in events]
        return self.store.record_signals(
            conversation_id, redacted, lambda conv, evs: derive(conv, evs, now or utcnow(), self.settings)
        )

    @_never_raises
    def on_customer_message(
        self,
        conv: Conversation,
        message: Message,
        previous: list[Message],
        frustration: FrustrationSignals | None,
        turn_id: str | None,
        result: str | None = None,
        confidence: float | None = None,
        handoff_reason: str | None = None,
    ) -> ConversationFacts | None:
        """One customer message and, when the bot handled it, what came of it: `result` is `answered`,
        `dead_end` or None (the message went to a person)."""
        events = turn_signals(conv.id, message, previous, frustration, turn_id, self.settings.long_gap_s)
        earlier_customer = [m.text for m in previous if m.role == "customer"]
        # the topic is found once: from the first message, or the second when the first had none
        first = not earlier_customer
        if len(earlier_customer) < 2 and self.topic_fn is not None and (first or not self._has_topic(conv.id)):
            events += self._topic_events(conv, [*earlier_customer, message.text], first=first)
        if result is not None:
            # the engine's str, "answered" or "dead_end": SignalEvent checks it against SignalKind
            events.append(self._event(conv.id, result, confidence))  # type: ignore[arg-type]
        if handoff_reason is not None:
            events.append(self._event(conv.id, "handoff", reason=handoff_reason))
        for e in events:
            e.turn_id = turn_id
        facts = self._record(conv.id, events)
        if any(e.kind == "topic" for e in events):
            self._remember_topic(conv.id)
        return facts

    def _has_topic(self, conversation_id: str) -> bool:
        """The conversation has a topic event: known in this process once recorded or seen (signals are append-only,
        so a topic once there stays), else read."""
        with self._topics_lock:
            if conversation_id in self._with_topic:
                return True
        found = any(e.kind == "topic" for e in self.store.list_signals(conversation_id))
        if found:
            self._remember_topic(conversation_id)
        return found

    def _remember_topic(self, conversation_id: str) -> None:
        with self._topics_lock:
            self._with_topic[conversation_id] = None
            while len(self._with_topic) > TOPICS_KEPT:
                self._with_topic.popitem(last=False)

    def _topic_events(self, conv: Conversation, customer_texts: list[str], first: bool) -> list[SignalEvent]:
        """The conversation's topic (from its first customer messages); a re-contact if the same customer had
        a conversation on the same topic within the window; a channel switch if that one was elsewhere."""
        assert self.topic_fn is not None
        found = self.topic_fn(customer_texts)
        if found is None:
            return []
        topic, probability = found
        events = [self._event(conv.id, "topic", probability, topic=topic)]
        if not conv.customer_id:
            return events
        already, facts = self.store.topic_history(conv.id, conv.customer_id, window_start(utcnow(), self.settings))
        earlier = [f for f in facts if f.conversation_id != conv.id]
        same = [f for f in earlier if f.topic == topic]
        if same and "recontact" not in already:
            prev = same[0]  # the most recent
            events.append(self._event(conv.id, "recontact", previous=prev.conversation_id, topic=topic))
            self._record(
                prev.conversation_id, [self._event(prev.conversation_id, "recontacted", by=conv.id, topic=topic)]
            )
        if first and earlier and "channel_switch" not in already:
            channels = {self.store.get_conversation(f.conversation_id).channel for f in earlier[:1]}
            if conv.channel not in channels:
                events.append(self._event(conv.id, "channel_switch", previous=sorted(channels), channel=conv.channel))
        return events

    @_never_raises
    def on_handoff(self, conversation_id: str, reason: str) -> None:
        """A handoff not made inside a customer turn (the customer pressed "talk to a person")."""
        self._record(conversation_id, [self._event(conversation_id, "handoff", reason=reason)])

    @_never_raises
    def on_agent_message(self, conversation_id: str, message: Message) -> None:
        """The agent's first reply after the latest handoff records how long the customer waited."""
        events = self.store.list_signals(conversation_id)
        handoffs = [e for e in events if e.kind == "handoff"]
        if not handoffs:
            return
        since = handoffs[-1].at
        if any(e.kind == "agent_reply" and e.at >= since for e in events):
            return
        wait = max(0.0, (message.created_at - since).total_seconds())
        self._record(conversation_id, [self._event(conversation_id, "agent_reply", round(wait, 3))])

    @_never_raises
    def on_agent_resolved(self, conversation_id: str, resolved: bool) -> None:
        self._record(conversation_id, [self._event(conversation_id, "agent_resolved", 1.0 if resolved else 0.0)])

    @_never_raises
    def on_feedback(self, conversation_id: str, feedback: Feedback) -> None:
        data = feedback.model_dump(exclude_none=True)
        self._record(conversation_id, [self._event(conversation_id, "feedback", feedback.csat, **data)])

    # -- deriving -----------------------------------------------------------------------------------

    def refresh(self, conversation_id: str, now: datetime | None = None) -> ConversationFacts:
        """Derive the facts again with no new event (the inactivity clock may have run)."""
        return self._record(conversation_id, [], now)

    def sweep(self, now: datetime | None = None) -> int:
        """Close conversations idle for `inactivity_s`: waiting for a person -> `abandoned`; with the bot
        -> `resolved` (assumed resolved, or unresolved) or `abandoned`, through the state machine; and settle
        durability of resolutions whose re-contact window has passed. Returns how many facts changed."""
        now = now or utcnow()
        cutoff = now.timestamp() - self.settings.inactivity_s
        changed = 0
        for f in self.store.query_facts(outcome="open", idle_before=datetime.fromtimestamp(cutoff, now.tzinfo)):
            try:
                changed += self._close_idle(f, now)
            except AssistantError as exc:  # raced with a new message or an agent: leave it for the next sweep
                logger.info("sweep skipped %s: %s", f.conversation_id, exc)
        window_cutoff = datetime.fromtimestamp(now.timestamp() - self.settings.recontact_window_s, now.tzinfo)
        for f in self.store.query_facts(idle_before=window_cutoff):
            if f.outcome in RESOLVED and f.durable is None:
                self.refresh(f.conversation_id, now)
                changed += 1
        return changed

    def _close_idle(self, f: ConversationFacts, now: datetime) -> int:
        idle = round((now - f.last_activity_at).total_seconds(), 1)
        if f.status == "waiting_for_agent":
            self.store.abandon_waiting(f.conversation_id, "closed: the customer left before a person came")
            self._record(f.conversation_id, [self._event(f.conversation_id, "abandoned", idle)], now)
        elif f.status == "bot":
            verdict = derive(
                self.store.get_conversation(f.conversation_id),
                self.store.list_signals(f.conversation_id),
                now,
                self.settings,
            )
            if verdict.outcome == "abandoned":
                self.store.transition(f.conversation_id, "abandoned", ["bot"])
                self._record(f.conversation_id, [self._event(f.conversation_id, "abandoned", idle)], now)
            else:
                self.store.transition(f.conversation_id, "resolved", ["bot"])
                assumed = verdict.outcome == "resolved_by_bot_assumed"
                ev = [self._event(f.conversation_id, "assumed_resolved", idle)] if assumed else []
                self._record(f.conversation_id, ev, now)
        else:
            return 0
        return 1

    # -- reading (the CX team's figures: assistant.telemetry.figures) ---------------------------------

    def facts(self, **query: Any) -> list[ConversationFacts]:
        """Conversation facts as `Store.query_facts` selects them, after the inactivity sweep, so that every figure
        the CX team reads counts a customer who left as gone (not as open)."""
        self.sweep()
        return self.store.query_facts(**query)

    def metrics(self, since: datetime | None = None, until: datetime | None = None) -> Metrics:
        return metrics_of(self.facts(since=since, until=until), since, until)

    def timeseries(self, since: datetime | None, until: datetime | None, bucket: Bucket) -> MetricsSeries:
        """`metrics` per bucket (see `figures.timeseries`); raises `InvalidPeriodError` for an impossible period."""
        since, until, n = bucket_period(since, until, bucket)
        return timeseries(self.facts(since=since, until=until, order="oldest"), since, until, bucket, n)

    def by_topic(self, since: datetime | None = None, until: datetime | None = None) -> TopicBreakdown:
        return by_topic(self.facts(since=since, until=until), since, until)

    def conversations(self, **query: Any) -> list[ScoredConversation]:
        """The CX team's conversation list: facts with the latest quality score and review label of each."""
        facts = self.facts(**query)
        ids = [f.conversation_id for f in facts]
        scores = self.store.latest_scores(ids)
        reviews = {r.conversation_id: r.label for r in self.store.latest_reviews(ids)}
        convs = self.store.get_conversations(ids)
        return [
            ScoredConversation(
                facts=f,
                score=scores.get(f.conversation_id),
                review=reviews.get(f.conversation_id),
                simulated=bool(convs[f.conversation_id].metadata.get("simulated"))
                if f.conversation_id in convs
                else False,
            )
            for f in facts
        ]


__all__ = ["Telemetry"]
