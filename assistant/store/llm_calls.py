"""The log of every chat-model call (`LLMCallRow`: prompt name and version, model, tokens, time), as simonw/llm
logs them; written by `assistant.llm.ChatGateway`."""

from __future__ import annotations

from typing import Any

from assistant.models import utcnow
from assistant.store.db import Repository
from assistant.store.tables import LLMCallRow


class LLMCallLog(Repository):
    def log(self, **fields: Any) -> None:
        with self.db.session() as s:
            s.add(LLMCallRow(created_at=utcnow(), **fields))
