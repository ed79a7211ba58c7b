"""`cxa export` and `cxa doctor`: the stored conversations written out with personal data redacted, and the
database checked (and repaired) for what a crash can leave behind."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli.common import DataDir, configure_logging, console, fail, load_settings, parse_time
from assistant.errors import AssistantError
from knowledge.errors import KnowledgeError


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

    settings = load_settings(data_dir)
    store = Store.from_settings(settings)
    redactor = Redactor(settings.telemetry.redact)
    facts = store.query_facts(since=parse_time(since, "since"), until=parse_time(until, "until"), order="oldest")
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


def doctor(
    fix: Annotated[bool, typer.Option("--fix/--check", help="repair what has a safe repair, or only report")] = False,
    data_dir: DataDir = None,
) -> None:
    """Check the database for what a crash can leave behind (turns cut off mid-reply, handoffs out of step
    with their conversation, message counters) and, with --fix, repair it. The server runs the same check
    with --fix at start and with each background sweep. Exit status 1 when a problem remains."""
    from assistant.services import Services

    settings = load_settings(data_dir)
    configure_logging(settings, "ERROR")
    try:
        services = Services.build(settings, warm=False)
    except (KnowledgeError, AssistantError) as exc:
        fail(str(exc))
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
