"""`cxa db ...`: the database schema through Alembic migrations: upgrade, current, history, check, revision.

The database is CXA_DATABASE_URL, else the SQLite file in the data dir (`assistant/store/migrate.py` does the
work; these commands only report)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from api.cli.common import DataDir, configure_logging, console, fail, load_settings
from assistant.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

app = typer.Typer(
    help="The database schema: migrations (Alembic) to this version's head, what the database is at, the history.",
    no_args_is_help=True,
)


def db_engine(settings: Settings) -> Engine:
    """A SQLAlchemy engine on the configured database (the data dir is created for the SQLite default)."""
    from assistant.store.repo import make_engine

    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.sqlalchemy_url, settings.database_busy_timeout_s)


def db_name(settings: Settings) -> str:
    """The database URL as it may be printed (no password)."""
    from sqlalchemy.engine import make_url

    return make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)


@app.command("upgrade")
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

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    if sql:
        sys.stdout.write(migrate.offline_sql(settings.sqlalchemy_url, revision, from_revision))
        return
    engine = db_engine(settings)
    try:
        result = migrate.upgrade(engine, revision)
    except (migrate.MigrationError, SQLAlchemyError) as exc:
        fail(f"{db_name(settings)}: {exc}")
    finally:
        engine.dispose()
    if result.stamped:
        console.print(f"database from before migrations: stamped at the baseline {migrate.BASELINE}")
    if result.before == result.after:
        console.print(f"{db_name(settings)}: already at {result.after}")
    else:
        console.print(f"{db_name(settings)}: upgraded from {result.before or 'nothing'} to {result.after}")


@app.command("current")
def db_current(data_dir: DataDir = None) -> None:
    """Show the database's revision and this version's head (exit 1 when the database is behind)."""
    from sqlalchemy.exc import SQLAlchemyError

    from assistant.store import migrate

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    engine = db_engine(settings)
    try:
        now, legacy = migrate.current(engine), migrate.has_our_tables(engine)
    except SQLAlchemyError as exc:
        fail(f"{db_name(settings)}: {exc}")
    finally:
        engine.dispose()
    head = migrate.head()
    console.print(f"database: {db_name(settings)}")
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


@app.command("history")
def db_history(data_dir: DataDir = None) -> None:
    """List the schema revisions, oldest first, marking the database's."""
    from assistant.store import migrate

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    try:
        engine = db_engine(settings)
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


@app.command("check")
def db_check(data_dir: DataDir = None) -> None:
    """Compare the database's schema with the models; exit 1 on a difference.

    Uses alembic's compare_metadata against assistant/store/tables.py; also exit 1 when the database is not at
    this version's head. After `cxa db upgrade`, it proves the revisions build what the models describe."""
    from sqlalchemy.exc import SQLAlchemyError

    from assistant.store import migrate

    settings = load_settings(data_dir)
    configure_logging(settings, "WARNING")
    engine = db_engine(settings)
    try:
        now, diffs = migrate.current(engine), migrate.differences(engine)
    except SQLAlchemyError as exc:
        fail(f"{db_name(settings)}: {exc}")
    finally:
        engine.dispose()
    for d in diffs:
        console.print(f"[red]differs[/] {migrate.describe(d)}")
    head = migrate.head()
    if now != head:
        console.print(f"[red]revision[/] {now or 'none'}, head {head}")
    if diffs or now != head:
        raise typer.Exit(1)
    console.print(f"{db_name(settings)}: at {head}, no differences from the models")


@app.command("revision")
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

    configure_logging(load_settings(None), "WARNING")
    try:
        path = migrate.new_revision(message, autogenerate=not empty)
    except migrate.MigrationError as exc:
        fail(str(exc))
    console.print(f"drafted {path}: review it, then run the migration tests")
