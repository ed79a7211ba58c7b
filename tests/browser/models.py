"""The chat model the browser tests serve: the built-in fake, quoting up to three source sentences (each
with its citation) and streaming word by word with a short pause, so the widget's incremental rendering
can be observed the way a customer sees it with a real model."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from assistant.llm.fake import _FAKE_STOP, _SOURCE, _WORDS, FakeSupportChatModel


class SlowQuotingModel(FakeSupportChatModel):
    sentences: int = 3
    delay_s: float = 0.03

    def answer(self, messages: list[BaseMessage]) -> str:
        text = "\n".join(str(m.content) for m in messages)
        question = text.rsplit("Question:", 1)[-1].split("\n", 1)[0]
        q = {w for w in _WORDS.findall(question.lower()) if w not in _FAKE_STOP}
        scored: list[tuple[int, int, str]] = []
        for line in text.splitlines():
            m = _SOURCE.match(line.strip())
            if not m:
                continue
            body = re.sub(r"^\([^)]*\)\s*", "", m.group(2))
            for sentence in re.split(r"(?<=[.!?])\s+", body):
                overlap = len(q & set(_WORDS.findall(sentence.lower())))
                if overlap and len(sentence.split()) >= 4:
                    scored.append((overlap, int(m.group(1)), sentence.strip()))
        if not scored:
            return "I don't know."
        best = sorted(scored, key=lambda s: -s[0])[: self.sentences]
        return " ".join(f"{s} [{n}]" if s.endswith((".", "!", "?")) else f"{s}. [{n}]" for _, n, s in best)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for piece in re.findall(r"\S+\s*", self._reply(messages, kwargs)):
            time.sleep(self.delay_s)
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
