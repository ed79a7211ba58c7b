"""What every `cxa` command shares: the consoles, settings loading, the one-line error exit, logging, progress
bars and the figures table.

Output goes to `console` (standard output); errors, warnings and progress bars to `err` (standard error), one
error on one line so that scripts and logs can grep it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from assistant.settings import Settings

console = Console(stderr=False)
err = Console(stderr=True, soft_wrap=True)  # one error, one line: scripts and logs grep it

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="where state lives (default: CXA_DATA_DIR or ./.cxa-data)")
]
SharedData = Annotated[Path | None, typer.Option(help="the shared data folder (default: CXA_SHARED_DATA_DIR)")]
FiguresOut = Annotated[Path | None, typer.Option(help="write the figures as JSON here")]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on standard error and exit with `code` (2: the command was called wrongly)."""
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def load_settings(data_dir: Path | None, **overrides: Any) -> Settings:
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
        fail("invalid settings:\n  " + "\n  ".join(problems), 2)


def configure_logging(settings: Settings, level: str | None = None) -> None:
    """Log at `level` (default: CXA_LOG_LEVEL); the chattiest libraries only from WARNING up."""
    logging.basicConfig(
        level=(level or settings.log_level).upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("chromadb", "httpx", "onnxruntime", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def progress_bars() -> Progress:
    """Progress bars on standard error, left in place when done."""
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


def stage_progress(bar: Progress) -> Callable[[str, int, int], None]:
    """A `progress(stage, done, total)` callback for the benchmark runners: one bar per stage."""
    tasks: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total, unit="chunks" if stage == "ingest" else stage)
        bar.update(tasks[stage], completed=done, total=total)

    return progress


def metrics_table(title: str, rows: list[tuple[str, object]]) -> None:
    """Print (label, value) rows, e.g. a result's `summary_rows()`, as a two-column table."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)


def side_by_side(
    title: str, a: list[tuple[str, object]], b: list[tuple[str, object]], headers: tuple[str, str]
) -> None:
    """Two runs' (label, value) rows in one table, matched by label (e.g. quiet and busy); a label that repeats
    (the same figure under two headings) is matched by its occurrence."""
    table = Table(title=title)
    table.add_column("metric")
    for h in headers:
        table.add_column(h, justify="right")
    other: dict[tuple[str, int], object] = {}
    seen: dict[str, int] = {}
    for name, value in b:
        other[(name, seen.get(name, 0))] = value
        seen[name] = seen.get(name, 0) + 1
    seen.clear()
    for name, value in a:
        n = seen.get(name, 0)
        seen[name] = n + 1
        table.add_row(name, str(value), str(other.get((name, n), "")))
    console.print(table)


def write_figures(settings: Settings, name: str, figures: dict[str, Any], out: Path | None) -> None:
    """Write a run's figures as JSON to `out`, by default <data-dir>/bench/<name>.json."""
    target = out or settings.data_dir / "bench" / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(figures, indent=2))
    console.print(f"written to {target}")


def parse_time(value: str | None, name: str) -> datetime | None:
    """The ISO-8601 time of option `--name` (UTC when it names no zone); None stays None; else exit 2."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name}: not an ISO-8601 time: {value!r}", 2)
    return t if t.tzinfo else t.replace(tzinfo=UTC)
