"""`cxa chat`: a conversation with the assistant in the terminal, through the same engine as the API."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import DataDir, configure_logging, console, err, fail, load_settings
from assistant.errors import AssistantError
from knowledge.errors import KnowledgeError


def chat(
    customer: Annotated[str | None, typer.Option(help="chat as this (verified) customer id")] = None,
    data_dir: DataDir = None,
) -> None:
    """Chat with the assistant in the terminal (same engine as the API). Empty line or Ctrl-D to quit."""
    from assistant.models import CitationsEvent, DoneEvent, HandoffEvent, TokenEvent
    from assistant.services import Services

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    try:
        services = Services.build(settings)
    except (KnowledgeError, AssistantError) as exc:
        fail(str(exc))
    for problem in services.startup_problems:
        err.print(f"[yellow]warning:[/] {problem}")
    if customer and services.store.get_customer(customer) is None:
        fail(f"no customer {customer!r} (load one with `cxa demo --no-serve` or PUT /v1/customers/{customer})")
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
