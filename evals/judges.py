"""The LLM-as-judge: the configured chat model grades a conversation with the `conversation_judge` rubric.

It answers as structured output (a JSON schema; llama.cpp turns it into a grammar, OpenAI-compatible
servers get `response_format`). Nothing it says is trusted as is: each grade must be an integer 1..5 (a
numeric string is accepted), and a grade that is missing, out of range or not a number is dropped, so that
score falls back to its rule (`evals.scorecard`). When the call itself fails (provider down, timeout, no
JSON at all) every grade falls back. Grades map to 0..1 as (g - 1) / 4.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import BaseModel, Field

from assistant.errors import ModelUnavailableError
from assistant.llm import ChatGateway
from assistant.prompts import CONVERSATION_JUDGE
from assistant.settings import EvalSettings
from evals.cases import Transcript

logger = logging.getLogger(__name__)

JUDGED = ("relevance", "tone", "policy")
_SPEAKER = {"customer": "Customer", "assistant": "Assistant", "agent": "Agent"}


class JudgeGrades(BaseModel):
    """The schema the judge is asked for."""

    relevance: int = Field(ge=1, le=5)
    tone: int = Field(ge=1, le=5)
    policy: int = Field(ge=1, le=5)
    reason: str = Field(max_length=300)


class _AnyGrades(BaseModel):
    """What the reply is parsed as: anything per field, checked field by field below."""

    relevance: Any = None
    tone: Any = None
    policy: Any = None
    reason: Any = None


class JudgeVerdict(BaseModel):
    scores: dict[str, float] = Field(default_factory=dict, description="the valid grades, 0..1")
    reason: str | None = None
    error: str | None = Field(None, description="why the judge gave nothing usable (every score falls back)")
    rejected: list[str] = Field(default_factory=list, description="grades dropped as invalid")


def judge_transcript(t: Transcript, max_words: int) -> str:
    """ "Speaker: text" lines, the newest kept within `max_words` (each message cut to 80 words)."""
    lines: list[str] = []
    budget = max_words
    for turn in reversed(t.turns):
        if turn.role not in _SPEAKER:
            continue
        words = turn.text.split()[:80]
        if len(words) > budget:
            break
        budget -= len(words)
        lines.append(f"{_SPEAKER[turn.role]}: {' '.join(words)}")
    return "\n".join(reversed(lines))


def grade(value: Any) -> float | None:
    """A 1..5 grade as 0..1, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*[1-5]\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 5:
        return None
    return (value - 1) / 4


class ConversationJudge:
    def __init__(self, chat: ChatGateway, settings: EvalSettings, company: str = "our company") -> None:
        self.chat = chat
        self.settings = settings
        self.company = company

    @property
    def name(self) -> str:
        return f"judge:{self.chat.model_name}@{CONVERSATION_JUDGE.name}.v{CONVERSATION_JUDGE.version}"

    def judge(self, t: Transcript) -> JudgeVerdict:
        transcript = judge_transcript(t, self.settings.judge_transcript_words)
        if not any(turn.role == "assistant" for turn in t.turns):
            return JudgeVerdict(error="no assistant reply to judge")
        try:
            raw = self.chat.structured(
                CONVERSATION_JUDGE,
                {"company": self.company, "transcript": transcript},
                JudgeGrades,
                max_tokens=self.settings.judge_max_tokens,
                timeout_s=self.settings.judge_timeout_s,
                validate_as=_AnyGrades,
                conversation_id=t.conversation_id,
            )
        except ModelUnavailableError as exc:
            logger.info("judge failed on %s: %s", t.conversation_id, exc)
            return JudgeVerdict(error=str(exc)[:300])
        scores: dict[str, float] = {}
        rejected: list[str] = []
        for name in JUDGED:
            value = grade(getattr(raw, name))
            if value is None:
                rejected.append(f"{name}={getattr(raw, name)!r}"[:80])
            else:
                scores[name] = value
        reason = raw.reason if isinstance(raw.reason, str) and len(raw.reason.split()) >= 3 else None
        error = None if scores else "no valid grade in the judge's reply"
        return JudgeVerdict(scores=scores, reason=reason[:200] if reason else None, error=error, rejected=rejected)
