"""Real scale-out backends for tests: a PostgreSQL server and a Chroma server, each started on a free
loopback port in a temp dir and stopped afterwards (or given: `CXA_TEST_DATABASE_URL`, `CXA_TEST_CHROMA_URL`).

PostgreSQL comes from Debian's `postgresql` package (`make test` installs it when missing); the server is
started with `initdb` + `pg_ctl` as the `postgres` system user when the tests run as root (PostgreSQL refuses
to run as root), with durability off (fsync, synchronous_commit): a test server, not a deployment. Chroma is
`chroma run`, the server shipped with the chromadb package.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


class BackendUnavailableError(RuntimeError):
    """The server binary is missing or the server did not come up (the message says which and why)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    port = free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    try:
        subprocess.run(
            _as_postgres_user(
                [str(bindir / "initdb"), "-D", str(data), "-U", "cxa", "--auth=trust", "-E", "UTF8", "--no-sync"]
            ),
            **run,
        )
        opts = (
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=300"
        )
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
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        detail = getattr(exc, "stderr", "") or ""
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
    answers. Started again on the same root and port, it serves the same collections."""
    exe = chroma_executable()
    if exe is None:
        raise BackendUnavailableError("the `chroma` command (chromadb package) was not found")
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "chroma.log").open("a")
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(root / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise BackendUnavailableError(f"chroma run exited: {(root / 'chroma.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BackendUnavailableError("chroma run did not answer its heartbeat within 60 s")
            time.sleep(0.1)
        yield url
    finally:
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
