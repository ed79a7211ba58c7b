"""A demo with a past: two weeks of simulated conversations, so that the dashboard and the console have something
true to show on first open (`cxa demo`; `--no-history` skips it).

The conversations are real ones of the engine: the scripts of a simulated day (`evals.simulate`: easy answers,
thank-yous, rephrasing loops, people asked for, agents resolving or not, customers leaving, re-contacts) and the
knowledge gaps of `evals/gaps/` (questions the help center does not answer, handed to scripted agents who answer
them; the first gap grows day by day), run through the HTTP API with the chat model given (the demo uses the fake
one: two weeks in a minute), every conversation marked `metadata.simulated`. Each is then moved back in time to its
day, at an hour of the working day, with the agent's wait before a claim; the facts are derived again and idle
conversations closed, as the server would have done at the time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import BaseModel

from assistant.store.repo import Store
from assistant.telemetry.recorder import Telemetry
from evals.loop import LoopDay, gap_mix, load_gaps
from evals.simulate import MIX, Credentials

Progress = Callable[[str, int, int], None]
SIMULATED = {"simulated": True, "source": "cxa demo"}


class HistoryReport(BaseModel):
    days: int
    conversations: int
    gap_conversations: int
    handed_off: int
    seconds: float


def seed_history(
    client: httpx.Client,
    creds: Credentials,
    store: Store,
    telemetry: Telemetry | None,
    days: int = 14,
    per_day: int = 12,
    seed: int = 0,
    customers: list[str] | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> HistoryReport:
    """Run `days` days of about `per_day` simulated conversations each and move them back to their days (the
    oldest `days` ago, the last yesterday)."""
    started = time.perf_counter()
    rng = random.Random(seed)
    day = LoopDay(client, creds, seed, metadata=dict(SIMULATED))
    gaps = load_gaps()
    mix = gap_mix(days, per_day, gaps, rng)
    pool = list(customers or [])
    kinds, weights = list(MIX), list(MIX.values())
    today = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    gap_total = handed = 0
    seeded: list[str] = []
    for d in range(days):
        date = today - timedelta(days=days - d)
        runs: list[list[str]] = []
        for kind in rng.choices(kinds, weights, k=max(1, per_day + rng.randint(-3, 3) - len(mix[d]))):
            script = day.run_script(kind, pool if pool else [])
            runs.append(script.conversation_ids)
            handed += kind in ("rephrase_loop", "person_resolved", "person_unresolved", "abandoned")
        for gap, question in mix[d]:
            runs.append([day.gap_conversation(gap, question, reask=rng.random() < 0.25).conversation_id])
            gap_total += 1
            handed += 1
        for ids in runs:
            at = date + timedelta(hours=rng.uniform(8, 21))
            wait = timedelta(minutes=rng.uniform(1, 25))
            first = store.get_conversation(ids[0]).created_at
            for cid in ids:
                store.simulated.shift(cid, first - at, agent_wait=wait)
            seeded += ids
        if not pool:
            pool = list(customers or [])  # re-contacts need the sample customers again the next day
        if progress:
            progress("days", d + 1, days)
    if telemetry is not None:  # what the server's sweeps would have done since
        for cid in seeded:
            telemetry.refresh(cid)
        telemetry.sweep()
    return HistoryReport(
        days=days,
        conversations=len(seeded),
        gap_conversations=gap_total,
        handed_off=handed,
        seconds=round(time.perf_counter() - started, 1),
    )
