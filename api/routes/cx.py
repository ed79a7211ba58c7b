"""The CX team's figures: headline metrics over a period and the conversation list (filters, worst first),
plus the Prometheus exposition for operations."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import CxDep, ServicesDep
from assistant.services import Services
from assistant.telemetry.figures import (
    Bucket,
    Metrics,
    MetricsSeries,
    ScoredConversation,
    TopicBreakdown,
    period,
)
from assistant.telemetry.recorder import Telemetry

router = APIRouter(tags=["cx"])

Since = Annotated[datetime | None, Query(description="conversations started at or after (ISO-8601; UTC if no zone)")]
Until = Annotated[datetime | None, Query(description="conversations started before (ISO-8601; UTC if no zone)")]
Sort = Literal["recent", "oldest", "worst", "effort", "-effort", "score"]
OutcomeName = Literal[
    "open", "resolved_by_bot_confirmed", "resolved_by_bot_assumed", "resolved_by_agent", "unresolved", "abandoned"
]
StatusName = Literal["bot", "waiting_for_agent", "with_agent", "resolved", "abandoned"]


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
    simulated: bool = Field(False, description="a simulated conversation (cxa demo's history), not a customer's")

    @classmethod
    def of(cls, c: ScoredConversation) -> ConversationItem:
        f = c.facts
        return cls(
            id=f.conversation_id,
            signals=f.counts,
            score=c.score,
            review=c.review,
            simulated=c.simulated,
            **f.model_dump(exclude={"conversation_id", "counts"}),
        )


class ConversationList(BaseModel):
    items: list[ConversationItem]
    limit: int
    offset: int


def _telemetry(services: Services) -> Telemetry:
    telemetry = services.engine.telemetry
    assert telemetry is not None  # always built by Services
    return telemetry


@router.get("/v1/metrics", response_model=Metrics)
async def metrics(services: ServicesDep, _: CxDep, since: Since = None, until: Until = None) -> Metrics:
    """Headline figures over conversations started in [since, until) (definitions: docs, telemetry)."""
    since, until = period(since, until)
    return await run_in_threadpool(_telemetry(services).metrics, since, until)


@router.get("/v1/metrics/timeseries", response_model=MetricsSeries)
async def metrics_timeseries(
    services: ServicesDep,
    _: CxDep,
    since: Since = None,
    until: Until = None,
    bucket: Annotated[Bucket, Query(description="bucket width (UTC hours or days)")] = "day",
) -> MetricsSeries:
    """The headline figures per bucket over [since, until): each item is `/v1/metrics` for that bucket's
    conversations (empty buckets included, with zeros). Defaults: the last 14 days (day) or 48 hours
    (hour); `since` is rounded down to a bucket start; at most 400 buckets."""
    return await run_in_threadpool(_telemetry(services).timeseries, since, until, bucket)


@router.get("/v1/metrics/topics", response_model=TopicBreakdown)
async def metrics_by_topic(services: ServicesDep, _: CxDep, since: Since = None, until: Until = None) -> TopicBreakdown:
    """`/v1/metrics` for each conversation topic over [since, until), most conversations first
    (conversations with no topic yet are under `unknown`)."""
    since, until = period(since, until)
    return await run_in_threadpool(_telemetry(services).by_topic, since, until)


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
    since, until = period(since, until)
    found = await run_in_threadpool(
        partial(
            _telemetry(services).conversations,
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
    return ConversationList(items=[ConversationItem.of(c) for c in found], limit=limit, offset=offset)


@router.get("/metrics", tags=["operations"], response_class=Response)
def prometheus(services: ServicesDep) -> Response:
    """Prometheus text exposition: turn step latencies, turns by mode and action, handoffs, errors."""
    observer = services.engine.observer
    body = observer.exposition() if observer is not None else b""
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
