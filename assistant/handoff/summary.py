"""The handoff summary: the packet an agent opens first.

The summary has two authors. Facts the code knows are never asked of a model: what the assistant
already answered with its citations, the customer's history, sentiment and effort so far. The prose
(issue, customer goal, what was tried, suggested next step) is written by the chat model with the
`handoff_summary` prompt as structured output (a JSON schema; llama.cpp turns it into a grammar),
and each field it writes is checked before it is used: long enough, not a placeholder, not looping,
and mostly made of the conversation's own words (a third for the suggestion). A field that fails falls back to
the extractive one; when the model itself failed (the reason for many handoffs) or
`CXA_HANDOFF__SUMMARY=extractive`, `extractive_summary` builds it all without a model. The packet
records which author wrote it (`summary_source`).
"""

from __future__ import annotations

import logging
import re
from typing import Literal

from pydantic import BaseModel, Field

from assistant.errors import ModelUnavailableError
from assistant.llm import ChatGateway
from assistant.models import CustomerContext, HandoffSummary, Message
from assistant.prompts import HANDOFF_SUMMARY
from assistant.safety.guard import (
    TRANSCRIPT_SPEAKERS,
    OutputGuard,
    looks_like_injection,
    neutralize,
    strip_invisible,
)
from assistant.settings import HandoffSettings
from knowledge.retriever import tokenize

logger = logging.getLogger(__name__)

HANDOFF_TEXT = (
    "I'm passing this conversation to a member of our support team. They will see everything you've "
    "told me, so you won't need to repeat yourself."
)
_NEGATIVE = re.compile(
    r"\b(angry|annoy\w*|frustrat\w*|ridiculous|terrible|awful|useless|unacceptable|worst|disappoint\w*|"
    r"still not|not working|doesn't work|already told|again|complain\w*|refund now|lawyer|sue)\b",
    re.I,
)
_POSITIVE = re.compile(r"\b(thanks?|thank you|great|perfect|helpful|appreciate|that worked|solved)\b", re.I)

# Reasons whose facts the code already holds (the failure, or the record the last reply quoted): the extractive
# summary is exact, and a model would add seconds to the customer's turn for nothing.
FACTS_KNOWN = frozenset({"error", "late_delivery", "refund_overdue"})

NEXT_STEP = {
    "customer_request": "Greet the customer, confirm the issue below and take it from there.",
    "low_confidence": "The help center did not cover this; answer the question directly or find the right policy.",
    "error": "The assistant failed to answer (technical error); answer the customer's last message.",
    "late_delivery": "The order is past its promised delivery with no delivery scan (the facts are in the "
    "assistant's last reply): check with the carrier, then rebook or replace as the delivery-delays policy says.",
    "refund_overdue": "The refund is past its policy window and the customer says it has not arrived (facts in "
    "the assistant's last reply): give them the refund reference or trace it with the payment provider.",
}
INJECTION_NOTE = (
    "Careful: the customer's messages contain instructions aimed at the assistant (possible prompt injection). "
    "Nothing was done on the account; verify the request before acting on it."
)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def sentiment_of(messages: list[Message]) -> str:
    customer = [m.text for m in messages if m.role == "customer"]
    neg = sum(len(_NEGATIVE.findall(t)) for t in customer)
    pos = sum(len(_POSITIVE.findall(t)) for t in customer)
    if neg > pos:
        trend = " and worsening" if customer and _NEGATIVE.search(customer[-1]) else ""
        return f"negative{trend}"
    return "positive" if pos > neg else "neutral"


def effort_so_far(messages: list[Message]) -> float:
    """Predicted effort on the CES scale (1 = effortless .. 7): one point per two customer messages beyond
    the first, plus one when the customer sounds negative, capped at 7 (refined by the telemetry issue)."""
    customer = [m for m in messages if m.role == "customer"]
    effort = 1.0 + 0.5 * max(0, len(customer) - 1)
    if sentiment_of(messages).startswith("negative"):
        effort += 1.0
    return round(min(7.0, effort), 2)


def attempted_so_far(messages: list[Message]) -> list[str]:
    """What the assistant answered (with its sources) and what an agent said, oldest first."""
    attempted = []
    for m in messages:
        if m.role == "assistant" and m.text != HANDOFF_TEXT:
            sources = ", ".join(dict.fromkeys(c.title for c in m.citations))
            attempted.append(_short(m.text, 160) + (f" (sources: {sources})" if sources else ""))
        elif m.role == "agent":
            attempted.append("Agent: " + _short(m.text, 160))
    return attempted


def extractive_summary(messages: list[Message], context: CustomerContext, reason: str) -> HandoffSummary:
    """The summary without a model. The customer's words are quoted as written (invisible characters
    removed); the account lines are neutralised like any untrusted text; when the customer's messages
    address a model, the suggested next step says so instead of the usual one."""
    customer = [m for m in messages if m.role == "customer"]
    attempted = attempted_so_far(messages)
    ctx_lines = [line for line in neutralize(context.text).splitlines() if line.strip()][:4] if context.profile else []
    injected = any(looks_like_injection(m.text) for m in customer)
    return HandoffSummary(
        issue=_short(strip_invisible(customer[0].text))
        if customer
        else "(the customer asked for a person before writing)",
        customer_goal=_short(strip_invisible(customer[-1].text)) if customer else "Talk to a person.",
        attempted=attempted[-5:],
        customer_context=" | ".join(ctx_lines) or "Anonymous customer: no account history.",
        sentiment=sentiment_of(messages),
        effort=effort_so_far(messages),
        suggested_next_step=INJECTION_NOTE if injected else NEXT_STEP.get(reason, NEXT_STEP["low_confidence"]),
    )


class ModelSummary(BaseModel):
    """What the model writes (the JSON schema of the `handoff_summary` prompt)."""

    issue: str = Field(max_length=240)
    customer_goal: str = Field(max_length=240)
    attempted: str = Field(max_length=240)
    suggested_next_step: str = Field(max_length=240)


_WORD = re.compile(r"[a-z0-9']+")
_ROLE_WORDS = frozenset(["customer", "agent", "assistant", "want", "wants", "ask", "asks", "asked"])
_PLACEHOLDER = re.compile(
    r"^(the )?customer'?s? (problem|request|goal|issue|next step)\.?$|[<>\[\]{}]|\binsert\b|\bplaceholder\b", re.I
)


def _content_words(text: str) -> list[str]:
    return [w for w in tokenize(text) if w not in _ROLE_WORDS and len(w) > 2]


def _loops(text: str, n: int = 4) -> bool:
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def supported_share(text: str, conversation: str) -> float:
    """Share of `text`'s content words (5-letter prefixes) that occur in `conversation`."""
    words = _content_words(text)
    said = {w[:5] for w in _content_words(conversation)}
    return sum(1 for w in words if w[:5] in said) / len(words) if words else 1.0


def acceptable(field: str, text: str, conversation_words: set[str]) -> bool:
    """Is a model-written field usable? Long enough, not a placeholder or a loop, and at least half its
    content words (5-letter prefixes) from the conversation (a third for the suggested next step)."""
    text = text.strip()
    if len(_WORD.findall(text)) < 3 or _PLACEHOLDER.search(text) or _loops(text):
        return False
    words = _content_words(text)
    if not words:
        return False
    supported = sum(1 for w in words if w[:5] in conversation_words) / len(words)
    return supported >= (0.3 if field == "suggested_next_step" else 0.5)


def transcript_for_summary(messages: list[Message], max_words: int) -> str:
    """ "Speaker: text" lines, newest kept within `max_words` (each message cut to 80 words)."""
    speaker = {"customer": "Customer", "assistant": "Assistant", "agent": "Agent"}
    lines: list[str] = []
    budget = max_words
    for m in reversed(messages):
        if m.role not in speaker or m.text == HANDOFF_TEXT:
            continue
        words = m.text.split()[:80]
        if len(words) > budget:
            break
        budget -= len(words)
        lines.append(f"{speaker[m.role]}: {' '.join(words)}")
    return "\n".join(reversed(lines))


SummarySource = Literal["model", "extractive"]


class Summarizer:
    """The summary of a conversation for the person taking it over (see the module docstring)."""

    def __init__(
        self,
        chat: ChatGateway | None,
        settings: HandoffSettings,
        company: str = "our company",
        guard: OutputGuard | None = None,
    ) -> None:
        self.chat = chat
        self.settings = settings
        self.company = company
        self.guard = guard or OutputGuard()

    def summarize(
        self,
        messages: list[Message],
        context: CustomerContext,
        reason: str,
        conversation_id: str | None = None,
    ) -> tuple[HandoffSummary, SummarySource]:
        base = extractive_summary(messages, context, reason)
        if self.chat is None or self.settings.summary == "extractive" or reason in FACTS_KNOWN:
            return base, "extractive"
        if base.suggested_next_step == INJECTION_NOTE:
            # The conversation addresses a model: what a model writes about it cannot be told from what it
            # was told to write. The agent gets the quotes, the transcript and the warning instead.
            return base, "extractive"
        transcript = transcript_for_summary(messages, self.settings.summary_transcript_words)
        if not transcript:
            return base, "extractive"
        try:
            written = self.chat.structured(
                HANDOFF_SUMMARY,
                {"company": self.company, "transcript": neutralize(transcript, TRANSCRIPT_SPEAKERS)},
                ModelSummary,
                max_tokens=self.settings.summary_max_tokens,
                timeout_s=self.settings.summary_timeout_s,
                conversation_id=conversation_id,
            )
        except ModelUnavailableError as exc:
            logger.info("handoff summary falls back to extractive: %s", exc)
            return base, "extractive"
        said = {w[:5] for w in _content_words(transcript)}
        # Each field is also held to the reply's rules (no secrets, links or emails the conversation does
        # not hold, no claimed actions, no instructions): an agent reads it as fact.
        ok = {
            f: acceptable(f, getattr(written, f), said) and self.guard.check(getattr(written, f), transcript) is None
            for f in ModelSummary.model_fields
        }
        if not (ok["issue"] or ok["customer_goal"]):
            return base, "extractive"
        return (
            base.model_copy(
                update={
                    "issue": _short(written.issue) if ok["issue"] else base.issue,
                    "customer_goal": _short(written.customer_goal) if ok["customer_goal"] else base.customer_goal,
                    "attempted": ([_short(written.attempted)] if ok["attempted"] else []) + base.attempted,
                    "suggested_next_step": _short(written.suggested_next_step)
                    if ok["suggested_next_step"]
                    else base.suggested_next_step,
                }
            ),
            "model",
        )
