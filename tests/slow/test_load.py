"""The load generator against a real server process (fake chat model): nothing lost, nothing duplicated,
no 5xx, with JSON and streamed turns. The figures themselves come from `cxa bench load` (not asserted)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evals.load import local_server, run_load
from tests.conftest import backend_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    # in servers mode, the database and collection of a data dir of our own (the server's own is a temp dir)
    env = backend_env(Path(tmp_path_factory.mktemp("load")))
    with local_server(env=env) as (url, key):
        yield url, key


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_concurrent_customers_lose_nothing(server: tuple[str, str], stream: bool) -> None:
    url, key = server
    result = run_load(url, key, concurrency=8, duration_s=6.0, stream=stream, seed=1)
    assert result.messages_ok > 0 and result.conversations > 0
    assert result.messages_ok == result.messages_sent
    assert result.errors_5xx == 0 and result.transport_errors == 0
    assert result.lost_messages == 0 and result.duplicated_messages == 0
    assert set(result.latency) >= {"start", "message", "transcript"}
