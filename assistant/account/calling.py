"""The account tools offered to a configured (OpenAI-compatible) model by function calling.

The model chooses the tools and their arguments and writes the answer from their results; the results are the
same typed facts and template sentences the embedded path answers with (`AccountAnswerer`), computed from this
customer's record only. What the model writes is held to those results: each sentence is shown only when it is
supported by them (meaning, words and every figure, as `assistant.turn.grounding` checks any answer) and passes
the output guard. When the model calls no tool, fails, or nothing it wrote survives, the template answer is
shown instead: the customer always gets the facts.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Generator
from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage
from pydantic import BaseModel, Field

from assistant.errors import ModelUnavailableError
from assistant.llm import ChatGateway
from assistant.models import Chunk, SearchHit, ToolCall
from assistant.prompts import ACCOUNT_TOOLS
from assistant.safety.guard import OutputGuard, neutralize
from assistant.turn.grounding import Passages, SentenceVectors, clean_sentence

logger = logging.getLogger(__name__)

_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")


class OrderArgs(BaseModel):
    order_id: str | None = Field(None, description="the order number, when the customer gave one or it is known")


class ReturnArgs(OrderArgs):
    rma: str | None = Field(None, description="the return (RMA) number, when the customer gave one")


class NoArgs(BaseModel):
    pass


TOOLS: dict[str, tuple[str, type[BaseModel]]] = {
    "order_status": ("Where an order is: dispatch, carrier, tracking, delivery slot, delivery, lateness.", OrderArgs),
    "order_details": ("What an order holds: items, prices, total, payment method, delivery option.", OrderArgs),
    "refund_status": ("Refunds of an order: amount, method, date, when it should arrive, deductions.", OrderArgs),
    "return_status": ("Returns and exchanges of an order: RMA, items, method, reason, refund.", ReturnArgs),
    "membership": (
        "The customer's membership: plan, price, renewal or billing date, trial, pause, failed payments.",
        NoArgs,
    ),
    "payments": ("The customer's failed payments: amount, date, reason, error code.", NoArgs),
    "tickets": ("The customer's support requests and complaints, and their status.", NoArgs),
    "past_conversations": ("What the customer's last conversation with support was about.", NoArgs),
}


def tool_specs() -> list[dict[str, Any]]:
    """The tools as OpenAI function schemas (what `bind_tools` takes)."""
    return [
        {
            "type": "function",
            "function": {"name": name, "description": description, "parameters": args.model_json_schema()},
        }
        for name, (description, args) in TOOLS.items()
    ]


class ToolOutcome(BaseModel):
    """One tool the model called, run against the record."""

    summary: str = Field(description="the facts as the templates word them (what the model may repeat)")
    calls: list[ToolCall] = Field(default_factory=list)
    citations: list[Any] = Field(default_factory=list)


Runner = Callable[[str, dict[str, Any]], ToolOutcome]


class PhrasedAnswer(BaseModel):
    text: str
    calls: list[ToolCall] = Field(default_factory=list)
    citations: list[Any] = Field(default_factory=list)
    by_model: bool = False
    dropped: list[str] = Field(default_factory=list)


class ToolCallingPhraser:
    def __init__(
        self,
        chat: ChatGateway,
        vectors: SentenceVectors,
        guard: OutputGuard,
        company: str,
        min_support: float = 0.55,
        max_sentences: int = 4,
    ) -> None:
        self.chat = chat
        self.vectors = vectors
        self.guard = guard
        self.company = company
        self.min_support = min_support
        self.max_sentences = max_sentences

    def phrase(
        self,
        question: str,
        transcript: str,
        run: Runner,
        fallback: str,
        *,
        turn_id: str | None = None,
        conversation_id: str | None = None,
    ) -> Generator[str, None, PhrasedAnswer]:
        """Yield the approved text as it streams; return what was shown, the tool calls and their citations."""
        values = {
            "company": self.company,
            "transcript": neutralize(transcript),
            "question": neutralize(" ".join(question.split())),
        }
        try:
            reply = self.chat.call_tools(
                ACCOUNT_TOOLS, values, tool_specs(), turn_id=turn_id, conversation_id=conversation_id
            )
        except ModelUnavailableError as exc:
            logger.info("account tools by function calling unavailable (%s): the template answer is shown", exc)
            yield fallback
            return PhrasedAnswer(text=fallback)
        if not reply.tool_calls:
            yield fallback
            return PhrasedAnswer(text=fallback)
        after: list[BaseMessage] = [reply]
        outcomes: list[ToolOutcome] = []
        for call in reply.tool_calls[:4]:
            name, args = call["name"], dict(call.get("args") or {})
            outcome = run(name, args) if name in TOOLS else ToolOutcome(summary=f"There is no tool called {name}.")
            outcomes.append(outcome)
            content = json.dumps({"facts": outcome.summary}, ensure_ascii=False)
            after.append(ToolMessage(content=content, tool_call_id=call.get("id") or name))
        sources = "\n".join(o.summary for o in outcomes if o.summary)
        calls = [c for o in outcomes for c in o.calls]
        citations = [c for o in outcomes for c in o.citations]
        shown: list[str] = []
        dropped: list[str] = []
        passages = Passages(
            hits=[SearchHit(chunk=_record_chunk(sources), score=1.0)],
            history="",
            embedder=self.vectors,
            question=question,
        )

        def judge(sentence: str) -> str | None:
            s = clean_sentence(sentence)
            if len(s.split()) < 3 or len(shown) >= self.max_sentences:
                return None
            if self.guard.check(s, sources) is not None or passages.support(s).support < self.min_support:
                dropped.append(s)
                return None
            shown.append(s)
            return s

        buffer = ""
        try:
            for piece in self.chat.stream(
                ACCOUNT_TOOLS, values, after=after, turn_id=turn_id, conversation_id=conversation_id
            ):
                buffer += piece
                while (m := _BOUNDARY.search(buffer)) is not None:
                    sentence, buffer = buffer[: m.start()], buffer[m.end() :]
                    if (ok := judge(sentence)) is not None:
                        yield ("" if len(shown) == 1 else " ") + ok
            if buffer.strip() and (ok := judge(buffer)) is not None:
                yield ("" if len(shown) == 1 else " ") + ok
        except ModelUnavailableError as exc:
            logger.info("the answer after the account tools failed (%s)", exc)
        if not shown:
            yield fallback
            return PhrasedAnswer(text=fallback, calls=calls, citations=citations, dropped=dropped)
        return PhrasedAnswer(text=" ".join(shown), calls=calls, citations=citations, by_model=True, dropped=dropped)


def _record_chunk(text: str) -> Chunk:
    return Chunk(
        chunk_id="account", source_id="account", title="Your account", text=text, start=0, end=len(text), position=0
    )
