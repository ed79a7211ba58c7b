"""Real scale-out backends for the migration, live-bus and multi-worker tests: a PostgreSQL server (started by
`tests.backends.postgres_server`, or given as `CXA_TEST_DATABASE_URL`) with a fresh database per test, and a
Chroma server (`chroma run`, or `CXA_TEST_CHROMA_URL`).

Without PostgreSQL (or chroma) these tests are skipped on a developer machine, with the reason, and fail under
CI=true: CI must run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.backends import BackendUnavailableError, chroma_server, postgres_server
from tests.conftest import SERVERS, server_backends


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI must run the scale-out tests)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The server's URL (its maintenance database): tests make their own databases on it. In servers mode, the
    session's server (`tests/servers.py`)."""
    if SERVERS:
        yield server_backends().database_url
        return
    given = os.environ.get("CXA_TEST_DATABASE_URL")
    if given:
        yield given
        return
    try:
        with postgres_server() as url:
            yield url
    except BackendUnavailableError as exc:
        unavailable(str(exc))


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the server for one test (dropped afterwards): the URL to it."""
    name = f"cxa_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        if SERVERS:
            pytest.skip("servers mode: the SQLite side of this test runs in the default mode")
        return f"sqlite:///{tmp_path / 'cxa.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if SERVERS:
        yield server_backends().chroma_url
        return
    given = os.environ.get("CXA_TEST_CHROMA_URL")
    if given:
        yield given
        return
    try:
        with chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
            yield url
    except BackendUnavailableError as exc:
        unavailable(str(exc))
