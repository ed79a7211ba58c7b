"""`FakeSupportChatModel`: the deterministic chat model of `CXA_CHAT_PROVIDER=fake`. It answers with the source
sentence that shares most words with the question and cites it, or says it does not know; asked for JSON, it fills the
schema from the transcript. Tests and load runs use it: it exercises the whole pipeline (retrieval, grounding,
confidence, handoff) without a model."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

_SOURCE = re.compile(r"^\[(\d+)\]\s*(.*)$")
_WORDS = re.compile(r"[a-z0-9]+")
_FAKE_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "to",
        "of",
        "in",
        "on",
        "for",
        "is",
        "are",
        "was",
        "be",
        "i",
        "you",
        "my",
        "your",
        "it",
        "do",
        "does",
        "can",
        "how",
        "what",
        "with",
    ]
)


class FakeSupportChatModel(BaseChatModel):
    """Deterministic stand-in for a chat model: quotes the best-matching source sentence with its
    citation, or says "I don't know" when no source shares a content word with the question."""

    min_overlap: int = 1
    token_delay_s: float = 0.0  # before each streamed piece: a real model's pace, for load runs

    @property
    def _llm_type(self) -> str:
        return "fake-support"

    def answer(self, messages: list[BaseMessage]) -> str:
        text = "\n".join(str(m.content) for m in messages)
        question = text.rsplit("Question:", 1)[-1].split("\n", 1)[0]
        q = {w for w in _WORDS.findall(question.lower()) if w not in _FAKE_STOP}
        best: tuple[int, int, str] | None = None
        for line in text.splitlines():
            m = _SOURCE.match(line.strip())
            if not m:
                continue
            n = int(m.group(1))
            body = re.sub(r"^\([^)]*\)\s*", "", m.group(2))  # the "(Title > Heading)" label is not content
            for sentence in re.split(r"(?<=[.!?])\s+", body):
                overlap = len(q & set(_WORDS.findall(sentence.lower())))
                if overlap >= self.min_overlap and (best is None or overlap > best[0]):
                    best = (overlap, n, sentence.strip())
        if best is None:
            return "I don't know."
        return f"{best[2]} [{best[1]}]"

    def structured(self, messages: list[BaseMessage], schema: dict[str, Any]) -> str:
        """A JSON object with the schema's string fields, filled from the transcript's "Speaker: text" lines:
        the first customer line for the first field, the last customer line for the second, the last
        assistant/agent line for the third, a fixed sentence for the rest. Integer and number fields (a
        judge's grades) get their schema maximum (else minimum, else 1)."""
        text = "\n".join(str(m.content) for m in messages)
        lines = [line.split(":", 1) for line in text.splitlines() if re.match(r"^(Customer|Assistant|Agent): ", line)]
        customer = [t.strip() for who, t in lines if who == "Customer"] or [""]
        others = [t.strip() for who, t in lines if who != "Customer"] or [""]
        picks = [customer[0], customer[-1], others[-1]]
        properties: dict[str, Any] = schema.get("properties", {})
        out: dict[str, Any] = {}
        for i, (f, prop) in enumerate(properties.items()):
            if prop.get("type") in ("integer", "number"):
                out[f] = prop.get("maximum", prop.get("minimum", 1))
            else:
                out[f] = picks[i] if i < len(picks) else "Answer the customer's last message."
        return json.dumps(out)

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> str:
        if kwargs.get("json_schema") is not None:
            return self.structured(messages, kwargs["json_schema"])
        return self.answer(messages)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._reply(messages, kwargs)))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for piece in re.findall(r"\S+\s*", self._reply(messages, kwargs)):
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
