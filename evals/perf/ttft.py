"""Time to first token with the embedded model against its limit, llama.cpp called directly (`cxa bench ttft`).

The limit is `llama_cpp.Llama.create_chat_completion(stream=True)` on the same model file with the same
`n_ctx`, threads, sampling options and stop strings, on exactly the messages our answer prompt produced,
in an instance of its own. Measured at two levels, ours and the limit alternating question by question
(which one goes first alternates too), after a warm-up:

- gateway: `ChatGateway.stream` (LangChain model wrapper, redaction, timeout, logging) on the same messages,
  until its first text piece, against llama.cpp's first content delta;
- end to end: a real streamed turn through a server in its own process (`cxa serve`, the sample help
  center): from sending the POST to the model's first token inside the server (read from the turn's
  `llm_calls` row: start and first-token time), and to the first `token` SSE event the customer receives,
  against llama.cpp directly on the prompt that turn sent (read from the same row).

The first `token` event cannot come before the model has written a whole sentence: every sentence is
checked against the sources before it is shown (`assistant.turn.answer`). Its limit is therefore the time
llama.cpp takes to write the sentence that was shown first (or its whole reply, when none was shown and
the reply quotes a passage instead); the ratio to llama.cpp's first token is reported as well.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field
from sqlalchemy import select

from assistant.llm import ChatGateway, default_gguf_path, open_llama
from assistant.prompts import ANSWER, Prompt
from assistant.settings import Settings
from assistant.store.repo import Store
from assistant.store.tables import LLMCallRow
from assistant.turn.answer import _BOUNDARY  # where the answer guard cuts sentences: the limit must cut alike
from assistant.turn.grounding import clean_sentence
from evals.load import local_server
from evals.perf.stats import Machine, Ratio, Timing
from evals.simulate import QUESTIONS
from evals.sse import iter_sse

Progress = Callable[[str, int, int], None]
TARGET = 1.10

# The answer prompt with its text already rendered: the gateway gets the very messages a turn sent.
RENDERED_ANSWER = Prompt(name=ANSWER.name, version=ANSWER.version, system="{system}", user="{user}", stop=ANSWER.stop)


def questions(n: int) -> list[str]:
    """`n` sample help-center questions, taking each topic in turn (the server holds the sample help center)."""
    pools = [list(v) for _, v in sorted(QUESTIONS.items())]
    out: list[str] = []
    while len(out) < n and any(pools):
        for pool in pools:
            if pool and len(out) < n:
                out.append(pool.pop(0))
    return out


class Direct:
    """llama.cpp itself: the same model file and options as `LlamaCppChatModel`, an instance of its own."""

    def __init__(self, settings: Settings) -> None:
        e = settings.embedded
        # What LlamaCppChatModel passes for an answer (no JSON schema, no repeat penalty).
        self.options = {"max_tokens": e.max_tokens, "temperature": e.temperature, "stop": list(ANSWER.stop)}
        self.llama = open_llama(str(e.model_path or default_gguf_path()), e.n_ctx, settings.threads)

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        for part in self.llama.create_chat_completion(messages, stream=True, **self.options):  # type: ignore[arg-type]
            delta = part["choices"][0].get("delta", {}).get("content")  # type: ignore[index,union-attr]
            if delta:
                yield delta


def _first_piece(pieces: Iterator[str]) -> float:
    """Seconds to the first text piece, then the stream is closed (generation stops there)."""
    t0 = time.perf_counter()
    try:
        for _ in pieces:
            return time.perf_counter() - t0
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
    raise RuntimeError("the model wrote nothing")


class Written(BaseModel):
    ttft_s: float
    total_s: float
    text: str
    complete: bool = Field(description="written to the end (not stopped after the sentence looked for)")
    sentence_ends_s: list[tuple[str, float]] = Field(
        default_factory=list, description="each sentence as the answer's guard cuts it, and when it was complete"
    )


def write_all(pieces: Iterator[str], until: str | None = None) -> Written:
    """Consume a stream, noting when each sentence became complete (the answer guard cuts at the same places);
    with `until`, stop once that sentence is complete (nothing after it is needed)."""
    t0 = time.perf_counter()
    first: float | None = None
    text, pending, ends = "", "", []
    target = " ".join(until.split()) if until else None
    for piece in pieces:
        now = time.perf_counter() - t0
        first = now if first is None else first
        text += piece
        pending += piece
        while (m := _BOUNDARY.search(pending)) is not None:
            ends.append((pending[: m.start()], now))
            pending = pending[m.end() :]
            if target is not None and " ".join(clean_sentence(ends[-1][0]).split()) == target:
                getattr(pieces, "close", lambda: None)()
                return Written(ttft_s=first, total_s=now, text=text, complete=False, sentence_ends_s=ends)
    total = time.perf_counter() - t0
    if pending.strip():
        ends.append((pending, total))  # the guard judges the last sentence once the stream has ended
    return Written(
        ttft_s=first if first is not None else total, total_s=total, text=text, complete=True, sentence_ends_s=ends
    )


def shown_at(written: Written, first_shown: str | None, mode: str | None) -> float:
    """When llama.cpp had written what the customer was shown first: the end of that sentence for a generated
    reply; the whole reply otherwise (the guard had to see all of it before quoting a passage instead)."""
    if mode == "generated" and first_shown:
        target = " ".join(first_shown.split())
        for sentence, at in written.sentence_ends_s:
            if " ".join(clean_sentence(sentence).split()) == target:
                return at
    return written.total_s


class E2ETurn(BaseModel):
    question: str
    posted_at: float = Field(description="the wall clock when the POST was sent (the server logs on the same clock)")
    turn_id: str | None = None
    mode: str | None = None
    first_event_s: float | None = Field(None, description="POST sent -> first `token` SSE event received")
    done_s: float
    first_text: str | None = None
    model_start_s: float | None = Field(None, description="POST sent -> the answer call started in the server")
    model_first_token_s: float | None = Field(None, description="POST sent -> the model's first token in the server")
    server_steps_ms: dict[str, float] = Field(default_factory=dict)
    messages: list[dict[str, str]] = Field(default_factory=list)
    output: str | None = None


def _stream_turn(client: httpx.Client, question: str) -> E2ETurn:
    conv = client.post("/v1/conversations", json={"channel": "web"})
    conv.raise_for_status()
    cid = conv.json()["id"]
    wall0, t0 = time.time(), time.perf_counter()
    first: float | None = None
    first_text: str | None = None
    done: dict[str, Any] | None = None
    with client.stream(
        "POST", f"/v1/conversations/{cid}/messages", json={"text": question}, headers={"Accept": "text/event-stream"}
    ) as r:
        r.raise_for_status()
        for event in iter_sse(r.iter_lines()):  # the server writes each event whole: its end is its arrival
            if event.name == "token" and first is None:
                first = time.perf_counter() - t0
                first_text = event.data["text"]
            elif event.name == "done":
                done = event.data
            elif event.name == "error":
                raise RuntimeError(f"the turn failed: {json.dumps(event.data)}")
    total = time.perf_counter() - t0
    turn = E2ETurn(question=question, posted_at=wall0, first_event_s=first, done_s=total, first_text=first_text)
    if done is not None:
        turn.turn_id = done["turn_id"]
        turn.mode = (done.get("reply") or {}).get("mode")
        turn.server_steps_ms = {k: float(v) for k, v in (done.get("timings_ms") or {}).items()}
    return turn


def _attach_call(store: Store, turn: E2ETurn) -> None:
    """The answer call this turn made, from `llm_calls`: its messages and when it started and first produced."""
    if turn.turn_id is None:
        return
    with store.session() as s:
        row = s.scalars(
            select(LLMCallRow).where(LLMCallRow.turn_id == turn.turn_id, LLMCallRow.prompt_name == ANSWER.name)
        ).first()
        if row is None or row.duration_ms is None:
            return
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        ended = created.timestamp()  # logged as the call ended
        started = ended - row.duration_ms / 1000
        turn.model_start_s = started - turn.posted_at
        if row.first_token_ms is not None:
            turn.model_first_token_s = started + row.first_token_ms / 1000 - turn.posted_at
        turn.messages = [{"role": m["role"], "content": m["content"]} for m in row.messages]
        turn.output = row.output


class Pair(BaseModel):
    question: str
    first: str = Field(description="which side ran first for this question")
    ours_s: float
    direct_s: float


class E2EPair(BaseModel):
    question: str
    first: str
    mode: str | None
    same_prompt: bool = Field(description="the measured turn sent the prompt captured in the warm-up pass")
    same_output: bool = Field(description="llama.cpp directly wrote what the server's model wrote")
    model_first_token_s: float
    model_start_s: float
    first_event_s: float | None
    direct_ttft_s: float
    direct_shown_s: float = Field(description="llama.cpp directly: time to the text shown first (see the docstring)")
    direct_total_s: float = Field(description="llama.cpp directly: to the end, or to the sentence shown first")
    done_s: float
    server_steps_ms: dict[str, float]


class TtftResult(BaseModel):
    benchmark: str = "perf/ttft"
    model: str
    n_ctx: int
    threads: int
    max_tokens: int
    questions: int
    prompt_chars_median: float
    gateway: Timing = Field(description="ours: ChatGateway.stream -> first piece, same messages")
    gateway_direct: Timing = Field(description="the limit: llama.cpp create_chat_completion -> first content")
    gateway_ratio: Ratio = Field(description="median ours / median llama.cpp (target <= 1.10)")
    gateway_ratio_per_question_median: float
    e2e_model_first_token: Timing = Field(description="POST sent -> the model's first token inside the server")
    e2e_direct_ttft: Timing = Field(description="llama.cpp directly on the prompt the turn sent -> first token")
    e2e_ratio: Ratio = Field(description="median POST -> model first token / median llama.cpp TTFT (target <= 1.10)")
    e2e_ratio_per_question_median: float
    e2e_before_model: Timing = Field(description="POST sent -> the answer call started (the turn's work before it)")
    e2e_first_event: Timing = Field(description="POST sent -> first `token` SSE event received")
    e2e_direct_shown: Timing = Field(description="llama.cpp directly -> the text shown first written")
    e2e_first_event_ratio: Ratio = Field(description="median first token event / median llama.cpp to that text")
    e2e_first_event_vs_direct_ttft: float = Field(description="median first token event / median llama.cpp TTFT")
    server_steps_ms_median: dict[str, float] = Field(description="the turns' own step timings, median")
    modes: dict[str, int]
    same_prompt: int
    same_output: int
    gateway_pairs: list[Pair]
    e2e_pairs: list[E2EPair]
    customer: list[CustomerView] = Field(
        default_factory=list, description="what customers get with the shipped deadlines, by answer mode"
    )
    meets_target: bool
    wall_s: float
    machine: Machine
    load_after: float


def _ratio_median(pairs: list[tuple[float, float]]) -> float:
    return round(statistics.median(o / d for o, d in pairs), 4) if pairs else float("nan")


def run_ttft(
    settings: Settings, n_questions: int = 12, warmup: int = 2, progress: Progress | None = None
) -> TtftResult:
    started = time.perf_counter()
    machine = Machine()
    st = settings.model_copy(update={"chat_provider": "embedded"})
    qs = questions(n_questions)
    tick = progress or (lambda stage, done, total: None)
    tick("loading llama.cpp (ours and direct)", 0, 2)
    direct = Direct(st)
    gateway = ChatGateway.from_settings(st)
    gateway.warm()
    tick("loading llama.cpp (ours and direct)", 2, 2)

    env = {
        "CXA_CHAT_PROVIDER": "embedded",
        # Every answer written by the model (the default quotes with the embedded model), and no deadline: a loaded
        # machine can take minutes for a 160-token reply, and a slow one must not become a quote or a handoff here.
        "CXA_ANSWER__MODE": "generative",
        "CXA_EMBEDDED__TIMEOUT_S": "600",
        "CXA_EMBEDDED__FIRST_TOKEN_S": "600",
        "CXA_EMBEDDED__QUEUE_WAIT_S": "600",
        "CXA_EMBEDDED__N_THREADS": str(st.threads),
        "CXA_EMBEDDED__N_CTX": str(st.embedded.n_ctx),
        "CXA_EMBEDDED__MAX_TOKENS": str(st.embedded.max_tokens),
        "CXA_EMBEDDED__TEMPERATURE": str(st.embedded.temperature),
    }
    if st.embedded.model_path:
        env["CXA_EMBEDDED__MODEL_PATH"] = str(st.embedded.model_path)
    with tempfile.TemporaryDirectory(prefix="cxa-bench-ttft-") as tmp:
        data = Path(tmp) / "data"
        tick("starting the server (sample help center, embedded model)", 0, 1)
        with (
            local_server(env=env, data_dir=data) as (url, key),
            httpx.Client(base_url=url, headers={"X-Widget-Key": key}, timeout=120) as client,
        ):
            store = Store(st.model_copy(update={"data_dir": data}).sqlalchemy_url)
            tick("starting the server (sample help center, embedded model)", 1, 1)
            # Warm-up and capture: every question once through the app; its answer prompt is what both sides get.
            captured: dict[str, list[dict[str, str]]] = {}
            shown_first: dict[str, str | None] = {}  # a generated reply's first sentence: direct stops there
            for i, q in enumerate(qs):
                turn = _stream_turn(client, q)
                _attach_call(store, turn)
                if turn.messages:
                    captured[q] = turn.messages
                    shown_first[q] = turn.first_text if turn.mode == "generated" else None
                tick("warm-up: each question once through the app", i + 1, len(qs))
            qs = [q for q in qs if q in captured]
            if not qs:
                raise RuntimeError("no turn called the model (every question was declined or handed off)")
            for q in qs[:warmup]:
                _first_piece(gateway.stream(RENDERED_ANSWER, _values(captured[q])))
                _first_piece(direct.stream(captured[q]))

            gateway_pairs: list[Pair] = []
            for i, q in enumerate(qs):
                times: dict[str, float] = {}
                for side in ("ours", "direct") if i % 2 == 0 else ("direct", "ours"):
                    if side == "ours":
                        times[side] = _first_piece(gateway.stream(RENDERED_ANSWER, _values(captured[q])))
                    else:
                        times[side] = _first_piece(direct.stream(captured[q]))
                gateway_pairs.append(
                    Pair(
                        question=q,
                        first="ours" if i % 2 == 0 else "direct",
                        ours_s=times["ours"],
                        direct_s=times["direct"],
                    )
                )
                tick("gateway vs llama.cpp", i + 1, len(qs))

            e2e_pairs: list[E2EPair] = []
            for i, q in enumerate(qs):
                ours_first = i % 2 == 0
                written: Written | None = None
                if not ours_first:
                    written = write_all(direct.stream(captured[q]), until=shown_first[q])
                turn = _stream_turn(client, q)
                _attach_call(store, turn)
                if ours_first:
                    until = turn.first_text if turn.mode == "generated" else None
                    written = write_all(direct.stream(turn.messages or captured[q]), until=until)
                assert written is not None
                if turn.model_first_token_s is None or turn.model_start_s is None:
                    tick("end to end vs llama.cpp", i + 1, len(qs))
                    continue  # this time the turn did not call the model (e.g. handed off by intent)
                e2e_pairs.append(
                    E2EPair(
                        question=q,
                        first="ours" if ours_first else "direct",
                        mode=turn.mode,
                        same_prompt=turn.messages == captured[q],
                        same_output=(turn.output or "") == written.text
                        or (not written.complete and (turn.output or "").startswith(written.text)),
                        model_first_token_s=turn.model_first_token_s,
                        model_start_s=turn.model_start_s,
                        first_event_s=turn.first_event_s,
                        direct_ttft_s=written.ttft_s,
                        direct_shown_s=shown_at(written, turn.first_text, turn.mode),
                        direct_total_s=written.total_s,
                        done_s=turn.done_s,
                        server_steps_ms=turn.server_steps_ms,
                    )
                )
                tick("end to end vs llama.cpp", i + 1, len(qs))
            store.close()

    result = _result(st, qs, captured, gateway_pairs, e2e_pairs, started, machine)
    result.customer = [
        customer_view(st, label, mode, progress=tick)
        for label, mode in (("shipped default (auto)", None), ("answers written by the model", "generative"))
    ]
    result.wall_s = round(time.perf_counter() - started, 1)
    return result


class CustomerView(BaseModel):
    """What a customer gets with the shipped deadlines: every sample help-center question, each in a new
    conversation, through a server in its own process (`CXA_CHAT_PROVIDER=embedded`, nothing else set but the
    answer mode)."""

    label: str
    answer_mode: str = Field(description="CXA_ANSWER__MODE")
    first_token_deadline_s: float
    turns: int
    first_event: Timing = Field(description="POST sent -> the first `token` SSE event (any text the customer reads)")
    done: Timing = Field(description="POST sent -> the `done` event")
    lost_to_model: int = Field(description="turns the model failed or timed out on: handed to a person")
    quoted_as_model_slow: int = Field(description="turns that missed the first-token deadline and got a quote")
    modes: dict[str, int] = Field(description="reply modes (generated, extractive, account, handoff...)")


def customer_view(st: Settings, label: str, mode: str | None, progress: Progress | None = None) -> CustomerView:
    """Ask every sample help-center question once (see `CustomerView`), `mode` the answer mode (None: default)."""
    tick = progress or (lambda stage, done, total: None)
    env = {"CXA_CHAT_PROVIDER": "embedded", **({"CXA_ANSWER__MODE": mode} if mode else {})}
    if st.embedded.model_path:
        env["CXA_EMBEDDED__MODEL_PATH"] = str(st.embedded.model_path)
    qs = [q for pool in QUESTIONS.values() for q in pool]
    turns: list[E2ETurn] = []
    lost = slow = 0
    modes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="cxa-bench-customer-") as tmp:
        data = Path(tmp) / "data"
        stage = f"customer view: {label}"
        tick(stage, 0, len(qs))
        with (
            local_server(env=env, data_dir=data) as (url, key),
            httpx.Client(base_url=url, headers={"X-Widget-Key": key}, timeout=120) as client,
        ):
            store = Store(st.model_copy(update={"data_dir": data}).sqlalchemy_url)
            for i, q in enumerate(qs):
                turn = _stream_turn(client, q)
                turns.append(turn)
                record = store.get_turn(turn.turn_id) if turn.turn_id else None
                if record is not None:
                    lost += record.error is not None
                    slow += record.evidence is not None and record.evidence.fallback == "model_slow"
                key_mode = turn.mode or "handoff"
                modes[key_mode] = modes.get(key_mode, 0) + 1
                tick(stage, i + 1, len(qs))
            store.close()
    return CustomerView(
        label=label,
        answer_mode=mode or "auto",
        first_token_deadline_s=st.embedded.first_token_s,
        turns=len(turns),
        first_event=Timing.of([t.first_event_s for t in turns if t.first_event_s is not None]),
        done=Timing.of([t.done_s for t in turns]),
        lost_to_model=lost,
        quoted_as_model_slow=slow,
        modes=modes,
    )


def _values(messages: list[dict[str, str]]) -> dict[str, str]:
    by_role = {m["role"]: m["content"] for m in messages}
    return {"system": by_role["system"], "user": by_role["user"]}


def _result(
    st: Settings,
    qs: list[str],
    captured: dict[str, list[dict[str, str]]],
    gateway_pairs: list[Pair],
    e2e_pairs: list[E2EPair],
    started: float,
    machine: Machine,
) -> TtftResult:
    g_ours = Timing.of([p.ours_s for p in gateway_pairs])
    g_direct = Timing.of([p.direct_s for p in gateway_pairs])
    e_first = Timing.of([p.model_first_token_s for p in e2e_pairs])
    e_direct = Timing.of([p.direct_ttft_s for p in e2e_pairs])
    events = [p for p in e2e_pairs if p.first_event_s is not None]
    e_event = Timing.of([p.first_event_s for p in events if p.first_event_s is not None])
    e_shown = Timing.of([p.direct_shown_s for p in events])
    steps: dict[str, list[float]] = {}
    for p in e2e_pairs:
        for k, v in p.server_steps_ms.items():
            steps.setdefault(k, []).append(v)
    modes: dict[str, int] = {}
    for p in e2e_pairs:
        modes[p.mode or "none"] = modes.get(p.mode or "none", 0) + 1
    gateway_ratio = Ratio.of(g_ours.median_ms or 0, g_direct.median_ms or 0, target=f"<= {TARGET:.2f}")
    e2e_ratio = Ratio.of(e_first.median_ms or 0, e_direct.median_ms or 0, target=f"<= {TARGET:.2f}")
    return TtftResult(
        model=Path(st.embedded.model_path or default_gguf_path()).name,
        n_ctx=st.embedded.n_ctx,
        threads=st.threads,
        max_tokens=st.embedded.max_tokens,
        questions=len(qs),
        prompt_chars_median=statistics.median(sum(len(m["content"]) for m in captured[q]) for q in qs),
        gateway=g_ours,
        gateway_direct=g_direct,
        gateway_ratio=gateway_ratio,
        gateway_ratio_per_question_median=_ratio_median([(p.ours_s, p.direct_s) for p in gateway_pairs]),
        e2e_model_first_token=e_first,
        e2e_direct_ttft=e_direct,
        e2e_ratio=e2e_ratio,
        e2e_ratio_per_question_median=_ratio_median([(p.model_first_token_s, p.direct_ttft_s) for p in e2e_pairs]),
        e2e_before_model=Timing.of([p.model_start_s for p in e2e_pairs]),
        e2e_first_event=e_event,
        e2e_direct_shown=e_shown,
        e2e_first_event_ratio=Ratio.of(e_event.median_ms or 0, e_shown.median_ms or 0, target="(reported)"),
        e2e_first_event_vs_direct_ttft=round((e_event.median_ms or 0) / (e_direct.median_ms or 1), 4),
        server_steps_ms_median={k: round(statistics.median(v), 2) for k, v in steps.items()},
        modes=modes,
        same_prompt=sum(p.same_prompt for p in e2e_pairs),
        same_output=sum(p.same_output for p in e2e_pairs),
        gateway_pairs=gateway_pairs,
        e2e_pairs=e2e_pairs,
        meets_target=gateway_ratio.ratio <= TARGET and e2e_ratio.ratio <= TARGET,
        wall_s=round(time.perf_counter() - started, 1),
        machine=machine,
        load_after=round(Machine().load_1m, 2),
    )


def summary_rows(r: TtftResult) -> list[tuple[str, Any]]:
    def row(t: Timing) -> str:
        return t.row()

    return [
        ("model / n_ctx / threads / max tokens", f"{r.model} / {r.n_ctx} / {r.threads} / {r.max_tokens}"),
        ("questions (answer prompt, median characters)", f"{r.questions} ({r.prompt_chars_median:.0f})"),
        ("gateway: ours, first piece, median / p95 (ms)", row(r.gateway)),
        ("gateway: llama.cpp directly, median / p95 (ms)", row(r.gateway_direct)),
        (
            "gateway ratio, medians (per question) (target <= 1.10)",
            f"{r.gateway_ratio.ratio:.3f} ({r.gateway_ratio_per_question_median:.3f})",
        ),
        ("end to end: POST -> model's first token, median / p95 (ms)", row(r.e2e_model_first_token)),
        ("end to end: llama.cpp directly on that prompt (ms)", row(r.e2e_direct_ttft)),
        (
            "end-to-end ratio, medians (per question) (target <= 1.10)",
            f"{r.e2e_ratio.ratio:.3f} ({r.e2e_ratio_per_question_median:.3f})",
        ),
        ("  of which before the model call (ms)", row(r.e2e_before_model)),
        (
            "  the turn's steps before it, median (ms)",
            ", ".join(
                f"{k} {v:.0f}"
                for k, v in r.server_steps_ms_median.items()
                if k in ("persist", "history", "intent", "rewrite", "retrieve")
            ),
        ),
        ("end to end: POST -> first token event (ms)", row(r.e2e_first_event)),
        ("  llama.cpp directly -> the text shown first (ms)", row(r.e2e_direct_shown)),
        (
            "  first event ratio: to that text / to llama.cpp's first token",
            f"{r.e2e_first_event_ratio.ratio:.3f} / {r.e2e_first_event_vs_direct_ttft:.3f}",
        ),
        ("reply modes", ", ".join(f"{k}: {v}" for k, v in sorted(r.modes.items()))),
        (
            "same prompt as captured / same output as llama.cpp",
            f"{r.same_prompt} / {r.same_output} of {len(r.e2e_pairs)}",
        ),
        *(
            row_
            for c in r.customer
            for row_ in (
                (f"customers, {c.label} ({c.turns} questions, deadline {c.first_token_deadline_s:g} s)", ""),
                ("  POST -> first text, median / p95 (ms)", row(c.first_event)),
                ("  POST -> done, median / p95 (ms)", row(c.done)),
                ("  turns lost to the model / quoted as it was slow", f"{c.lost_to_model} / {c.quoted_as_model_slow}"),
                ("  reply modes", ", ".join(f"{k}: {v}" for k, v in sorted(c.modes.items()))),
            )
        ),
        (
            "wall time (s) / load average before -> after",
            f"{r.wall_s:.0f} / {r.machine.load_1m:.2f} -> {r.load_after:.2f}",
        ),
    ]
