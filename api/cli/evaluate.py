"""`cxa eval ...`: conversation quality. Scorecards for ended conversations, reviewed conversations as regression
cases, the judges' agreement with human labels, the benchmark suite against a baseline, simulated customers and
prompt-injection cases."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from api.cli.common import (
    DataDir,
    FiguresOut,
    SharedData,
    configure_logging,
    console,
    err,
    fail,
    load_settings,
    metrics_table,
    parse_time,
    progress_bars,
    stage_progress,
    write_figures,
)
from assistant.errors import AssistantError
from assistant.settings import Settings
from knowledge.errors import KnowledgeError

if TYPE_CHECKING:
    import httpx

    from assistant.services import Services
    from evals.runners import ClientFactory
    from evals.scorecard import QualityService
    from evals.simulate import Credentials
    from evals.suite import SuiteRun

app = typer.Typer(
    help="Conversation quality: scorecards, judge calibration against reviews, and the benchmark suite.",
    no_args_is_help=True,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CASES = ROOT / "evals" / "labels" / "simulated_day.jsonl"
DEFAULT_BASELINE = ROOT / "evals" / "baseline.json"

JudgeOpt = Annotated[
    str | None,
    typer.Option(help="rules, or model (the configured chat model as LLM judge); default: CXA_EVALS__JUDGE"),
]
WidgetKey = Annotated[str | None, typer.Option(help="that server's X-Widget-Key")]


# -- scorecards, regression cases, judge calibration ------------------------------------------------------


def quality(settings: Settings, judge: str | None) -> tuple[Services, QualityService]:
    """Services and the scorecard service; the chat model is loaded only when it judges."""
    from assistant.services import Services
    from evals.scorecard import judge_enabled, quality_service

    if judge not in (None, "rules", "model"):
        fail("--judge is rules or model", 2)
    try:
        services = Services.build(settings, warm=judge_enabled(settings, judge))
    except (KnowledgeError, AssistantError) as exc:
        fail(str(exc))
    return services, quality_service(services, judge)


@app.command("conversations")
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

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    services, scoring = quality(settings, judge)
    with progress_bars() as bar:
        task = bar.add_task("scoring", total=None, unit="conversations")
        cards = scoring.score_pending(
            limit,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
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


@app.command("export-cases")
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
        fail("--label is good, bad or all", 2)
    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
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


@app.command("calibrate")
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
        fail("--judge is rules, model or both", 2)
    if not cases.is_file():
        fail(f"no cases file at {cases}", 2)
    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    try:
        labelled = read_cases(cases)
    except ValueError as exc:
        fail(str(exc), 2)
    e = settings.embedding
    vectors = SentenceVectors(
        shared_embedder(e.model_path, e.tokenizer_path, e.max_length, e.batch_size, e.batch_tokens, e.spin_threads)
    )
    chat = None
    if judge != "rules":
        chat = ChatGateway.from_settings(settings)
        ok, detail = chat.ready()
        if not ok:
            fail(f"the judge model is not available: {detail}")
    builder = ScorecardBuilder(
        vectors,
        settings.evals,
        settings.policy,
        ConversationJudge(chat, settings.evals, settings.company_name) if chat else None,
        settings.telemetry.redact,
    )
    reports = []
    with progress_bars() as bar:
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
    write_figures(settings, "calibration", result.model_dump(), out)


# -- the benchmark suite (`cxa eval bench`), simulated customers, prompt injection ------------------------


def client_factory(base_url: str | None, widget_key: str | None) -> ClientFactory:
    """How the simulated customers reach a server: `base_url` with its widget key, or an in-process app on a
    scratch data dir holding the sample help center (`evals.workspace`)."""
    from contextlib import contextmanager

    from evals.simulate import Credentials

    @contextmanager
    def remote(_settings: Settings) -> Iterator[tuple[httpx.Client, Credentials]]:
        import httpx

        with httpx.Client(base_url=base_url or "", timeout=300) as client:
            yield client, Credentials(widget_key or "", "", "", "")

    @contextmanager
    def in_process(settings: Settings) -> Iterator[tuple[httpx.Client, Credentials]]:
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
        fail("--base-url needs --widget-key (the server's X-Widget-Key)", 2)
    return remote if base_url else in_process


def comparison_table(run: SuiteRun) -> None:
    """Each metric of the run against the baseline, then each benchmark's sample, time and failure."""
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


@app.command("bench")
def eval_bench(
    only: Annotated[
        str | None,
        typer.Option(
            help="comma-separated: retrieval,handoff,topics,account,guard,approved,loop,summaries,answers,regression,"
            "customers"
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="items per benchmark (default: each one's own)")] = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    data: SharedData = None,
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
    widget_key: WidgetKey = None,
    data_dir: DataDir = None,
) -> None:
    """The benchmark suite: every benchmark on the dev data, compared with a baseline; results.json and
    report.md in the run folder, copied to <data_dir>/evals/latest.json and latest.md."""
    from evals.cases import CASES_DIR, CaseFileError
    from evals.report import compare, load_run, write_run
    from evals.runners import registry, select
    from evals.suite import run_suite

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    from api.cli.simulate import loop_factory

    runners = registry(client_factory(base_url, widget_key), [CASES_DIR, *(cases or [])], k, loop_factory())
    try:
        chosen = select(runners, only)
    except ValueError as exc:
        fail(str(exc), 2)
    base_path = baseline or (DEFAULT_BASELINE if DEFAULT_BASELINE.is_file() else None)
    if base_path is not None and not base_path.is_file():
        fail(f"no baseline at {base_path}", 2)
    try:
        base_run = load_run(base_path) if base_path is not None else None
    except ValueError as exc:
        fail(f"{base_path}: not a results.json: {exc}", 2)
    with progress_bars() as bar:
        try:
            run = run_suite(settings, data or settings.shared_data_dir, chosen, limit, seed, stage_progress(bar))
        except CaseFileError as exc:
            fail(str(exc))
    run.comparison = compare(run, base_run, str(base_path) if base_path else None)
    defaults = {r.name: r.default_limit for r in runners.values()}
    folder = out or settings.data_dir / "evals" / "runs" / run.run_id
    results = write_run(run, folder, settings.data_dir / "evals", defaults)
    comparison_table(run)
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


@app.command("customers")
def eval_customers(
    k: Annotated[int, typer.Option(min=1, max=20, help="trials per scenario (pass^1..k)")] = 4,
    limit: Annotated[int | None, typer.Option(min=1, help="sample N scenarios (seeded)")] = None,
    seed: Annotated[int, typer.Option(help="phrasing/persona seed")] = 0,
    scenarios: Annotated[
        list[Path] | None, typer.Option(help="scenario JSON files or folders (default: evals/scenarios/)")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="talk to this running server, not in-process")] = None,
    busy_cores: Annotated[
        int, typer.Option(min=0, max=64, help="run with N processes burning a core each (a shared machine)")
    ] = 0,
    widget_key: WidgetKey = None,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """Simulated customers (goal, persona, patience) through the HTTP API, each scenario run k times: pass^k,
    resolution rate, effort, turns lost to the model. In-process (the sample help center on a scratch data dir)
    unless --base-url; --busy-cores N keeps N other processes burning a core each for the whole run."""
    from rich.markup import escape

    from evals.customers import load_scenarios, run_customers
    from evals.perf.busy import busy_cores as burning

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    try:
        found = load_scenarios(scenarios)
    except (ValueError, OSError) as exc:
        fail(f"scenarios: {exc}", 2)
    factory = client_factory(base_url, widget_key)
    with factory(settings) as (client, creds), burning(busy_cores), progress_bars() as bar:
        result = run_customers(client, creds, found, k, seed, limit, stage_progress(bar))
    result.busy_cores = busy_cores
    metrics_table(f"simulated customers (k={k}, seed {seed})", result.summary_rows())
    per = Table(title="per scenario")
    for col in ("scenario", "passed / trials"):
        per.add_column(col)
    for p in result.per_scenario:
        per.add_row(p.scenario, f"{p.passed}/{p.trials}")
    console.print(per)
    if result.causes:  # one line each: the evidence is too long for a table's column
        console.print("[bold]why trials failed:[/] " + ", ".join(f"{c} {n}" for c, n in result.causes.items()))
        for t in result.trial_results:
            if t.cause:
                line = f"- {escape(t.scenario)} #{t.trial}: [bold]{escape(t.cause)}[/], {escape(t.explanation or '')}"
                console.print(line, highlight=False)
    write_figures(settings, "customers", result.model_dump(mode="json"), out)


@app.command("injection")
def eval_injection(
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N cases")] = None,
    vector: Annotated[
        list[str] | None, typer.Option(help="only these vectors (direct, document, profile, history, ...)")
    ] = None,
    cases: Annotated[Path | None, typer.Option(help="the case file (default: evals/attacks/injection.jsonl)")] = None,
    out: FiguresOut = None,
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

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    try:
        found = load_cases(cases)
    except (ValueError, OSError) as exc:
        fail(f"cases: {exc}", 2)
    if vector:
        found = [c for c in found if c.vector in vector]
    found = found[:limit] if limit else found
    if not found:
        fail("no case matches", 2)
    with tempfile.TemporaryDirectory(prefix="cxa-injection-") as tmp:
        # Poisoned articles go into an index of their own, never the configured one.
        isolated = settings.model_copy(update={"chroma_path": Path(tmp) / "chroma", "chroma_url": None})
        s = helpcenter_workspace(isolated, Path(tmp), collection="injection_helpcenter")
        keys = load_keys(s)
        creds = Credentials(keys.widget_key, keys.agent_token, keys.cx_token, keys.admin_token, keys.identity_secret)
        with TestClient(create_app(s)) as client, progress_bars() as bar:
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
    metrics_table(
        "prompt injection",
        [("cases passed / total", f"{run.passed}/{run.total}"), ("wall time (s)", f"{run.seconds:.0f}")],
    )
    for r in run.results:
        if not r.passed:
            err.print(f"[red]leak[/] {r.id}: {', '.join(r.leaks)}")
    write_figures(settings, "injection", run.model_dump(mode="json"), out)
    if run.passed < run.total:
        raise typer.Exit(1)
