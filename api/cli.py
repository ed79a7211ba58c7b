"""`cxa`: serve the API, load the demo, ingest knowledge, chat in the terminal, run benchmarks.

Every command reads the same `Settings` (CXA_* variables or .env); `--data-dir` overrides
CXA_DATA_DIR. Errors are printed as one clear line and exit with a non-zero code.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from assistant.errors import AssistantError, ModelUnavailableError
from assistant.settings import Settings
from knowledge.errors import KnowledgeError

app = typer.Typer(
    help="cx-assistant: a support assistant with CX telemetry and human handoff.",
    no_args_is_help=True,
    add_completion=False,
)
bench_app = typer.Typer(
    help="Benchmarks on the public dev datasets (figures printed and written as JSON).", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")
simulate_app = typer.Typer(
    help="Scripted customers through the API, checked against the CX figures.", no_args_is_help=True
)
app.add_typer(simulate_app, name="simulate")
eval_app = typer.Typer(
    help="Conversation quality: scorecards, judge calibration against reviews, and the benchmark suite.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")
db_app = typer.Typer(
    help="The database schema: migrations (Alembic) to this version's head, what the database is at, the history.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
console = Console(stderr=False)
err = Console(stderr=True, soft_wrap=True)  # one error, one line: scripts and logs grep it

T = TypeVar("T")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="where state lives (default: CXA_DATA_DIR or ./.cxa-data)")
]


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    """The settings from the environment (and `.env`); a bad value is a one-line error per setting, exit 2."""
    from pydantic import ValidationError

    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [
            f"CXA_{'__'.join(str(part) for part in e['loc']).upper()}={e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        ]
        _fail("invalid settings:\n  " + "\n  ".join(problems), 2)
        raise  # unreachable: _fail exits


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def _stage_progress(bar: Progress) -> Callable[[str, int, int], None]:
    """A `progress(stage, done, total)` callback for the benchmark runners: one bar per stage."""
    tasks: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total, unit="chunks" if stage == "ingest" else stage)
        bar.update(tasks[stage], completed=done, total=total)

    return progress


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("chromadb", "httpx", "onnxruntime", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# -- ingest ---------------------------------------------------------------------------------------------


def _ingest(
    settings: Settings, path: Path | None, doc2dial: bool, origin: str | None, prune: bool, rebuild: bool
) -> None:
    from assistant.services import build_index
    from knowledge.loaders import iter_folder, load_doc2dial, load_file, supported_suffixes

    if doc2dial:
        source = path or settings.shared_data_dir / "doc2dial" / "documents.jsonl"
        if not source.is_file():
            _fail(f"doc2dial documents not found at {source}")
        docs = list(load_doc2dial(source))
        origin = origin or "doc2dial"
        skipped: list[str] = []
    else:
        if path is None:
            _fail("give a folder or file to ingest (or --doc2dial)", 2)
        assert path is not None
        if not path.exists():
            _fail(f"{path} does not exist", 2)
        if path.is_file():
            docs = [load_file(path)]  # a single unsupported or unreadable file is an error
            origin, skipped = origin or f"file:{path.stem}", []
            prune = False
        else:
            docs, skipped = [], []
            for p, loaded in iter_folder(path):
                if isinstance(loaded, Exception):
                    skipped.append(f"{p.relative_to(path)}: {loaded}")
                else:
                    docs.append(loaded)
            origin = origin or f"folder:{path.resolve().name}"
            if not docs:
                _fail(f"no readable documents in {path} (supported: {', '.join(supported_suffixes())})")

    index = build_index(settings, bulk=True)  # this process only ingests: the model's threads may spin
    if rebuild:
        index.rebuild()
    with _progress() as bar:
        task = bar.add_task("embedding", total=None, unit="chunks")

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or 1)

        report = index.ingest(docs, origin=origin, prune=prune, progress=progress)
    table = Table(title=f"ingest {origin}", show_header=True)
    for col in ("added", "updated", "removed", "unchanged", "skipped", "chunks embedded", "chunks/s"):
        table.add_column(col, justify="right")
    table.add_row(
        str(len(report.added)),
        str(len(report.updated)),
        str(len(report.removed)),
        str(len(report.unchanged)),
        str(len(skipped)),
        str(report.chunks_embedded),
        f"{report.chunks_per_second:.1f}" if report.chunks_embedded else "-",
    )
    console.print(table)
    console.print(f"index now holds {index.count()} chunks ({report.seconds:.1f}s)")
    for s in skipped:
        err.print(f"[yellow]skipped[/] {s}")


@app.command()
def ingest(
    path: Annotated[Path | None, typer.Argument(help="folder of .md/.html/.txt articles, or one file")] = None,
    doc2dial: Annotated[
        bool, typer.Option("--doc2dial", help="ingest doc2dial documents.jsonl (PATH or the shared data)")
    ] = False,
    origin: Annotated[str | None, typer.Option(help="label of this source; pruning only touches its documents")] = None,
    prune: Annotated[bool, typer.Option(help="remove documents of this origin that are no longer in PATH")] = True,
    rebuild: Annotated[bool, typer.Option(help="drop the whole index first (after an embedding model change)")] = False,
    data_dir: DataDir = None,
) -> None:
    """Add, update and remove help articles in the index; unchanged articles are not embedded again."""
    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    try:
        _ingest(settings, path, doc2dial, origin, prune, rebuild)
    except (KnowledgeError, AssistantError, ValueError) as exc:
        _fail(str(exc))


# -- serve / demo ----------------------------------------------------------------------------------------


def _print_keys(settings: Settings, host: str, port: int) -> None:
    from api.security import load_keys

    keys = load_keys(settings)
    console.print(f"[bold]cx-assistant[/] on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    console.print(f"data dir: {settings.data_dir}")
    if keys.generated or keys.path:
        console.print(f"credentials (kept in {keys.path}; set CXA_* variables to choose your own):")
        console.print(f"  X-Widget-Key: {keys.widget_key}")
        console.print(f"  agent token:  {keys.agent_token}")
        console.print(f"  cx token:     {keys.cx_token}")
        console.print(f"  admin token:  {keys.admin_token}")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    if host not in LOOPBACK:
        if settings.web.demo_page:
            # the demo page computes identity hashes for anyone who asks: never beyond this machine
            _fail("CXA_WEB__DEMO_PAGE hands out customer identity hashes: serve it on 127.0.0.1 only", 2)
        console.print("[yellow]listening beyond loopback: keep the printed credentials secret[/]")
    _print_keys(settings, host, port)
    # Workers are separate processes that build their settings from the environment.
    os.environ["CXA_DATA_DIR"] = str(settings.data_dir)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    data_dir: DataDir = None,
) -> None:
    """Start the HTTP API (loads nothing: use `cxa demo` or `cxa ingest` for data)."""
    settings = _settings(data_dir)
    _configure_logging(settings)
    _serve(settings, host, port, workers)


def _load_samples(settings: Settings) -> Any:
    """Ingest the sample help center and load the sample customers (idempotent); the customers report."""
    from assistant.samples import load_customers
    from assistant.store.repo import Store
    from knowledge.loaders import SAMPLE_HELPCENTER

    try:
        _ingest(settings, SAMPLE_HELPCENTER, False, "samples", True, False)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store.from_settings(settings)
        report = load_customers(store)
        store.close()
    except (KnowledgeError, AssistantError) as exc:
        _fail(str(exc))
    return report


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="start the server after loading")] = True,
    data_dir: DataDir = None,
) -> None:
    """Load the sample help center (Larkspur Home) and 22 sample customers, then serve."""
    from api.security import load_keys

    settings = _settings(data_dir)
    if "company_name" not in settings.model_fields_set:  # the sample company, unless one is configured
        settings = settings.model_copy(update={"company_name": "Larkspur Home"})
        os.environ["CXA_COMPANY_NAME"] = "Larkspur Home"  # for the server process started below
    # The demo host page signs identities for whoever asks: on for `cxa demo` only (never for `cxa serve`).
    settings = settings.model_copy(update={"web": settings.web.model_copy(update={"demo_page": True})})
    os.environ["CXA_WEB__DEMO_PAGE"] = "true"  # for the server process started below
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    report = _load_samples(settings)
    console.print(
        f"customers: {report.customers_added} added, {report.customers_existing} already there "
        f"({report.events} events, {report.conversations} earlier conversations)"
    )
    keys = load_keys(settings)
    console.print(f"try a verified customer, e.g. cus_1001: customer_hash={keys.customer_hash('cus_1001')}")
    base = f"http://{host}:{port}"
    console.print(f"shop page with the widget: {base}/demo  console: {base}/console  dashboard: {base}/dashboard")
    if serve_after:
        _configure_logging(settings)
        _serve(settings, host, port, 1)


# -- chat ------------------------------------------------------------------------------------------------


@app.command()
def chat(
    customer: Annotated[str | None, typer.Option(help="chat as this (verified) customer id")] = None,
    data_dir: DataDir = None,
) -> None:
    """Chat with the assistant in the terminal (same engine as the API). Empty line or Ctrl-D to quit."""
    from assistant.models import CitationsEvent, DoneEvent, HandoffEvent, TokenEvent
    from assistant.services import Services

    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    try:
        services = Services.build(settings)
    except (KnowledgeError, AssistantError) as exc:
        _fail(str(exc))
    for problem in services.startup_problems:
        err.print(f"[yellow]warning:[/] {problem}")
    if customer and services.store.get_customer(customer) is None:
        _fail(f"no customer {customer!r} (load one with `cxa demo --no-serve` or PUT /v1/customers/{customer})")
    conv = services.engine.start_conversation(customer, verified=customer is not None, channel="api")
    console.print(f"conversation {conv.id}" + (f" as {customer}" if customer else " (anonymous)"))
    while True:
        try:
            text = console.input("[bold cyan]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not text:
            break
        if len(text) > settings.max_message_chars:
            err.print(f"[red]messages are limited to {settings.max_message_chars} characters[/]")
            continue
        console.print("[bold green]assistant>[/] ", end="")
        for ev in services.engine.stream_turn(conv.id, text):
            if isinstance(ev, TokenEvent):
                console.print(ev.text, end="", soft_wrap=True, highlight=False, markup=False)
            elif isinstance(ev, CitationsEvent):
                console.print()
                for n, c in enumerate(ev.citations, 1):
                    console.print(f"  [dim][{n}] {c.title} ({c.source_id}) score {c.score:.2f}[/]")
            elif isinstance(ev, HandoffEvent):
                console.print(f"\n  [yellow]handed off ({ev.handoff.reason}): {ev.handoff.summary.issue}[/]")
            elif isinstance(ev, DoneEvent):
                t = ev.turn
                console.print(
                    f"\n  [dim]confidence {t.confidence:.2f}, {t.reply.mode if t.reply else 'no reply'}, "
                    f"{t.timings_ms.get('total', 0):.0f} ms[/]"
                )
    services.close()


# -- bench -----------------------------------------------------------------------------------------------


def _run_bench(data_dir: Path | None, data: Path | None, run: Callable[[Settings, Path, Any], T]) -> tuple[Settings, T]:
    """Settings, quiet logging, a progress bar, and one clear line (exit 1) for a missing dataset or model."""
    from evals.datasets import DatasetMissingError

    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    with _progress() as bar:
        try:
            return settings, run(settings, data or settings.shared_data_dir, _stage_progress(bar))
        except (DatasetMissingError, KnowledgeError, ModelUnavailableError) as exc:
            _fail(str(exc))
    raise AssertionError("unreachable")


def _metrics_table(title: str, rows: list[tuple[str, object]]) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)


def _write_figures(settings: Settings, name: str, figures: dict[str, Any], out: Path | None) -> None:
    target = out or settings.data_dir / "bench" / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(figures, indent=2))
    console.print(f"written to {target}")


@bench_app.command("retrieval")
def bench_retrieval(
    k: Annotated[int, typer.Option(min=1, max=50, help="recall@k")] = 5,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N dev turns")] = None,
    data: Annotated[Path | None, typer.Option(help="the shared data folder (default: CXA_SHARED_DATA_DIR)")] = None,
    fresh: Annotated[bool, typer.Option(help="re-embed all documents (measures ingest throughput)")] = False,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """doc2dial dev: recall@k and MRR over all 273 pages, query latency, ingest throughput."""
    from evals.bench.retrieval import run_retrieval

    settings, result = _run_bench(
        data_dir,
        data,
        lambda st, path, progress: run_retrieval(st, path, k=k, limit=limit, fresh=fresh, progress=progress),
    )
    rows: list[tuple[str, object]] = [
        ("turns", result.turns),
        (f"recall@{k}", f"{result.recall_at_k:.3f}"),
        ("MRR", f"{result.mrr:.3f}"),
        ("query latency p50 (ms)", result.latency_ms_p50),
        ("query latency p95 (ms)", result.latency_ms_p95),
        ("documents / chunks", f"{result.ingest.documents} / {result.ingest.chunks}"),
        ("chunks embedded this run", result.ingest.chunks_embedded),
        ("ingest throughput (chunks/s)", result.ingest.chunks_per_second or "- (nothing to embed; use --fresh)"),
    ]
    _metrics_table(result.benchmark, rows)
    _write_figures(settings, "retrieval", result.model_dump(), out)


@bench_app.command("handoff")
def bench_handoff(
    limit: Annotated[int | None, typer.Option(min=1, help="sample N doc2dial turns and N CLINC queries")] = None,
    data: Annotated[Path | None, typer.Option(help="the shared data folder (default: CXA_SHARED_DATA_DIR)")] = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """Knowing when not to answer: CLINC150 out-of-scope detection and doc2dial removed-document handoffs."""
    from evals.bench.handoff import run_clinc, run_doc2dial_handoff

    settings, (clinc, d2d) = _run_bench(
        data_dir,
        data,
        lambda st, path, progress: (
            run_clinc(st, path, limit=limit, seed=seed, progress=progress),
            run_doc2dial_handoff(st, path, limit=limit, seed=seed, progress=progress),
        ),
    )
    _metrics_table(
        "knowing when not to answer",
        [
            ("CLINC150 in-scope / out-of-scope queries", f"{clinc.in_scope} / {clinc.out_of_scope}"),
            ("CLINC150 AUROC (confidence, in-scope vs OOS)", f"{clinc.auroc:.3f}"),
            ("CLINC150 OOS recall at 95% in-scope answered", f"{clinc.oos_recall_at_95_in_scope:.3f}"),
            ("  (that threshold)", f"{clinc.threshold_at_95_in_scope:.3f}"),
            (
                f"CLINC150 at handoff_below={settings.policy.handoff_below}: in-scope answered / OOS handed off",
                f"{clinc.in_scope_answered_at_policy:.3f} / {clinc.oos_recall_at_policy:.3f}",
            ),
            ("doc2dial turns (each with its document present and removed)", d2d.turns),
            ("doc2dial handoff recall, document removed", f"{d2d.handoff_recall:.3f}"),
            ("doc2dial false-handoff rate, document present", f"{d2d.false_handoff_rate:.3f}"),
            ("doc2dial AUROC (confidence, present vs removed)", f"{d2d.auroc:.3f}"),
        ],
    )
    sweep = Table(title="doc2dial threshold sweep (CXA_POLICY__HANDOFF_BELOW)")
    for col in ("threshold", "handoff recall (removed)", "false handoffs (present)"):
        sweep.add_column(col, justify="right")
    for row in d2d.sweep:
        sweep.add_row(f"{row.threshold:.2f}", f"{row.handoff_recall:.3f}", f"{row.false_handoff_rate:.3f}")
    console.print(sweep)
    _write_figures(settings, "handoff", {"clinc150": clinc.model_dump(), "doc2dial": d2d.model_dump()}, out)


@bench_app.command("summaries")
def bench_summaries(
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N dev dialogues")] = None,
    data: Annotated[Path | None, typer.Option(help="the shared data folder (default: CXA_SHARED_DATA_DIR)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """Handoff summaries on TweetSumm dev: ROUGE-L vs the human summaries, with the configured chat model."""
    from evals.bench.summaries import run_summaries

    settings, result = _run_bench(data_dir, data, lambda st, path, progress: run_summaries(st, path, limit, progress))
    s, e = result.summary, result.extractive
    _metrics_table(
        result.benchmark,
        [
            ("dialogues", result.dialogues),
            ("chat model", result.model),
            (
                "ROUGE-L F1 / P / R (as configured)",
                f"{s.rouge_l_f1:.3f} / {s.rouge_l_precision:.3f} / {s.rouge_l_recall:.3f}",
            ),
            (
                "ROUGE-L F1 / P / R (extractive, no model)",
                f"{e.rouge_l_f1:.3f} / {e.rouge_l_precision:.3f} / {e.rouge_l_recall:.3f}",
            ),
            ("words scored (as configured / extractive)", f"{s.words:.0f} / {e.words:.0f}"),
            ("summaries written by the model (not fallen back)", f"{result.model_written:.3f}"),
            ("content words found in the dialogue", f"{result.supported_words:.3f}"),
            ("summary latency p50 / p95 (ms)", f"{result.latency_ms_p50:.0f} / {result.latency_ms_p95:.0f}"),
            ("wall time (s)", f"{result.seconds:.0f}"),
        ],
    )
    _write_figures(settings, "summaries", result.model_dump(), out)


@bench_app.command("topics")
def bench_topics(
    folds: Annotated[int, typer.Option(min=2, max=20, help="cross-validation folds (stratified)")] = 5,
    limit: Annotated[int | None, typer.Option(min=2, help="N queries, sampled evenly over the intents")] = None,
    seed: Annotated[int, typer.Option(help="seed of the folds, the splits and the sample")] = 0,
    data: Annotated[Path | None, typer.Option(help="the shared data folder (default: CXA_SHARED_DATA_DIR)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """Conversation topics: k-fold cross-validation of the topic classifier on BANKING77 train (77 intents)."""
    from evals.bench.topics import run_topics

    def run(st: Settings, path: Path, progress: Any) -> Any:
        try:
            return run_topics(st, path, folds=folds, seed=seed, limit=limit, progress=progress)
        except ValueError as exc:  # e.g. too few queries per intent for the folds
            _fail(str(exc))

    settings, result = _run_bench(data_dir, data, run)
    _metrics_table(
        result.benchmark,
        [
            ("queries / intents / folds", f"{result.queries} / {result.labels} / {result.folds}"),
            ("accuracy (pooled over folds)", f"{result.accuracy:.3f}"),
            ("macro-F1 (pooled over folds)", f"{result.macro_f1:.3f}"),
            ("accuracy per fold, mean ± sd", f"{result.accuracy_fold_mean:.3f} ± {result.accuracy_fold_std:.3f}"),
            ("macro-F1 per fold, mean ± sd", f"{result.macro_f1_fold_mean:.3f} ± {result.macro_f1_fold_std:.3f}"),
            ("C chosen per fold (inner 80/20 check)", ", ".join(f"{f.C:g}" for f in result.per_fold)),
            (
                f'"other" at min_probability={result.min_probability} / accuracy of the rest',
                f"{result.other_rate:.3f} / {result.accuracy_above_min_probability:.3f}",
            ),
            ("embedding throughput (queries/s)", f"{result.embedding_texts_per_second:.0f}"),
            ("topic latency p50 / p95 (ms, one query)", f"{result.latency_ms_p50:.1f} / {result.latency_ms_p95:.1f}"),
            ("wall time (s)", f"{result.seconds:.0f}"),
        ],
    )
    _write_figures(settings, "topics", result.model_dump(), out)


@bench_app.command("load")
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
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """Many customers at once for a fixed time, then every transcript audited: throughput, p50/p95/p99 per
    request kind, 5xx, lost and duplicated messages (exit 1 if any). Without --base-url a server is started
    in its own process with the fake chat model on a fresh data dir."""
    from contextlib import nullcontext

    from evals.load import local_server, run_load, summary_rows

    if base_url and not widget_key:
        _fail("--base-url needs --widget-key", 2)
    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    server = nullcontext((base_url, widget_key)) if base_url else local_server(workers=workers)
    with server as (url, key), _progress() as bar:
        result = run_load(
            url,
            key,
            concurrency=concurrency,
            duration_s=duration,
            stream=stream,
            seed=seed,
            progress=_stage_progress(bar),
        )
    result.server_workers = None if base_url else workers
    _metrics_table("Load", summary_rows(result))
    _write_figures(settings, "load" + ("-stream" if stream else ""), result.model_dump(), out)
    if result.errors_5xx or result.transport_errors or result.lost_messages or result.duplicated_messages:
        _fail("load: 5xx, transport errors, lost or duplicated messages (see the table)")


def _sizes(value: str, name: str) -> list[int]:
    try:
        sizes = [int(v.replace("_", "").strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(n < 1 or n > 1_000_000 for n in sizes):
        _fail(f"{name}: a comma-separated list of chunk counts between 1 and 1,000,000 (e.g. 1000,100000)", 2)
    return sizes


@bench_app.command("search")
def bench_search(
    sizes: Annotated[str, typer.Option(help="index sizes in chunks, comma-separated")] = "1000,10000,100000",
    questions: Annotated[int, typer.Option(min=10, max=5000, help="real questions asked per size")] = 300,
    seed: Annotated[int, typer.Option(help="seed of the synthetic index and the question sample")] = 0,
    data: Annotated[Path | None, typer.Option(help="the shared data folder (default: CXA_SHARED_DATA_DIR)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """Retrieval latency against index size: query embedding, dense (Chroma) search, BM25 and the full hybrid
    search, p50/p95 over real questions, plus the keyword index's build time and memory. The indexes are
    synthetic beyond ~2,100 real chunks (see evals/perf/synthetic.py), built once under
    <data-dir>/bench/index-N/ (the first 100k build takes ~10 minutes, reruns reuse it)."""
    from evals.perf.search import run_search, summary_rows

    wanted = _sizes(sizes, "--sizes")
    settings, figures = _run_bench(
        data_dir,
        data,
        lambda st, path, progress: run_search(
            st.model_copy(update={"shared_data_dir": path}), wanted, questions, seed, progress
        ),
    )
    _metrics_table("retrieval latency vs index size (ms)", summary_rows(figures))
    _write_figures(settings, "search", figures.model_dump(), out)


@bench_app.command("overhead")
def bench_overhead(
    chunks: Annotated[str, typer.Option(help="index sizes in chunks, comma-separated")] = "1000,100000",
    conversations: Annotated[
        int, typer.Option(min=4, max=5000, help="scripts per size (3 turns each, run once per path)")
    ] = 40,
    seed: Annotated[int, typer.Option(help="seed of the synthetic index and the scripts")] = 0,
    data: Annotated[Path | None, typer.Option(help="the shared data folder (default: CXA_SHARED_DATA_DIR)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """Turn overhead with a chat model that answers at once: everything but generation (persistence, history,
    retrieval, grounding, confidence, signals, topic), through the engine and through the HTTP route
    in-process, interleaved; median/p95, a breakdown per step, SQL statements per turn, and the target
    (p95 under 25 ms at 100k chunks). Each size gets a fresh database under <data-dir>/bench/overhead-N/."""
    from api.app import create_app
    from evals.perf.overhead import run_overhead, summary_rows

    wanted = _sizes(chunks, "--chunks")
    settings, figures = _run_bench(
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
    _write_figures(settings, "overhead", figures.model_dump(), out)


@bench_app.command("ingest")
def bench_ingest(
    docs: Annotated[int, typer.Option(min=1, help="doc2dial dev pages added to the sample help center")] = 60,
    rounds: Annotated[int, typer.Option(min=1, max=100, help="slices, each ingested and embedded raw in turn")] = 6,
    raw_batch: Annotated[
        int | None, typer.Option(min=1, help="texts per run of the raw model (default: the calibration's fastest)")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="the shared data folder (default: CXA_SHARED_DATA_DIR)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """Ingest throughput (chunks/s, tokens/s) of the real ingest path against its limit, the bare ONNX
    embedding model on the same chunk texts with its best batching, measured in turn in the same run
    (target: the ingest at 80% of the raw model or better). Writes to a temporary Chroma directory, never
    to your index."""
    from evals.perf.ingest import run_ingest_bench, summary_rows

    settings, result = _run_bench(
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
    _metrics_table("Ingest vs the raw embedding model", summary_rows(result))
    _write_figures(settings, "ingest", result.model_dump(), out)


@bench_app.command("ttft")
def bench_ttft(
    questions: Annotated[int, typer.Option(min=2, max=40, help="sample help-center questions asked")] = 12,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """Time to first token with the embedded model against llama.cpp called directly on the same messages
    (same model file, n_ctx, threads, options), alternating: at the gateway, and end to end through a server
    started here (POST -> the model's first token, and -> the first `token` SSE event). Target: within 10%."""
    from evals.perf.ttft import run_ttft, summary_rows

    settings, result = _run_bench(
        data_dir, None, lambda st, _path, progress: run_ttft(st, n_questions=questions, progress=progress)
    )
    _metrics_table("Time to first token vs llama.cpp", summary_rows(result))
    _write_figures(settings, "ttft", result.model_dump(), out)


@bench_app.command("stream")
def bench_stream(
    concurrency: Annotated[int, typer.Option(min=1, max=2000, help="conversations streaming at once")] = 50,
    duration: Annotated[float, typer.Option(min=1, help="seconds each configuration keeps sending")] = 30.0,
    workers: Annotated[str, typer.Option(help="uvicorn worker counts to run, comma-separated")] = "1,2",
    token_delay_ms: Annotated[
        str, typer.Option(help="the fake model's pause before each streamed piece (ms), comma-separated")
    ] = "0,20",
    seed: Annotated[int, typer.Option(help="question choice seed")] = 0,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
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
        _fail("--workers and --token-delay-ms take comma-separated numbers, e.g. 1,2", 2)
    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    with _progress() as bar:
        result = run_stream_bench(
            concurrency, duration, worker_counts, delays, seed=seed, progress=_stage_progress(bar)
        )
    table = Table(title=f"{concurrency} concurrent streaming conversations, {duration:g} s per configuration")
    for col in summary_columns():
        table.add_column(col, justify="right")
    for run in result.runs:
        table.add_row(*summary_row(run))
    console.print(table)
    console.print(f"load average {result.machine.load_1m:.2f} -> {result.load_after:.2f}, {result.wall_s:.0f} s")
    _write_figures(settings, "stream", result.model_dump(), out)
    if not result.clean:
        _fail("stream: 5xx, transport errors, lost or duplicated messages (see the table and the JSON)")


# -- eval: scorecards, reviews, judge calibration, regression cases --------------------------------------


def _when(value: str | None, name: str) -> Any:
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--{name}: not an ISO-8601 time: {value!r}", 2)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


JudgeOpt = Annotated[
    str | None,
    typer.Option(help="rules, or model (the configured chat model as LLM judge); default: CXA_EVALS__JUDGE"),
]


def _quality(settings: Settings, judge: str | None) -> Any:
    """Services and the scorecard service; the chat model is loaded only when it judges."""
    from assistant.services import Services
    from evals.scorecard import judge_enabled, quality_service

    if judge not in (None, "rules", "model"):
        _fail("--judge is rules or model", 2)
    try:
        services = Services.build(settings, warm=judge_enabled(settings, judge))
    except (KnowledgeError, AssistantError) as exc:
        _fail(str(exc))
    return services, quality_service(services, judge)


@eval_app.command("conversations")
def eval_conversations(
    since: Annotated[str | None, typer.Option(help="conversations started at or after (ISO-8601)")] = None,
    until: Annotated[str | None, typer.Option(help="conversations started before (ISO-8601)")] = None,
    rescore: Annotated[bool, typer.Option(help="score again conversations that already have a current card")] = False,
    judge: JudgeOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="score at most N conversations")] = 10_000,
    data_dir: DataDir = None,
) -> None:
    """Score ended conversations (resolved or abandoned) and store their scorecards; print a summary table."""
    from assistant.models import SCORE_NAMES
    from evals.scorecard import verdict

    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    services, quality = _quality(settings, judge)
    with _progress() as bar:
        task = bar.add_task("scoring", total=None, unit="conversations")
        cards = quality.score_pending(
            limit,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            since=_when(since, "since"),
            until=_when(until, "until"),
            rescore=rescore,
        )
    services.close()
    if not cards:
        console.print("no ended conversation to score (use --rescore to score scored ones again)")
        return
    table = Table(title=f"{len(cards)} conversations scored ({cards[0].evaluator})")
    for col in ("score", "mean", "below 0.5", "not applicable"):
        table.add_column(col, justify="right" if col != "score" else "left")
    for name in SCORE_NAMES:
        values = [c.scores[name] for c in cards if c.scores.get(name) is not None]
        mean = f"{sum(values) / len(values):.3f}" if values else "-"
        table.add_row(name, mean, str(sum(v < 0.5 for v in values)), str(len(cards) - len(values)))
    console.print(table)
    bad = sum(verdict(c.scores) == "bad" for c in cards)
    ms = sorted(c.duration_ms or 0.0 for c in cards)
    console.print(
        f"verdict bad: {bad} of {len(cards)}; time per scorecard p50 {ms[len(ms) // 2]:.0f} ms, max {ms[-1]:.0f} ms"
    )


@eval_app.command("export-cases")
def eval_export_cases(
    label: Annotated[str, typer.Option(help="good, bad or all")] = "all",
    out: Annotated[Path, typer.Option(help="the JSONL file to write (- for standard output)")] = Path("-"),
    data_dir: DataDir = None,
) -> None:
    """Write reviewed conversations as regression cases, one JSON object per line (format: README)."""
    from assistant.services import build_index
    from assistant.store.repo import Store
    from evals.cases import export_cases

    if label not in ("good", "bad", "all"):
        _fail("--label is good, bad or all", 2)
    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    store = Store.from_settings(settings)
    try:
        index = build_index(settings)
    except KnowledgeError:
        index = None  # the citations' snippets stand in for the chunks
    fh = sys.stdout if str(out) == "-" else out.open("w", encoding="utf-8")
    n = 0
    try:
        for case in export_cases(store, label, index):  # type: ignore[arg-type]
            fh.write(case.model_dump_json() + "\n")
            n += 1
    finally:
        if fh is not sys.stdout:
            fh.close()
        store.close()
    if str(out) != "-":
        console.print(f"{n} regression cases written to {out}")


DEFAULT_CASES = Path(__file__).resolve().parents[1] / "evals" / "labels" / "simulated_day.jsonl"


@eval_app.command("calibrate")
def eval_calibrate(
    cases: Annotated[Path, typer.Option(help="labelled regression cases (JSONL)")] = DEFAULT_CASES,
    judge: Annotated[str, typer.Option(help="rules, model or both")] = "rules",
    out: Annotated[Path | None, typer.Option(help="write the report as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """Score labelled cases again from their transcripts and report, per judge and dimension, the agreement with
    the human scores and Cohen's kappa (both binarised at 0.5), and the overall good/bad agreement."""
    from assistant.llm import ChatGateway
    from assistant.turn.grounding import SentenceVectors
    from evals.calibrate import CalibrationReport, calibrate_judge
    from evals.cases import read_cases
    from evals.judges import ConversationJudge
    from evals.scorecard import ScorecardBuilder
    from knowledge.embeddings import shared_embedder

    if judge not in ("rules", "model", "both"):
        _fail("--judge is rules, model or both", 2)
    if not cases.is_file():
        _fail(f"no cases file at {cases}", 2)
    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    try:
        labelled = read_cases(cases)
    except ValueError as exc:
        _fail(str(exc), 2)
    e = settings.embedding
    vectors = SentenceVectors(
        shared_embedder(e.model_path, e.tokenizer_path, e.max_length, e.batch_size, e.batch_tokens, e.spin_threads)
    )
    chat = None
    if judge != "rules":
        chat = ChatGateway.from_settings(settings)
        ok, detail = chat.ready()
        if not ok:
            _fail(f"the judge model is not available: {detail}")
    builder = ScorecardBuilder(
        vectors,
        settings.evals,
        settings.policy,
        ConversationJudge(chat, settings.evals, settings.company_name) if chat else None,
        settings.telemetry.redact,
    )
    reports = []
    with _progress() as bar:
        for name in ("rules", "model") if judge == "both" else (judge,):
            task = bar.add_task(f"judge {name}", total=len(labelled), unit="cases")
            report, _ = calibrate_judge(
                name, labelled, builder, name == "model", lambda d, t, task=task: bar.update(task, completed=d)
            )
            reports.append(report)
    result = CalibrationReport(cases=len(labelled), judges=reports)
    for r in reports:
        table = Table(title=f"{r.evaluator}: {r.cases} labelled cases, {r.ms_per_case:.0f} ms per case")
        for col in ("dimension", "n", "agreement", "kappa", "human ok", "judge ok"):
            table.add_column(col, justify="left" if col == "dimension" else "right")
        for dim, a in [*r.dimensions.items(), ("overall good/bad", r.label)]:
            table.add_row(
                dim,
                str(a.n),
                "-" if a.agreement is None else f"{a.agreement:.3f}",
                "n/a" if a.kappa is None else f"{a.kappa:.3f}",
                str(a.human_ok),
                str(a.judge_ok),
            )
        console.print(table)
        if r.judge == "model":
            console.print(f"the model judge gave nothing usable on {r.judge_fallbacks} cases (rules stood in)")
    _write_figures(settings, "calibration", result.model_dump(), out)


# -- eval: the benchmark suite (`cxa eval bench`) and simulated customers --------------------------------


DEFAULT_BASELINE = Path(__file__).resolve().parents[1] / "evals" / "baseline.json"


def _client_factory(base_url: str | None, widget_key: str | None) -> Any:
    """How the simulated customers reach a server: `base_url` with its widget key, or an in-process app on a
    scratch data dir holding the sample help center (`evals.workspace`)."""
    from contextlib import contextmanager

    from evals.simulate import Credentials

    @contextmanager
    def remote(_settings: Settings) -> Any:
        import httpx

        with httpx.Client(base_url=base_url or "", timeout=300) as client:
            yield client, Credentials(widget_key or "", "", "", "")

    @contextmanager
    def in_process(settings: Settings) -> Any:
        import tempfile

        from fastapi.testclient import TestClient

        from api.app import create_app
        from api.security import load_keys
        from evals.workspace import helpcenter_workspace

        with tempfile.TemporaryDirectory(prefix="cxa-customers-") as tmp:
            s = helpcenter_workspace(settings, Path(tmp))
            keys = load_keys(s)
            with TestClient(create_app(s)) as client:
                yield client, Credentials(keys.widget_key, keys.agent_token, keys.cx_token, keys.identity_secret)

    if base_url and not widget_key:
        _fail("--base-url needs --widget-key (the server's X-Widget-Key)", 2)
    return remote if base_url else in_process


def _comparison_table(run: Any) -> None:
    styles = {"regressed": "[bold red]REGRESSED[/]", "better": "[green]better[/]", "worse": "[yellow]worse[/]"}
    table = Table(title=f"eval bench {run.run_id} (baseline: {run.comparison.baseline or 'none'})")
    for col in ("benchmark", "metric", "baseline", "current", "delta", ""):
        table.add_column(col, justify="left" if col in ("benchmark", "metric", "") else "right")
    for r in run.comparison.rows:
        table.add_row(
            r.benchmark,
            r.metric,
            "-" if r.baseline is None else f"{r.baseline:.4g}",
            f"{r.current:.4g}",
            "-" if r.delta is None else f"{r.delta:+.4g}",
            styles.get(r.status, r.status),
        )
    console.print(table)
    for name, e in run.benchmarks.items():
        console.print(f"  {name}: n={e.n}, {e.wall_s:.0f} s" + (f"  [red]FAILED: {e.error}[/]" if e.error else ""))


@eval_app.command("bench")
def eval_bench(
    only: Annotated[
        str | None,
        typer.Option(help="comma-separated: retrieval,handoff,topics,summaries,answers,regression,customers"),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="items per benchmark (default: each one's own)")] = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    data: Annotated[Path | None, typer.Option(help="the shared data folder (default: CXA_SHARED_DATA_DIR)")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default: <data_dir>/evals/runs/<run_id>/)")] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="results.json to compare with (default: evals/baseline.json if present)")
    ] = None,
    save_baseline: Annotated[bool, typer.Option(help="write this run as the baseline")] = False,
    fail_on_regression: Annotated[bool, typer.Option(help="exit 1 when a metric regressed")] = False,
    cases: Annotated[
        list[Path] | None, typer.Option(help="more regression cases (JSONL; repeatable), besides evals/cases/")
    ] = None,
    k: Annotated[int, typer.Option(min=1, max=10, help="trials per simulated customer (pass^1..k)")] = 2,
    base_url: Annotated[str | None, typer.Option(help="simulated customers talk to this server")] = None,
    widget_key: Annotated[str | None, typer.Option(help="that server's X-Widget-Key")] = None,
    data_dir: DataDir = None,
) -> None:
    """The benchmark suite: every benchmark on the dev data, compared with a baseline; results.json and
    report.md in the run folder, copied to <data_dir>/evals/latest.json and latest.md."""
    from evals.cases import CASES_DIR, CaseFileError
    from evals.report import compare, load_run, write_run
    from evals.runners import registry, select
    from evals.suite import run_suite

    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    runners = registry(_client_factory(base_url, widget_key), [CASES_DIR, *(cases or [])], k)
    try:
        chosen = select(runners, only)
    except ValueError as exc:
        _fail(str(exc), 2)
    base_path = baseline or (DEFAULT_BASELINE if DEFAULT_BASELINE.is_file() else None)
    if base_path is not None and not base_path.is_file():
        _fail(f"no baseline at {base_path}", 2)
    try:
        base_run = load_run(base_path) if base_path is not None else None
    except ValueError as exc:
        _fail(f"{base_path}: not a results.json: {exc}", 2)
    with _progress() as bar:
        try:
            run = run_suite(settings, data or settings.shared_data_dir, chosen, limit, seed, _stage_progress(bar))
        except CaseFileError as exc:
            _fail(str(exc))
    run.comparison = compare(run, base_run, str(base_path) if base_path else None)
    defaults = {r.name: r.default_limit for r in runners.values()}
    folder = out or settings.data_dir / "evals" / "runs" / run.run_id
    results = write_run(run, folder, settings.data_dir / "evals", defaults)
    _comparison_table(run)
    console.print(f"written to {results} and {folder / 'report.md'} (latest: {settings.data_dir / 'evals'})")
    if save_baseline:
        target = baseline or DEFAULT_BASELINE
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(run.model_copy(update={"comparison": compare(run, None, None)}).model_dump_json(indent=2))
        console.print(f"saved as the baseline: {target}")
    failed = [name for name, e in run.benchmarks.items() if e.error]
    if failed:
        err.print(f"[bold red]error:[/] benchmark(s) failed: {', '.join(failed)}")
        raise typer.Exit(1)
    if run.comparison.regressions:
        names = ", ".join(f"{r.benchmark}/{r.metric}" for r in run.comparison.rows if r.regressed)
        err.print(f"[bold red]{run.comparison.regressions} regression(s):[/] {names}")
        if fail_on_regression:
            raise typer.Exit(1)


@eval_app.command("customers")
def eval_customers(
    k: Annotated[int, typer.Option(min=1, max=20, help="trials per scenario (pass^1..k)")] = 4,
    limit: Annotated[int | None, typer.Option(min=1, help="sample N scenarios (seeded)")] = None,
    seed: Annotated[int, typer.Option(help="phrasing/persona seed")] = 0,
    scenarios: Annotated[
        list[Path] | None, typer.Option(help="scenario JSON files or folders (default: evals/scenarios/)")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="talk to this running server, not in-process")] = None,
    widget_key: Annotated[str | None, typer.Option(help="that server's X-Widget-Key")] = None,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """Simulated customers (goal, persona, patience) through the HTTP API, each scenario run k times: pass^k,
    resolution rate, effort. In-process (the sample help center on a scratch data dir) unless --base-url."""
    from evals.customers import load_scenarios, run_customers

    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    try:
        found = load_scenarios(scenarios)
    except (ValueError, OSError) as exc:
        _fail(f"scenarios: {exc}", 2)
    factory = _client_factory(base_url, widget_key)
    with factory(settings) as (client, creds), _progress() as bar:
        result = run_customers(client, creds, found, k, seed, limit, _stage_progress(bar))
    rows: list[tuple[str, object]] = [
        ("scenarios / trials", f"{result.scenarios} / {result.trials}"),
        *((f"pass^{i}", f"{v:.3f}") for i, v in result.pass_hat_k.items()),
        ("resolution rate (answer scenarios, telemetry)", f"{result.resolution_rate:.3f}"),
        ("handed off when it must (policy, explicit)", result.handoff_correct),
        ("false handoffs (answer scenarios)", result.false_handoff_rate),
        ("mean effort (CES 1..7) / mean turns", f"{result.mean_effort} / {result.mean_turns}"),
        ("wall time (s)", f"{result.seconds:.0f}"),
    ]
    _metrics_table(f"simulated customers (k={k}, seed {seed})", rows)
    per = Table(title="per scenario")
    for col in ("scenario", "passed / trials"):
        per.add_column(col)
    for p in result.per_scenario:
        per.add_row(p.scenario, f"{p.passed}/{p.trials}")
    console.print(per)
    _write_figures(settings, "customers", result.model_dump(mode="json"), out)


@eval_app.command("injection")
def eval_injection(
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N cases")] = None,
    vector: Annotated[
        list[str] | None, typer.Option(help="only these vectors (direct, document, profile, history, ...)")
    ] = None,
    cases: Annotated[Path | None, typer.Option(help="the case file (default: evals/attacks/injection.jsonl)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """Prompt-injection cases (instructions in the customer's message, in help articles, in the customer's
    records, aimed at the handoff summary) through the in-process app with the configured chat model, on a
    scratch data dir and index: cases passed (nothing leaked: prompt, credentials, another customer's data,
    attacker links, claimed actions) per vector and category. Exits 1 when a case leaks."""
    import tempfile

    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.security import load_keys
    from evals.injection import Credentials, InjectionRunner, load_cases
    from evals.workspace import SAMPLE_COMPANY, helpcenter_workspace

    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    try:
        found = load_cases(cases)
    except (ValueError, OSError) as exc:
        _fail(f"cases: {exc}", 2)
    if vector:
        found = [c for c in found if c.vector in vector]
    found = found[:limit] if limit else found
    if not found:
        _fail("no case matches", 2)
    with tempfile.TemporaryDirectory(prefix="cxa-injection-") as tmp:
        # Poisoned articles go into an index of their own, never the configured one.
        isolated = settings.model_copy(update={"chroma_path": Path(tmp) / "chroma", "chroma_url": None})
        s = helpcenter_workspace(isolated, Path(tmp), collection="injection_helpcenter")
        keys = load_keys(s)
        creds = Credentials(keys.widget_key, keys.agent_token, keys.cx_token, keys.admin_token, keys.identity_secret)
        with TestClient(create_app(s)) as client, _progress() as bar:
            task = bar.add_task("cases", total=len(found), unit="cases")
            run = InjectionRunner(client, creds, SAMPLE_COMPANY).run(
                found, lambda done, total: bar.update(task, completed=done, total=total)
            )
    for title, tallies in (("per vector", run.by_vector), ("per category", run.by_category)):
        table = Table(title=f"prompt injection {title} ({settings.chat_provider} model)")
        for col in (title.split()[-1], "passed / cases"):
            table.add_column(col)
        for name, t in tallies.items():
            table.add_row(name, f"{t.passed}/{t.total}" + ("" if t.passed == t.total else " [red]LEAK[/]"))
        console.print(table)
    _metrics_table(
        "prompt injection",
        [("cases passed / total", f"{run.passed}/{run.total}"), ("wall time (s)", f"{run.seconds:.0f}")],
    )
    for r in run.results:
        if not r.passed:
            err.print(f"[red]leak[/] {r.id}: {', '.join(r.leaks)}")
    _write_figures(settings, "injection", run.model_dump(mode="json"), out)
    if run.passed < run.total:
        raise typer.Exit(1)


# -- simulate and export ----------------------------------------------------------------------------------


@simulate_app.command("day")
def simulate_day(
    conversations: Annotated[int, typer.Option(min=10, max=5000, help="scripted conversations to run")] = 200,
    idle_s: Annotated[float, typer.Option(min=0.5, help="the inactivity timeout used for the run (seconds)")] = 2.0,
    seed: Annotated[int, typer.Option(help="shuffles the mix of kinds")] = 0,
    provider: Annotated[str, typer.Option(help="chat model: fake (default) or embedded")] = "fake",
    out: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    data_dir: DataDir = None,
) -> None:
    """A simulated day: 200+ scripted conversations (easy answers, rephrasing loops, handoffs, abandonment,
    re-contacts) through the real app and API, then /v1/metrics checked against what each script intended.
    Runs in-process on a fresh data dir (default: a temporary one) with the sample help center."""
    import tempfile

    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.security import load_keys
    from evals.simulate import Credentials, run_day

    if provider not in ("fake", "embedded"):
        _fail("--provider is fake or embedded", 2)
    folder = data_dir or Path(tempfile.mkdtemp(prefix="cxa-day-"))
    settings = _settings(
        folder,
        chat_provider=provider,
        company_name="Larkspur Home",
        rate_limits="off",
        telemetry={"inactivity_s": idle_s, "sweep_interval_s": max(0.5, idle_s / 2)},
    )
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    _load_samples(settings)
    keys = load_keys(settings)
    creds = Credentials(
        widget_key=keys.widget_key,
        agent_token=keys.agent_token,
        cx_token=keys.cx_token,
        identity_secret=keys.identity_secret,
    )
    customers = [f"cus_{n}" for n in range(1001, 1023)]
    with TestClient(create_app(settings)) as client, _progress() as bar:
        result = run_day(
            client, creds, conversations, customers, idle_wait_s=idle_s + 0.5, seed=seed, progress=_stage_progress(bar)
        )
    kinds = Table(title=f"simulated day: {result.conversations} conversations, {result.turns} turns, {result.seconds}s")
    for col in ("kind", "conversations", "intended outcome", "scripts matched"):
        kinds.add_column(col, justify="right" if col != "kind" else "left")
    for k in result.kinds:
        kinds.add_row(
            k.kind,
            str(k.conversations),
            k.intended,
            f"{k.matched}/{round(k.conversations / (2 if k.kind == 'recontact' else 1))}",
        )
    console.print(kinds)
    checks = Table(title="/v1/metrics vs the scripts' intentions")
    for col in ("metric", "intended", "measured", "ok"):
        checks.add_column(col, justify="right" if col != "metric" else "left")
    for c in result.checks:
        checks.add_row(c.metric, f"{c.expected:g}", f"{c.got:g}", "yes" if c.ok else "[red]NO[/]")
    console.print(checks)
    m = result.metrics
    _metrics_table(
        "other figures",
        [
            ("CSAT avg / CES avg (customers who rated)", f"{m['csat_avg']} / {m['ces_avg']}"),
            ("predicted effort avg (CES 1..7)", m["predicted_effort_avg"]),
            ("durable resolution rate", m["durable_resolution_rate"]),
            ("agent wait p50 / p95 (s)", f"{m['agent_wait_s_p50']} / {m['agent_wait_s_p95']}"),
            ("telemetry per turn p50 / p95 (ms)", f"{result.signals_ms_p50} / {result.signals_ms_p95}"),
            ("whole turn p50 / p95 (ms)", f"{result.turn_ms_p50} / {result.turn_ms_p95}"),
        ],
    )
    for miss in result.mismatches[:10]:
        err.print(f"[yellow]mismatch[/] {miss}")
    _write_figures(settings, "simulated-day", result.model_dump(), out)
    if result.mismatches or not all(c.ok for c in result.checks):
        raise typer.Exit(1)


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="the JSONL file to write (- for standard output)")],
    since: Annotated[str | None, typer.Option(help="conversations started at or after (ISO-8601)")] = None,
    until: Annotated[str | None, typer.Option(help="conversations started before (ISO-8601)")] = None,
    transcripts: Annotated[bool, typer.Option(help="include the (redacted) messages")] = False,
    data_dir: DataDir = None,
) -> None:
    """Export conversations as JSONL: derived facts, signal events and optionally messages, with personal
    data (emails, phones, cards, account numbers) redacted as CXA_TELEMETRY__REDACT says."""
    from assistant.safety.redact import Redactor
    from assistant.store.repo import Store

    settings = _settings(data_dir)
    store = Store.from_settings(settings)
    redactor = Redactor(settings.telemetry.redact)
    facts = store.query_facts(since=_when(since, "since"), until=_when(until, "until"), order="oldest")
    fh = sys.stdout if str(out) == "-" else out.open("w", encoding="utf-8")
    try:
        for f in facts:
            row: dict[str, Any] = {
                **f.model_dump(mode="json"),
                "signals": [redactor.data(e.model_dump(mode="json")) for e in store.list_signals(f.conversation_id)],
            }
            if transcripts:
                row["messages"] = [
                    {"role": m.role, "text": redactor.text(m.text), "at": m.created_at.isoformat()}
                    for m in store.list_messages(f.conversation_id)
                ]
            fh.write(json.dumps(row) + "\n")
    finally:
        if fh is not sys.stdout:
            fh.close()
        store.close()
    if str(out) != "-":
        console.print(f"{len(facts)} conversations written to {out}")


@app.command()
def doctor(
    fix: Annotated[bool, typer.Option("--fix/--check", help="repair what has a safe repair, or only report")] = False,
    data_dir: DataDir = None,
) -> None:
    """Check the database for what a crash can leave behind (turns cut off mid-reply, handoffs out of step
    with their conversation, message counters) and, with --fix, repair it. The server runs the same check
    with --fix at start and with each background sweep. Exit status 1 when a problem remains."""
    from assistant.services import Services

    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "ERROR"}))
    try:
        services = Services.build(settings, warm=False)
    except (KnowledgeError, AssistantError) as exc:
        _fail(str(exc))
    try:
        problems = services.check_consistency(fix=fix)
    finally:
        services.close()
    for problem in problems:
        console.print(("[green]fixed[/] " if problem.fixed else "[red]problem[/] ") + str(problem))
    remaining = [p for p in problems if not p.fixed]
    console.print(f"{len(problems)} problem(s) found, {len(problems) - len(remaining)} fixed")
    if remaining:
        raise typer.Exit(1)


# -- db: schema migrations ---------------------------------------------------------------------------------


def _db_engine(settings: Settings) -> Any:
    from assistant.store.repo import make_engine

    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.sqlalchemy_url, settings.database_busy_timeout_s)


def _db_name(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="the revision to reach")] = "head",
    sql: Annotated[
        bool, typer.Option("--sql", help="print the SQL instead of running it (to review, or for a DBA to apply)")
    ] = False,
    from_revision: Annotated[
        str | None, typer.Option("--from", help="with --sql: the revision the database is at (default: nothing)")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Migrate the database to REVISION (default: this version's newest).

    The database is CXA_DATABASE_URL, else the SQLite file in the data dir. Safe while servers run and when
    several run it at once (a lock; whoever waited finds it done). A database created before migrations is
    recognised and stamped at the baseline first. Run it before rolling out a new version when servers start
    with CXA_DATABASE_MIGRATE=off (with auto, each server does it at start)."""
    from sqlalchemy.exc import SQLAlchemyError

    from assistant.store import migrate

    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    if sql:
        sys.stdout.write(migrate.offline_sql(settings.sqlalchemy_url, revision, from_revision))
        return
    engine = _db_engine(settings)
    try:
        result = migrate.upgrade(engine, revision)
    except (migrate.MigrationError, SQLAlchemyError) as exc:
        _fail(f"{_db_name(settings)}: {exc}")
    finally:
        engine.dispose()
    if result.stamped:
        console.print(f"database from before migrations: stamped at the baseline {migrate.BASELINE}")
    if result.before == result.after:
        console.print(f"{_db_name(settings)}: already at {result.after}")
    else:
        console.print(f"{_db_name(settings)}: upgraded from {result.before or 'nothing'} to {result.after}")


@db_app.command("current")
def db_current(data_dir: DataDir = None) -> None:
    """Show the database's revision and this version's head (exit 1 when the database is behind)."""
    from sqlalchemy.exc import SQLAlchemyError

    from assistant.store import migrate

    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    engine = _db_engine(settings)
    try:
        now, legacy = migrate.current(engine), migrate.has_our_tables(engine)
    except SQLAlchemyError as exc:
        _fail(f"{_db_name(settings)}: {exc}")
    finally:
        engine.dispose()
    head = migrate.head()
    console.print(f"database: {_db_name(settings)}")
    if now == head:
        console.print(f"revision: {now} (head)")
        return
    known = {r.id for r in migrate.revisions()}
    if now is not None and now not in known:
        console.print(f"revision: {now} (newer than this version's head {head})")
        return
    shown = now or ("none: created before migrations" if legacy else "none: empty")
    console.print(f"revision: {shown}; this version's head is {head}: run `cxa db upgrade`")
    raise typer.Exit(1)


@db_app.command("history")
def db_history(data_dir: DataDir = None) -> None:
    """List the schema revisions, oldest first, marking the database's."""
    from assistant.store import migrate

    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    try:
        engine = _db_engine(settings)
        try:
            now: str | None = migrate.current(engine)
        finally:
            engine.dispose()
    except Exception:  # the history is in the code: show it even without a reachable database
        now = "?"
    table = Table("revision", "after", "what it does", "", title="schema revisions")
    head = migrate.head()
    for r in migrate.revisions():
        marks = ", ".join(m for m, on in (("head", r.id == head), ("database", r.id == now)) if on)
        table.add_row(r.id, r.down or "-", r.message, marks)
    console.print(table)


@db_app.command("check")
def db_check(data_dir: DataDir = None) -> None:
    """Compare the database's schema with the models; exit 1 on a difference.

    Uses alembic's compare_metadata against assistant/store/tables.py; also exit 1 when the database is not at
    this version's head. After `cxa db upgrade`, it proves the revisions build what the models describe."""
    from sqlalchemy.exc import SQLAlchemyError

    from assistant.store import migrate

    settings = _settings(data_dir)
    _configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    engine = _db_engine(settings)
    try:
        now, diffs = migrate.current(engine), migrate.differences(engine)
    except SQLAlchemyError as exc:
        _fail(f"{_db_name(settings)}: {exc}")
    finally:
        engine.dispose()
    for d in diffs:
        console.print(f"[red]differs[/] {migrate.describe(d)}")
    head = migrate.head()
    if now != head:
        console.print(f"[red]revision[/] {now or 'none'}, head {head}")
    if diffs or now != head:
        raise typer.Exit(1)
    console.print(f"{_db_name(settings)}: at {head}, no differences from the models")


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", "--message", help="what the revision changes, e.g. 'add tags'")],
    empty: Annotated[
        bool, typer.Option("--empty", help="an empty revision (data migrations), instead of autogenerating")
    ] = False,
) -> None:
    """Draft the next schema revision from the models (for developers, in a source checkout).

    Writes assistant/store/migrations/versions/NNNN_message.py with what the models (assistant/store/tables.py)
    add to the newest revision's schema, autogenerated against a scratch SQLite database migrated to head.
    Review it before committing (autogenerate sees a rename as a drop and an add, and misses server defaults),
    then run tests/scaleout/test_migrations.py, which checks it on SQLite and PostgreSQL."""
    from assistant.store import migrate

    _configure_logging(_settings(None).model_copy(update={"log_level": "WARNING"}))
    try:
        path = migrate.new_revision(message, autogenerate=not empty)
    except migrate.MigrationError as exc:
        _fail(str(exc))
    console.print(f"drafted {path}: review it, then run the migration tests")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
