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
MIN_SECRET_CHARS = 16  # beyond loopback, a configured credential shorter than this is refused
_CREDENTIALS = (
    ("widget_key", "X-Widget-Key:", "CXA_WIDGET_KEY"),
    ("agent_token", "agent token: ", "CXA_AGENT_TOKEN"),
    ("cx_token", "cx token:    ", "CXA_CX_TOKEN"),
    ("admin_token", "admin token: ", "CXA_ADMIN_TOKEN"),
)
_SECRETS = (*((name, env) for name, _, env in _CREDENTIALS), ("identity_secret", "CXA_IDENTITY_SECRET"))


def print_keys(settings: Settings, host: str, port: int) -> None:
    """Where the server listens and the credentials to call it with: the generated ones (kept in keys.json), never
    a configured one (whoever configured it has it; a terminal or a log is no place for it)."""
    from api.security import load_keys

    keys = load_keys(settings)
    where = f"http://{host}:{port}" if port else f"http://{host} (port chosen at start: see 'Uvicorn running on')"
    console.print(f"[bold]cx-assistant[/] on {where}  (API docs: {where if port else ''}/docs)")
    console.print(f"data dir: {settings.data_dir}")
    kept = [(label, getattr(keys, name)) for name, label, _ in _CREDENTIALS if getattr(settings, name) is None]
    configured = [env for name, _, env in _CREDENTIALS if getattr(settings, name) is not None]
    if kept:
        console.print(f"credentials (kept in {keys.path}; set CXA_* variables to choose your own):")
        for label, value in kept:
            console.print(f"  {label} {value}")
    if configured:
        console.print(f"configured credentials (not shown): {', '.join(configured)}")


def short_secrets(settings: Settings) -> list[str]:
    """The configured credentials shorter than `MIN_SECRET_CHARS` (refused beyond loopback)."""
    values = {env: v.get_secret_value() for name, env in _SECRETS if (v := getattr(settings, name)) is not None}
    if settings.handoff_webhook_secret is not None:
        values["CXA_HANDOFF_WEBHOOK_SECRET"] = settings.handoff_webhook_secret.get_secret_value()
    return [env for env, value in values.items() if len(value) < MIN_SECRET_CHARS]


def run_server(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    from api.server import uvicorn_options

    if host not in LOOPBACK:
        if settings.web.demo_page:
            # the demo page computes identity hashes for anyone who asks: never beyond this machine
            fail("CXA_WEB__DEMO_PAGE hands out customer identity hashes: serve it on 127.0.0.1 only", 2)
        short = short_secrets(settings)
        if short:
            fail(
                f"{', '.join(short)}: at least {MIN_SECRET_CHARS} characters to listen beyond loopback "
                "(or leave them unset to have long ones generated)",
                2,
            )
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
        **uvicorn_options(settings),  # header size cap and deadline, keep-alive, concurrency (api/server.py)
    )


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, help="port; 0 = one the system picks (logged at start)")] = 8000,
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
