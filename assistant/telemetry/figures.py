"""The CX team's figures, computed from conversation facts (`ConversationFacts`, derived from signal events by
`assistant.telemetry.signals`, never typed in): headline metrics over a period, per time bucket and per topic, and
the conversation list with each conversation's quality score and review. Definitions: docs, telemetry."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from assistant.errors import InvalidPeriodError
from assistant.models import BOT_RESOLVED, RESOLVED, ConversationFacts

Bucket = Literal["hour", "day"]
BUCKETS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_BUCKETS = 400
DEFAULT_BUCKETS = {"day": 14, "hour": 48}


class TopicFigures(BaseModel):
    conversations: int
    bot_resolution_rate: float
    handoff_rate: float
    predicted_effort_avg: float | None


class Metrics(BaseModel):
    """The CX team's headline figures over conversations started in [since, until). Rates are shares of
    all those conversations (open ones included; `open` says how many are not over yet)."""

    since: datetime | None
    until: datetime | None
    conversations: int
    open: int
    bot_resolution_rate: float = Field(description="resolved by the bot, confirmed or assumed")
    bot_confirmed_rate: float
    bot_assumed_rate: float
    agent_resolution_rate: float
    handoff_rate: float
    abandonment_rate: float
    unresolved_rate: float
    durable_resolution_rate: float | None = Field(
        description="resolved conversations with no re-contact on the topic within the window, of those whose "
        "window has passed or that were re-contacted"
    )
    recontact_rate: float
    csat_avg: float | None
    ces_avg: float | None
    predicted_effort_avg: float | None
    feedback_count: int
    agent_wait_s_p50: float | None
    agent_wait_s_p95: float | None
    outcomes: dict[str, int]
    signals: dict[str, int] = Field(description="signal events by kind, summed over the conversations")
    by_topic: dict[str, TopicFigures]


def _avg(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 3)


def metrics_of(facts: list[ConversationFacts], since: datetime | None, until: datetime | None) -> Metrics:
    n = len(facts)
    outcomes: Counter[str] = Counter(f.outcome for f in facts)

    def rate(count: int, of: int = n) -> float:
        return round(count / of, 4) if of else 0.0

    settled = [f for f in facts if f.outcome in RESOLVED and f.durable is not None]
    signals: Counter[str] = Counter()
    for f in facts:
        signals.update(f.counts)
    topics: dict[str, list[ConversationFacts]] = defaultdict(list)
    for f in facts:
        topics[f.topic or "unknown"].append(f)
    waits = [f.agent_wait_s for f in facts if f.agent_wait_s is not None and f.status != "waiting_for_agent"]
    return Metrics(
        since=since,
        until=until,
        conversations=n,
        open=outcomes.get("open", 0),
        bot_resolution_rate=rate(sum(outcomes.get(k, 0) for k in BOT_RESOLVED)),
        bot_confirmed_rate=rate(outcomes.get("resolved_by_bot_confirmed", 0)),
        bot_assumed_rate=rate(outcomes.get("resolved_by_bot_assumed", 0)),
        agent_resolution_rate=rate(outcomes.get("resolved_by_agent", 0)),
        handoff_rate=rate(sum(1 for f in facts if f.handed_off)),
        abandonment_rate=rate(outcomes.get("abandoned", 0)),
        unresolved_rate=rate(outcomes.get("unresolved", 0)),
        durable_resolution_rate=rate(sum(1 for f in settled if f.durable), len(settled)) if settled else None,
        recontact_rate=rate(sum(1 for f in facts if f.counts.get("recontact"))),
        csat_avg=_avg([f.csat for f in facts if f.csat is not None]),
        ces_avg=_avg([f.ces for f in facts if f.ces is not None]),
        predicted_effort_avg=_avg([f.effort for f in facts]),
        feedback_count=sum(1 for f in facts if f.counts.get("feedback")),
        agent_wait_s_p50=_p(waits, 50),
        agent_wait_s_p95=_p(waits, 95),
        outcomes=dict(outcomes),
        signals=dict(signals),
        by_topic={
            t: TopicFigures(
                conversations=len(fs),
                bot_resolution_rate=round(sum(1 for f in fs if f.outcome in BOT_RESOLVED) / len(fs), 4),
                handoff_rate=round(sum(1 for f in fs if f.handed_off) / len(fs), 4),
                predicted_effort_avg=_avg([f.effort for f in fs]),
            )
            for t, fs in sorted(topics.items())
        },
    )


class MetricsSeries(BaseModel):
    bucket: Bucket
    since: datetime
    until: datetime
    items: list[Metrics]


class TopicMetrics(Metrics):
    topic: str


class TopicBreakdown(BaseModel):
    since: datetime | None
    until: datetime | None
    items: list[TopicMetrics]


class ScoredConversation(BaseModel):
    facts: ConversationFacts
    score: float | None = Field(None, description="mean of the latest scorecard's scores (0..1); None = not scored")
    review: str | None = Field(None, description="the latest review's label (good/bad); None = not reviewed")
    simulated: bool = Field(False, description="a simulated conversation (cxa demo's history)")


def utc(t: datetime | None) -> datetime | None:
    return None if t is None else (t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC))


def period(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    """[since, until) in UTC (a time without a zone is UTC); `InvalidPeriodError` when since is not before until."""
    since, until = utc(since), utc(until)
    if since and until and since >= until:
        raise InvalidPeriodError("since must be before until")
    return since, until


def _floor(t: datetime, bucket: str) -> datetime:
    t = t.replace(minute=0, second=0, microsecond=0)
    return t.replace(hour=0) if bucket == "day" else t


def bucket_period(since: datetime | None, until: datetime | None, bucket: Bucket) -> tuple[datetime, datetime, int]:
    """The period a time series covers and its number of buckets. Defaults: the last 14 days (day) or 48 hours
    (hour); `since` is rounded down to a bucket start; at most `MAX_BUCKETS` buckets."""
    since, until = period(since, until)
    step = BUCKETS[bucket]
    until = until or datetime.now(UTC)
    since = _floor(since or until - step * DEFAULT_BUCKETS[bucket], bucket)
    if since >= until:
        raise InvalidPeriodError("since must be before until")
    n = -(-(until - since) // step)  # ceiling division of timedeltas
    if n > MAX_BUCKETS:
        raise InvalidPeriodError(f"{n} buckets asked for; at most {MAX_BUCKETS} (widen the bucket)")
    return since, until, n


def timeseries(
    facts: list[ConversationFacts], since: datetime, until: datetime, bucket: Bucket, n: int
) -> MetricsSeries:
    """The headline figures per bucket over [since, until): each item is `metrics_of` that bucket's conversations
    (empty buckets included, with zeros)."""
    step = BUCKETS[bucket]
    groups: dict[int, list[ConversationFacts]] = defaultdict(list)
    for f in facts:
        started = utc(f.started_at)
        assert started is not None
        groups[int((started - since) // step)].append(f)
    items = [metrics_of(groups.get(i, []), since + step * i, min(until, since + step * (i + 1))) for i in range(n)]
    return MetricsSeries(bucket=bucket, since=since, until=until, items=items)


def by_topic(facts: list[ConversationFacts], since: datetime | None, until: datetime | None) -> TopicBreakdown:
    """`metrics_of` each conversation topic, most conversations first (no topic yet: `unknown`)."""
    groups: dict[str, list[ConversationFacts]] = defaultdict(list)
    for f in facts:
        groups[f.topic or "unknown"].append(f)
    items = [
        TopicMetrics(topic=t, **metrics_of(fs, since, until).model_dump(exclude={"by_topic"}), by_topic={})
        for t, fs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    return TopicBreakdown(since=since, until=until, items=items)
