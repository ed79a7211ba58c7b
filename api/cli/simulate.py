"""`cxa simulate day`: scripted customers through the real app and API, then /v1/metrics checked against what
each script intended."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

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
