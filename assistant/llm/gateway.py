"""The gateway every chat-model call goes through (the models themselves: `assistant.llm.factory`).

`ChatGateway.stream()` renders a named prompt, streams text, enforces the timeout, retries what is worth retrying
(timeouts, connection errors, 429 and 5xx from an OpenAI-compatible provider, bounded by the call's deadline and
`max_retry_wait_s`, not by the `openai` client, which would wait out any Retry-After up to 2 minutes), logs the call
(prompt name/version, model, tokens, time to first token) and turns every provider failure into
`ModelUnavailableError`, which the engine degrades to a handoff.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack, overload

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ValidationError

from assistant.errors import ModelSlowError, ModelUnavailableError
from assistant.llm.factory import build_chat_model
from assistant.llm.llamacpp import LlamaCppChatModel
from assistant.prompts import Prompt, PromptRole
from assistant.safety.redact import Secrets, mask_payment_data
from assistant.settings import Settings

logger = logging.getLogger(__name__)

CallLogger = Callable[..., None]
ModelT = TypeVar("ModelT", bound=BaseModel)
LenientT = TypeVar("LenientT", bound=BaseModel)


class CallIds(TypedDict, total=False):
    """What a call is logged under: `complete` and `structured` pass these on to `stream`."""

    turn_id: str | None
    conversation_id: str | None


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
        self.secrets = Secrets(secrets or [])
        self.model = model
        self.provider = provider
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.log = log
        self.structured_output = structured_output
        self.retries = retries
        self.max_retry_wait_s = max_retry_wait_s
        self._usage: dict[str, int] = {}  # prompt tokens sent per turn, until the turn takes them
        self._usage_lock = threading.Lock()

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
        """Credentials that must never reach a model (redacted from every rendered prompt, whatever their length)."""
        self.secrets.add(secrets)

    def _redact(self, rendered: list[tuple[PromptRole, str]], prompt: Prompt) -> list[tuple[PromptRole, str]]:
        """Nothing we hold a secret for is ever in a prompt. No prompt puts one there; should data carry one
        (a customer pasting a token, an article quoting a key), it is replaced, and the event logged. Payment data
        (card numbers, IBANs, codes, passwords: `mask_payment_data`) is masked too, wherever it came from (the
        messages are stored masked; an account event or an article may still hold one), so neither the model nor
        the `llm_calls` log ever sees it."""
        out = []
        for role, text in rendered:
            if self.secrets.found_in(text):
                logger.warning("a credential was redacted from the %s prompt (%s)", prompt.name, role)
                text = self.secrets.redact(text)
            out.append((role, mask_payment_data(text)))
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
        after: Sequence[BaseMessage] = (),
        first_token_s: float | None = None,
    ) -> Iterator[str]:
        """Yield text pieces. Raises `ModelUnavailableError` on any failure of the model or provider.
        `options` are provider call options (e.g. `max_tokens`, `json_schema`). `after`: messages that follow the
        rendered prompt (the model's tool calls and their results, from `call_tools`). `first_token_s`: no first
        piece by then raises `ModelSlowError` (a busy model: `ModelBusyError`). Either deadline cancels the
        generation: the model runs in a worker thread that stops at once (llama.cpp aborts mid-prompt), so a late
        answer never keeps a core, or the model, after the customer has been answered."""
        rendered = self._redact(prompt.render(**values), prompt)
        messages = to_messages(rendered) + list(after)
        prompt_tokens = self._count_prompt(rendered, after, turn_id)
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
                    first_s = None if out else first_token_s
                    for piece in self._bounded(messages, prompt, call, started + limit, first_s):
                        if first is None:
                            first = time.perf_counter()
                        out.append(piece)
                        yield piece
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
            self._log_call(
                prompt,
                turn_id,
                conversation_id,
                [{"role": r, "content": text} for r, text in rendered] + _logged(after),
                mask_payment_data("".join(out)),
                started,
                input_tokens=prompt_tokens,
                output_tokens=len(out),
                first_token_ms=((first - started) * 1000) if first else None,
                error=error,
            )

    def _log_call(
        self,
        prompt: Prompt,
        turn_id: str | None,
        conversation_id: str | None,
        messages: list[dict[str, Any]],
        output: str,
        started: float,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        first_token_ms: float | None = None,
        error: str | None = None,
    ) -> None:
        """One row of the call log (`llm_calls`): never raises, a customer's turn does not depend on it."""
        if self.log is None:
            return
        try:
            self.log(
                turn_id=turn_id,
                conversation_id=conversation_id,
                prompt_name=prompt.name,
                prompt_version=prompt.version,
                provider=self.provider,
                model=self.model_name,
                messages=messages,
                output=output,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                duration_ms=(time.perf_counter() - started) * 1000,
                first_token_ms=first_token_ms,
                error=error,
            )
        except Exception:  # logging must never break a customer's turn
            logger.exception("could not log the chat-model call")

    def _count_prompt(
        self, rendered: list[tuple[PromptRole, str]], after: Sequence[BaseMessage], turn_id: str | None
    ) -> int:
        """The prompt's length in tokens (the embedded model's own tokenizer; about 4 characters a token for any
        other), added to its turn's total (`take_usage`): prompt length is the embedded model's latency."""
        text = "\n".join([t for _, t in rendered] + [str(m.content) for m in after])
        n = 0
        if isinstance(self.model, LlamaCppChatModel):
            try:
                n = self.model.count_tokens(text)
            except ModelUnavailableError:
                n = 0
        n = n or (len(text) + 3) // 4
        if turn_id is not None:
            with self._usage_lock:
                self._usage[turn_id] = self._usage.get(turn_id, 0) + n
        return n

    def take_usage(self, turn_id: str) -> int | None:
        """The prompt tokens this turn's model calls sent (None: it made none); forgotten once taken."""
        with self._usage_lock:
            return self._usage.pop(turn_id, None)

    def _bounded(
        self,
        messages: list[BaseMessage],
        prompt: Prompt,
        call: dict[str, Any],
        deadline: float,
        first_s: float | None,
    ) -> Iterator[str]:
        """The model's text pieces, produced in a worker thread and handed over within the deadlines (`deadline`:
        perf_counter time for the whole call; `first_s`: seconds from now for the first piece)."""
        first_by = None if first_s is None else time.perf_counter() + first_s
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
        cancel = threading.Event()
        if isinstance(self.model, LlamaCppChatModel):
            call = {**call, "cancel": cancel}

        def produce() -> None:
            try:
                for chunk in self.model.stream(messages, stop=list(prompt.stop) or None, **call):
                    if cancel.is_set():
                        return
                    piece = chunk.content if isinstance(chunk.content, str) else str(chunk.content)
                    if piece:
                        pieces.put(("piece", piece))
                pieces.put(("end", None))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
                pieces.put(("error", exc))

        worker = threading.Thread(target=produce, name="chat-model", daemon=True)
        worker.start()
        got_first = False
        try:
            while True:
                now = time.perf_counter()
                until = deadline if got_first or first_by is None else min(deadline, first_by)
                try:
                    kind, value = pieces.get(timeout=max(0.0, until - now))
                except queue.Empty:
                    if not got_first and first_by is not None and time.perf_counter() >= first_by - 1e-3:
                        raise ModelSlowError(f"no first token within {first_s:.1f}s") from None
                    raise TimeoutError("generation exceeded its deadline") from None
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                got_first = True
                yield value
        finally:
            cancel.set()

    def call_tools(
        self,
        prompt: Prompt,
        values: dict[str, str],
        tools: list[dict[str, Any]],
        *,
        turn_id: str | None = None,
        conversation_id: str | None = None,
    ) -> AIMessage:
        """One call offering `tools` (OpenAI function schemas): the model's reply, whose `tool_calls` say which
        tools it wants run (none: it answered, or it cannot call tools). Raises `ModelUnavailableError` on any
        failure, including a model that has no tool calling (the caller answers without it)."""
        rendered = self._redact(prompt.render(**values), prompt)
        messages = to_messages(rendered)
        started = time.perf_counter()
        error: str | None = None
        reply: AIMessage | None = None
        try:
            bound = self.model.bind_tools(tools)
            result = bound.invoke(messages, **self._call_options(None, prompt))
            reply = result if isinstance(result, AIMessage) else AIMessage(content=str(result.content))
            return reply
        except NotImplementedError:
            error = "this chat model cannot call tools"
            raise ModelUnavailableError(error) from None
        except Exception as exc:  # provider errors have no common base (openai, httpx, timeouts)
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("chat model tool call failed (%s %s): %s", prompt.name, prompt.version, error)
            raise ModelUnavailableError(f"the chat model failed: {error}") from exc
        finally:
            calls = reply.tool_calls if reply is not None else []
            self._log_call(
                prompt,
                turn_id,
                conversation_id,
                [{"role": r, "content": text} for r, text in rendered],
                json.dumps([{"name": c["name"], "args": c["args"]} for c in calls])
                if calls
                else (str(reply.content) if reply is not None else ""),
                started,
                error=error,
            )

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

    def complete(self, prompt: Prompt, values: dict[str, str], **ids: Unpack[CallIds]) -> str:
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

    @overload
    def structured(
        self,
        prompt: Prompt,
        values: dict[str, str],
        schema: type[ModelT],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        validate_as: None = None,
        **ids: Unpack[CallIds],
    ) -> ModelT: ...
    @overload
    def structured(
        self,
        prompt: Prompt,
        values: dict[str, str],
        schema: type[BaseModel],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        validate_as: type[LenientT],
        **ids: Unpack[CallIds],
    ) -> LenientT: ...
    def structured(
        self,
        prompt: Prompt,
        values: dict[str, str],
        schema: type[BaseModel],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        validate_as: type[BaseModel] | None = None,
        **ids: Unpack[CallIds],
    ) -> BaseModel:
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
        return parse_json_reply(text, validate_as or schema)


def _logged(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Messages after the prompt as the call log keeps them: the model's tool calls and the tools' results."""
    out: list[dict[str, Any]] = []
    for m in messages:
        row: dict[str, Any] = {"role": {"ai": "assistant"}.get(m.type, m.type), "content": str(m.content)}
        if isinstance(m, AIMessage) and m.tool_calls:
            row["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in m.tool_calls]
        out.append(row)
    return out


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
