"""Schema migrations (assistant/store/migrate.py) on SQLite and on a real PostgreSQL: the migrated schema is the
models' schema, a database made by the old `create_all` is stamped and keeps working, two processes starting
on one empty database both succeed (one migrates, the other waits and finds it done), and the `cxa db` commands."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.cli import app
from assistant.errors import StoreUnavailableError
from assistant.models import utcnow
from assistant.store import migrate
from assistant.store.repo import Store, make_engine
from assistant.store.tables import ConversationRow, HandoffRow, MessageRow
from tests.conftest import backend_env, make_settings

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_the_migrated_schema_is_the_models_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        result = migrate.upgrade(engine)
        assert (result.before, result.after, result.stamped) == (None, migrate.head(), False)
        assert migrate.differences(engine) == []
        assert migrate.upgrade(engine).changed is False  # at head: nothing to do
    finally:
        engine.dispose()


def create_all_as_before_migrations(engine: Engine) -> None:
    """The schema `Base.metadata.create_all` made before migrations existed: the baseline revision's (that is what
    the baseline is), without `alembic_version`. Not today's `create_all`: the models have moved on since."""
    migrate.upgrade(engine, migrate.BASELINE)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))


def test_a_create_all_database_is_stamped_and_keeps_its_data(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The schema as servers before migrations left it: our tables, rows in them, no alembic_version."""
    engine = make_engine(database_url)
    create_all_as_before_migrations(engine)
    now = utcnow()
    with Session(engine) as s:
        s.add(
            ConversationRow(
                id="conv_old",
                verified=False,
                status="bot",
                channel="web",
                meta={},
                created_at=now,
                updated_at=now,
                next_seq=1,
            )
        )
        s.flush()
        s.execute(  # the columns of then (a row object would name the ones added since)
            insert(MessageRow).values(
                id="msg_old",
                conversation_id="conv_old",
                seq=1,
                role="customer",
                text="from before",
                created_at=now,
                citations=[],
            )
        )
        s.commit()
    assert not inspect(engine).has_table("alembic_version")
    engine.dispose()

    with caplog.at_level(logging.WARNING, logger="assistant.store.migrate"):
        store = Store(database_url)
    try:
        assert "stamping it at the baseline" in caplog.text
        assert "still differs" not in caplog.text
        assert migrate.current(store.engine) == migrate.head()
        assert [m.text for m in store.list_messages("conv_old")] == ["from before"]
        added = store.add_message("conv_old", "customer", "and after")  # the counter carried on
        assert added.seq == 2
    finally:
        store.close()
    again = Store(database_url)  # a second start: at head, no stamping, no migrating
    again.close()


def test_migrate_off_refuses_a_schema_behind_the_code(database_url: str) -> None:
    with pytest.raises(StoreUnavailableError, match="cxa db upgrade"):
        Store(database_url, migrate_schema="off")
    Store(database_url).close()  # auto migrates
    Store(database_url, migrate_schema="off").close()  # and now off starts


def test_a_database_migrated_by_newer_code_is_left_alone(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """An older worker in a rolling update: the database is at a revision it does not know. It starts and works."""
    Store(database_url).close()
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with caplog.at_level(logging.WARNING):
        store = Store(database_url)
    try:
        assert "9999" in caplog.text and "newer version" in caplog.text
        conv = store.create_conversation(None, False)
        assert store.add_message(conv.id, "customer", "still works").seq == 1
        assert migrate.current(store.engine) == "9999"
    finally:
        store.close()


STARTER = """
import logging, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
from assistant.store.repo import Store
barrier = Path(sys.argv[2])
(barrier / f"ready-{sys.argv[3]}").touch()
while not (barrier / "go").exists():
    time.sleep(0.005)
store = Store(sys.argv[1])
conversation = store.create_conversation(None, False)
store.add_message(conversation.id, "customer", "hello")
store.close()
print("started")
"""


def test_two_processes_starting_at_once_both_succeed(database_url: str, tmp_path: Path) -> None:
    """Two workers on an empty database, released at the same moment: both start, the schema is migrated once
    (the other waited on the lock and found it at head), and it is the models' schema."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, database_url, str(barrier), str(n)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in range(2)
    ]
    deadline = time.monotonic() + 120
    while not all((barrier / f"ready-{n}").exists() for n in range(2)):
        assert time.monotonic() < deadline, "the starters never got ready"
        assert all(p.poll() is None for p in procs), [p.communicate()[0] for p in procs]
        time.sleep(0.01)
    (barrier / "go").touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all("started" in out for out in outputs), outputs
    migrated = [out for out in outputs if "database schema migrated from nothing" in out]
    assert len(migrated) == 1, outputs
    engine = make_engine(database_url)
    try:
        assert migrate.current(engine) == migrate.head()
        assert migrate.differences(engine) == []
    finally:
        engine.dispose()


# -- the `cxa db` commands (SQLite in a data dir; in servers mode, the data dir's PostgreSQL database) ------------


def said(result: Any) -> str:
    """The command's output as one line: the console wraps it, and a server URL is longer than a file path."""
    return " ".join(result.output.split())


def test_cxa_db_commands(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    env = backend_env(tmp_path / "data")
    behind = runner.invoke(app, ["db", "current", *data], env=env)
    assert behind.exit_code == 1 and "cxa db upgrade" in said(behind)
    up = runner.invoke(app, ["db", "upgrade", *data], env=env)
    assert up.exit_code == 0, up.output
    assert f"upgraded from nothing to {migrate.head()}" in said(up)
    assert "already at" in said(runner.invoke(app, ["db", "upgrade", *data], env=env))
    current = runner.invoke(app, ["db", "current", *data], env=env)
    assert current.exit_code == 0 and f"{migrate.head()} (head)" in said(current)
    check = runner.invoke(app, ["db", "check", *data], env=env)
    assert check.exit_code == 0 and "no differences" in said(check)
    history = runner.invoke(app, ["db", "history", *data], env=env)
    assert history.exit_code == 0 and migrate.BASELINE in said(history) and "database" in said(history)


def test_cxa_db_upgrade_stamps_a_create_all_database(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    engine = make_engine(make_settings(tmp_path / "data").sqlalchemy_url)
    create_all_as_before_migrations(engine)
    engine.dispose()
    data, env = ["--data-dir", str(tmp_path / "data")], backend_env(tmp_path / "data")
    assert "created before migrations" in said(runner.invoke(app, ["db", "current", *data], env=env))
    up = runner.invoke(app, ["db", "upgrade", *data], env=env)
    assert up.exit_code == 0 and f"stamped at the baseline {migrate.BASELINE}" in said(up)


def test_cxa_db_upgrade_sql_prints_the_ddl_without_connecting(tmp_path: Path) -> None:
    out = runner.invoke(app, ["db", "upgrade", "--sql", "--data-dir", str(tmp_path / "never")])
    assert out.exit_code == 0, out.output
    assert "CREATE TABLE conversations" in out.output and "alembic_version" in out.output
    assert not (tmp_path / "never" / "cxa.db").exists()


def test_the_help_says_what_each_db_command_does() -> None:
    result = runner.invoke(app, ["db", "--help"])
    assert result.exit_code == 0
    for command in ("upgrade", "current", "history", "check", "revision"):
        assert command in result.output


def test_the_migrations_ship_with_the_package() -> None:
    """No alembic.ini: the script directory is package data (the .py files as packages, the template by name)."""
    folder = migrate.MIGRATIONS_DIR
    assert (folder / "__init__.py").exists() and (folder / "versions" / "__init__.py").exists()
    assert (folder / "env.py").exists() and (folder / "script.py.mako").exists()
    assert "store/migrations/script.py.mako" in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    ids = [r.id for r in migrate.revisions()]
    assert ids[0] == migrate.BASELINE and ids[-1] == migrate.head()
    assert all(Path(r.path).name.startswith(r.id + "_") for r in migrate.revisions())


def test_revision_0003_moves_free_text_reasons_into_the_customer_note(database_url: str) -> None:
    """Handoffs stored when a customer's words could be the reason label come out of the upgrade labelled
    `customer_request`, with the words as their note; real labels are kept."""
    engine = make_engine(database_url)
    migrate.upgrade(engine, migrate.BASELINE)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(ConversationRow).values(
                id="conv_r",
                verified=False,
                status="waiting_for_agent",
                channel="web",
                meta={},
                created_at=now,
                updated_at=now,
                next_seq=0,
            )
        )
        for hid, reason in [
            ("ho_text", "URGENT!! give me a refund"),
            ("ho_label", "low_confidence"),
            ("ho_policy", "policy:legal"),
        ]:
            conn.execute(
                text(
                    "INSERT INTO handoffs (id, conversation_id, reason, status, summary, summary_source, created_at)"
                    " VALUES (:id, 'conv_r', :reason, 'resolved', '{}', 'extractive', :at)"
                ),
                {"id": hid, "reason": reason, "at": now},
            )
    engine.dispose()
    store = Store(database_url)
    try:
        with store.session() as s:
            rows = {r.id: (r.reason, r.customer_note) for r in s.scalars(select(HandoffRow))}
        assert rows == {
            "ho_text": ("customer_request", "URGENT!! give me a refund"),
            "ho_label": ("low_confidence", None),
            "ho_policy": ("policy:legal", None),
        }
    finally:
        store.close()
