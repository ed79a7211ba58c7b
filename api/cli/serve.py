"""`cxa serve` and `cxa demo`: the HTTP API under uvicorn, and the same with the sample help center and
customers loaded first."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from api.cli.common import DataDir, configure_logging, console, fail, load_settings
from api.cli.ingest import load_samples
from assistant.settings import Settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def print_keys(settings: Settings, host: str, port: int) -> None:
    """Where the server listens and the credentials to call it with."""
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


def run_server(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    if host not in LOOPBACK:
        if settings.web.demo_page:
            # the demo page computes identity hashes for anyone who asks: never beyond this machine
            fail("CXA_WEB__DEMO_PAGE hands out customer identity hashes: serve it on 127.0.0.1 only", 2)
        console.print("[yellow]listening beyond loopback: keep the printed credentials secret[/]")
    print_keys(settings, host, port)
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


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    data_dir: DataDir = None,
) -> None:
    """Start the HTTP API (loads nothing: use `cxa demo` or `cxa ingest` for data)."""
    settings = load_settings(data_dir)
    configure_logging(settings)
    run_server(settings, host, port, workers)


def seed_demo_history(settings: Settings) -> str:
    """Two weeks of simulated conversations on the demo's data dir (once: not again when some are there), run with
    the fake chat model in-process before the server starts. Returns what was done, for the console."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.security import load_keys
    from evals.history import seed_history
    from evals.simulate import Credentials

    s = settings.model_copy(
        update={
            "chat_provider": "fake",
            "rate_limits": "off",
            "handoff_webhook_url": None,
            "evals": settings.evals.model_copy(update={"background": False}),
        }
    )
    keys = load_keys(s)
    creds = Credentials(keys.widget_key, keys.agent_token, keys.cx_token, keys.identity_secret)
    with TestClient(create_app(s)) as client:
        services = client.app.state.services
        already, _, _ = services.store.simulated.count()
        if already:
            return f"history: {already} simulated conversations already there"
        report = seed_history(
            client, creds, services.store, services.engine.telemetry, customers=[f"cus_{n}" for n in range(1001, 1023)]
        )
    return (
        f"history: {report.conversations} simulated conversations over the last {report.days} days "
        f"({report.gap_conversations} on knowledge gaps), marked simulated, in {report.seconds:.0f} s"
    )


def demo(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="start the server after loading")] = True,
    history: Annotated[
        bool,
        typer.Option(
            "--history/--no-history",
            help="seed two weeks of simulated conversations (marked simulated; once per data dir)",
        ),
    ] = True,
    data_dir: DataDir = None,
) -> None:
    """Load the sample help center (Larkspur Home) and 22 sample customers, seed two weeks of simulated
    conversations (with a few knowledge gaps) so the dashboard and console have a past, then serve."""
    from api.security import load_keys

    settings = load_settings(data_dir)
    if "company_name" not in settings.model_fields_set:  # the sample company, unless one is configured
        settings = settings.model_copy(update={"company_name": "Larkspur Home"})
        os.environ["CXA_COMPANY_NAME"] = "Larkspur Home"  # for the server process started below
    # The demo host page signs identities for whoever asks: on for `cxa demo` only (never for `cxa serve`).
    settings = settings.model_copy(update={"web": settings.web.model_copy(update={"demo_page": True})})
    os.environ["CXA_WEB__DEMO_PAGE"] = "true"  # for the server process started below
    configure_logging(settings, "WARNING")
    report = load_samples(settings)
    console.print(
        f"customers: {report.customers_added} added, {report.customers_existing} already there "
        f"({report.events} events, {report.conversations} earlier conversations)"
    )
    if history:
        console.print(seed_demo_history(settings))
    keys = load_keys(settings)
    console.print(f"try a verified customer, e.g. cus_1001: customer_hash={keys.customer_hash('cus_1001')}")
    base = f"http://{host}:{port}"
    console.print(f"shop page with the widget: {base}/demo  console: {base}/console  dashboard: {base}/dashboard")
    if serve_after:
        configure_logging(settings)
        run_server(settings, host, port, 1)
