"""Dialogue-mode retrieval on doc2dial dev: whole dialogues replayed through the real engine, turn by turn.

Each dialogue is one conversation in a scratch workspace (`evals/workspace.py`) over all 273 pages (the
`bench_doc2dial` collection): the customer's real utterances in order, the assistant's own replies in between
(answer mode `extractive` and the fake chat model, so no LLM runs and the earlier citations are the system's own).
A scored turn is a dev row (a customer turn with a gold page); it counts as a hit when the reply cites a chunk of
that page. Customer turns without a dev row are replayed too, unscored.

Reported: the gold-page citation rate over all scored turns, by the turn's position among the dialogue's customer
turns (1st, 2nd, 3rd+), the share of dialogues cut short by a handoff (every later turn is a miss: a person has
the conversation and the bot is silent) and the share of scored turns lost that way.

Topic switches: doc2dial dialogues never leave their page, so a retriever that always kept the first page would
look perfect here. `switches` spliced dialogues measure the other side: the first two customer turns of one
dialogue, then a whole dialogue about another page, in one conversation; the figure is the citation rate of the
second dialogue's turns (its first turn is the switch).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from assistant.services import Services
from assistant.settings import Settings
from evals.bench.retrieval import BENCH_COLLECTION, bench_index
from evals.datasets import Doc2DialTurn, doc2dial_turns
from evals.suite import Metric
from evals.workspace import scratch_settings

Progress = Callable[[str, int, int], None]
POSITIONS = ("1st", "2nd", "3rd+")


@dataclass(frozen=True)
class Step:
    """One customer message of a replayed dialogue; `gold` is its page when it is a scored (dev) turn."""

    text: str
    gold: str | None


def dialogues(turns: list[Doc2DialTurn]) -> list[list[Step]]:
    """The dev turns regrouped into dialogues: every customer message up to the last dev turn, in order (the
    last dev turn's history holds them all), each dev turn's gold page on its message."""
    by_dialogue: dict[str, list[Doc2DialTurn]] = {}
    for t in turns:
        by_dialogue.setdefault(t.dial_id, []).append(t)
    out: list[list[Step]] = []
    for rows in by_dialogue.values():
        last = max(rows, key=lambda t: len(t.history))
        customer = [u for role, u in last.history if role == "user"]
        gold = {sum(role == "user" for role, _ in t.history): t.doc_id for t in rows}
        out.append([Step(text, gold.get(i)) for i, text in enumerate([*customer, last.utterance])])
    return out


def position(i: int) -> str:
    return POSITIONS[min(i, len(POSITIONS) - 1)]


class DialogueResult(BaseModel):
    benchmark: str = "retrieval/doc2dial-dev-dialogues"
    dialogues: int
    turns: int  # scored turns
    citation_rate: float
    by_position: dict[str, float]
    turns_by_position: dict[str, int]
    cut_short: float  # share of dialogues a handoff ended before their last scored turn
    lost_to_handoff: float  # share of scored turns after a handoff (counted as misses)
    before_handoff_rate: float  # the citation rate over the scored turns the bot still answered
    handoff_reasons: dict[str, int]
    switch_dialogues: int
    switch_turn_rate: float | None  # the first turn after the switch cites the new page
    after_switch_rate: float | None  # all turns of the second dialogue
    turn_ms_p50: float
    turn_ms_p95: float
    seconds: float

    def suite_metrics(self) -> list[Metric]:
        return [
            Metric("citation_rate", self.citation_rate),
            *(Metric(f"citation_rate_{p}", v) for p, v in self.by_position.items()),
            Metric("cut_short", self.cut_short, higher_is_better=False, kind="info"),
        ]

    def summary_rows(self) -> list[tuple[str, object]]:
        rows: list[tuple[str, object]] = [
            ("dialogues / scored turns", f"{self.dialogues} / {self.turns}"),
            ("gold-page citation rate", f"{self.citation_rate:.3f}"),
        ]
        for p in POSITIONS:
            if p in self.by_position:
                rows.append((f"  {p} turn ({self.turns_by_position[p]})", f"{self.by_position[p]:.3f}"))
        rows += [
            ("dialogues cut short by a handoff", f"{self.cut_short:.3f}"),
            ("scored turns after a handoff (misses)", f"{self.lost_to_handoff:.3f}"),
            ("citation rate before any handoff", f"{self.before_handoff_rate:.3f}"),
            ("handoff reasons", ", ".join(f"{k} {v}" for k, v in sorted(self.handoff_reasons.items())) or "-"),
        ]
        if self.switch_dialogues:
            rows += [
                ("topic switch: spliced dialogues", self.switch_dialogues),
                ("  switch turn cites the new page", f"{self.switch_turn_rate:.3f}"),
                ("  every turn after the switch", f"{self.after_switch_rate:.3f}"),
            ]
        rows += [("turn latency p50 / p95 (ms)", f"{self.turn_ms_p50} / {self.turn_ms_p95}")]
        return rows


@dataclass
class _Replay:
    hits: list[bool]
    positions: list[str]
    after_handoff: list[bool]
    cut_short: bool
    reasons: list[str]


def replay(services: Services, steps: list[Step], latencies: list[float]) -> _Replay:
    """One conversation: each step asked in turn; a scored step hits when the reply cites its gold page."""
    engine = services.engine
    conv = engine.start_conversation(None, verified=False, channel="eval")
    out = _Replay([], [], [], False, [])
    handed = False
    for i, step in enumerate(steps):
        t0 = time.perf_counter()
        turn = engine.run_turn(conv.id, step.text)
        latencies.append((time.perf_counter() - t0) * 1000)
        if step.gold is not None:
            cited = {c.source_id for c in turn.reply.citations} if turn.reply is not None and not handed else set()
            out.hits.append(step.gold in cited)
            out.positions.append(position(i))
            out.after_handoff.append(handed)
            out.cut_short = out.cut_short or handed
        if turn.handoff is not None and not handed:
            out.reasons.append(turn.handoff.reason)
        handed = handed or turn.handoff is not None
    return out


def _rate(values: list[bool]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def run_dialogues(
    settings: Settings,
    data_dir: Path,
    limit: int | None = None,
    switches: int = 60,
    seed: int = 0,
    progress: Progress | None = None,
) -> DialogueResult:
    """`limit`: the first N dialogues; `switches`: spliced dialogues (pairs on different pages, sampled)."""
    started = time.perf_counter()
    bench_index(settings, data_dir, progress=progress)
    dials = dialogues(doc2dial_turns(data_dir))
    if limit is not None:
        dials = dials[:limit]
    pages = [next((s.gold for s in d if s.gold), None) for d in dials]
    rng = random.Random(seed)
    pairs: list[tuple[int, int]] = []
    for _ in range(switches if len(dials) > 1 else 0):
        a, b = rng.sample(range(len(dials)), 2)
        if pages[a] != pages[b] and len(dials[a]) >= 2:
            pairs.append((a, b))
    hits: list[bool] = []
    where: list[str] = []
    lost: list[bool] = []
    cut = 0
    reasons: Counter[str] = Counter()
    switch_first: list[bool] = []
    switch_all: list[bool] = []
    latencies: list[float] = []
    answer = settings.answer.model_copy(update={"mode": "extractive"})
    with tempfile.TemporaryDirectory(prefix="cxa-dialogues-") as tmp:
        s = scratch_settings(settings, Path(tmp), BENCH_COLLECTION, chat_provider="fake", answer=answer)
        services = Services.build(s, warm=False)
        try:
            total = len(dials) + len(pairs)
            for i, steps in enumerate(dials, 1):
                r = replay(services, steps, latencies)
                hits += r.hits
                where += r.positions
                lost += r.after_handoff
                cut += r.cut_short
                reasons.update(r.reasons)
                if progress:
                    progress("dialogues", i, total)
            for j, (a, b) in enumerate(pairs, 1):
                lead = [Step(st.text, None) for st in dials[a][:2]]
                r = replay(services, [*lead, *dials[b]], latencies)
                if r.hits:
                    switch_first.append(r.hits[0])
                    switch_all += r.hits
                if progress:
                    progress("switches", len(dials) + j, total)
        finally:
            services.close()
    latencies.sort()
    by_pos = {p: [h for h, w in zip(hits, where, strict=True) if w == p] for p in POSITIONS}
    return DialogueResult(
        dialogues=len(dials),
        turns=len(hits),
        citation_rate=_rate(hits),
        by_position={p: _rate(v) for p, v in by_pos.items() if v},
        turns_by_position={p: len(v) for p, v in by_pos.items() if v},
        cut_short=round(cut / max(1, len(dials)), 4),
        lost_to_handoff=_rate(lost),
        before_handoff_rate=_rate([h for h, gone in zip(hits, lost, strict=True) if not gone]),
        handoff_reasons=dict(reasons),
        switch_dialogues=len(switch_first),
        switch_turn_rate=_rate(switch_first) if switch_first else None,
        after_switch_rate=_rate(switch_all) if switch_all else None,
        turn_ms_p50=round(statistics.median(latencies), 1) if latencies else 0.0,
        turn_ms_p95=round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1) if latencies else 0.0,
        seconds=round(time.perf_counter() - started, 1),
    )
