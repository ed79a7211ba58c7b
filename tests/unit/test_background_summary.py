"""A handoff with the embedded model opens at once with the extractive summary; the model's summary replaces it
when written, and never one written since."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from assistant.handoff.summary import Summarizer
from assistant.llm import ChatGateway
from assistant.models import CustomerContext
from assistant.services import Services
from assistant.settings import HandoffSettings
from tests.conftest import make_settings
from tests.fakes import FakeChatModel

SUMMARY = json.dumps(
    {
        "issue": "Needs to change the delivery address on order LH-100200.",
        "customer_goal": "Change the delivery address.",
        "attempted": "",
        "customer_context": "",
        "suggested_next_step": "Change the address.",
    }
)


def test_the_handoff_does_not_wait_for_the_model_summary(sample_data_dir: Path) -> None:
    release = threading.Event()

    def slow(_call: object) -> str:
        release.wait(10)
        return SUMMARY

    settings = make_settings(sample_data_dir, handoff={"summary_in_background": "on"})
    sv = Services.build(settings, chat_model=FakeChatModel(reply=slow), warm=False)
    try:
        conv = sv.engine.start_conversation(None, False)
        sv.store.add_message(conv.id, "customer", "I need to change the delivery address on my order LH-100200.")
        t0 = time.perf_counter()
        handoff = sv.engine.request_handoff(conv.id)
        assert time.perf_counter() - t0 < 5  # the model is still writing
        assert handoff.summary_source == "extractive" and handoff.summary.issue
        release.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = sv.store.open_handoff(conv.id)
            if now is not None and now.summary_source == "model":
                break
            time.sleep(0.1)
        assert now is not None and now.summary_source == "model"
        assert now.summary.issue.startswith("Needs to change the delivery address")
    finally:
        release.set()
        sv.close()


def test_a_summary_is_replaced_only_while_it_is_extractive(sample_data_dir: Path) -> None:
    sv = Services.build(make_settings(sample_data_dir), warm=False)
    try:
        conv = sv.engine.start_conversation(None, False)
        sv.store.add_message(conv.id, "customer", "My lamp sparked when I switched it on.")
        handoff = sv.engine.request_handoff(conv.id)
        summarizer = Summarizer(ChatGateway(FakeChatModel(reply=SUMMARY), "fake", "fake"), HandoffSettings())
        written, source = summarizer.summarize(sv.store.list_messages(conv.id), CustomerContext(), "customer_request")
        first = sv.store.replace_handoff_summary(handoff.id, written, "model")
        again = sv.store.replace_handoff_summary(handoff.id, handoff.summary, "model")
        assert (first, again) == (handoff.summary_source == "extractive", False)
    finally:
        sv.close()
