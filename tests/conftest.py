"""Shared fixtures: real SQLite, real Chroma on temp dirs, the real app through httpx (TestClient).

Only what is outside our process is faked: the chat model (the product's `FakeSupportChatModel`, or, where a test
says what the model replies or how it fails, `tests.fakes.FakeChatModel`). The sample help center is ingested once
per session into a template data dir; tests that need the knowledge copy it, so each gets its own database and index
without paying for embedding 200 chunks again.

With `CXA_TEST_BACKENDS=servers` the same tests run on a PostgreSQL server and a Chroma server
(`tests/servers.py`): `make_settings` gives each data dir its own database and collection there, a copy
of the template's when the dir is a copy of the template. A test that starts a `cxa` process passes
`backend_env(data_dir)` to it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from assistant.safety import identity
from assistant.samples import load_customers
from assistant.services import build_index, warm_sentences
from assistant.settings import Settings
from assistant.store.repo import Store
from assistant.telemetry.topics import topics_for
from knowledge.index import open_client
from knowledge.loaders import SAMPLE_HELPCENTER, iter_folder
from tests.backends import BackendUnavailableError
from tests.servers import ServerBackends, servers_mode, start_servers

WIDGET_KEY = "pk_test_widget_key_0123456789"
AGENT_TOKEN = "agent-token-for-tests-0123456789"
CX_TOKEN = "cx-token-for-tests-0123456789"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
IDENTITY_SECRET = "identity-secret-for-tests-0123456789"
ROOT = Path(__file__).resolve().parents[1]
SERVERS = servers_mode()
_servers_stack = ExitStack()
_servers: ServerBackends | None = None


def server_backends() -> ServerBackends:
    """The session's PostgreSQL and Chroma servers (servers mode only; started on first use)."""
    global _servers
    assert SERVERS, "server_backends() is for CXA_TEST_BACKENDS=servers"
    if _servers is None:
        try:
            _servers = start_servers(_servers_stack)
        except BackendUnavailableError as exc:  # one clear message, not an error per test
            pytest.exit(f"CXA_TEST_BACKENDS=servers, but {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    return _servers


def pytest_sessionfinish(session: pytest.Session) -> None:
    _servers_stack.close()


@pytest.fixture(scope="session", autouse=True)
def _nothing_embedded_in_servers_mode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Servers mode: no test may quietly fall back to a SQLite file or an on-disk Chroma (a `cxa` process
    started without `backend_env`, a `Store` on a hand-made sqlite URL): no data dir's `cxa.db` or
    `chroma/chroma.sqlite3` in any temp dir at the end (a Chroma server's own storage is elsewhere)."""
    yield
    if SERVERS:
        base = tmp_path_factory.getbasetemp()
        found = sorted(str(p.relative_to(base)) for p in (*base.rglob("cxa.db"), *base.rglob("chroma/chroma.sqlite3")))
        assert not found, f"servers mode, yet embedded state was written under {base}: {found}"


@pytest.fixture(autouse=True)
def _own_server_state() -> Iterator[None]:
    """Servers mode: the databases and collections a test allocates are dropped when it ends."""
    if not SERVERS:
        yield
        return
    backends = server_backends()
    backends.begin_test()
    try:
        yield
    finally:
        backends.end_test()


def backend_env(data_dir: Path) -> dict[str, str]:
    """CXA_* variables that point a `cxa` process on `data_dir` at that dir's database and index: nothing in
    the default mode (they live in the data dir), the servers' URLs and its collection in servers mode."""
    return server_backends().environment(data_dir) if SERVERS else {}


def database_url(data_dir: Path) -> str:
    """A database of its own for a test that builds a `Store` directly: a SQLite file in `data_dir`, or (servers
    mode) a new PostgreSQL database."""
    return make_settings(data_dir).sqlalchemy_url


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "data_dir": data_dir,
        "chat_provider": "fake",
        "company_name": "Larkspur Home",
        "widget_key": WIDGET_KEY,
        "agent_token": AGENT_TOKEN,
        "cx_token": CX_TOKEN,
        "admin_token": ADMIN_TOKEN,
        "identity_secret": IDENTITY_SECRET,
        "shared_data_dir": ROOT.parent / "shared" / "data",
        "rate_limits": "off",  # tests fire requests faster than any customer; tests/api/test_limits.py turns it on
    }
    if SERVERS:
        base.update(server_backends().settings_for(data_dir))
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the sample help center ingested (its sentence vectors stored) and the sample customers loaded
    (built once)."""
    data_dir = tmp_path_factory.mktemp("template")
    settings = make_settings(data_dir)
    index = build_index(settings)
    docs = [d for _, d in iter_folder(SAMPLE_HELPCENTER) if not isinstance(d, Exception)]
    index.ingest(docs, origin="samples", prune=True)
    warm_sentences(settings, index)  # as `cxa ingest` does: copies start with the sentence vectors stored
    topics_for(settings, index)  # the topic model, cached in the data dir (copies start with it)
    store = Store(settings.sqlalchemy_url)
    load_customers(store)
    store.close()
    if SERVERS:
        server_backends().mark_template(settings)
    return data_dir


@pytest.fixture(scope="session")
def chroma_client() -> object:
    """A Chroma client for tests that make their own collections: in-process (`EphemeralClient`), or in
    servers mode an HTTP client of the session's Chroma server. Each test uses its own collection names."""
    return open_client(url=server_backends().chroma_url) if SERVERS else open_client(None)


@pytest.fixture
def sample_data_dir(sample_template: Path, tmp_path: Path) -> Path:
    """A private copy of the sample data dir for one test."""
    target = tmp_path / "data"
    shutil.copytree(sample_template, target)
    return target


@pytest.fixture
def settings(sample_data_dir: Path) -> Settings:
    return make_settings(sample_data_dir)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app (fake chat model) on a private copy of the sample data."""
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def empty_client(tmp_path: Path) -> Iterator[TestClient]:
    """The real app on an empty data dir (no knowledge, no customers)."""
    with TestClient(create_app(make_settings(tmp_path / "empty"))) as c:
        yield c


def widget_headers(**extra: str) -> dict[str, str]:
    return {"X-Widget-Key": WIDGET_KEY, **extra}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def customer_hash(customer_id: str) -> str:
    """What a host page sends for `customer_id` under the tests' identity secret."""
    return identity.customer_hash(IDENTITY_SECRET, customer_id)
