"""Deadlines that serve the customer: a model that does not start answering in time is cancelled and the turn
quotes the best passage at once; a model busy with someone else is not queued for without bound."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from assistant.errors import ModelBusyError, ModelSlowError
from assistant.llm import ChatGateway
from assistant.models import TurnTrace
from assistant.prompts import ANSWER
from assistant.services import Services
from tests.conftest import make_settings
from tests.fakes import FakeChatModel

VALUES = {"company": "Larkspur Home", "sources": "(none)", "customer": "(none)", "transcript": "", "question": "hi"}


def test_no_first_token_in_time_is_model_slow_and_the_generation_stops() -> None:
    stopped = threading.Event()

    def hang(_call: object) -> str:
        stopped.wait(5)  # a model stuck in its prompt
        return "too late."

    model = FakeChatModel(reply=hang)
    chat = ChatGateway(model, "custom", "fake", timeout_s=30)
    t0 = time.perf_counter()
    with pytest.raises(ModelSlowError):
        list(chat.stream(ANSWER, VALUES, first_token_s=0.3))
    assert time.perf_counter() - t0 < 3  # the caller moved on; it did not wait for the model
    stopped.set()


def test_a_slow_model_gives_the_customer_the_best_passage(sample_data_dir: Path) -> None:
    release = threading.Event()

    def stuck(_call: object) -> str:
        release.wait(5)
        return "Two-factor authentication is in Settings. [1]"

    # the embedded provider's deadline; the answer written by the model (auto would quote without asking it)
    settings = make_settings(sample_data_dir, chat_provider="embedded", answer={"mode": "generative"})
    settings = settings.model_copy(update={"embedded": settings.embedded.model_copy(update={"first_token_s": 0.3})})
    sv = Services.build(settings, chat_model=FakeChatModel(reply=stuck), warm=False)
    try:
        conv = sv.engine.start_conversation(None, False)
        t0 = time.perf_counter()
        turn = sv.engine.run_turn(conv.id, "How do I turn on two-factor authentication?")
        assert time.perf_counter() - t0 < 4
        assert turn.reply is not None and turn.reply.mode == "extractive" and turn.handoff is None
        assert turn.reply.citations[0].source_id == "account/two-factor-authentication"
        record = sv.store.get_turn(turn.turn_id)
        assert record is not None and record.evidence is not None and record.evidence.fallback == "model_slow"
        trace = TurnTrace.of(record)  # what agents, the CX team and `cxa eval customers` read
        assert trace.fallback == "model_slow" and trace.error is None  # not a turn lost: the customer got a quote
    finally:
        release.set()
        sv.close()


def test_a_busy_embedded_model_is_not_queued_for_without_bound() -> None:
    from assistant.llm import LlamaCppChatModel

    model = LlamaCppChatModel(model_path="/nonexistent.gguf", queue_wait_s=0.2)
    model._llama = object()  # as if loaded: the lock is what is tested
    assert model._lock.acquire()
    try:
        with pytest.raises(ModelBusyError):
            next(model._stream([], None, None))
    finally:
        model._lock.release()


def test_busy_cores_burns_while_entered_and_stops() -> None:
    import os

    from evals.perf.busy import busy_cores

    with busy_cores(2) as pids:
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, 0)  # alive
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_turn_record_counts_the_prompt_tokens(sample_data_dir: Path) -> None:
    sv = Services.build(make_settings(sample_data_dir), warm=False)
    try:
        conv = sv.engine.start_conversation(None, False)
        turn = sv.engine.run_turn(conv.id, "How do I turn on two-factor authentication?")
        record = sv.store.get_turn(turn.turn_id)
        assert record is not None and record.prompt_tokens is not None and record.prompt_tokens > 50
        greeting = sv.engine.run_turn(conv.id, "hello")
        assert sv.store.get_turn(greeting.turn_id).prompt_tokens is None  # type: ignore[union-attr]
    finally:
        sv.close()
