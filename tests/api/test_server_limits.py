"""What no client can hold on the server (issue 19, finding 4): uvicorn as `cxa serve` runs it (`api.server`), in
this process on a port it picks itself, spoken to over raw sockets. Headers over the cap are refused (431) whether
complete or not; headers trickling in byte by byte are cut at the deadline (408); connections beyond the
concurrency limit get 503; and the access log keeps no conversation id or token."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from api.app import create_app
from api.server import AccessLogFilter, uvicorn_options
from tests.conftest import make_settings

MAX_HEADER_BYTES = 8192
HEADER_TIMEOUT_S = 1.0


@contextmanager
def serving(data_dir: Path, **server: object) -> Iterator[int]:
    """The app under uvicorn with the server limits, on a port the system picks; yields the port."""
    settings = make_settings(
        data_dir, server={"max_header_bytes": MAX_HEADER_BYTES, "header_timeout_s": HEADER_TIMEOUT_S, **server}
    )
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_level="warning", **uvicorn_options(settings, True)
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield srv.servers[0].sockets[0].getsockname()[1]
    finally:
        srv.should_exit = True
        thread.join(15)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 10 s pass)."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return out
        if not chunk:
            return out
        out += chunk


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with serving(tmp_path_factory.mktemp("server")) as p:
        yield p


def test_a_plain_request_and_keep_alive_still_work(port: int) -> None:
    with connect(port) as s:
        for _ in range(2):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = s.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), head


@pytest.mark.parametrize("complete", [False, True], ids=["unfinished", "complete"])
def test_headers_over_the_cap_are_refused(port: int, complete: bool) -> None:
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 100))
        if complete:
            s.sendall(b"\r\n\r\n")
        got = response(s)
    assert got.startswith(b"HTTP/1.1 431"), got[:200]


def test_headers_trickling_in_are_cut_at_the_deadline(port: int) -> None:
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = b""
        for _ in range(30):  # a byte every 0.2 s: uvicorn's own keep-alive timer restarts on each
            try:
                s.sendall(b"X")
            except OSError:
                break
            time.sleep(0.2)
            s.setblocking(False)
            try:
                closed = s.recv(65536)
                if closed:
                    break
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
        took = time.monotonic() - started
    assert closed.startswith(b"HTTP/1.1 408"), closed[:200]
    assert took < HEADER_TIMEOUT_S + 2, took


def test_connections_beyond_the_concurrency_limit_get_503(tmp_path: Path) -> None:
    with serving(tmp_path, max_concurrency=2, header_timeout_s=30) as p:
        held = [connect(p), connect(p)]
        try:
            for s in held:
                s.sendall(b"GET /healthz HTTP/1.1\r\n")  # unfinished: each holds its connection
            with connect(p) as third:
                third.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert third.recv(65536).startswith(b"HTTP/1.1 503")
        finally:
            for s in held:
                s.close()
        time.sleep(0.3)
        with connect(p) as again:
            again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert again.recv(65536).startswith(b"HTTP/1.1 200")


def test_the_access_log_keeps_no_conversation_id_or_token() -> None:
    path = "/v1/conversations/conv_0123456789abcdef/events?after=3&token=9f8e7d"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )
    assert AccessLogFilter().filter(record)
    line = record.getMessage()
    assert "conv_0123456789abcdef" not in line and "9f8e7d" not in line
    assert "/v1/conversations/:id/events?after=3&token=[redacted]" in line
    handoff = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/v1/handoffs/ho_42/claim", "1.1", 200),
        None,
    )
    AccessLogFilter().filter(handoff)
    assert "ho_42" not in handoff.getMessage()


def test_the_app_installs_the_access_log_filter(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(make_settings(tmp_path))):
        assert any(isinstance(f, AccessLogFilter) for f in logging.getLogger("uvicorn.access").filters)
