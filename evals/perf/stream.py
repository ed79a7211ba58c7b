"""API throughput with many concurrent streaming conversations (`cxa bench stream`).

`evals.load` does the work: a server in its own process (`cxa serve`, the fake chat model, the sample help
center, rate limits off), N customers streaming turns at once for a fixed time, then every transcript
audited (5xx, lost and duplicated messages must all be 0). Here it runs for each number of uvicorn workers
and each pace of the fake model (0 ms per streamed piece: the server's own cost; a few ms: a real model's
pace, where turns overlap and the serving path must not serialise them), and reports turns/s, the first
`token` event's and the whole turn's median and p95, and the CPU seconds the server and the load generator
used per turn (on 2 cores both share the machine: the load generator's share is not the server's capacity).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from evals.load import LoadResult, local_server, run_load
from evals.perf.stats import Machine, Timing

Progress = Callable[[str, int, int], None]


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc; 0 where it cannot be read)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _descendants(root: int) -> list[int]:
    """Every live process below `root` (the server and its uvicorn workers), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class StreamRun(BaseModel):
    workers: int
    token_delay_ms: float
    turns_per_s: float
    turns: int
    conversations: int
    first_token: Timing = Field(description="POST sent -> first `token` SSE event")
    turn: Timing = Field(description="POST sent -> `done` event (the whole streamed turn)")
    errors_5xx: int
    transport_errors: int
    lost_messages: int
    duplicated_messages: int
    server_cpu_ms_per_turn: float | None = Field(description="CPU time of the server processes / turns answered")
    client_cpu_ms_per_turn: float = Field(description="CPU time of the load generator (this process) / turns")
    load: LoadResult

    @property
    def clean(self) -> bool:
        return not (self.errors_5xx or self.transport_errors or self.lost_messages or self.duplicated_messages)


class StreamBenchResult(BaseModel):
    benchmark: str = "perf/stream"
    concurrency: int
    duration_s: float
    runs: list[StreamRun]
    clean: bool = Field(description="no 5xx, transport error, lost or duplicated message in any run")
    wall_s: float
    machine: Machine
    load_after: float


def run_stream_bench(
    concurrency: int = 50,
    duration_s: float = 30.0,
    workers: tuple[int, ...] = (1, 2),
    delays_ms: tuple[float, ...] = (0.0, 20.0),
    seed: int = 0,
    progress: Progress | None = None,
) -> StreamBenchResult:
    started = time.perf_counter()
    machine = Machine()
    runs: list[StreamRun] = []
    with tempfile.TemporaryDirectory(prefix="cxa-bench-stream-") as tmp:
        data = Path(tmp) / "data"  # one data dir for every run: the help center is ingested once
        for w in workers:
            for delay in delays_ms:
                env = {"CXA_FAKE_TOKEN_DELAY_MS": str(delay)}
                with local_server(workers=w, env=env, data_dir=data) as (url, key):
                    server = _descendants(os.getpid())
                    s0, c0 = _cpu_seconds(server), time.process_time()
                    label = f"{w} worker{'s' if w > 1 else ''}, {delay:g} ms per piece"
                    result = run_load(
                        url,
                        key,
                        concurrency=concurrency,
                        duration_s=duration_s,
                        stream=True,
                        seed=seed,
                        progress=(lambda _s, d, t, label=label: progress(label, d, t)) if progress else None,
                    )
                    server_cpu = _cpu_seconds(server) - s0
                    client_cpu = time.process_time() - c0
                result.server_workers = w
                turns = max(1, result.messages_ok)
                runs.append(
                    StreamRun(
                        workers=w,
                        token_delay_ms=delay,
                        turns_per_s=result.turns_per_s,
                        turns=result.messages_ok,
                        conversations=result.conversations,
                        first_token=result.timings.get("first_token", Timing.of([])),
                        turn=result.timings.get("message", Timing.of([])),
                        errors_5xx=result.errors_5xx,
                        transport_errors=result.transport_errors,
                        lost_messages=result.lost_messages,
                        duplicated_messages=result.duplicated_messages,
                        server_cpu_ms_per_turn=round(server_cpu * 1000 / turns, 1) if server else None,
                        client_cpu_ms_per_turn=round(client_cpu * 1000 / turns, 1),
                        load=result,
                    )
                )
    return StreamBenchResult(
        concurrency=concurrency,
        duration_s=duration_s,
        runs=runs,
        clean=all(r.clean for r in runs),
        wall_s=round(time.perf_counter() - started, 1),
        machine=machine,
        load_after=round(Machine().load_1m, 2),
    )


def summary_columns() -> list[str]:
    return [
        "workers",
        "ms/piece",
        "turns/s",
        "first token p50 / p95 (ms)",
        "turn p50 / p95 (ms)",
        "5xx / lost / dup",
        "CPU ms/turn server / client",
    ]


def summary_row(r: StreamRun) -> list[Any]:
    server = f"{r.server_cpu_ms_per_turn:.0f}" if r.server_cpu_ms_per_turn is not None else "-"
    return [
        str(r.workers),
        f"{r.token_delay_ms:g}",
        f"{r.turns_per_s:.1f}",
        r.first_token.row(),
        r.turn.row(),
        f"{r.errors_5xx + r.transport_errors} / {r.lost_messages} / {r.duplicated_messages}",
        f"{server} / {r.client_cpu_ms_per_turn:.0f}",
    ]
