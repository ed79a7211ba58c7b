"""Browser tests: Playwright (sync API) driving Debian's chromium against the real app served by uvicorn
on a free loopback port, with the sample help center and customers (a copy of the session's template data
dir) and known credentials.

Chromium is found at /usr/bin/chromium (`CXA_TEST_CHROMIUM` overrides; `make test` installs Debian's
package when it is missing). Without it the tests are skipped on a developer machine, and fail with a clear
message under CI=true: CI must run them. Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from api.app import create_app
from tests.browser.models import slow_quoting_model
from tests.conftest import AGENT_TOKEN, CX_TOKEN, WIDGET_KEY, make_settings

CHROMIUM = Path(os.environ.get("CXA_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class LiveServer:
    url: str
    widget_key: str = WIDGET_KEY
    agent_token: str = AGENT_TOKEN
    cx_token: str = CX_TOKEN


@pytest.fixture(scope="package")
def live_server(sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real app on a private copy of the sample data, with the demo page on."""
    data = tmp_path_factory.mktemp("browser") / "data"
    shutil.copytree(sample_template, data)
    # At even odds (threshold 1/3) a question the help center does not cover ("do you offer gift wrapping?") is handed
    # off, which the loop test starts from; the default 0.8 quotes a near page for some (the gap noted in issue 18).
    settings = make_settings(data, web={"demo_page": True}, policy={"answerable_share": 0.5})
    config = uvicorn.Config(
        create_app(settings, chat_model=slow_quoting_model()),
        host="127.0.0.1",
        port=0,  # the server picks its port as it binds it (one found free first could be taken meanwhile)
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield LiveServer(url=f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(10)


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in this thread while it is
# open, and tests after this package (tests/scaleout) run their own loops.
@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    if not CHROMIUM.is_file():
        message = (
            f"chromium not found at {CHROMIUM}: install Debian's package (`apt-get install -y chromium`, "
            "which `make test` does) or point CXA_TEST_CHROMIUM at a chromium binary"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # a shared 2-core CI machine is slow; a real failure still shows in 15 s
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: object) -> Iterator[object]:
    """new_page(**context_options) -> a page in a fresh browser context (own storage); all closed after."""
    contexts = []

    def make(**options: object) -> object:
        ctx = browser.new_context(**options)  # type: ignore[attr-defined]
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.js_errors = errors  # type: ignore[attr-defined]
        return page

    yield make
    for ctx in contexts:
        ctx.close()
