"""The loop back, for the CX team (cx token): the knowledge gaps (the questions the assistant could not answer,
grouped, worst first), one draft per gap for a person to edit and approve, and (with the copilot and handoff
quality) what agents' work says about the knowledge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import CxDep, ServicesDep
from assistant.models import CopilotFigures, GapDraft, HandoffQualityReport, KnowledgeGap
from assistant.telemetry.figures import period

router = APIRouter(tags=["insights"])

Since = Annotated[datetime | None, Query(description="questions asked at or after (ISO-8601; default: 14 days ago)")]
Until = Annotated[datetime | None, Query(description="questions asked before (ISO-8601; default: now)")]


class KnowledgeGapList(BaseModel):
    since: datetime
    until: datetime
    items: list[KnowledgeGap] = Field(description="worst first; covered ones (an approved answer matches) last")


class DraftIn(BaseModel):
    kind: Literal["approved_answer", "article_outline"] = "approved_answer"


@router.get("/v1/insights/knowledge-gaps", response_model=KnowledgeGapList)
def knowledge_gaps(
    services: ServicesDep,
    _: CxDep,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> KnowledgeGapList:
    """The questions the assistant could not answer in [since, until) (declined, handed off for low confidence,
    rephrased, rated badly), grouped by meaning: each gap with its conversations, customers, trend, examples,
    topic and the agents' replies."""
    since, until = services.gaps.period(*period(since, until))
    return KnowledgeGapList(since=since, until=until, items=services.gaps.report(since, until)[:limit])


@router.post("/v1/insights/knowledge-gaps/{gap_id}/draft", response_model=GapDraft)
def draft_from_gap(
    gap_id: str, body: DraftIn, services: ServicesDep, _: CxDep, since: Since = None, until: Until = None
) -> GapDraft:
    """A draft approved answer (question, variants, answer) or help-article outline from the gap's agent replies,
    for a person to edit and approve (`POST /v1/approved-answers`). 404 `gap_not_found` when the period holds no
    gap with that id."""
    since, until = services.gaps.period(*period(since, until))
    gap, grouped = services.gaps.find(gap_id, since, until)
    return services.drafter.draft(gap, grouped, body.kind)


@router.get("/v1/insights/copilot", response_model=CopilotFigures)
def copilot_figures(services: ServicesDep, _: CxDep, since: Since = None, until: Until = None) -> CopilotFigures:
    """The copilot's drafts shown in [since, until) and what agents did with them (sent as is, edited, ignored);
    the time from claim to the agent's first reply for handoffs claimed then, with a draft shown and without."""
    return services.copilot.figures(*period(since, until))


@router.get("/v1/insights/handoff-quality", response_model=HandoffQualityReport)
def handoff_quality(services: ServicesDep, _: CxDep, since: Since = None, until: Until = None) -> HandoffQualityReport:
    """Handoffs created in [since, until): how many were avoidable (an approved answer or a help-center passage
    answered the question then) and how many made the customer repeat what the packet had (order number, email,
    the issue...), with the handoffs themselves, avoidable or re-asked first."""
    return services.handoff_quality.report(*period(since, until))


class SimulatedOut(BaseModel):
    conversations: int = Field(description="simulated conversations in the data (cxa demo's history), not customers'")
    first: datetime | None = None
    last: datetime | None = None


@router.get("/v1/insights/simulated", response_model=SimulatedOut)
def simulated(services: ServicesDep, _: CxDep) -> SimulatedOut:
    """How much of the data is simulated (`cxa demo` seeds two weeks of it): the dashboard says so."""
    n, first, last = services.store.simulated.count()
    return SimulatedOut(conversations=n, first=first, last=last)
