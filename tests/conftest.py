"""Shared fixtures: real SQLite, real Chroma on temp dirs, the real app through httpx (TestClient).

Only what is outside our process is faked: the chat model (`FakeSupportChatModel`, or langchain's
`GenericFakeChatModel` with scripted output). The sample help center is ingested once per session
into a template data dir; tests that need the knowledge copy it, so each gets its own database
and index without paying for embedding 200 chunks again.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from assistant.samples import load_customers
from assistant.services import build_index
from assistant.settings import Settings
from assistant.store.repo import Store
from assistant.topics import topics_for
from knowledge.loaders import SAMPLE_HELPCENTER, iter_folder

WIDGET_KEY = "pk_test_widget_key_0123456789"
AGENT_TOKEN = "agent-token-for-tests-0123456789"
CX_TOKEN = "cx-token-for-tests-0123456789"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
IDENTITY_SECRET = "identity-secret-for-tests-0123456789"
ROOT = Path(__file__).resolve().parents[1]


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
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the sample help center ingested and the sample customers loaded (built once)."""
    data_dir = tmp_path_factory.mktemp("template")
    settings = make_settings(data_dir)
    index = build_index(settings)
    docs = [d for _, d in iter_folder(SAMPLE_HELPCENTER) if not isinstance(d, Exception)]
    index.ingest(docs, origin="samples", prune=True)
    topics_for(settings, index)  # the topic model, cached in the data dir (copies start with it)
    store = Store(settings.sqlalchemy_url)
    load_customers(store)
    store.close()
    return data_dir


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
    import hashlib
    import hmac

    return hmac.new(IDENTITY_SECRET.encode(), customer_id.encode(), hashlib.sha256).hexdigest()
