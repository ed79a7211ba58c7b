"""`cxa bench overhead`: what a turn costs besides generation, at 1k and 100k chunks in the index.

The real app (`api.app.create_app`, so `Services.build` and the engine the API uses) on a synthetic index
(`evals.perf.synthetic`) whose sentence vectors are warmed as `cxa ingest` warms a deployment's (once, cached
with the index; the time it took is reported), with a fresh SQLite database and the 22 sample customers, and a
chat model that answers at once: `InstantChatModel` quotes the source sentence that best matches the question
with its citation (`FakeSupportChatModel`), so turns take the normal grounded path (a generated, checked, cited
reply), not a handoff every time; the mix of outcomes is reported. Its own time (a few regular expressions)
is measured and subtracted: what is left is the turn's overhead (persistence, history, intent, retrieval,
grounding and the output guard, confidence, signals and telemetry, topic, the model-call log).

Every script runs twice, on two paths, interleaved in the same run (which goes first alternates): the
engine called in-process (`engine.run_turn`, as the API's route does) and the HTTP route
(`POST /v1/conversations/{id}/messages` through httpx's ASGI transport, in-process: routing, auth,
validation, the thread hop and JSON included). A script's first run starts with this process's caches cold
(its sources' sentence vectors are read from the store on disk, its customer's record is embedded); its repeat
finds them in memory. A script is a sample customer asking a help-center question,
a second one on the same subject, and either "thanks, that worked" or a third question; one in eight starts
off-topic (declined: offered or handed to a person). Per turn: wall time, the engine's own step timings
(the turn record's `timings_ms`), SQL statements and transactions (SQLAlchemy events), and any engine, ONNX
session, chat model or Chroma client built (there must be none); per size, where the sentence vectors the turns
asked for came from (memory, the store, embedded).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import BaseModel, Field, PrivateAttr

from assistant.llm import FakeSupportChatModel
from assistant.samples import load_customers, sample_profiles
from assistant.settings import Settings
from assistant.store.repo import Store
from evals.perf.probes import Constructions, SqlCounter
from evals.perf.stats import Machine, Ratio, Timing, percentile
from evals.perf.synthetic import (
    COLLECTION,
    SentenceWarm,
    index_dir,
    sentence_store_path,
    synthetic_index,
    warm_index_sentences,
)
from evals.simulate import QUESTIONS
from evals.workspace import SAMPLE_COMPANY, scratch_settings

Progress = Callable[[str, int, int], None]
AppFactory = Callable[[Settings, Any], Any]  # (settings, chat model) -> the ASGI app
TARGET_P95_MS = 25.0
OFF_TOPIC = ["What is the capital of France?", "Can you recommend a good pizza place nearby?"]
CLOSERS = ["Thanks, that worked!", "Great, thank you so much."]


class InstantChatModel(FakeSupportChatModel):
    """`FakeSupportChatModel` that also adds up the time spent inside it, to be subtracted."""

    _spent: float = PrivateAttr(default=0.0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _charge(self, seconds: float) -> None:
        with self._lock:
            self._spent += seconds

    def spent(self) -> float:
        with self._lock:
            return self._spent

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        t = time.perf_counter()
        try:
            return super()._generate(messages, stop, run_manager, **kwargs)
        finally:
            self._charge(time.perf_counter() - t)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        t = time.perf_counter()
        pieces = list(super()._stream(messages, stop, run_manager, **kwargs))
        self._charge(time.perf_counter() - t)
        yield from pieces


class Counts(BaseModel):
    median: float | None
    p95: float | None
    max: int | None

    @classmethod
    def of(cls, values: list[int]) -> Counts:
        return cls(median=percentile(values, 50), p95=percentile(values, 95), max=max(values) if values else None)


class PathFigures(BaseModel):
    """One way of calling a turn. `overhead` = `wall` minus the chat model's own time."""

    turns: int
    conversations: int
    wall: Timing
    overhead: Timing
    overhead_first_run: Timing = Field(description="turns of a script's first run (new questions, cold caches)")
    overhead_repeat: Timing = Field(description="the same script run again on the other path: caches warm")
    overhead_cpu: Timing = Field(
        description="CPU time of the process during the turn, model time removed: what the turn costs on an idle "
        "machine (wall time on a loaded one includes waiting for a core)"
    )
    overhead_cpu_repeat: Timing
    model: Timing
    stages: dict[str, Timing]
    statements_per_turn: Counts
    transactions_per_turn: Counts
    start_conversation: Timing
    target: Ratio


class SizeOverhead(BaseModel):
    chunks: int
    real_chunks: int
    synthetic_chunks: int
    startup_s: float
    first_turn_ms: float
    engine: PathFigures
    http: PathFigures
    http_extra_median_ms: float
    outcomes: dict[str, int]
    constructions_during_turns: dict[str, int]
    sentence_warm: SentenceWarm | None = Field(None, description="the index's sentence vectors, warmed as after ingest")
    sentence_texts: dict[str, int] = Field(
        default_factory=dict,
        description="texts the turns asked vectors of, by where they came from: memory (this process's cache), "
        "store (the sentence vectors on disk), embedded",
    )


class OverheadFigures(BaseModel):
    benchmark: str = "overhead/fake-model"
    machine: Machine
    conversations: int
    seed: int
    sizes: list[SizeOverhead]


@dataclass
class _Sample:
    via: str
    wall: float
    cpu: float  # CPU time of the whole process (all threads) during the turn
    model: float
    statements: int
    transactions: int
    timings_ms: dict[str, float]
    outcome: str
    repeat: bool  # the script's second run (its question and sources seen before: caches warm)


@dataclass
class _Run:
    samples: list[_Sample] = field(default_factory=list)
    starts: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    sentence_texts: dict[str, int] = field(default_factory=dict)


def scripts(n: int, seed: int) -> list[list[str]]:
    """`n` conversations of three customer messages (see the module docstring)."""
    rng = random.Random(seed)
    topics = list(QUESTIONS)
    out = []
    for i in range(n):
        topic = rng.choice(topics)
        first, second = rng.sample(QUESTIONS[topic], 2) if len(QUESTIONS[topic]) > 1 else QUESTIONS[topic] * 2
        if i % 8 == 7:
            first = rng.choice(OFF_TOPIC)
        last = rng.choice(CLOSERS) if rng.random() < 0.5 else rng.choice(QUESTIONS[rng.choice(topics)])
        out.append([first, second, last])
    return out


def overhead_settings(settings: Settings, size: int) -> Settings:
    """A scratch data dir (fresh database, the topic model cached) on the synthetic index of `size` chunks."""
    work = settings.data_dir / "bench" / f"overhead-{size}"
    return scratch_settings(
        settings,
        work,
        COLLECTION,
        chroma_path=index_dir(settings, size) / "chroma",
        chroma_url=None,
        company_name=SAMPLE_COMPANY,
        chat_provider="fake",
        evals=settings.evals.model_copy(update={"background": False}),
        embedding=settings.embedding.model_copy(update={"sentence_store_path": sentence_store_path(settings, size)}),
    )


def _fresh_database(s: Settings) -> None:
    for f in Path(s.data_dir).glob("cxa.db*"):
        f.unlink()
    store = Store(s.sqlalchemy_url)
    try:
        load_customers(store)
    finally:
        store.close()


def _outcome(turn: dict[str, Any]) -> str:
    """reply mode / policy action; a turn with no reply went to a person (or the bot stays silent for one)."""
    reply = turn.get("reply")
    if reply is None:
        return "handoff" if turn.get("action") == "handoff" else "silent (a person has it)"
    return f"{reply['mode']}/{turn.get('action')}"


async def _measure(
    app: Any, model: InstantChatModel, plan: list[list[str]], run: _Run, progress: Progress | None, label: str
) -> tuple[float, float, dict[str, int]]:
    """Run the lifespan, warm up, then every conversation; returns (startup s, first turn ms, constructions). The
    sources of the sentence vectors the measured turns asked for go to `run.sentence_texts`."""
    customers = [p.id for p in sample_profiles()]
    started = time.perf_counter()
    async with app.router.lifespan_context(app):
        startup = time.perf_counter() - started
        services = app.state.services
        keys = app.state.keys
        headers = {"X-Widget-Key": keys.widget_key}
        engine = services.engine
        sql = SqlCounter(services.store.engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            t = time.perf_counter()
            conv = engine.start_conversation(customers[0], True)
            engine.run_turn(conv.id, plan[0][0])
            first_turn_ms = (time.perf_counter() - t) * 1000
            for script in plan[:3]:  # warm-up: both paths once, caches filled as a running server's are
                c = engine.start_conversation(customers[1], True)
                for text in script:
                    engine.run_turn(c.id, text)
                r = await client.post("/v1/conversations", json={}, headers=headers)
                url = f"/v1/conversations/{r.json()['id']}/messages"
                for text in script:
                    await client.post(url, json={"text": text}, headers=headers)
            total = 2 * sum(len(s) for s in plan)
            done = 0
            vectors = services.engine.answerer.vectors
            before = Counter(vectors.counts)
            with Constructions() as built:
                for i, script in enumerate(plan):
                    cid = customers[i % len(customers)]
                    for n_run, via in enumerate(("engine", "http") if i % 2 == 0 else ("http", "engine")):
                        t = time.perf_counter()
                        if via == "engine":
                            conversation_id = engine.start_conversation(cid, True).id
                        else:
                            body = {"customer_id": cid, "customer_hash": keys.customer_hash(cid)}
                            r = await client.post("/v1/conversations", json=body, headers=headers)
                            r.raise_for_status()
                            conversation_id = r.json()["id"]
                            opened = {**headers, "X-Conversation-Token": r.json()["token"]}
                        run.starts[via].append(time.perf_counter() - t)
                        for text in script:
                            m0, (s0, x0) = model.spent(), sql.read()
                            c0 = time.process_time()
                            t = time.perf_counter()
                            if via == "engine":
                                turn = engine.run_turn(conversation_id, text).model_dump(mode="json")
                            else:
                                r = await client.post(
                                    f"/v1/conversations/{conversation_id}/messages",
                                    json={"text": text},
                                    headers=opened,
                                )
                                r.raise_for_status()
                                turn = r.json()
                            wall = time.perf_counter() - t
                            cpu = time.process_time() - c0
                            s1, x1 = sql.read()
                            run.samples.append(
                                _Sample(
                                    via=via,
                                    wall=wall,
                                    cpu=cpu,
                                    model=model.spent() - m0,
                                    statements=s1 - s0,
                                    transactions=x1 - x0,
                                    timings_ms=dict(turn.get("timings_ms") or {}),
                                    outcome=_outcome(turn),
                                    repeat=n_run == 1,
                                )
                            )
                            done += 1
                            if progress:
                                progress(label, done, total)
                constructed = built.snapshot()
            run.sentence_texts = dict(Counter(vectors.counts) - before)
            sql.close()
    return startup, first_turn_ms, constructed


def _path(run: _Run, via: str) -> PathFigures:
    samples = [s for s in run.samples if s.via == via]
    stages: dict[str, list[float]] = defaultdict(list)
    for s in samples:
        for name, ms in s.timings_ms.items():
            if name == "total":
                continue
            value = ms / 1000
            if name == "generate":  # the model's own time is not overhead
                name, value = "generate (model time removed)", max(0.0, value - s.model)
            stages[name].append(value)
    overhead = Timing.of([max(0.0, s.wall - s.model) for s in samples])
    first = Timing.of([max(0.0, s.wall - s.model) for s in samples if not s.repeat])
    repeat = Timing.of([max(0.0, s.wall - s.model) for s in samples if s.repeat])
    return PathFigures(
        turns=len(samples),
        conversations=len(run.starts[via]),
        wall=Timing.of([s.wall for s in samples]),
        overhead=overhead,
        overhead_first_run=first,
        overhead_repeat=repeat,
        overhead_cpu=Timing.of([max(0.0, s.cpu - s.model) for s in samples]),
        overhead_cpu_repeat=Timing.of([max(0.0, s.cpu - s.model) for s in samples if s.repeat]),
        model=Timing.of([s.model for s in samples]),
        stages={k: Timing.of(v) for k, v in sorted(stages.items(), key=lambda kv: -sum(kv[1]))},
        statements_per_turn=Counts.of([s.statements for s in samples]),
        transactions_per_turn=Counts.of([s.transactions for s in samples]),
        start_conversation=Timing.of(run.starts[via]),
        target=Ratio.of(overhead.p95_ms or 0.0, TARGET_P95_MS, f"turn overhead p95 < {TARGET_P95_MS:.0f} ms"),
    )


def run_size(
    app_factory: AppFactory,
    settings: Settings,
    size: int,
    conversations: int,
    seed: int = 0,
    progress: Progress | None = None,
) -> SizeOverhead:
    index, manifest = synthetic_index(settings, size, seed, progress)
    warm = warm_index_sentences(settings, size, index, progress)
    s = overhead_settings(settings, size)
    _fresh_database(s)
    model = InstantChatModel()
    app = app_factory(s, model)
    run = _Run()
    plan = scripts(conversations, seed)
    startup, first_ms, constructed = asyncio.run(_measure(app, model, plan, run, progress, f"turns, {size:,} chunks"))
    engine, http = _path(run, "engine"), _path(run, "http")
    return SizeOverhead(
        chunks=size,
        real_chunks=manifest.real_chunks,
        synthetic_chunks=manifest.synthetic_chunks,
        startup_s=round(startup, 2),
        first_turn_ms=round(first_ms, 1),
        engine=engine,
        http=http,
        http_extra_median_ms=round((http.wall.median_ms or 0.0) - (engine.wall.median_ms or 0.0), 2),
        outcomes=dict(Counter(s.outcome for s in run.samples).most_common()),
        constructions_during_turns=constructed,
        sentence_warm=warm,
        sentence_texts=run.sentence_texts,
    )


def run_overhead(
    app_factory: AppFactory,
    settings: Settings,
    sizes: list[int],
    conversations: int = 40,
    seed: int = 0,
    progress: Progress | None = None,
) -> OverheadFigures:
    """`app_factory(settings, chat_model)` builds the ASGI app (the CLI passes `api.app.create_app`: evals sits
    below the API, so the app is handed in)."""
    return OverheadFigures(
        machine=Machine(),
        conversations=conversations,
        seed=seed,
        sizes=[run_size(app_factory, settings, n, conversations, seed, progress) for n in sizes],
    )


def summary_rows(figures: OverheadFigures) -> list[tuple[str, str, str]]:
    """(figure, engine, HTTP) rows for a table, every size one after the other."""
    rows: list[tuple[str, str, str]] = []
    for s in figures.sizes:
        n = f"{s.chunks:,} chunks"
        e, h = s.engine, s.http

        def both(label: str, pick: Callable[[PathFigures], str], e: PathFigures = e, h: PathFigures = h) -> None:
            rows.append((label, pick(e), pick(h)))

        both(f"{n}: turns / conversations", lambda p: f"{p.turns} / {p.conversations}")
        both("overhead p50 / p95 (ms)", lambda p: p.overhead.row())
        both("  first run of a script", lambda p: p.overhead_first_run.row())
        both("  repeat (caches warm)", lambda p: p.overhead_repeat.row())
        both("overhead CPU time p50 / p95 (ms)", lambda p: p.overhead_cpu.row())
        both("  repeat (caches warm)", lambda p: p.overhead_cpu_repeat.row())
        both(f"  p95 / {TARGET_P95_MS:.0f} ms target", lambda p: f"{p.target.ratio:.2f}")
        both("SQL statements / transactions per turn (median)", lambda p: _counts(p))
        both("start a conversation p50 / p95 (ms)", lambda p: p.start_conversation.row())
        for stage in e.stages:
            both(f"  step {stage} p50 / p95", lambda p, st=stage: p.stages[st].row() if st in p.stages else "-")
        rows.append(("startup (s) / first turn (ms)", f"{s.startup_s:.1f} / {s.first_turn_ms:.0f}", ""))
        if s.sentence_warm is not None:
            w = s.sentence_warm
            again = f"; this run {w.this_run_s:.1f} s (reused)" if w.reused else ""
            warmed = f"{w.embedded:,} texts embedded in {w.seconds:.0f} s ({w.texts:,} chunk texts looked up){again}"
            rows.append(("sentence vectors warmed", warmed, ""))
        texts = ", ".join(f"{k} {v}" for k, v in sorted(s.sentence_texts.items()))
        rows.append(("sentence vectors asked by the turns, from", texts or "-", ""))
        rows.append(("outcomes (reply mode / action)", ", ".join(f"{k} {v}" for k, v in s.outcomes.items()), ""))
        built = ", ".join(f"{k} {v}" for k, v in s.constructions_during_turns.items())
        rows.append(("built during the turns", built, ""))
    return rows


def _counts(p: PathFigures) -> str:
    return f"{p.statements_per_turn.median or 0:.0f} / {p.transactions_per_turn.median or 0:.0f}"
