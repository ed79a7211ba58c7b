"""Several server processes sharing a real PostgreSQL and a `chroma run` server, with live messages crossing them.

Server A is `cxa serve --workers 2` (two uvicorn worker processes behind one port), server B is another `cxa
serve` on another port with its own data dir (another machine, as far as it can tell): only the database, the
index and the configured credentials are shared. The chat model is the deterministic fake.

A customer follows their conversation on A's `/events` and asks for a person through A; an agent lists the
queue, claims and replies through B, following the conversation on B's `/events`; the reply reaches the
customer's stream on A, the customer's next message reaches the agent's stream on B; the agent resolves. The
safety-net poll is set to 120 s and every awaited event must come within 20 s, so an arrival proves the
PostgreSQL LISTEN/NOTIFY path (the latency is printed, not asserted). Finally what one server wrote is what
the other reads: transcript, handoff queue, metrics.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from evals.sse import iter_sse
from tests.backends import BackendUnavailableError, served_port
from tests.conftest import (
    ADMIN_TOKEN,
    AGENT_TOKEN,
    CX_TOKEN,
    IDENTITY_SECRET,
    WIDGET_KEY,
    bearer,
    customer_hash,
    widget_headers,
)

pytestmark = pytest.mark.slow  # three server processes start (each loads the embedding model): about a minute

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 120  # the safety-net poll: far beyond ARRIVE_S, so what arrives in time was woken by a notification
ARRIVE_S = 20.0  # generous bound for a live event; it takes milliseconds when the notification path works
READY_S = 240.0
AGENT = bearer(AGENT_TOKEN)
CX = bearer(CX_TOKEN)


def server_env(database_url: str, chroma_url: str, collection: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CXA_DATA_DIR": str(data_dir),
        "CXA_DATABASE_URL": database_url,
        "CXA_CHROMA_URL": chroma_url,
        "CXA_COLLECTION": collection,
        "CXA_CHAT_PROVIDER": "fake",
        "CXA_COMPANY_NAME": "Larkspur Home",
        "CXA_WIDGET_KEY": WIDGET_KEY,
        "CXA_AGENT_TOKEN": AGENT_TOKEN,
        "CXA_CX_TOKEN": CX_TOKEN,
        "CXA_ADMIN_TOKEN": ADMIN_TOKEN,
        "CXA_IDENTITY_SECRET": IDENTITY_SECRET,
        "CXA_RATE_LIMITS": "off",
        "CXA_EVALS__BACKGROUND": "false",
        "CXA_LIVE__POLL_S": str(POLL_S),
        "CXA_LOG_LEVEL": "INFO",
    }


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path
    workers: int

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextmanager
def servers(*specs: tuple[dict[str, str], int, Path]) -> Iterator[list[str]]:
    """`python -m api.cli serve --workers N` for each (env, N, log), started together, each on a port it picks itself
    (`--port 0`: no port found free can be taken before it is bound); yields their base URLs once each answers
    /readyz with 200 and all its workers have started."""
    started: list[Server] = []
    try:
        launched = []
        for env, workers, log in specs:
            with log.open("wb") as out:  # the child keeps its own copy of the descriptor
                proc = subprocess.Popen(
                    [sys.executable, "-m", "api.cli", "serve", "--port", "0", "--workers", str(workers)],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            launched.append((proc, log, workers))
        for proc, log, workers in launched:
            try:
                port = served_port(log, proc, READY_S)
            except BackendUnavailableError as exc:
                pytest.fail(str(exc))
            started.append(Server(proc, f"http://127.0.0.1:{port}", log, workers))
        deadline = time.monotonic() + READY_S
        waiting = list(started)
        while waiting:
            for srv in list(waiting):
                if srv.proc.poll() is not None:
                    pytest.fail(f"the server exited with {srv.proc.returncode}:\n{srv.output()}")
                try:
                    ready = httpx.get(f"{srv.base}/readyz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    ready = False
                if ready and srv.output().count("Application startup complete") >= srv.workers:
                    waiting.remove(srv)
            if waiting and time.monotonic() > deadline:
                pytest.fail(f"not ready in {READY_S:.0f} s:\n" + "\n".join(srv.output() for srv in waiting))
            time.sleep(0.5)
        yield [srv.base for srv in started]
    finally:
        for srv in started:
            srv.proc.terminate()
        for srv in started:
            try:
                srv.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                srv.proc.kill()
                srv.proc.wait(timeout=10)


class Stream:
    """An `/events` stream read in a background thread: every event with the time it arrived."""

    def __init__(self, url: str, headers: dict[str, str], name: str) -> None:
        self.name = name
        self.events: list[tuple[float, str, Any]] = []
        self._cond = threading.Condition()
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, params={"max_s": 900}, headers=headers) as r:
                r.raise_for_status()
                for ev in iter_sse(r.iter_lines()):
                    with self._cond:
                        self.events.append((time.monotonic(), ev.name, ev.data))
                        self._cond.notify_all()
        except Exception as exc:  # closed by the test, or a failure the waiting test reports
            with self._cond:
                self.events.append((time.monotonic(), "closed", repr(exc)))
                self._cond.notify_all()

    def wait_for(self, what: str, predicate: Callable[[str, Any], bool], timeout: float = ARRIVE_S) -> float:
        """The arrival time of the first event matching `predicate`, waiting at most `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, name, data in self.events:
                    if predicate(name, data):
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [
                        (n, d.get("role") or d.get("status") if isinstance(d, dict) else d) for _, n, d in self.events
                    ]
                    pytest.fail(f"{self.name}: {what} did not arrive within {timeout:.0f} s; saw {seen}")
                self._cond.wait(left)

    def messages(self) -> list[dict[str, Any]]:
        with self._cond:
            return [d for _, n, d in self.events if n == "message"]

    def close(self) -> None:
        self._client.close()
        self._thread.join(timeout=10)


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json()


def is_status(status: str) -> Callable[[str, Any], bool]:
    return lambda name, data: name == "status" and data["status"] == status


def test_live_messages_cross_server_processes(
    pg_database: str, chroma_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    collection = f"mw_{uuid.uuid4().hex[:8]}"
    env_a = server_env(pg_database, chroma_url, collection, tmp_path / "a")
    env_b = server_env(pg_database, chroma_url, collection, tmp_path / "b")
    loaded = subprocess.run(
        [sys.executable, "-m", "api.cli", "demo", "--no-serve"], cwd=ROOT, env=env_a, capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr  # help center into chroma, customers into PG
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()

    with (
        servers((env_a, 2, tmp_path / "a.log"), (env_b, 1, tmp_path / "b.log")) as (a, b),
        httpx.Client(base_url=a, timeout=60) as on_a,
        httpx.Client(base_url=b, timeout=60) as on_b,
    ):
        # the customer, on A: a verified conversation, followed live, an answered question
        conv = ok(
            on_a.post(
                "/v1/conversations",
                json={"customer_id": "cus_1001", "customer_hash": customer_hash("cus_1001")},
                headers=widget_headers(),
            ),
            201,
        )
        cid = conv["id"]
        # the conversation's token, checked by whichever worker or server gets the call (the shared secret)
        as_customer = widget_headers(**{"X-Conversation-Token": conv["token"]})
        customer = Stream(f"{a}/v1/conversations/{cid}/events", as_customer, "customer stream on A")
        agent: Stream | None = None
        try:
            customer.wait_for("the first status", is_status("bot"))
            turn = ok(
                on_a.post(
                    f"/v1/conversations/{cid}/messages",
                    json={"text": "How do I return an item?"},
                    headers=as_customer,
                )
            )
            assert turn["reply"] is not None
            customer.wait_for(
                "the assistant's answer",
                lambda n, d: n == "message" and d["role"] == "assistant" and d["text"] == turn["reply"]["text"],
            )

            # ... who asks for a person
            turn = ok(
                on_a.post(
                    f"/v1/conversations/{cid}/messages",
                    json={"text": "I want to talk to a person"},
                    headers=as_customer,
                )
            )
            assert turn["status"] == "waiting_for_agent", turn
            customer.wait_for("waiting_for_agent", is_status("waiting_for_agent"))

            # the agent, on B: the queue, the conversation followed live, claim, reply
            queue = ok(on_b.get("/v1/handoffs", params={"status": "waiting"}, headers=AGENT))["items"]
            [handoff] = [h for h in queue if h["conversation_id"] == cid]
            agent = Stream(f"{b}/v1/conversations/{cid}/events", AGENT, "agent stream on B")
            agent.wait_for("the first status", is_status("waiting_for_agent"))
            ok(on_b.post(f"/v1/handoffs/{handoff['id']}/claim", json={"agent_id": "agent_sam"}, headers=AGENT))
            customer.wait_for("with_agent", is_status("with_agent"))

            sent_at = time.monotonic()
            sent = ok(
                on_b.post(
                    f"/v1/conversations/{cid}/agent-messages", json={"text": "Hi Amara, Sam here."}, headers=AGENT
                ),
                201,
            )
            replied_at = time.monotonic()
            arrived = customer.wait_for("the agent's reply", lambda n, d: n == "message" and d["id"] == sent["id"])

            # the customer answers on A; the agent sees it on B
            said_at = time.monotonic()
            turn = ok(
                on_a.post(
                    f"/v1/conversations/{cid}/messages",
                    json={"text": "It's order 1042, thanks"},
                    headers=as_customer,
                )
            )
            heard = agent.wait_for(
                "the customer's message",
                lambda n, d: n == "message" and d["id"] == turn["message_id"],
            )
            assert turn["reply"] is None  # the bot stays silent while a person has the conversation

            resolve_at = time.monotonic()
            ok(on_b.post(f"/v1/handoffs/{handoff['id']}/resolve", json={"resolved": True}, headers=AGENT))
            resolved = customer.wait_for("resolved", is_status("resolved"))
            agent.wait_for("resolved", is_status("resolved"))

            # every stream got every message once, in order
            for stream in (customer, agent):
                seqs = [m["seq"] for m in stream.messages()]
                assert seqs == sorted(set(seqs)), (stream.name, seqs)
            with capsys.disabled():
                print(
                    f"\nlive latency across servers: agent reply B->A {1000 * (arrived - replied_at):.0f} ms after "
                    f"the 201 ({1000 * (arrived - sent_at):.0f} ms after sending); customer message A->B "
                    f"{1000 * (heard - said_at):.0f} ms after sending; resolve B->A "
                    f"{1000 * (resolved - resolve_at):.0f} ms after sending (poll fallback {POLL_S} s)"
                )
        finally:
            customer.close()
            if agent is not None:
                agent.close()

        # what one server wrote, the other reads: transcript, queue, metrics
        on_a_transcript = ok(on_a.get(f"/v1/conversations/{cid}", headers=AGENT))
        on_b_transcript = ok(on_b.get(f"/v1/conversations/{cid}", headers=AGENT))
        assert on_a_transcript["messages"] == on_b_transcript["messages"]
        roles = [m["role"] for m in on_b_transcript["messages"]]
        assert roles.count("customer") == 3 and "agent" in roles and "assistant" in roles
        assert on_a_transcript["status"] == on_b_transcript["status"] == "resolved"
        resolved_on_a = ok(on_a.get("/v1/handoffs", params={"status": "resolved"}, headers=AGENT))["items"]
        assert handoff["id"] in [h["id"] for h in resolved_on_a]
        metrics = [ok(c.get("/v1/metrics", params={"since": since}, headers=CX)) for c in (on_a, on_b)]
        assert metrics[0] == metrics[1]
        assert metrics[0]["conversations"] == 1 and metrics[0]["handoff_rate"] == 1.0
        assert metrics[0]["agent_resolution_rate"] == 1.0
