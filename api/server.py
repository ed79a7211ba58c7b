"""The HTTP server's own limits and logs (uvicorn, as `cxa serve` runs it): what no client may hold, and what the
access log may not keep.

- `GuardedH11Protocol` is uvicorn's h11 protocol with two limits it lacks: the request line and headers may take at
  most `CXA_SERVER__MAX_HEADER_BYTES` (431, then the connection closes; uvicorn's own cap,
  `h11_max_incomplete_event_size`, only counts headers still incomplete), and must be complete within
  `CXA_SERVER__HEADER_TIMEOUT_S` of the connection opening or of its previous response (uvicorn's keep-alive timer
  stops at the first byte, so a client sending a byte every few seconds held its connection forever). The body
  has its own deadline in `api.limits` (408), the number of connections served at once is uvicorn's
  `limit_concurrency` (503 beyond it): `uvicorn_options` gives them all.
- `AccessLogFilter` takes conversation and handoff ids (capabilities: an anonymous conversation opens with its id)
  and `token=` values out of uvicorn's access log lines.
"""

from __future__ import annotations

import asyncio
import logging
import re
from functools import lru_cache
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from assistant.settings import ServerSettings, Settings, get_settings

PROTOCOL = "api.server:GuardedH11Protocol"  # what uvicorn's `http=` option names (importable in every worker)


@lru_cache(maxsize=1)
def _limits() -> ServerSettings:
    return get_settings().server


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header size cap and a header deadline (see the module docstring). Its limits
    are the process's settings (`CXA_SERVER__*`), or those of a class made by `limited` (a server run in-process)."""

    limits: ServerSettings | None = None

    @classmethod
    def limited(cls, limits: ServerSettings) -> type[GuardedH11Protocol]:
        return type(cls.__name__, (cls,), {"limits": limits})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = self.limits or _limits()
        self.max_header_bytes = limits.max_header_bytes
        self.header_timeout_s = limits.header_timeout_s
        self._header_bytes = 0
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is not None:  # still reading a request line and headers
            end = data.find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else end + 4
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, b"request headers too large")
                return
        super().data_received(data)
        if self._header_deadline is not None and self.conn.their_state is not h11.IDLE:
            self._stop_waiting()  # the headers are in: the request runs (its body has api.limits' deadline)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_headers()  # the next request on this keep-alive connection gets the same deadline

    def _await_headers(self) -> None:
        self._stop_waiting()
        self._header_bytes = 0
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _stop_waiting(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:  # a request begun and never finished (a byte now and then)
            self._refuse(408, b"request headers not received in time")
        elif self.conn.their_state is h11.DONE and self.conn.our_state is h11.DONE:  # idle between requests
            self.transport.close()

    def _refuse(self, status: int, message: bytes) -> None:
        """Answer `status` in plain text and close, whatever state h11 is in."""
        self._stop_waiting()
        if self.transport.is_closing():
            return
        phrase = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, phrase, len(message), message)
        )
        self.transport.close()


def uvicorn_options(settings: Settings, in_process: bool = False) -> dict[str, Any]:
    """The server limits as `uvicorn.run` / `uvicorn.Config` options. `cxa serve` names the protocol by its import
    path (worker processes import it and read their settings from the environment, as `create_app` does); a server
    run in this process (`in_process`) gets a protocol class carrying these very settings."""
    server = settings.server
    return {
        "http": GuardedH11Protocol.limited(server) if in_process else PROTOCOL,
        "h11_max_incomplete_event_size": server.max_header_bytes,
        "timeout_keep_alive": max(1, round(server.keep_alive_s)),
        "limit_concurrency": server.max_concurrency,
    }


_CONVERSATION_PATH = re.compile(r"(/v1/(?:conversations|handoffs)/)[^/?\s]+")
_TOKEN_PARAM = re.compile(r"([?&]token=)[^&\s]*")


class AccessLogFilter(logging.Filter):
    """uvicorn's access lines without conversation/handoff ids or `token=` values (`.../conversations/:id/events`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = _TOKEN_PARAM.sub(r"\1[redacted]", _CONVERSATION_PATH.sub(r"\1:id", args[2]))
            record.args = (*args[:2], path, *args[3:])
        return True


def install_access_log_filter() -> None:
    """Once per process: the filter on uvicorn's access logger (whoever started uvicorn)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogFilter) for f in access.filters):
        access.addFilter(AccessLogFilter())
