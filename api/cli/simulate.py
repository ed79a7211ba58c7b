"""`cxa simulate day`: scripted customers through the real app and API, then /v1/metrics checked against what
each script intended."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli.common import (
    DataDir,
    FiguresOut,
    configure_logging,
    console,
    err,
    fail,
    load_settings,
    metrics_table,
    progress_bars,
    stage_progress,
    write_figures,
)
from api.cli.ingest import load_samples
from assistant.settings import Settings

app = typer.Typer(help="Scripted customers through the API, checked against the CX figures.", no_args_is_help=True)


@app.command("day")
def simulate_day(
    conversations: Annotated[int, typer.Option(min=10, max=5000, help="scripted conversations to run")] = 200,
    idle_s: Annotated[float, typer.Option(min=0.5, help="the inactivity timeout used for the run (seconds)")] = 2.0,
    seed: Annotated[int, typer.Option(help="shuffles the mix of kinds")] = 0,
    provider: Annotated[str, typer.Option(help="chat model: fake (default) or embedded")] = "fake",
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """A simulated day: 200+ scripted conversations (easy answers, rephrasing loops, handoffs, abandonment,
    re-contacts) through the real app and API, then /v1/metrics checked against what each script intended.
    Runs in-process on a fresh data dir (default: a temporary one) with the sample help center."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.security import load_keys
    from evals.simulate import Credentials, run_day

    if provider not in ("fake", "embedded"):
        fail("--provider is fake or embedded", 2)
    folder = data_dir or Path(tempfile.mkdtemp(prefix="cxa-day-"))
    settings = load_settings(
        folder,
        chat_provider=provider,
        company_name="Larkspur Home",
        rate_limits="off",
        telemetry={"inactivity_s": idle_s, "sweep_interval_s": max(0.5, idle_s / 2)},
    )
    configure_logging(settings, "WARNING")
    load_samples(settings)
    keys = load_keys(settings)
    creds = Credentials(
        widget_key=keys.widget_key,
        agent_token=keys.agent_token,
        cx_token=keys.cx_token,
        identity_secret=keys.identity_secret,
    )
    customers = [f"cus_{n}" for n in range(1001, 1023)]
    with TestClient(create_app(settings)) as client, progress_bars() as bar:
        result = run_day(
            client, creds, conversations, customers, idle_wait_s=idle_s + 0.5, seed=seed, progress=stage_progress(bar)
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
    metrics_table(
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
    write_figures(settings, "simulated-day", result.model_dump(), out)
    if result.mismatches or not all(c.ok for c in result.checks):
        raise typer.Exit(1)


def loop_settings(settings: Settings, folder: Path, idle_s: float = 2.0) -> Settings:
    """The measured loop's server: the sample help center on `folder`, the fake chat model, a short inactivity
    timeout (customers who stop writing have left), no background scoring."""
    from evals.workspace import helpcenter_workspace

    s = helpcenter_workspace(settings, folder, customers=True)
    return s.model_copy(
        update={
            "chat_provider": "fake",
            "telemetry": s.telemetry.model_copy(
                update={"inactivity_s": idle_s, "sweep_interval_s": max(0.5, idle_s / 2)}
            ),
            "evals": s.evals.model_copy(update={"background": False}),
        }
    )


def loop_factory() -> Any:
    """The loop benchmark's server (`evals.runners.LoopRunner`): `loop_settings` on a temporary data dir."""
    from contextlib import contextmanager

    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.security import load_keys
    from evals.simulate import Credentials

    @contextmanager
    def in_process(settings: Settings) -> Iterator[tuple[Any, Credentials]]:
        with tempfile.TemporaryDirectory(prefix="cxa-loop-") as tmp:
            s = loop_settings(settings, Path(tmp))
            keys = load_keys(s)
            with TestClient(create_app(s)) as client:
                yield client, Credentials(keys.widget_key, keys.agent_token, keys.cx_token, keys.identity_secret)

    return in_process


@app.command("loop")
def simulate_loop(
    per_gap: Annotated[int, typer.Option(min=2, max=50, help="conversations per injected gap and day")] = 8,
    ordinary: Annotated[int, typer.Option(min=0, max=2000, help="ordinary simulated-day conversations mixed in")] = 60,
    reask: Annotated[
        float, typer.Option(min=0, max=1, help="share of agents who ask 'what is the problem?' first")
    ] = 0.3,
    seed: Annotated[int, typer.Option(help="draws of the questions and the mix")] = 0,
    out: FiguresOut = None,
    data_dir: DataDir = None,
) -> None:
    """The loop, measured: injected knowledge gaps (evals/gaps/) asked on a simulated day and answered by scripted
    agents; the gaps report must find them; their drafts are approved; a second day must hand those questions
    off far less. Runs in-process on a temporary data dir with the fake chat model."""
    from evals.loop import run_loop

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    with loop_factory()(settings) as (client, creds), progress_bars() as bar:
        result = run_loop(
            client, creds, per_gap=per_gap, ordinary=ordinary, reask_rate=reask, seed=seed, progress=stage_progress(bar)
        )
    metrics_table(result.benchmark, result.summary_rows())
    per = Table(title="per injected gap")
    for col in ("gap", "day one handed off", "found", "purity", "coverage", "day two handed off"):
        per.add_column(col, justify="left" if col == "gap" else "right")
    for g in result.per_gap:
        per.add_row(
            g.gap,
            str(g.conversations),
            "yes" if g.found else "[red]no[/]",
            f"{g.purity:.2f}",
            f"{g.coverage:.2f}",
            f"{g.day2_handed_off}/{g.day2_conversations}",
        )
    console.print(per)
    write_figures(settings, "loop", result.model_dump(), out)
