"""The `openai` provider for real: llama.cpp's OpenAI-compatible server on a loopback port serves the
embedded GGUF, and a whole turn runs through `ChatOpenAI(base_url=...)` (no fake, no network)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assistant.llm import default_gguf_path
from assistant.services import Services
from tests.conftest import make_settings

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    pytest.importorskip("llama_cpp.server")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(default_gguf_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("llama_cpp.server did not start within 60 s")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_turn_through_an_openai_compatible_endpoint(llama_server: str, sample_template: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(sample_template, data)
    settings = make_settings(
        data, chat_provider="openai", openai={"base_url": llama_server, "model": "local", "max_tokens": 120}
    )
    sv = Services.build(settings)
    assert not sv.startup_problems
    conv = sv.engine.start_conversation(None, False)
    first = sv.engine.run_turn(conv.id, "How do I turn on two-factor authentication?")
    assert first.reply is not None and first.reply.citations
    assert first.reply.citations[0].source_id == "account/two-factor-authentication"
    # a follow-up goes through the model's question rewrite (condense_question), then answers
    second = sv.engine.run_turn(conv.id, "and what if I lose my phone?")
    assert second.reply is not None
    with sv.store.engine.connect() as c:
        prompts = [r[0] for r in c.exec_driver_sql("SELECT prompt_name FROM llm_calls WHERE error IS NULL")]
    assert prompts.count("answer") == 2 and "condense_question" in prompts
    # a handoff asks the endpoint for a structured summary: JSON schema first; llama_cpp.server only knows
    # json_object, so the gateway retries with that (and keeps it for later calls)
    handoff = sv.engine.request_handoff(conv.id)
    assert handoff.summary.issue and handoff.summary_source in {"model", "extractive"}
    with sv.store.engine.connect() as c:
        calls = list(c.exec_driver_sql("SELECT error, output FROM llm_calls WHERE prompt_name = 'handoff_summary'"))
    assert "response_format" in (calls[0][0] or "") and calls[-1][0] is None and "{" in calls[-1][1]
    assert sv.chat.structured_output == "json_object"


def test_an_unreachable_endpoint_is_a_handoff(sample_template: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(sample_template, data)
    settings = make_settings(
        data,
        chat_provider="openai",
        openai={"base_url": f"http://127.0.0.1:{_free_port()}/v1", "max_retries": 0, "timeout_s": 2},
    )
    sv = Services.build(settings)
    conv = sv.engine.start_conversation(None, False)
    turn = sv.engine.run_turn(conv.id, "How do I turn on two-factor authentication?")
    assert turn.reply is None and turn.handoff is not None and turn.handoff.reason == "error"
