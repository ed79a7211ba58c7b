"""Counting what a request path costs, with library-level hooks (never by patching our own code):

- `Constructions`: how many SQLAlchemy engines, ONNX Runtime sessions, LangChain chat models, llama.cpp models
  and Chroma clients get built while it is active (a counter wrapped around each library class's `__init__`,
  restored on exit). A request must build none of them: they are per process (`assistant.services`).
- `SqlCounter`: statements and transactions on one SQLAlchemy engine (its `before_cursor_execute` and `begin`
  events).
"""

from __future__ import annotations

import importlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

# (label, module, class): what a request must never construct
WATCHED: tuple[tuple[str, str, str], ...] = (
    ("sqlalchemy_engine", "sqlalchemy.engine.base", "Engine"),
    ("onnx_session", "onnxruntime", "InferenceSession"),
    ("chat_model", "langchain_core.language_models.chat_models", "BaseChatModel"),
    ("llama_model", "llama_cpp", "Llama"),
    ("chroma_client", "chromadb.api.client", "Client"),
)


class Constructions:
    """Counts constructions of the `WATCHED` library classes (and their subclasses) while entered."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._restore: list[Callable[[], None]] = []

    def __enter__(self) -> Constructions:
        for label, module, name in WATCHED:
            try:
                cls = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):  # an optional library (llama_cpp) that is not installed
                continue
            self._wrap(cls, label)
        return self

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self._restore):
            undo()
        self._restore.clear()

    def _wrap(self, cls: type, label: str) -> None:
        own = "__init__" in cls.__dict__
        original = cls.__init__  # type: ignore[misc]
        counts, lock = self.counts, self._lock

        def counting_init(obj: Any, *args: Any, **kwargs: Any) -> None:
            with lock:
                counts[label] += 1
            original(obj, *args, **kwargs)

        cls.__init__ = counting_init  # type: ignore[misc]

        def undo() -> None:
            if own:
                cls.__init__ = original  # type: ignore[misc]
            else:
                del cls.__init__  # type: ignore[misc]

        self._restore.append(undo)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {label: self.counts.get(label, 0) for label, _, _ in WATCHED}


@contextmanager
def constructions() -> Iterator[Constructions]:
    with Constructions() as c:
        yield c


class SqlCounter:
    """Statements sent and transactions begun on `engine` (all its connections, every thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements = 0
        self.transactions = 0
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._on_statement)
        event.listen(engine, "begin", self._on_begin)

    def _on_statement(self, *_: Any) -> None:
        with self._lock:
            self.statements += 1

    def _on_begin(self, *_: Any) -> None:
        with self._lock:
            self.transactions += 1

    def read(self) -> tuple[int, int]:
        with self._lock:
            return self.statements, self.transactions

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on_statement)
        event.remove(self.engine, "begin", self._on_begin)
