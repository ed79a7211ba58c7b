"""The server is SIGKILLed while a turn is generating (a slow model streaming through the fake
OpenAI-compatible server), then restarted on the same data dir: the customer's message is there, the cut-off
turn gets a clear outcome (a note "the assistant was interrupted" and a handoff, so an agent sees it), a
conversation an agent held before the kill is still theirs, nothing is duplicated, the consistency check
is clean, and the next message is answered normally."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from assistant.doctor import INTERRUPTED_NOTE
from assistant.handoff.summary import HANDOFF_TEXT
from tests.api.support import TWO_FA_QUESTION, TWO_FA_SOURCE
from tests.conftest import (
    ADMIN_TOKEN,
    AGENT_TOKEN,
    CX_TOKEN,
    IDENTITY_SECRET,
    ROOT,
    WIDGET_KEY,
    backend_env,
    bearer,
    widget_headers,
)
from tests.faults.fake_openai import FakeOpenAI

pytestmark = pytest.mark.slow  # two real server starts (~10 s each on 2 cores)


def server_env(data: Path, model_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CXA_DATA_DIR": str(data),
        "CXA_CHAT_PROVIDER": "openai",
        "CXA_OPENAI__BASE_URL": model_url,
        "CXA_OPENAI__MODEL": "fake",
        "CXA_OPENAI__TIMEOUT_S": "30",
        "CXA_INTERRUPTED_TURN_S": "1",  # a turn pending for over a second at start was cut off by the kill
        "CXA_WIDGET_KEY": WIDGET_KEY,
        "CXA_AGENT_TOKEN": AGENT_TOKEN,
        "CXA_CX_TOKEN": CX_TOKEN,
        "CXA_ADMIN_TOKEN": ADMIN_TOKEN,
        "CXA_IDENTITY_SECRET": IDENTITY_SECRET,
        "CXA_RATE_LIMITS": "off",
        "CXA_EVALS__BACKGROUND": "false",
        "CXA_COMPANY_NAME": "Larkspur Home",
        **backend_env(data),
    }


def _port_after(log: Path, start: int, proc: subprocess.Popen[bytes]) -> int:
    """The port this start of `cxa serve --port 0` bound (the log holds earlier starts' lines too)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = re.search(r"Uvicorn running on http://[^\s:]+:(\d+)", log.read_bytes()[start:].decode(errors="replace"))
        if found:
            return int(found.group(1))
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    pytest.fail("the server did not report its port within 90 s:\n" + log.read_text()[-3000:])


@contextmanager
def server(data: Path, model_url: str, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    start = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT,
            env=server_env(data, model_url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{_port_after(log, start, proc)}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("the server did not start within 90 s:\n" + log.read_text()[-3000:])
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_turn_cut_off_by_sigkill_gets_an_outcome_on_restart(sample_template: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(sample_template, data)
    log = tmp_path / "server.log"
    w, agent = widget_headers(), bearer(AGENT_TOKEN)
    with FakeOpenAI() as fake:
        with server(data, fake.url, log) as (proc, base):
            c = httpx.Client(base_url=base, timeout=10)
            # Before the kill: a conversation an agent holds, one waiting in the queue.
            held = c.post("/v1/conversations", json={}, headers=w).json()["id"]
            ho = c.post(f"/v1/conversations/{held}/handoff", json={}, headers=w).json()["handoff"]["id"]
            assert c.post(f"/v1/handoffs/{ho}/claim", json={"agent_id": "ana"}, headers=agent).status_code == 200
            waiting = c.post("/v1/conversations", json={}, headers=w).json()["id"]
            c.post(f"/v1/conversations/{waiting}/handoff", json={}, headers=w)

            # The turn: the model streams one word every half second; the server dies mid-generation.
            fake.set("slow_stream", delay=0.5)
            cut = c.post("/v1/conversations", json={}, headers=w).json()["id"]
            seen: list[str] = []

            def customer() -> None:
                try:
                    with c.stream(
                        "POST",
                        f"/v1/conversations/{cut}/messages",
                        json={"text": TWO_FA_QUESTION},
                        headers=widget_headers(Accept="text/event-stream"),
                        timeout=60,
                    ) as r:
                        for line in r.iter_lines():
                            seen.append(line)
                except httpx.HTTPError:
                    seen.append("<connection lost>")

            reader = threading.Thread(target=customer, daemon=True)
            reader.start()
            deadline = time.monotonic() + 20
            while fake.requests == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert fake.requests == 1, "the turn never reached the model"
            time.sleep(1.5)  # generating
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            reader.join(timeout=10)
            assert "<connection lost>" in seen or not any(line.startswith("event: done") for line in seen)
            c.close()

        fake.set("ok")
        time.sleep(1.1)  # past CXA_INTERRUPTED_TURN_S: the cut-off turn is stale when the server starts again
        with server(data, fake.url, log) as (_, base):
            c = httpx.Client(base_url=base, timeout=10)
            transcript = c.get(f"/v1/conversations/{cut}", headers=w).json()
            # the customer's message survived, once; the interruption is noted; a person has it
            assert [(m["role"], m["text"]) for m in transcript["messages"]] == [
                ("customer", TWO_FA_QUESTION),
                ("system", INTERRUPTED_NOTE),
                ("assistant", HANDOFF_TEXT),
            ]
            assert transcript["status"] == "waiting_for_agent"
            queue = c.get("/v1/handoffs?status=waiting", headers=agent).json()["items"]
            cut_handoffs = [h for h in queue if h["conversation_id"] == cut]
            assert len(cut_handoffs) == 1 and cut_handoffs[0]["reason"] == "error"
            assert cut_handoffs[0]["summary"]["issue"].startswith("How do I turn on two-factor")
            assert waiting in [h["conversation_id"] for h in queue]
            # the agent's conversation is still theirs, and works
            assert c.get(f"/v1/conversations/{held}", headers=w).json()["status"] == "with_agent"
            r = c.post(f"/v1/conversations/{held}/agent-messages", json={"text": "Still here!"}, headers=agent)
            assert r.status_code == 201, r.text
            # the next customer is answered normally by the recovered model
            fresh = c.post("/v1/conversations", json={}, headers=w).json()["id"]
            turn = c.post(f"/v1/conversations/{fresh}/messages", json={"text": TWO_FA_QUESTION}, headers=w).json()
            assert turn["status"] == "bot" and turn["handoff"] is None
            assert turn["reply"]["citations"][0]["source_id"] == TWO_FA_SOURCE
            c.close()
    assert "consistency check at start: 1 problem(s), 1 fixed" in log.read_text()
    doctor = subprocess.run(
        [sys.executable, "-m", "api.cli", "doctor", "--check"],
        cwd=ROOT,
        env=server_env(data, fake.url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "0 problem(s) found" in doctor.stdout
