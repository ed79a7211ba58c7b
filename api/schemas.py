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
