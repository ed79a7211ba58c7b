"""Conversation quality for the CX team: the per-conversation scorecard (computed when missing, `?refresh=true`
to compute it again), reviews (a person's good/bad label, tags and optional per-dimension scores) and the turn
traces (what each turn did and why: the confidence with each feature's contribution, timings, citations)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from api.deps import CxDep, ServicesDep, StaffDep
from api.errors import ApiError
from assistant.models import SCORE_NAMES, Review, ReviewLabel, Scorecard, TurnTrace, utcnow
from evals.scorecard import QualityService

router = APIRouter(prefix="/v1/conversations", tags=["quality"])


def quality_of(request: Request) -> QualityService:
    return request.app.state.quality  # type: ignore[no-any-return]


class ScorecardOut(Scorecard):
    """The [fixed] scorecard: `conversation_id`, `scores` (groundedness, relevance, resolution, effort, tone, policy,
    handoff_appropriate: 0..1, null when not applicable), `evaluator`, `notes`; plus reasons and evaluators."""


class ReviewIn(BaseModel):
    label: ReviewLabel
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=20)
    note: str | None = Field(None, max_length=4000)
    reviewer: str | None = Field(None, max_length=200)
    scores: dict[str, float | None] = Field(
        default_factory=dict, description=f"optional human scores 0..1 (or null) of: {', '.join(SCORE_NAMES)}"
    )

    @field_validator("scores")
    @classmethod
    def _known_scores(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        unknown = sorted(set(v) - set(SCORE_NAMES))
        if unknown:
            raise ValueError(f"unknown score names {unknown}; known: {', '.join(SCORE_NAMES)}")
        if any(x is not None and not 0.0 <= x <= 1.0 for x in v.values()):
            raise ValueError("scores must be between 0 and 1 (or null)")
        return v


class ReviewOut(Review):
    pass


class TurnTraceList(BaseModel):
    items: list[TurnTrace]


@router.get("/{conversation_id}/scorecard", response_model=ScorecardOut)
async def get_scorecard(
    conversation_id: str,
    request: Request,
    _: CxDep,
    refresh: Annotated[bool, Query(description="score it again now")] = False,
    judge: Annotated[
        Literal["rules", "model"] | None, Query(description="who scores tone/relevance/policy (default: settings)")
    ] = None,
) -> Scorecard:
    quality = quality_of(request)
    use_judge = None if judge is None else judge == "model"
    if use_judge and quality.builder.judge is None:
        raise ApiError(422, "invalid_request", "no judge model is configured on this server")
    return await run_in_threadpool(quality.scorecard, conversation_id, refresh, use_judge)


@router.post("/{conversation_id}/review", response_model=ReviewOut, status_code=201)
async def post_review(conversation_id: str, body: ReviewIn, request: Request, _: CxDep) -> Review:
    review = Review(conversation_id=conversation_id, created_at=utcnow(), **body.model_dump())
    return await run_in_threadpool(quality_of(request).add_review, review)


@router.get("/{conversation_id}/review", response_model=ReviewOut)
async def get_review(conversation_id: str, request: Request, _: CxDep) -> Review:
    return await run_in_threadpool(quality_of(request).latest_review, conversation_id)


@router.get("/{conversation_id}/turns", response_model=TurnTraceList)
async def get_turns(conversation_id: str, services: ServicesDep, _: StaffDep) -> TurnTraceList:
    """The conversation's turns, oldest first, as the agent console shows them: reply mode, action, confidence
    and the features behind it, citations, timings (for an agent or the CX team; 404 for an unknown id)."""

    def read() -> TurnTraceList:
        services.store.get_conversation(conversation_id)  # raises ConversationNotFoundError -> 404
        return TurnTraceList(items=[TurnTrace.of(r) for r in services.store.list_turns(conversation_id)])

    return await run_in_threadpool(read)
