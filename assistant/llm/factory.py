"""The one place that builds a chat model from `Settings` (`embedded`, `openai` or `fake`)."""

from __future__ import annotations

from langchain_core.language_models.chat_models import BaseChatModel

from assistant.llm.fake import FakeSupportChatModel
from assistant.llm.llamacpp import LlamaCppChatModel, default_gguf_path
from assistant.prompts import ANSWER
from assistant.settings import Settings


def build_chat_model(settings: Settings) -> BaseChatModel:
    """The configured chat model (not yet loaded; `ChatGateway.warm()` loads an embedded one)."""
    if settings.chat_provider == "fake":
        return FakeSupportChatModel(token_delay_s=settings.fake_token_delay_ms / 1000)
    if settings.chat_provider == "openai":
        from langchain_openai import ChatOpenAI

        o = settings.openai
        # Field names rather than their aliases (model, base_url, api_key, timeout, max_completion_tokens): ChatOpenAI
        # takes both (populate_by_name), and the pydantic mypy plugin checks the names.
        return ChatOpenAI(
            model_name=o.model,
            openai_api_base=o.base_url,
            openai_api_key=o.api_key,
            request_timeout=o.timeout_s,
            max_retries=0,  # ChatGateway retries, within the turn's deadline (the client would honour any Retry-After)
            temperature=o.temperature,
            max_tokens=o.max_tokens,
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
        wait_policy=e.wait_policy,
        queue_wait_s=e.queue_wait_s,
    )
