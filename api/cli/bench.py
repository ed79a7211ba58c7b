"""`cxa bench ...`: one benchmark per command on the public dev datasets, and the performance benchmarks.

Each command runs a benchmark module of `evals` (quality: `evals/bench/`, performance: `evals/perf/`,
`evals/load.py`), prints the rows that the result describes itself with, and writes the result as JSON
(default: <data-dir>/bench/<name>.json). The suite that compares them with a baseline is `cxa eval bench`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from api.cli.common import (
    DataDir,
    FiguresOut,
    SharedData,
    configure_logging,
    console,
    fail,
    load_settings,
    metrics_table,
    parse_time,
    progress_bars,
    side_by_side,
    stage_progress,
    write_figures,
)
from assistant.errors import ModelUnavailableError
from assistant.settings import Settings
from knowledge.errors import KnowledgeError

app = typer.Typer(
    help="Benchmarks on the public dev datasets (figures printed and written as JSON).", no_args_is_help=True
)

T = TypeVar("T")


def run_bench(data_dir: Path | None, data: Path | None, run: Callable[[Settings, Path, Any], T]) -> tuple[Settings, T]:
    """Settings, quiet logging, a progress bar, and one clear line (exit 1) for a missing dataset or model."""
    from evals.datasets import DatasetMissingError

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    with progress_bars() as bar:
        try:
            return settings, run(settings, data or settings.shared_data_dir, stage_progress(bar))
        except (DatasetMissingError, KnowledgeError, ModelUnavailableError) as exc:
            fail(str(exc))


def chunk_counts(value: str, name: str) -> list[int]:
    """The index sizes of option `name` ("1000,100_000"); exit 2 unless each is between 1 and 1,000,000."""
    try:
        sizes = [int(v.replace("_", "").strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(n < 1 or n > 1_000_000 for n in sizes):
        fail(f"{name}: a comma-separated list of chunk counts between 1 and 1,000,000 (e.g. 1000,100000)", 2)
    return sizes


# -- quality ----------------------------------------------------------------------------------------------


@app.command("retrieval")
def bench_retrieval(
    k: Annotated[int, typer.Option(min=1, max=50, help="recall@k")] = 5,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N dev turns")] = None,
    data: SharedData = None,
    fresh: Annotated[bool, typer.Option(help="re-embed all documents (measures ingest throughput)")] = False,
    dialogues: Annotated[
        bool,
        typer.Option(
            "--dialogues",
            help="replay whole dev dialogues through the engine (--limit: the first N dialogues): gold-page "
            "citation rate per turn, by position, dialogues cut short by a handoff, topic switches",
        ),
    ] = False,
    switches: Annotated[int, typer.Option(min=0, help="with --dialogues: spliced topic-switch dialogues")] = 60,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """doc2dial dev: recall@k and MRR over all 273 pages, query latency, ingest throughput; with --dialogues,
    follow-ups through the real engine."""
    from evals.bench.retrieval import run_retrieval

    if dialogues:
        from evals.bench.dialogues import run_dialogues

        settings, dial = run_bench(
            data_dir,
            data,
            lambda st, path, progress: run_dialogues(st, path, limit=limit, switches=switches, progress=progress),
        )
        metrics_table(dial.benchmark, dial.summary_rows())
        write_figures(settings, "dialogues", dial.model_dump(), out)
        return
    settings, result = run_bench(
        data_dir,
        data,
        lambda st, path, progress: run_retrieval(st, path, k=k, limit=limit, fresh=fresh, progress=progress),
    )
    metrics_table(result.benchmark, result.summary_rows())
    write_figures(settings, "retrieval", result.model_dump(), out)


def print_handoff(run: Any) -> None:
    """The figures of a `evals.bench.handoff.HandoffRun`: both benchmarks, their reliability tables, the sweep."""
    from evals.bench.handoff import RELIABILITY_COLUMNS, reliability_rows

    basis = (
        f"override CXA_POLICY__HANDOFF_BELOW={run.threshold:.2f}"
        if run.threshold_from == "override"
        else f"costs: wrong answer {run.cost_wrong_answer:g}, false handoff {run.cost_false_handoff:g} "
        f"-> p >= {run.threshold:.3f}"
    )
    metrics_table(
        f"knowing when not to answer (model {run.model_version}; threshold {basis})",
        [*run.clinc150.summary_rows(run.threshold), *run.doc2dial.summary_rows()],
    )
    for name, result in (("doc2dial", run.doc2dial), ("CLINC150", run.clinc150)):
        table = Table(title=f"{name} reliability, out of fold (ECE {result.ece:.3f})")
        for col in RELIABILITY_COLUMNS:
            table.add_column(col, justify="right")
        for row in reliability_rows(result.reliability):
            table.add_row(*row)
        console.print(table)
    d2d = run.doc2dial
    sweep = Table(title="doc2dial threshold sweep (out of fold)")
    for col in d2d.SWEEP_COLUMNS:
        sweep.add_column(col, justify="right")
    for row in d2d.sweep_rows():
        sweep.add_row(*row)
    console.print(sweep)


@app.command("handoff")
def bench_handoff(
    limit: Annotated[int | None, typer.Option(min=1, help="sample N doc2dial turns and N CLINC queries")] = None,
    data: SharedData = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Knowing when not to answer, out of fold: doc2dial page removed vs present and CLINC150 out-of-scope, with
    AUROC, OOS recall at 95% in-scope answered, calibration (ECE, reliability) and the policy's rates."""
    from evals.bench.handoff import run_handoff

    settings, run = run_bench(
        data_dir, data, lambda st, path, progress: run_handoff(st, path, limit=limit, seed=seed, progress=progress)
    )
    print_handoff(run)
    write_figures(settings, "handoff", run.model_dump(mode="json"), out)


@app.command("summaries")
def bench_summaries(
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N dev dialogues")] = None,
    data: SharedData = None,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Handoff summaries on TweetSumm dev: ROUGE-L vs the human summaries, with the configured chat model."""
    from evals.bench.summaries import run_summaries

    settings, result = run_bench(data_dir, data, lambda st, path, progress: run_summaries(st, path, limit, progress))
    metrics_table(result.benchmark, result.summary_rows())
    write_figures(settings, "summaries", result.model_dump(), out)


@app.command("answers")
def bench_answers(
    limit: Annotated[int, typer.Option(min=1, help="sample N doc2dial dev turns")] = 60,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    modes: Annotated[
        str, typer.Option(help="answer modes to compare, comma-separated: auto, extractive, generative")
    ] = "extractive,generative",
    data: SharedData = None,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """doc2dial dev turns through the engine with the configured chat model: token-F1 vs the gold answer,
    groundedness, handoffs and latency, one column per answer mode (quoted vs written by the model)."""
    from evals.bench.answers import AnswersResult, run_answers

    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    if not chosen or any(m not in ("auto", "extractive", "generative") for m in chosen):
        fail("--modes takes auto, extractive and/or generative, comma-separated", 2)

    def run(st: Settings, path: Path, progress: Any) -> list[AnswersResult]:
        results = []
        for mode in chosen:
            one = st.model_copy(update={"answer": st.answer.model_copy(update={"mode": mode})})
            results.append(run_answers(one, path, limit=limit, seed=seed, progress=progress))
        return results

    settings, results = run_bench(data_dir, data, run)
    table = Table(title=f"answers on doc2dial dev ({limit} turns, seed {seed})")
    table.add_column("metric")
    for r in results:
        table.add_column(r.mode, justify="right")
    rows = [dict(r.summary_rows()) for r in results]
    for name, _ in results[0].summary_rows():
        table.add_row(name, *(str(row.get(name, "")) for row in rows))
    console.print(table)
    write_figures(settings, "answers", {r.mode: r.model_dump() for r in results}, out)


@app.command("quotes")
def bench_quotes(
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N dev turns")] = None,
    folds: Annotated[int, typer.Option(min=2, max=20, help="cross-validation folds (grouped by page)")] = 5,
    train: Annotated[bool, typer.Option(help="fit on all turns and write assistant/turn/quote_model.json")] = False,
    data: SharedData = None,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Which sentence an answer quotes: the learned scorer against the hand-set one on doc2dial dev (token-F1 of
    the quote, folds grouped by page); --train writes the model the assistant loads."""
    from evals.bench.quotes import run_quotes

    settings, result = run_bench(
        data_dir,
        data,
        lambda st, path, progress: run_quotes(st, path, limit=limit, folds=folds, train=train, progress=progress),
    )
    metrics_table(result.benchmark, result.summary_rows())
    write_figures(settings, "quotes", result.model_dump(), out)


@app.command("account")
def bench_account(
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N cases")] = None,
    cases: Annotated[Path | None, typer.Option(help="cases (JSONL); default evals/account/cases.jsonl")] = None,
    customers: Annotated[
        Path | None, typer.Option(help="the customers they are about (customers.json format); default the samples")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="'now' for the record, ISO-8601 (default 2026-11-26T12:00Z)")
    ] = None,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Account answers on the sample customers (evals/account/cases.jsonl): facts from the record, leaks of other
    customers' data, routing, clarifications and latency, "now" fixed at the day the samples describe."""
    from assistant.samples import SAMPLE_CUSTOMERS
    from evals.bench.account import AS_OF, CASES, run_account

    now = parse_time(as_of, "as-of") or AS_OF
    settings, result = run_bench(
        data_dir,
        None,
        lambda st, path, progress: run_account(st, cases or CASES, limit, progress, now, customers or SAMPLE_CUSTOMERS),
    )
    metrics_table(result.benchmark, result.summary_rows())
    write_figures(settings, "account", result.model_dump(mode="json"), out)


@app.command("topics")
def bench_topics(
    folds: Annotated[int, typer.Option(min=2, max=20, help="cross-validation folds (stratified)")] = 5,
    limit: Annotated[int | None, typer.Option(min=2, help="N queries, sampled evenly over the intents")] = None,
    seed: Annotated[int, typer.Option(help="seed of the folds, the splits and the sample")] = 0,
    data: SharedData = None,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Conversation topics: k-fold cross-validation of the topic classifier on BANKING77 train (77 intents)."""
    from evals.bench.topics import TopicsResult, run_topics

    def run(st: Settings, path: Path, progress: Any) -> TopicsResult:
        try:
            return run_topics(st, path, folds=folds, seed=seed, limit=limit, progress=progress)
        except ValueError as exc:  # e.g. too few queries per intent for the folds
            fail(str(exc))

    settings, result = run_bench(data_dir, data, run)
    metrics_table(result.benchmark, result.summary_rows())
    write_figures(settings, "topics", result.model_dump(), out)


@app.command("approved")
def bench_approved(
    limit: Annotated[int | None, typer.Option(min=1, help="at most N queries asked per intent and round")] = None,
    variants: Annotated[int, typer.Option(min=0, max=20, help="variants per approved answer")] = 2,
    rounds: Annotated[int, typer.Option(min=1, max=10, help="rounds, each with other intents answered")] = 3,
    seed: Annotated[int, typer.Option(help="seed of the first round")] = 0,
    data: SharedData = None,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Approved-answer matching on BANKING77 and CLINC150 paraphrase groups: precision and recall at
    CXA_APPROVED__MIN_SCORE, and a threshold sweep."""
    from evals.bench.approved import run_approved

    settings, result = run_bench(
        data_dir,
        data,
        lambda st, path, progress: run_approved(
            st, path, limit=limit, rounds=rounds, variants=variants, seed=seed, progress=progress
        ),
    )
    metrics_table(result.benchmark, result.summary_rows())
    sweep = Table(title="threshold sweep (CXA_APPROVED__MIN_SCORE), pooled")
    for col in ("threshold", "precision", "recall", "BANKING77 precision", "CLINC150 precision"):
        sweep.add_column(col, justify="right")
    for p in result.sweep:
        sweep.add_row(
            f"{p.threshold:.2f}",
            f"{p.precision:.3f}",
            f"{p.recall:.3f}",
            f"{p.banking77_precision:.3f}",
            f"{p.clinc150_precision:.3f}",
        )
    console.print(sweep)
    write_figures(settings, "approved", result.model_dump(), out)


# -- performance ------------------------------------------------------------------------------------------


@app.command("load")
def bench_load(
    concurrency: Annotated[int, typer.Option(min=1, max=2000, help="customers sending at once")] = 100,
    duration: Annotated[float, typer.Option(min=1, help="seconds the customers keep sending")] = 120.0,
    stream: Annotated[bool, typer.Option(help="turns as SSE streams instead of JSON")] = False,
    workers: Annotated[int, typer.Option(min=1, max=32, help="uvicorn workers of the server started here")] = 1,
    base_url: Annotated[
        str | None, typer.Option(help="a running server (start it with CXA_RATE_LIMITS=off); default: start one")
    ] = None,
    widget_key: Annotated[str | None, typer.Option(help="the widget key of --base-url")] = None,
    seed: Annotated[int, typer.Option(help="question choice seed")] = 0,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Many customers at once for a fixed time, then every transcript audited: throughput, p50/p95/p99 per
    request kind, 5xx, lost and duplicated messages (exit 1 if any). Without --base-url a server is started
    in its own process with the fake chat model on a fresh data dir."""
    from contextlib import nullcontext

    from evals.load import local_server, run_load, summary_rows

    if base_url and not widget_key:
        fail("--base-url needs --widget-key", 2)
    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    server = nullcontext((base_url, widget_key)) if base_url else local_server(workers=workers)
    with server as (url, key), progress_bars() as bar:
        result = run_load(
            url,
            key,
            concurrency=concurrency,
            duration_s=duration,
            stream=stream,
            seed=seed,
            progress=stage_progress(bar),
        )
    result.server_workers = None if base_url else workers
    metrics_table("Load", summary_rows(result))
    write_figures(settings, "load" + ("-stream" if stream else ""), result.model_dump(), out)
    if result.errors_5xx or result.transport_errors or result.lost_messages or result.duplicated_messages:
        fail("load: 5xx, transport errors, lost or duplicated messages (see the table)")


@app.command("search")
def bench_search(
    sizes: Annotated[str, typer.Option(help="index sizes in chunks, comma-separated")] = "1000,10000,100000",
    questions: Annotated[int, typer.Option(min=10, max=5000, help="real questions asked per size")] = 300,
    seed: Annotated[int, typer.Option(help="seed of the synthetic index and the question sample")] = 0,
    data: SharedData = None,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Retrieval latency against index size: query embedding, dense (Chroma) search, BM25 and the full hybrid
    search, p50/p95 over real questions, plus the keyword index's build time and memory. The indexes are
    synthetic beyond ~2,100 real chunks (see evals/perf/synthetic.py), built once under
    <data-dir>/bench/index-N/ (the first 100k build takes ~10 minutes, reruns reuse it)."""
    from evals.perf.search import run_search, summary_rows

    wanted = chunk_counts(sizes, "--sizes")
    settings, figures = run_bench(
        data_dir,
        data,
        lambda st, path, progress: run_search(
            st.model_copy(update={"shared_data_dir": path}), wanted, questions, seed, progress
        ),
    )
    metrics_table("retrieval latency vs index size (ms)", summary_rows(figures))
    write_figures(settings, "search", figures.model_dump(), out)


@app.command("overhead")
def bench_overhead(
    chunks: Annotated[str, typer.Option(help="index sizes in chunks, comma-separated")] = "1000,100000",
    conversations: Annotated[
        int, typer.Option(min=4, max=5000, help="scripts per size (3 turns each, run once per path)")
    ] = 40,
    seed: Annotated[int, typer.Option(help="seed of the synthetic index and the scripts")] = 0,
    data: SharedData = None,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Turn overhead with a chat model that answers at once: everything but generation (persistence, history,
    retrieval, grounding, confidence, signals, topic), through the engine and through the HTTP route
    in-process, interleaved; median/p95, a breakdown per step, SQL statements per turn, and the target
    (p95 under 25 ms at 100k chunks). Each size gets a fresh database under <data-dir>/bench/overhead-N/."""
    from api.app import create_app
    from evals.perf.overhead import run_overhead, summary_rows

    wanted = chunk_counts(chunks, "--chunks")
    settings, figures = run_bench(
        data_dir,
        data,
        lambda st, path, progress: run_overhead(
            lambda s, model: create_app(s, chat_model=model),
            st.model_copy(update={"shared_data_dir": path}),
            wanted,
            conversations,
            seed,
            progress,
        ),
    )
    table = Table(
        title=f"turn overhead, instant model (load {figures.machine.load_1m:.1f} on {figures.machine.cores} cores)"
    )
    for col in ("figure", "engine", "HTTP"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for row in summary_rows(figures):
        table.add_row(*row)
    console.print(table)
    write_figures(settings, "overhead", figures.model_dump(), out)


@app.command("ingest")
def bench_ingest(
    docs: Annotated[int, typer.Option(min=1, help="doc2dial dev pages added to the sample help center")] = 60,
    rounds: Annotated[int, typer.Option(min=1, max=100, help="slices, each ingested and embedded raw in turn")] = 6,
    raw_batch: Annotated[
        int | None, typer.Option(min=1, help="texts per run of the raw model (default: the calibration's fastest)")
    ] = None,
    data: SharedData = None,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Ingest throughput (chunks/s, tokens/s) of the real ingest path against its limit, the bare ONNX
    embedding model on the same chunk texts with its best batching, measured in turn in the same run
    (target: the ingest at 80% of the raw model or better). Writes to a temporary Chroma directory, never
    to your index."""
    from evals.perf.ingest import run_ingest_bench, summary_rows

    settings, result = run_bench(
        data_dir,
        data,
        lambda st, path, progress: run_ingest_bench(
            st,
            path,
            docs=docs,
            rounds=rounds,
            raw_batching=(raw_batch, None) if raw_batch else None,
            progress=progress,
        ),
    )
    metrics_table("Ingest vs the raw embedding model", summary_rows(result))
    write_figures(settings, "ingest", result.model_dump(), out)


@app.command("ttft")
def bench_ttft(
    questions: Annotated[int, typer.Option(min=2, max=40, help="sample help-center questions asked")] = 12,
    busy_cores: Annotated[
        int, typer.Option(min=0, max=64, help="also run with N processes burning a core each; figures side by side")
    ] = 0,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Time to first token with the embedded model against llama.cpp called directly on the same messages
    (same model file, n_ctx, threads, options), alternating: at the gateway, and end to end through a server
    started here (POST -> the model's first token, and -> the first `token` SSE event). Target: within 10%."""
    from evals.perf.busy import busy_cores as burning
    from evals.perf.ttft import run_ttft, summary_rows

    settings, result = run_bench(
        data_dir, None, lambda st, _path, progress: run_ttft(st, n_questions=questions, progress=progress)
    )
    if not busy_cores:
        metrics_table("Time to first token vs llama.cpp", summary_rows(result))
        write_figures(settings, "ttft", result.model_dump(), out)
        return
    with burning(busy_cores):
        _, busy = run_bench(
            data_dir, None, lambda st, _path, progress: run_ttft(st, n_questions=questions, progress=progress)
        )
    side_by_side(
        f"Time to first token vs llama.cpp: quiet, and {busy_cores} core(s) busy",
        summary_rows(result),
        summary_rows(busy),
        ("quiet", f"{busy_cores} busy"),
    )
    write_figures(
        settings, "ttft", {"quiet": result.model_dump(), "busy": busy.model_dump(), "busy_cores": busy_cores}, out
    )


@app.command("stream")
def bench_stream(
    concurrency: Annotated[int, typer.Option(min=1, max=2000, help="conversations streaming at once")] = 50,
    duration: Annotated[float, typer.Option(min=1, help="seconds each configuration keeps sending")] = 30.0,
    workers: Annotated[str, typer.Option(help="uvicorn worker counts to run, comma-separated")] = "1,2",
    token_delay_ms: Annotated[
        str, typer.Option(help="the fake model's pause before each streamed piece (ms), comma-separated")
    ] = "0,20",
    seed: Annotated[int, typer.Option(help="question choice seed")] = 0,
    busy_cores: Annotated[
        int, typer.Option(min=0, max=64, help="also run with N processes burning a core each; both tables printed")
    ] = 0,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """API throughput with many concurrent streaming conversations against a server in its own process (the
    fake chat model), for each worker count and model pace: turns/s, first `token` event and whole turn
    median / p95, CPU per turn, then every transcript audited (exit 1 on any 5xx, lost or duplicated message)."""
    from evals.perf.stream import run_stream_bench, summary_columns, summary_row

    try:
        worker_counts = tuple(int(w) for w in workers.split(","))
        delays = tuple(float(d) for d in token_delay_ms.split(","))
    except ValueError:
        fail("--workers and --token-delay-ms take comma-separated numbers, e.g. 1,2", 2)
    from evals.perf.busy import busy_cores as burning

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    results = {}
    for label, n in [("quiet", 0), *([(f"{busy_cores} core(s) busy", busy_cores)] if busy_cores else [])]:
        with burning(n), progress_bars() as bar:
            result = run_stream_bench(
                concurrency, duration, worker_counts, delays, seed=seed, progress=stage_progress(bar)
            )
        table = Table(
            title=f"{concurrency} concurrent streaming conversations, {duration:g} s per configuration, {label}"
        )
        for col in summary_columns():
            table.add_column(col, justify="right")
        for run in result.runs:
            table.add_row(*summary_row(run))
        console.print(table)
        console.print(f"load average {result.machine.load_1m:.2f} -> {result.load_after:.2f}, {result.wall_s:.0f} s")
        results[label] = result
    write_figures(settings, "stream", {k: r.model_dump() for k, r in results.items()}, out)
    if not all(r.clean for r in results.values()):
        fail("stream: 5xx, transport errors, lost or duplicated messages (see the table and the JSON)")
