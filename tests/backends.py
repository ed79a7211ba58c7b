"""Real scale-out backends for tests: a PostgreSQL server and a Chroma server, each started on a free
loopback port in a temp dir and stopped afterwards (or given: `CXA_TEST_DATABASE_URL`, `CXA_TEST_CHROMA_URL`), and a
Redis server on a unix socket (no port at all).

Ports: a port found free can be taken by another process before the server binds it (seen: "chroma run exited:
Address 127.0.0.1:N is not available" on a busy machine). Servers that can pick their own port do (`cxa serve
--port 0` logs the one it bound: `served_port`); the others (`chroma run`, PostgreSQL) are started again on a new
free port when they fail to bind the one they were given (`PORT_TRIES` times).

PostgreSQL comes from Debian's `postgresql` package (`make test` installs it when missing); the server is
started with `initdb` + `pg_ctl` as the `postgres` system user when the tests run as root (PostgreSQL refuses
to run as root), with durability off (fsync, synchronous_commit): a test server, not a deployment. Chroma is
`chroma run`, the server shipped with the chromadb package.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


class BackendUnavailableError(RuntimeError):
    """The server binary is missing or the server did not come up (the message says which and why)."""


PORT_TRIES = 5
_BIND_FAILED = re.compile(r"address (?:\S+ )?(?:is )?(?:already in use|not available)|could not bind|errno 98", re.I)
_SERVED = re.compile(r"Uvicorn running on https?://[^\s:]+:(\d+)")


def free_port() -> int:
    """A port free now (it may be taken before it is bound: prefer a server that picks its own)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def served_port(log: Path, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> int:
    """The port a `cxa serve --port 0` (uvicorn) process bound, read from its log once it says so."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = _SERVED.search(log.read_text(errors="replace")) if log.exists() else None
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            raise BackendUnavailableError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    raise BackendUnavailableError(f"the server did not report its port within {timeout_s:.0f} s")


def postgres_bin_dir() -> Path | None:
    """The directory holding initdb/pg_ctl/postgres (`CXA_TEST_PG_BIN`, else Debian's layout, else PATH)."""
    given = os.environ.get("CXA_TEST_PG_BIN")
    if given:
        return Path(given)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if debian:
        return Path(debian[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        raise BackendUnavailableError("running as root needs `runuser` to start PostgreSQL as the postgres user")
    return [runuser, "-u", "postgres", "--", *cmd]


@contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL cluster in its own temp dir (removed afterwards); yields its SQLAlchemy URL (database
    `postgres`, user `cxa`). Its own dir, not pytest's: those are private to root, and the server runs as
    `postgres` when the tests run as root."""
    bindir = postgres_bin_dir()
    if bindir is None or not (bindir / "initdb").exists():
        raise BackendUnavailableError(
            "PostgreSQL not found (install Debian's postgresql package, or set CXA_TEST_DATABASE_URL / CXA_TEST_PG_BIN)"
        )
    root = Path(tempfile.mkdtemp(prefix="cxa-pg-"))
    data, sock = root / "pgdata", root / "sock"
    sock.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    try:
        subprocess.run(
            _as_postgres_user(
                [str(bindir / "initdb"), "-D", str(data), "-U", "cxa", "--auth=trust", "-E", "UTF8", "--no-sync"]
            ),
            **run,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise BackendUnavailableError(f"initdb failed: {getattr(exc, 'stderr', '') or exc}") from exc
    for attempt in range(1, PORT_TRIES + 1):
        port = free_port()
        opts = (
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        try:
            subprocess.run(
                _as_postgres_user(
                    [
                        str(bindir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-o",
                        opts,
                        "-l",
                        str(root / "log"),
                        "-w",
                        "-t",
                        "60",
                        "start",
                    ]
                ),
                **run,
            )
            break
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            detail = getattr(exc, "stderr", "") or ""
            if attempt < PORT_TRIES and _BIND_FAILED.search(log + detail):
                continue  # the port was taken between finding it free and binding it: another one
            raise BackendUnavailableError(f"PostgreSQL did not start: {detail}\n{log}") from exc
    try:
        yield f"postgresql+psycopg://cxa@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def chroma_executable() -> Path | None:
    """`chroma`, installed next to this interpreter by the chromadb package."""
    beside = Path(sys.executable).parent / "chroma"
    if beside.exists():
        return beside
    found = shutil.which("chroma")
    return Path(found) if found else None


@contextmanager
def chroma_server(root: Path, port: int | None = None) -> Iterator[str]:
    """`chroma run` persisting under `root` (on `port`, default a free one); yields its URL once its heartbeat
    answers. Started again on the same root and port, it serves the same collections. Without a given `port`, a
    start that cannot bind the one found free is tried again on another (`PORT_TRIES` times)."""
    exe = chroma_executable()
    if exe is None:
        raise BackendUnavailableError("the `chroma` command (chromadb package) was not found")
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, PORT_TRIES + 1):
        chosen = port or free_port()
        logged = root / "chroma.log"
        start = logged.stat().st_size if logged.exists() else 0
        log = logged.open("a")
        proc = subprocess.Popen(
            [str(exe), "run", "--path", str(root / "data"), "--host", "127.0.0.1", "--port", str(chosen)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        url = f"http://127.0.0.1:{chosen}"
        try:
            up = _wait_for_heartbeat(proc, url)
        except BaseException:
            _stop(proc, log)
            raise
        if up:
            break
        said = logged.read_text(errors="replace")[start:]
        _stop(proc, log)
        if port is None and attempt < PORT_TRIES and _BIND_FAILED.search(said):
            continue  # the port was taken between finding it free and binding it: another one
        raise BackendUnavailableError(f"chroma run exited: {said[-2000:]}")
    try:
        yield url
    finally:
        _stop(proc, log)


def _wait_for_heartbeat(proc: subprocess.Popen[bytes], url: str, timeout_s: float = 60.0) -> bool:
    """True once `chroma run` answers; False if it exited first."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise BackendUnavailableError(f"chroma run did not answer its heartbeat within {timeout_s:.0f} s")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes], log: Any) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    log.close()


def redis_executable() -> Path | None:
    found = shutil.which("redis-server")
    return Path(found) if found else None


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway `redis-server` (Debian's redis-server package) listening on a unix socket in its own temp dir,
    no TCP port (so nothing to race for); yields its `redis+unix://` URL once it answers PING."""
    exe = redis_executable()
    if exe is None:
        raise BackendUnavailableError("redis-server not found (install Debian's redis-server package)")
    root = Path(tempfile.mkdtemp(prefix="cxa-redis-"))
    sock = root / "redis.sock"
    proc = subprocess.Popen(
        [str(exe), "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no", "--dir", str(root)],
        stdout=(root / "redis.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None:
                raise BackendUnavailableError(f"redis-server exited: {(root / 'redis.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise BackendUnavailableError("redis-server did not open its socket within 30 s")
            time.sleep(0.05)
        yield f"redis+unix://{sock}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)
