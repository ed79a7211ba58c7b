"""Approved answers (agent or cx token): a person's answer served word for word to customers who ask its question.

The handlers parse and return; `assistant.approved.service` validates, flags and stores. A blank or oversized
text is a 422 from the schema, a question an active answer already has a 409 `duplicate_question`, an unknown id a
404 `approved_answer_not_found`. Texts are plain text: HTML in them is stored as typed and shown as text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, field_validator

from api.deps import ServicesDep, StaffDep
from assistant.models import ApprovedAnswer, ApprovedAnswerDraft, ApprovedAnswerEdit

router = APIRouter(tags=["approved answers"])

Question = Annotated[str, Field(min_length=1, max_length=500)]
AnswerText = Annotated[str, Field(min_length=1, max_length=4000)]
SourceId = Annotated[str, Field(min_length=1, max_length=300)]


def _not_blank(v: str | None) -> str | None:
    if v is not None and not v.strip():
        raise ValueError("is empty")
    return v


def _utc(v: datetime | None) -> datetime | None:
    return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v


class ApprovedAnswerIn(BaseModel):
    question: Question = Field(description="what customers ask (1..500 characters)")
    answer: AnswerText = Field(description="what they are told, word for word (plain text, 1..4000 characters)")
    variants: list[Question] = Field(default_factory=list, max_length=50, description="other ways to ask it")
    source_conversation_id: str | None = Field(
        None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="the conversation whose agent reply it is"
    )
    review_at: datetime | None = Field(None, description="stale after this (ISO-8601; UTC if no zone)")
    approved_by: str | None = Field(None, max_length=200, description="who approves it; default: the role")
    sources: list[SourceId] | None = Field(
        None, max_length=10, description="help articles it rests on; default: the best match for the question"
    )

    _blank = field_validator("question", "answer")(_not_blank)
    _zone = field_validator("review_at")(_utc)

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: list[str]) -> list[str]:
        return [x for x in v if x.strip()]


class ApprovedAnswerEditIn(BaseModel):
    question: Question | None = None
    answer: AnswerText | None = None
    variants: list[Question] | None = Field(None, max_length=50)
    review_at: datetime | None = Field(None, description="a new review date")
    clear_review_at: bool = Field(False, description="no review date any more")
    approved_by: str | None = Field(None, max_length=200)
    sources: list[SourceId] | None = Field(None, max_length=10)
    clear_flags: bool = Field(False, description="the flags were looked at: remove them")

    _blank = field_validator("question", "answer")(_not_blank)
    _zone = field_validator("review_at")(_utc)


class ApprovedAnswerList(BaseModel):
    items: list[ApprovedAnswer]


@router.post("/v1/approved-answers", status_code=201, response_model=ApprovedAnswer)
def create_approved_answer(body: ApprovedAnswerIn, services: ServicesDep, role: StaffDep) -> ApprovedAnswer:
    """Approve an answer (an agent's reply in one click from the console, or a fresh text). 409
    `duplicate_question` when an active answer already has the question; flags for what a person should check."""
    draft = ApprovedAnswerDraft(**body.model_dump(exclude={"approved_by"}), approved_by=body.approved_by or role)
    return services.approved.create(draft)


@router.get("/v1/approved-answers", response_model=ApprovedAnswerList)
def list_approved_answers(
    services: ServicesDep,
    _: StaffDep,
    status: Annotated[Literal["active", "retired", "all"], Query()] = "active",
    stale: Annotated[bool | None, Query(description="only stale (true) or fresh (false) ones")] = None,
) -> ApprovedAnswerList:
    items = services.approved.list(None if status == "all" else status)
    if stale is not None:
        items = [a for a in items if a.stale == stale]
    return ApprovedAnswerList(items=items)


@router.get("/v1/approved-answers/{answer_id}", response_model=ApprovedAnswer)
def get_approved_answer(answer_id: str, services: ServicesDep, _: StaffDep) -> ApprovedAnswer:
    return services.approved.get(answer_id)


@router.put("/v1/approved-answers/{answer_id}", response_model=ApprovedAnswer)
def edit_approved_answer(
    answer_id: str, body: ApprovedAnswerEditIn, services: ServicesDep, role: StaffDep
) -> ApprovedAnswer:
    """Change the fields given (the edit approves it again: stale article versions are refreshed). 409 for a
    retired answer."""
    edit = ApprovedAnswerEdit(**body.model_dump(exclude={"approved_by"}), approved_by=body.approved_by or role)
    return services.approved.update(answer_id, edit)


@router.delete("/v1/approved-answers/{answer_id}", status_code=204, response_class=Response)
def retire_approved_answer(answer_id: str, services: ServicesDep, _: StaffDep) -> Response:
    """Retire it: never served again (kept, with its hits, under `status=retired`)."""
    services.approved.retire(answer_id)
    return Response(status_code=204)
