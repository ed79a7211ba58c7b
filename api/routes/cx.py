"""The CX team's figures: headline metrics over a period and the conversation list (filters, worst first),
plus the Prometheus exposition for operations."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import CxDep, ServicesDep
from api.errors import ApiError
from assistant.models import ConversationFacts
from assistant.telemetry.recorder import Metrics, metrics_of

router = APIRouter(tags=["cx"])

Since = Annotated[datetime | None, Query(description="conversations started at or after (ISO-8601; UTC if no zone)")]
Until = Annotated[datetime | None, Query(description="conversations started before (ISO-8601; UTC if no zone)")]
Sort = Literal["recent", "oldest", "worst", "effort", "-effort", "score"]
OutcomeName = Literal[
    "open", "resolved_by_bot_confirmed", "resolved_by_bot_assumed", "resolved_by_agent", "unresolved", "abandoned"
]
StatusName = Literal["bot", "waiting_for_agent", "with_agent", "resolved", "abandoned"]


def _utc(t: datetime | None) -> datetime | None:
    return None if t is None else (t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC))


def _period(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    since, until = _utc(since), _utc(until)
    if since and until and since >= until:
        raise ApiError(422, "invalid_request", "since must be before until")
    return since, until


class ConversationItem(BaseModel):
    id: str
    status: str
    outcome: str
    effort: float
    csat: int | None
    ces: int | None
    topic: str | None
    customer_id: str | None
    started_at: datetime
    last_activity_at: datetime
    customer_turns: int
    handed_off: bool
    durable: bool | None
    agent_wait_s: float | None
    sentiment_trend: float | None
    signals: dict[str, int]
    score: float | None = Field(None, description="mean of the latest scorecard's scores (0..1); null = not scored")
    review: str | None = Field(None, description="the latest review's label (good/bad); null = not reviewed")

    @classmethod
    def of(cls, f: ConversationFacts, score: float | None = None, review: str | None = None) -> ConversationItem:
        return cls(
            id=f.conversation_id,
            signals=f.counts,
            score=score,
            review=review,
            **f.model_dump(exclude={"conversation_id", "counts"}),
        )


class ConversationList(BaseModel):
    items: list[ConversationItem]
    limit: int
    offset: int


@router.get("/v1/metrics", response_model=Metrics)
async def metrics(services: ServicesDep, _: CxDep, since: Since = None, until: Until = None) -> Metrics:
    """Headline figures over conversations started in [since, until) (definitions: README, telemetry)."""
    since, until = _period(since, until)
    telemetry = services.engine.telemetry
    assert telemetry is not None
    await run_in_threadpool(telemetry.sweep)
    return await run_in_threadpool(telemetry.metrics, since, until)


MAX_BUCKETS = 400
BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


class Timeseries(BaseModel):
    bucket: Literal["hour", "day"]
    since: datetime
    until: datetime
    items: list[Metrics]


class TopicMetrics(Metrics):
    topic: str


class TopicList(BaseModel):
    since: datetime | None
    until: datetime | None
    items: list[TopicMetrics]


def _floor(t: datetime, bucket: str) -> datetime:
    t = t.replace(minute=0, second=0, microsecond=0)
    return t.replace(hour=0) if bucket == "day" else t


@router.get("/v1/metrics/timeseries", response_model=Timeseries)
async def metrics_timeseries(
    services: ServicesDep,
    _: CxDep,
    since: Since = None,
    until: Until = None,
    bucket: Annotated[Literal["hour", "day"], Query(description="bucket width (UTC hours or days)")] = "day",
) -> Timeseries:
    """The headline figures per bucket over [since, until): each item is `/v1/metrics` for that bucket's
    conversations (empty buckets included, with zeros). Defaults: the last 14 days (day) or 48 hours
    (hour); `since` is rounded down to a bucket start; at most 400 buckets."""
    since, until = _period(since, until)
    step = BUCKETS[bucket]
    until = until or datetime.now(UTC)
    since = _floor(since or until - step * (14 if bucket == "day" else 48), bucket)
    if since >= until:
        raise ApiError(422, "invalid_request", "since must be before until")
    n = -(-(until - since) // step)  # ceiling division of timedeltas
    if n > MAX_BUCKETS:
        raise ApiError(422, "invalid_request", f"{n} buckets asked for; at most {MAX_BUCKETS} (widen the bucket)")
    telemetry = services.engine.telemetry
    assert telemetry is not None
    await run_in_threadpool(telemetry.sweep)
    facts = await run_in_threadpool(lambda: services.store.query_facts(since=since, until=until, order="oldest"))
    groups: dict[int, list[ConversationFacts]] = defaultdict(list)
    for f in facts:
        groups[int((_utc(f.started_at) - since) // step)].append(f)  # type: ignore[operator]
    items = [metrics_of(groups.get(i, []), since + step * i, min(until, since + step * (i + 1))) for i in range(n)]
    return Timeseries(bucket=bucket, since=since, until=until, items=items)


@router.get("/v1/metrics/topics", response_model=TopicList)
async def metrics_by_topic(services: ServicesDep, _: CxDep, since: Since = None, until: Until = None) -> TopicList:
    """`/v1/metrics` for each conversation topic over [since, until), most conversations first
    (conversations with no topic yet are under `unknown`)."""
    since, until = _period(since, until)
    telemetry = services.engine.telemetry
    assert telemetry is not None
    await run_in_threadpool(telemetry.sweep)
    facts = await run_in_threadpool(lambda: services.store.query_facts(since=since, until=until))
    groups: dict[str, list[ConversationFacts]] = defaultdict(list)
    for f in facts:
        groups[f.topic or "unknown"].append(f)
    items = [
        TopicMetrics(topic=t, **metrics_of(fs, since, until).model_dump(exclude={"by_topic"}), by_topic={})
        for t, fs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    return TopicList(since=since, until=until, items=items)


@router.get("/v1/conversations", response_model=ConversationList)
async def list_conversations(
    services: ServicesDep,
    _: CxDep,
    since: Since = None,
    until: Until = None,
    status: StatusName | None = None,
    outcome: OutcomeName | None = None,
    topic: Annotated[str | None, Query(max_length=100)] = None,
    min_effort: Annotated[float | None, Query(ge=1, le=7, description="predicted effort at least this")] = None,
    sort: Annotated[
        Sort, Query(description="worst = highest effort first, then lowest CSAT; score = lowest quality score first")
    ] = "recent",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ConversationList:
    since, until = _period(since, until)
    telemetry = services.engine.telemetry
    assert telemetry is not None
    await run_in_threadpool(telemetry.sweep)
    facts = await run_in_threadpool(
        lambda: services.store.query_facts(
            since=since,
            until=until,
            status=status,
            outcome=outcome,
            topic=topic,
            min_effort=min_effort,
            order=sort,
            limit=limit,
            offset=offset,
        )
    )
    ids = [f.conversation_id for f in facts]
    scores = await run_in_threadpool(services.store.latest_scores, ids)
    reviews = {r.conversation_id: r.label for r in await run_in_threadpool(services.store.latest_reviews, ids)}
    items = [ConversationItem.of(f, scores.get(f.conversation_id), reviews.get(f.conversation_id)) for f in facts]
    return ConversationList(items=items, limit=limit, offset=offset)


@router.get("/metrics", tags=["operations"], response_class=Response)
def prometheus(services: ServicesDep) -> Response:
    """Prometheus text exposition: turn step latencies, turns by mode and action, handoffs, errors."""
    observer = services.engine.observer
    body = observer.exposition() if observer is not None else b""
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
