"""Request bodies shared by several routes."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class TextIn(BaseModel):
    """A chat message, from a customer or an agent: 1..4000 characters, not only white space."""

    text: str = Field(min_length=1, max_length=4000, description="1..4000 characters")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the message is empty")
        return v


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. invalid_request, not_found, rate_limited")
    message: str = Field(description="for people: what was wrong and what to do")


class ErrorOut(BaseModel):
    """Every error response (API.md): `{"error": {"code", "message"}}` with a 4xx/5xx status."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    "default": {"model": ErrorOut, "description": "an error (4xx: the request; 5xx: ours), always this shape"}
}
