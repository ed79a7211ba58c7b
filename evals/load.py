"""Load: many customers at once against a running server, for a fixed time, then an audit.

Each virtual customer starts a conversation, sends help-center questions one after another (JSON turns,
or SSE streams with `stream`), sometimes asks for a person, and every few messages starts a new
conversation. Every message text carries a unique tag, so at the end each conversation's transcript is
read back and checked: every message that got a 200 is stored exactly once (`lost`, `duplicated`), and no
request got a 5xx. Latency is measured per request kind, client side, on the wall clock.

`local_server` starts `cxa serve` as a separate process (the fake chat model unless told otherwise, rate
limits off: all customers come from one address) on a fresh data dir with the sample help center, so the
figures are the server's, not an in-process shortcut's.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import BaseModel, Field

from evals.perf.stats import Timing
from evals.simulate import PERSON, QUESTIONS

Progress = Callable[[str, int, int], None]
MESSAGES_PER_CONVERSATION = 4  # then the customer starts a new conversation
PERSON_EVERY = 7  # one conversation in this many asks for a person at its second message


class Latency(BaseModel):
    n: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class LoadResult(BaseModel):
    base_url: str
    concurrency: int
    duration_s: float = Field(description="the time customers kept sending")
    wall_s: float = Field(description="including the audit")
    stream: bool
    conversations: int
    messages_sent: int
    messages_ok: int
    turns_per_s: float
    requests: int
    requests_per_s: float
    status_codes: dict[str, int]
    errors_5xx: int
    transport_errors: int
    lost_messages: int
    duplicated_messages: int
    latency: dict[str, Latency] = Field(
        description="per request kind: start, message (a whole turn), handoff, transcript; and first_token: a "
        "streamed turn's first `token` event (turns that stream no token, e.g. handoffs, have none)"
    )
    timings: dict[str, Timing] = Field(default_factory=dict, description="the same, as median / p95 / mean / min / max")
    server_workers: int | None = None


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return round(ordered[k], 1)


@dataclass
class _Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0
    sent: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # conversation -> texts (200)
    messages_sent: int = 0

    def record(self, kind: str, started: float, status: int | None) -> None:
        self.latencies[kind].append((time.perf_counter() - started) * 1000)
        if status is None:
            self.transport_errors += 1
        else:
            self.codes[str(status)] += 1


async def _message(client: httpx.AsyncClient, cid: str, text: str, stream: bool) -> tuple[int, float | None]:
    """(status, seconds to the first `token` event of a stream, None without one)."""
    path = f"/v1/conversations/{cid}/messages"
    if not stream:
        r = await client.post(path, json={"text": text})
        return r.status_code, None
    t0 = time.perf_counter()
    first: float | None = None
    async with client.stream("POST", path, json={"text": text}, headers={"Accept": "text/event-stream"}) as r:
        done = False
        async for line in r.aiter_lines():
            if first is None and line.startswith("event: token"):
                first = time.perf_counter() - t0
            elif line.startswith("event: done"):
                done = True
            elif line.startswith("event: error"):
                return 599, first  # an error event inside a 200 stream counts as a server error
        return (r.status_code if done or r.status_code != 200 else 598), first  # 598: a stream cut before `done`


async def _customer(
    n: int, client: httpx.AsyncClient, deadline: float, stream: bool, seed: int, tally: _Tally, tick: Callable[[], None]
) -> None:
    rng = random.Random(seed * 100_003 + n)
    questions = [q for qs in QUESTIONS.values() for q in qs]
    serial = 0
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            r = await client.post("/v1/conversations", json={"channel": "web"})
            tally.record("start", t0, r.status_code)
        except httpx.HTTPError:
            tally.record("start", t0, None)
            continue
        if r.status_code != 201:
            continue
        cid = r.json()["id"]
        tally.sent.setdefault(cid, [])
        asks_person = rng.randrange(PERSON_EVERY) == 0
        for i in range(MESSAGES_PER_CONVERSATION):
            if time.monotonic() >= deadline:
                return
            serial += 1
            base = rng.choice(PERSON) if (asks_person and i == 1) else rng.choice(questions)
            text = f"{base} (ref u{n}-{serial})"
            tally.messages_sent += 1
            t0 = time.perf_counter()
            try:
                status, first_token = await _message(client, cid, text, stream)
            except httpx.HTTPError:
                tally.record("message", t0, None)
                continue
            tally.record("message", t0, status)
            if first_token is not None:  # latency only: the message's status is counted once, above
                tally.latencies["first_token"].append(first_token * 1000)
            if status == 200:
                tally.sent[cid].append(text)
                tick()
            if asks_person and i == 2:
                t0 = time.perf_counter()
                try:
                    h = await client.post(f"/v1/conversations/{cid}/handoff", json={"reason": "load test"})
                    tally.record("handoff", t0, h.status_code)
                except httpx.HTTPError:
                    tally.record("handoff", t0, None)


async def _audit(client: httpx.AsyncClient, tally: _Tally) -> tuple[int, int]:
    """(lost, duplicated): every message that got a 200 must be in its transcript exactly once."""
    lost = duplicated = 0
    gate = asyncio.Semaphore(16)

    async def one(cid: str, texts: list[str]) -> tuple[int, int]:
        async with gate:
            for attempt in range(3):  # a read is safe to repeat: a connection the server just closed is not a loss
                t0 = time.perf_counter()
                try:
                    r = await client.get(f"/v1/conversations/{cid}")
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        tally.record("transcript", t0, None)
                        return len(texts), 0
            tally.record("transcript", t0, r.status_code)
            if r.status_code != 200:
                return len(texts), 0
            stored = Counter(m["text"] for m in r.json()["messages"] if m["role"] == "customer")
            return (
                sum(1 for t in texts if stored[t] == 0),
                sum(stored[t] - 1 for t in set(texts) if stored[t] > 1),
            )

    for lo, du in await asyncio.gather(*(one(c, t) for c, t in tally.sent.items())):
        lost, duplicated = lost + lo, duplicated + du
    return lost, duplicated


async def run_load_async(
    base_url: str,
    widget_key: str,
    concurrency: int = 100,
    duration_s: float = 120.0,
    stream: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
    timeout_s: float = 60.0,
) -> LoadResult:
    tally = _Tally()
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout, so none is reused as the server closes it.
    limits = httpx.Limits(
        max_connections=concurrency + 16, max_keepalive_connections=concurrency + 16, keepalive_expiry=2.0
    )
    headers = {"X-Widget-Key": widget_key}
    started = time.monotonic()
    deadline = started + duration_s
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=timeout_s) as client:
        done_turns = 0

        def tick() -> None:
            nonlocal done_turns
            done_turns += 1

        async def report() -> None:
            while time.monotonic() < deadline:
                if progress:
                    progress("customers sending", int(time.monotonic() - started), int(duration_s))
                await asyncio.sleep(1)

        reporter = asyncio.create_task(report())
        await asyncio.gather(*(_customer(n, client, deadline, stream, seed, tally, tick) for n in range(concurrency)))
        reporter.cancel()
        sending_s = time.monotonic() - started
        if progress:
            progress("auditing transcripts", 0, 1)
        lost, duplicated = await _audit(client, tally)
    wall = time.monotonic() - started
    requests = sum(tally.codes.values()) + tally.transport_errors
    ok = sum(len(t) for t in tally.sent.values())
    return LoadResult(
        base_url=base_url,
        concurrency=concurrency,
        duration_s=round(sending_s, 1),
        wall_s=round(wall, 1),
        stream=stream,
        conversations=len(tally.sent),
        messages_sent=tally.messages_sent,
        messages_ok=ok,
        turns_per_s=round(ok / sending_s, 2),
        requests=requests,
        requests_per_s=round(requests / wall, 2),
        status_codes=dict(sorted(tally.codes.items())),
        errors_5xx=sum(v for k, v in tally.codes.items() if k.startswith("5")),
        transport_errors=tally.transport_errors,
        lost_messages=lost,
        duplicated_messages=duplicated,
        latency={
            kind: Latency(n=len(v), p50_ms=_pct(v, 50), p95_ms=_pct(v, 95), p99_ms=_pct(v, 99))
            for kind, v in sorted(tally.latencies.items())
        },
        timings={kind: Timing.of([ms / 1000 for ms in v]) for kind, v in sorted(tally.latencies.items())},
    )


def run_load(base_url: str, widget_key: str, **kwargs: object) -> LoadResult:
    """`run_load_async` on an event loop of its own, in a thread of its own: callable from anywhere, also
    where a loop is already running in this thread (Playwright's sync API leaves one)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load") as pool:
        return pool.submit(asyncio.run, run_load_async(base_url, widget_key, **kwargs)).result()  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_server(
    workers: int = 1, env: dict[str, str] | None = None, data_dir: Path | None = None, ready_timeout_s: float = 180
) -> Iterator[tuple[str, str]]:
    """`cxa serve` in its own process on a free loopback port with the sample help center and customers:
    yields (base_url, widget_key). The fake chat model and no rate limits unless `env` says otherwise."""
    with tempfile.TemporaryDirectory(prefix="cxa-load-") as tmp:
        data = data_dir or Path(tmp) / "data"
        widget_key = "pk_load_" + os.urandom(8).hex()
        full_env = {
            **os.environ,
            "CXA_DATA_DIR": str(data),
            "CXA_CHAT_PROVIDER": "fake",
            "CXA_RATE_LIMITS": "off",
            "CXA_WIDGET_KEY": widget_key,
            "CXA_COMPANY_NAME": "Larkspur Home",
            "CXA_LOG_LEVEL": "WARNING",
            "CXA_EVALS__BACKGROUND": "false",
            **(env or {}),
        }
        cli = [sys.executable, "-m", "api.cli"]
        subprocess.run([*cli, "demo", "--no-serve"], env=full_env, check=True, capture_output=True)
        port = _free_port()
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 - closed below, after the process
        proc = subprocess.Popen(
            [*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, proc, ready_timeout_s, Path(tmp) / "server.log")
            yield base, widget_key
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            ready = httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            ready = False  # not listening yet
        if ready:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the server was not ready within {timeout_s:.0f} s")


def summary_rows(r: LoadResult) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("concurrent customers", r.concurrency),
        ("sending time (s)", r.duration_s),
        ("conversations", r.conversations),
        ("messages answered / sent", f"{r.messages_ok} / {r.messages_sent}"),
        ("turns per second", r.turns_per_s),
        ("requests per second", r.requests_per_s),
        ("5xx responses", r.errors_5xx),
        ("transport errors", r.transport_errors),
        ("lost messages", r.lost_messages),
        ("duplicated messages", r.duplicated_messages),
        ("status codes", ", ".join(f"{k}: {v}" for k, v in r.status_codes.items())),
    ]
    for kind, lat in r.latency.items():
        rows.append((f"{kind} p50 / p95 / p99 (ms)", f"{lat.p50_ms} / {lat.p95_ms} / {lat.p99_ms}  (n={lat.n})"))
    return rows
