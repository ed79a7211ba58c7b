"""The one chat model the tests fake (STYLE 2.7, "fakes at the boundary": the model is outside our process).

`FakeChatModel` answers each call with the next reply `enqueue`d (as simonw/llm's `MockModel.enqueue`), and once the
queue is empty with `reply`. A reply is

- a text, streamed in word pieces (`token_delay_s` before each, for a slow model);
- an exception, raised as the call starts (a provider that is down; queue it N times to fail N times);
- a callable of the `Call`, which returns the text (from the prompt or the options: an echo, a gullible model, a
  quoting one), raises, or blocks (a hang).

Every call is recorded in `calls`: its messages and its options (`json_schema`, `max_tokens`, ...). Without a
`reply`, a call the queue does not answer fails, so a test says what the model says.

langchain's `GenericFakeChatModel` cannot see the prompt or the options, raise or pace itself; what a test needs of a
model is one reply hook on one class rather than a subclass per behaviour. The product's own deterministic model,
`assistant.llm.FakeSupportChatModel` (`CXA_CHAT_PROVIDER=fake`), is not this: it is what the app serves by default.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr


@dataclass(frozen=True)
class Call:
    """One call of the model: what it was given."""

    messages: list[BaseMessage]
    options: dict[str, Any]  # the call options the gateway passed (json_schema, max_tokens, ...)


Reply = str | BaseException | Callable[[Call], str]
_PIECES = re.compile(r"\S+\s*|\s+")  # words with their trailing space: the pieces join back to the text


def _unqueued(call: Call) -> str:
    raise LookupError("FakeChatModel: no reply queued for this call")


class FakeChatModel(BaseChatModel):
    """A chat model that replies what the test tells it to (see the module docstring)."""

    reply: Reply = _unqueued
    token_delay_s: float = 0.0
    _queue: list[Reply] = PrivateAttr(default_factory=list)
    _calls: list[Call] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)  # the app calls from several threads

    @property
    def _llm_type(self) -> str:
        return "fake-chat"

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def enqueue(self, *replies: Reply) -> FakeChatModel:
        """Replies for the next calls, in order, before `reply` answers again."""
        with self._lock:
            self._queue.extend(replies)
        return self

    def _text(self, messages: list[BaseMessage], options: dict[str, Any]) -> str:
        call = Call(list(messages), dict(options))
        with self._lock:
            self._calls.append(call)
            reply = self._queue.pop(0) if self._queue else self.reply
        if isinstance(reply, BaseException):
            raise reply.with_traceback(None)  # the same instance may be raised again: no traceback piles up
        return reply if isinstance(reply, str) else reply(call)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._text(messages, kwargs)))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for piece in _PIECES.findall(self._text(messages, kwargs)):
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
